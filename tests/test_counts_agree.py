"""One set of counts: what `medins run` prints, what `runs` records and what the workbook's summary shows
are the same numbers (the subsidy lists' rows included, and shown on their own line too)."""

from __future__ import annotations

import datetime as dt
import re

import duckdb
import openpyxl
from typer.testing import CliRunner

from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, roster_row, write_workbook
from pipeline.cli import app

PEOPLE = [make_id("360222", dt.date(1975, 1 + i, 2), i) for i in range(5)]
LIST_HEADER = ["身份证号", "姓名", "身份类别", "纳入资助时间"]


def _console_count(output: str, label: str) -> int:
    line = next(line for line in output.splitlines() if label in line)
    return int(re.sub(r"[^\d]", "", line.split("│")[-2]))


def test_console_runs_and_workbook_say_the_same_counts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not beside a checkout's out/medins.duckdb (`make run`), which the run would name
    roster = write_workbook(
        tmp_path / "roster.xlsx",
        {
            "S": [ROSTER_HEADER]
            + [roster_row(i, f"居民{i}", pid) for i, pid in enumerate(PEOPLE)]
            + [roster_row(9, "坏行", "123")]  # rejected
            + [[], ["合计：6人"]]  # a blank and a footer row: skipped
        },
    )
    payments = write_workbook(
        tmp_path / "payments.xlsx",
        {"S": [PAYMENT_HEADER, [1, "居民0", PEOPLE[0], 400, "2025-11-01", "2026", "33600000000000000001", "微信"]]},
    )
    lists = write_workbook(
        tmp_path / "民政.xlsx",
        {"S": [LIST_HEADER, [PEOPLE[1], "居民1", "城乡低保对象", "2025-01-01"], ["999", "坏", "低保", None]]},
    )
    out = tmp_path / "out"
    args = ["run", "-y", "2026", "--out", str(out), "--roster", str(roster), "--payments", str(payments)]
    result = CliRunner().invoke(app, [*args, "--subsidy-list", str(lists), "--as-of", "2026-11-23"])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(out / "medins.duckdb"), read_only=True)
    try:
        runs = con.execute(
            "SELECT rows_read, rows_accepted, rows_rejected, rows_skipped, subsidy_list_accepted FROM runs"
        ).fetchone()
    finally:
        con.close()
    # roster 6 data rows + blank + footer = 8 read, 5 accepted, 1 rejected, 2 skipped; payments 1 read,
    # accepted; list 2 read, 1 accepted, 1 rejected
    assert runs == (11, 7, 2, 2, 1)
    console = [
        _console_count(result.output, label) for label in ("rows read", "accepted", "rejected", "skipped (blank")
    ]
    assert console == list(runs[:4])
    assert re.search(r"其中资助参保对象名单 of which subsidy lists\s*│\s*2 / 1\s*│", result.output)
    summary = openpyxl.load_workbook(out / "对账报告_2026.xlsx", read_only=True)["汇总"]
    shown = {row[0]: row[1] for row in summary.iter_rows(values_only=True) if row and row[0]}
    assert [shown["读取行数"], shown["接收行数"], shown["校验未通过行数"], shown["跳过行数"]] == list(runs[:4])
