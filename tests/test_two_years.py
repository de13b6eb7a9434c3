"""Two cron lines, two coverage years, one minute (docs/CONTRACT.md "The command"): in the collection
period the bureau runs this year's benefits and next year's collection every night against one
database. With `--wait`, the second job waits for the first's lock instead of failing, says so once
(naming the other run), and both years end up in the database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb

from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, roster_row, write_workbook

MEDINS = [sys.executable, "-m", "pipeline.cli"]
PEOPLE = [make_id("360222", __import__("datetime").date(1970 + i, 3, 1 + i), i) for i in range(6)]


def _inputs(tmp_path: Path, year: int) -> tuple[Path, Path]:
    roster = write_workbook(
        tmp_path / f"roster{year}.xlsx",
        {"S": [ROSTER_HEADER] + [roster_row(i, f"居民{i}", pid) for i, pid in enumerate(PEOPLE)]},
    )
    paid = "2024-11-01" if year == 2025 else "2025-11-01"
    payments = write_workbook(
        tmp_path / f"payments{year}.xlsx",
        {
            "S": [PAYMENT_HEADER]
            + [
                [i, f"居民{i}", pid, 400, paid, str(year), f"33600000000{year}{i:05d}", "微信"]
                for i, pid in enumerate(PEOPLE)
            ]
        },
    )
    return roster, payments


def _start(tmp_path: Path, year: int, *extra: str) -> subprocess.Popen:
    roster, payments = _inputs(tmp_path, year)
    cmd = [*MEDINS, "run", "-y", str(year), "--out", str(tmp_path / "out"), "--roster", str(roster)]
    cmd += ["--payments", str(payments), "--as-of", "2026-11-23", *extra]
    return subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
    )


def test_two_years_started_together_with_wait_both_complete(tmp_path):
    jobs = [_start(tmp_path, year, "--wait", "5") for year in (2025, 2026)]
    outputs = [job.communicate(timeout=300) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], [err for _, err in outputs]
    waiting = [line for out, _ in outputs for line in out.splitlines() if "waiting up to 5 min" in line]
    assert len(waiting) == 1  # the one that met the other's lock said so once
    assert re.search(r"等待另一个运行结束（pid \d+, started \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}）", waiting[0])
    con = duckdb.connect(str(tmp_path / "out" / "medins.duckdb"), read_only=True)
    try:
        years = con.execute("SELECT coverage_year, count(*) FROM determinations GROUP BY 1 ORDER BY 1").fetchall()
        runs = con.execute("SELECT coverage_year FROM runs ORDER BY 1").fetchall()
    finally:
        con.close()
    assert years == [(2025, len(PEOPLE)), (2026, len(PEOPLE))]
    assert runs == [(2025,), (2026,)]
