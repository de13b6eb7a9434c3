"""Rejection reasons that say how to fix the cell: an unknown 人员身份 or 特殊情形 names the closest accepted
spellings of policy_params/labels.toml; an unreadable amount shows the forms that are read."""

from __future__ import annotations

import datetime as dt
import re

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

import pipeline.hints as hints
from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, write_workbook
from pipeline.cli import app
from pipeline.params import load_params
from pipeline.parse import normalise_text, parse_amount_fen
from schemas.models import REASONS

runner = CliRunner()
PARAMS = load_params(2026)
LABELS = tuple((lab.name, lab.aliases) for lab in PARAMS.labels)
AMOUNT_FORMS = "（可写作 400、400.00、400元、￥400、1,000.00；退费写作 -400）"


@pytest.mark.parametrize(
    ("written", "closest"),
    [
        ("特困", ["特困人员", "特困供养人员"]),  # an alias of 特困供养人员, then the name itself
        ("低保户", ["低保对象", "城乡低保对象"]),
        ("农村低保户", ["农村低保", "城乡低保对象"]),
        ("五保户", []),  # nothing close enough: no guess
    ],
)
def test_closest_label_spellings(written, closest):
    assert hints.closest_spellings(written, LABELS) == closest


def test_closest_event_spelling():
    assert hints.closest_spellings("回国", PARAMS.event_types) == ["出国回国"]


def test_hints_are_worked_out_once_per_distinct_unknown_label(monkeypatch):
    calls: list[str] = []
    real = hints.closest_spellings

    def counted(text, names):
        calls.append(text)
        return real(text, names)

    monkeypatch.setattr(hints, "closest_spellings", counted)
    raws = ["低保户、特困", "特困", "城乡低保对象、低保户"] * 1000
    rejected = pl.DataFrame(
        {
            "raw_value": raws,
            "reason": [REASONS["label_unknown"].replace("{header}", "人员身份").replace("{raw}", r) for r in raws],
        }
    )
    reasons = hints.with_spelling_hints(rejected, PARAMS)["reason"]
    assert sorted(calls) == ["低保户", "特困"]
    assert reasons[2] == (
        "人员身份“城乡低保对象、低保户”中有政策参数未列出的类别“低保户”（是否为：低保对象、城乡低保对象？），请核对写法"
    )


def test_the_amount_message_lists_only_forms_that_are_read():
    assert REASONS["amount"].endswith(AMOUNT_FORMS)
    forms = re.search(r"可写作 (.+)；退费写作 (.+)）", AMOUNT_FORMS)
    assert forms is not None
    written = [*forms.group(1).split("、"), forms.group(2)]
    fen = pl.DataFrame({"a": written}).select(parse_amount_fen(normalise_text(pl.col("a")))).to_series()
    assert fen.to_list() == [40000, 40000, 40000, 40000, 100000, -40000]


def test_reasons_in_rejected_rows_name_the_fix(tmp_path):
    ids = [make_id("360222", dt.date(1980, 1, 1), seq) for seq in range(1, 6)]
    place = ["浮梁县", "浮梁镇", None]
    rows = [
        [1, "甲", ids[0], *place, "特困", "是", None, None, "2025-10-20", None],
        [2, "乙", ids[1], *place, "低保户、特困", "是", None, None, "2025-10-20", None],
        [3, "丙", ids[2], *place, "五保户", "是", None, None, "2025-10-20", None],
        [4, "丁", ids[3], *place, None, "是", "回国", "2025-11-01", "2025-10-20", None],
    ]
    roster = write_workbook(tmp_path / "roster.xlsx", {"S": [ROSTER_HEADER, *rows]})
    payments = write_workbook(
        tmp_path / "payments.xlsx",
        {"S": [PAYMENT_HEADER, [1, "戊", ids[4], "四百", "2025-11-01", "2026", "33600000000000000009", "微信"]]},
    )
    out = tmp_path / "out"
    args = ["run", "-y", "2026", "--roster", str(roster), "--payments", str(payments), "--out", str(out)]
    result = runner.invoke(app, [*args, "--db", str(out / "medins.duckdb")])
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(out / "medins.duckdb"), read_only=True) as con:
        reasons = con.execute("SELECT row_number, reason FROM rejected_rows ORDER BY kind DESC, row_number").fetchall()
    assert reasons == [
        (2, "人员身份“特困”中有政策参数未列出的类别“特困”（是否为：特困人员、特困供养人员？），请核对写法"),
        (
            3,
            "人员身份“低保户、特困”中有政策参数未列出的类别“低保户”（是否为：低保对象、城乡低保对象？）、"
            "“特困”（是否为：特困人员、特困供养人员？），请核对写法",
        ),
        (4, "人员身份“五保户”中有政策参数未列出的类别“五保户”，请核对写法"),
        (5, "特殊情形“回国”不是政策规定的情形（是否为：出国回国？）"),
        (2, f"缴费金额“四百”不是可识别的金额{AMOUNT_FORMS}"),
    ]
