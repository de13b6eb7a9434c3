"""The phone lists (催缴名单): the roster's 联系电话 next to the name, in full and as written, in every
list a township clerk phones from; never in what the run prints."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from typing import Any

import openpyxl
import pytest

from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, roster_row, with_wrong_check_digit, write_workbook
from pipeline.io.excel_out import write_reports
from pipeline.io.masking import mask_id
from pipeline.params import load_params
from report_db import ID_UNDER, ID_UNPAID, PHONES, RUN_ID, build_db

ZHANG, LI, WANG, ZHAO, QIAN, SUN = (make_id("360222", dt.date(1970 + i, 5, 1 + i), i) for i in range(6))
PHONE = {
    ZHANG: "13700000001",  # paid in full
    LI: "0798-1234567",  # unpaid: a leading zero and a dash
    WANG: "13800138000 13900139000",  # underpaid: two numbers in one cell
    ZHAO: "15000000003",  # 低保 on 民政's list, unpaid
    QIAN: "15000000004",  # a roster row with a bad check digit: rejected
}
LIST_HEADER = ["身份证号", "姓名", "身份类别", "认定部门"]


def people_of(ws):
    """A list's rows without its township heading rows (the first cell ends in 人）, the rest empty)."""
    rows = (tuple(c.value for c in row) for row in ws.iter_rows(min_row=2))
    return [r for r in rows if not (str(r[0]).endswith("人）") and all(v is None for v in r[1:]))]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """One night through `medins run`: a roster of two sheets, one headed 联系电话 and one 手机号码, with
    张三 twice (the copy differs in the phone only: merged); a payments file; 民政's subsidy list."""
    base = tmp_path_factory.mktemp("phones")
    first = [
        [*ROSTER_HEADER, "联系电话"],
        [*roster_row(1, "张三", ZHANG), PHONE[ZHANG]],
        [*roster_row(2, "李四", LI), PHONE[LI]],
        [*roster_row(3, "钱七", with_wrong_check_digit(QIAN)), PHONE[QIAN]],
        [*roster_row(4, "张三", ZHANG), "13700000009"],
    ]
    second = [
        [*ROSTER_HEADER, "手机号码"],
        [*roster_row(1, "王五", WANG), PHONE[WANG]],
        [*roster_row(2, "赵六", ZHAO), PHONE[ZHAO]],
    ]
    payments: list[list[Any]] = [
        PAYMENT_HEADER,
        [1, "张三", ZHANG, 400, "2025-11-01", "2026", "33600000000000000001", "微信"],
        [2, "王五", WANG, 300, "2025-11-02", "2026", "33600000000000000002", "微信"],
    ]
    listed = [LIST_HEADER, [ZHAO, "赵六", "城乡低保对象", "县民政局"], [SUN, "孙八", "城乡低保对象", "县民政局"]]
    cmd = [
        *(sys.executable, "-m", "pipeline.cli", "run", "--coverage-year", "2026", "--region", "jingdezhen"),
        *("--as-of", "2026-03-01", "--out", str(base / "out")),
        *("--roster", str(write_workbook(base / "roster.xlsx", {"花名册一": first, "花名册二": second}))),
        *("--payments", str(write_workbook(base / "payments.xlsx", {"缴费明细": payments}))),
        *("--subsidy-list", str(write_workbook(base / "list_民政.xlsx", {"民政": listed}))),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=base, timeout=300)
    assert result.returncode == 0, result.stderr
    return base / "out", result


def test_the_phone_lists_show_the_roster_phone_next_to_the_name_as_written(night):
    out, _ = night
    phone = openpyxl.load_workbook(out / "催缴名单_2026.xlsx")
    assert phone.sheetnames == ["未缴", "少缴", "资助对象未参保", "说明"]
    for ws in phone.worksheets[:3]:
        assert [c.value for c in ws[1]][:3] == ["姓名", "联系电话", "证件号码"], ws.title
    # 李四 from the sheet headed 联系电话, 王五 and 赵六 (低保: 80 due, unpaid) from the one headed 手机号码
    assert [r[:3] for r in people_of(phone["未缴"])] == [
        ("李四", PHONE[LI], mask_id(LI)),
        ("赵六", PHONE[ZHAO], mask_id(ZHAO)),
    ]
    assert [r[:3] for r in people_of(phone["少缴"])] == [("王五", PHONE[WANG], mask_id(WANG))]
    # 孙八 is not on the roster: no phone to show
    assert sorted(r[:2] for r in people_of(phone["资助对象未参保"])) == [("孙八", None), ("赵六", PHONE[ZHAO])]
    assert phone["未缴"]["B3"].data_type == "s"  # the phone is text: 0798 keeps its zero


def test_no_phone_appears_in_what_the_run_prints_or_in_any_other_file(night):
    out, result = night
    printed = result.stdout + result.stderr
    assert "已合并" in printed  # the merged copy of 张三 is reported, without its phone
    others = [p for p in out.iterdir() if p.suffix not in (".xlsx", ".duckdb")]
    texts = {"console": printed} | {p.name: p.read_text(errors="replace") for p in others if p.is_file()}
    for name, text in texts.items():
        for number in [*PHONE.values(), "13700000009"]:
            assert number not in text, (name, number)


def test_without_any_phone_in_the_years_roster_the_lists_have_no_phone_column(tmp_path):
    paths = write_reports(
        build_db(2026, 700, 0.6, None, phones={}), RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi")
    )
    phone = openpyxl.load_workbook(paths[0])
    assert [c.value for c in phone["未缴"][1]] == [
        "姓名",
        "证件号码",
        "乡镇(街道)",
        "村(社区)",
        "资助类别",
        "应缴金额",
    ]
    assert "联系电话" not in [c.value for c in phone["少缴"][1]]


def test_a_phone_is_shown_in_full_but_an_id_typed_into_it_is_masked(tmp_path):
    id_in_phone = make_id("360222", dt.date(1990, 1, 1), 9)
    phones = {ID_UNPAID: f"{id_in_phone} 13800138000", ID_UNDER: PHONES[ID_UNDER]}
    paths = write_reports(
        build_db(2026, 700, 0.6, None, phones=phones), RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi")
    )
    phone = openpyxl.load_workbook(paths[0])
    assert people_of(phone["未缴"])[0][1] == f"{mask_id(id_in_phone)} 13800138000"
    assert people_of(phone["少缴"])[0][1] == "13912345678"
