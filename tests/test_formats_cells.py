"""Every header and cell form the bureau's systems export (docs/RULES.md §6), read from one night
(`cells_night`) whose sheets each hold the cases of one check: headers in a night, two-row
headers, every 费款所属期 form, dates that cannot be right, old and corrupted ID numbers. The merged
headers and the .xls sheets are written here at run time.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import xlwt

from builders import PAYMENT_HEADER, ROSTER_HEADER, Num, XDate, make_id, roster_row, write_workbook
from formats_cases import (
    NOT_A_DATE,
    NUMERIC_ID,
    OLD_15,
    PAYER,
    counts,
    lines,
    night,
    payment_row,
    person_ids,
    query,
    reasons_by_row,
    text_line,
    ticket,
    with_header,
)
from pipeline.errors import InputFileError

# === the cells night: items 5-9 read from one night ===================================================
# Each sheet holds the cases of one check; with the header on row 1, case k is on Excel row k + 2.

IDS = person_ids()
LATE = "2026-11-24"  # the day after the run date


def future(header: str, raw: str) -> str:
    return f"{header}“{raw}”晚于运行日期2026-11-23，不可能是将来的日期；请核对"


ID_TYPE_CASES = [
    ("01", "居民身份证"),
    (Num(1), "居民身份证"),
    ("1", "居民身份证"),
    ("07", "07"),
    ("护照", "护照"),
    ("居民身份证", "居民身份证"),
    (None, "居民身份证"),
]

NO_DAY = "{}“{}”只有年份或年月，不是完整日期；请填写年月日（如 2025-10-15）"
# (roster_row keyword, cell, then the residents column and the value kept, or the column and the reason)
ROSTER_DATE_CASES = [
    ("registered", LATE, "参保登记日期", future("参保登记日期", LATE)),
    ("registered", "2026-11-23", "registered_on", dt.date(2026, 11, 23)),  # the run date itself
    ("event_date", LATE, "特殊情形日期", future("特殊情形日期", LATE)),
    ("identified", LATE, "资助认定日期", future("资助认定日期", LATE)),
    ("identified", "202612", "资助认定日期", future("资助认定日期", "202612")),
    # a month is enough for 资助认定日期 (its first day), not for the other dates (docs/RULES.md §6)
    ("identified", "202603", "subsidy_identified_on", dt.date(2026, 3, 1)),
    ("identified", "2026-03", "subsidy_identified_on", dt.date(2026, 3, 1)),
    ("identified", "2026年3月", "subsidy_identified_on", dt.date(2026, 3, 1)),
    ("identified", Num(202603), "subsidy_identified_on", dt.date(2026, 3, 1)),
    ("identified", "2026-03-15", "subsidy_identified_on", dt.date(2026, 3, 15)),
    ("registered", "202510", "参保登记日期", NO_DAY.format("参保登记日期", "202510")),
    ("registered", "2025年10月", "参保登记日期", "参保登记日期“2025年10月”不是可识别的日期" + NOT_A_DATE),
]


def dated_row(name: str, keyword: str, cell) -> list:
    """A roster row with one date cell; a 特殊情形日期 needs its 特殊情形, a 资助认定日期 its label."""
    needs = {"event_date": {"event": "退役军人"}, "identified": {"labels": "城乡低保对象"}}.get(keyword, {})
    return roster_row(1, name, next(IDS), **{keyword: cell}, **needs)


BORN = dt.date(1990, 3, 4)
BORN_ID = make_id("360222", BORN, 5)
FUTURE_BIRTH_ID = next(IDS)
# Not a month: a bare year, month 13, month 00 (docs/RULES.md §6: a year is never a date)
IDENTIFIED_NOT_A_MONTH = ["2026", Num(2026), "202613", "202600"]

ROSTER_ID_CASES = [
    ("360222900501123", OLD_15),
    (Num(360222900501123), OLD_15),
    ("3.6020219980525E+017", NUMERIC_ID),  # what LibreOffice's CSV writes for a number ID
    (Num(3.6020219980525e17), NUMERIC_ID),
]
PAYMENT_ID_CASES = [
    ("360222900501123", OLD_15),
    (Num(360222900501123), OLD_15),
    ("3.6020219980525E+017", NUMERIC_ID),
    ("3.60222E+17", NUMERIC_ID),  # what Excel writes for one
]

# (cell, the coverage year it gives): docs/RULES.md §6, every form and ranges of them
PERIOD_FORMS = [
    ("2026", 2026),
    ("2026年", 2026),
    ("2026年度", 2026),
    ("2025年度", 2025),
    ("202603", 2026),
    ("2026-03", 2026),
    ("2026.03", 2026),
    ("2026年3月", 2026),
    ("202512", 2025),
    ("2026-03-15", 2026),
    ("2026/03/15", 2026),
    ("2026.03.15", 2026),
    ("20260315", 2026),
    ("2026年3月15日", 2026),
    (XDate(dt.date(2026, 3, 15)), 2026),
    (XDate(dt.date(2025, 12, 31)), 2025),
    (Num(2026), 2026),
    ("202601-202612", 2026),
    ("2026-01-01至2026-12-31", 2026),
    ("2026-01-01~2026-12-31", 2026),
    ("2026-01-01～2026-12-31", 2026),
    ("2026年1月到2026年12月", 2026),
    ("2026-01-01-2026-12-31", 2026),
    ("2026-01-2026-12", 2026),
    ("2026.01-2026.12", 2026),
    ("2026年-2026年", 2026),
    ("2025-01至2025-12", 2025),
    ("2026-01-01 至 2026-12-31", 2026),
    ("2026/1/1-2026/12/31", 2026),
    ("2026年01月01日-2026年12月31日", 2026),
]
CROSS_YEAR = "202512-202601"
PERIOD_RANGE_FORMS = [
    ("202601-202612", 2026),
    ("2026-01-01至2026-12-31", 2026),
    ("2025年1月到2025年12月", 2025),
    ("2026", 2026),
]
# A range of two different forms joined by `-` ("a range of any of those", docs/RULES.md §6)
MIXED_RANGES = ["202601-2026-12", "2026-01-01-2026-12", "2026-01-2026-12-31", "2026年1月-2026-12", "2026.01-2026-12"]

TOO_EARLY = "缴费日期“{}”早于费款所属期前两年的1月1日，不可能是为该年度缴费；请核对缴费日期或费款所属期"
BABY = make_id("360222", dt.date(2025, 6, 1), 9)
# (缴费日期 cell, 费款所属期, ID, the paid_on kept or the reason)
PAID_ON_CASES = [
    ("2025", "2026", PAYER, NO_DAY.format("缴费日期", "2025")),  # never serial 2025 = 1905-07-17
    (Num(2025), "2026", PAYER, NO_DAY.format("缴费日期", "2025")),
    ("202511", "2026", PAYER, NO_DAY.format("缴费日期", "202511")),
    (Num(202511), "2026", PAYER, NO_DAY.format("缴费日期", "202511")),
    (LATE, "2026", PAYER, future("缴费日期", LATE)),
    ("2026-11-23", "2026", PAYER, dt.date(2026, 11, 23)),  # the run date itself
    ("2023-12-31", "2026", PAYER, TOO_EARLY.format("2023-12-31")),  # C = 2026: not before 2024-01-01
    ("2024-01-01", "2026", PAYER, dt.date(2024, 1, 1)),
    ("2022-12-31", "2025", PAYER, TOO_EARLY.format("2022-12-31")),  # C = 2025: not before 2023-01-01
    ("2023-01-01", "2025", PAYER, dt.date(2023, 1, 1)),
    ("2025-03-01", "2026", BABY, "缴费日期早于出生日期"),  # born 2025-06-01 by the row's own ID
    ("2025-06-01", "2026", BABY, dt.date(2025, 6, 1)),
    ("20251015", "2026", PAYER, dt.date(2025, 10, 15)),
    (Num(20251015), "2026", PAYER, dt.date(2025, 10, 15)),
    ("45945", "2026", PAYER, dt.date(2025, 10, 15)),  # Excel serial 45945
    (Num(45945), "2026", PAYER, dt.date(2025, 10, 15)),
    ("45945.5", "2026", PAYER, dt.date(2025, 10, 15)),  # the day of its integer part
    (Num(45945.5), "2026", PAYER, dt.date(2025, 10, 15)),
    (XDate(dt.date(2025, 10, 15)), "2026", PAYER, dt.date(2025, 10, 15)),
    ("2026-10-01", "2027", PAYER, dt.date(2026, 10, 1)),  # 费款所属期 may lie in the future
]


def two_row_sheet(group: str, sub: tuple[str, str], rows: list[list], title: bool = True):
    """A tax export with a header over two rows: `group` merged over two columns with `sub` below,
    every other header cell merged down over both rows; a merged title above it when `title`."""
    top = ["序号", "缴费人姓名", "缴费人证件号码", "缴费金额", "缴费日期", group, None, "电子税票号码", "缴费渠道"]
    below = [None] * 5 + list(sub) + [None, None]
    first = 1 if title else 0
    cells = ([["2026年度城乡居民医保缴费明细"] + [None] * 8] if title else []) + [top, below] + rows
    merges = (
        ([(0, 0, 0, 8)] if title else [])
        + [(first, c, first + 1, c) for c in (0, 1, 2, 3, 4, 7, 8)]
        + [(first, 5, first, 6)]
    )
    return cells, merges


def two_column_row(start, end) -> list:
    return [1, "丁一", PAYER, 400, "2025-11-01", start, end, ticket(), "微信"]


def write_xls(path: Path, sheets: dict[str, tuple[list[list], list[tuple[int, int, int, int]]]]) -> Path:
    """An Excel 97 (BIFF8) workbook with merged cells, written by xlwt."""
    book = xlwt.Workbook(encoding="utf-8")
    for name, (rows, merges) in sheets.items():
        ws = book.add_sheet(name)
        covered = set()
        for r1, c1, r2, c2 in merges:
            ws.write_merge(r1, r2, c1, c2, rows[r1][c1] or "")
            covered |= {(r, c) for r in range(r1, r2 + 1) for c in range(c1, c2 + 1)}
        for r, row in enumerate(rows):
            for c, cell in enumerate(row):
                if cell is not None and (r, c) not in covered:
                    ws.write(r, c, cell)
    book.save(str(path))
    return path


def two_row_sheets() -> tuple[dict[str, list[list]], dict[str, list]]:
    """The payment sheets whose 费款所属期 is merged over two columns, and their merged ranges."""
    sheets, merges = {}, {}
    for name, group, sub, rows, title in [
        (
            "两行表头",
            "费款所属期",
            ("起", "止"),
            [
                two_column_row("2026-01-01", "2026-12-31"),
                two_column_row("202601", None),
                two_column_row("2025-12-01", "2026-11-30"),
            ],
            True,
        ),
        (
            "两行表头_对应",
            "对应费款所属期",
            ("起始", "结束"),
            [two_column_row("2026-01", "2026-12"), two_column_row(None, "2026-12-31")],
            True,
        ),
        ("两行表头_税款", "税款所属期", ("起", "止"), [two_column_row("2026年1月", "2026年12月")], False),
    ]:
        sheets[name], merges[name] = two_row_sheet(group, sub, rows, title)
    return sheets, merges


def payment_sheets() -> tuple[dict[str, list[list]], dict[str, list]]:
    def paid_columns(first: str, second: str) -> list[list]:
        dates = {"缴款日期": "2025-11-01", "入库日期": "2025-11-05"}
        return [
            with_header(PAYMENT_HEADER, {"缴费日期": first}, (second,)),
            [*payment_row(paid_on=dates[first]), dates[second]],
        ]

    sheets, merges = two_row_sheets()
    flat = with_header(PAYMENT_HEADER, {"费款所属期": "税款所属期起"})
    flat.insert(6, "税款所属期止")
    sheets["一行起止"] = [
        flat,
        two_column_row("2026-01-01", "2026-12-31"),
        two_column_row(XDate(dt.date(2026, 1, 1)), XDate(dt.date(2026, 12, 31))),
    ]
    sheets["所属期"] = (
        [PAYMENT_HEADER] + [payment_row(period=form) for form, _ in PERIOD_FORMS] + [payment_row(period=CROSS_YEAR)]
    )
    sheets["所属期起止"] = [with_header(PAYMENT_HEADER, {"费款所属期": "费款所属期起止"})] + [
        payment_row(period=form) for form, _ in PERIOD_RANGE_FORMS
    ]
    sheets["混合区间"] = [PAYMENT_HEADER] + [payment_row(period=form) for form in MIXED_RANGES]
    sheets["缴费日期"] = [PAYMENT_HEADER] + [
        payment_row(paid_on=cell, period=period, pid=pid) for cell, period, pid, _ in PAID_ON_CASES
    ]
    sheets["旧证"] = [PAYMENT_HEADER] + [payment_row(pid=pid) for pid, _ in PAYMENT_ID_CASES]
    sheets["入库日期在前"] = paid_columns("入库日期", "缴款日期")
    sheets["缴款日期在前"] = paid_columns("缴款日期", "入库日期")
    sheets["票证号码"] = [with_header(PAYMENT_HEADER, append=("票证号码",)), [*payment_row(), "A00000001"]]
    sheets["缴费总金额"] = [
        with_header(PAYMENT_HEADER, {"缴费金额": "缴费总金额"}, ("缴费金额",)),
        [*payment_row(amount="1280.00"), "400.00"],
    ]
    sheets["金额单位"] = [
        with_header(PAYMENT_HEADER, {"缴费金额": "实缴金额(元)"}, ("缴费金额（元）",)),
        [*payment_row(amount="380.00"), "400.00"],
    ]
    return sheets, merges


def roster_sheets() -> dict[str, list[list]]:
    decorated_headers = ["编号", "参保人姓名", "*姓名", "公民身份\n号码", "县（市、区）", " 乡镇（街道）*", "村 (社区)"]
    dates = [[*dated_row(f"乙{i}", keyword, cell), None] for i, (keyword, cell, *_) in enumerate(ROSTER_DATE_CASES)]
    # then two rows with a 出生日期: after the run date, and the one in the ID
    dates += [[*roster_row(1, "乙甲", FUTURE_BIRTH_ID), LATE], [*roster_row(1, "乙乙", BORN_ID), BORN.isoformat()]]
    return {
        "证件类型": [[*ROSTER_HEADER, "证件类型"]]
        + [[*roster_row(1, f"甲{i}", next(IDS)), code] for i, (code, _) in enumerate(ID_TYPE_CASES)],
        "日期": [[*ROSTER_HEADER, "出生日期"], *dates],
        "认定日期": [ROSTER_HEADER]
        + [dated_row(f"戊{i}", "identified", c) for i, c in enumerate(IDENTIFIED_NOT_A_MONTH)],
        "旧证": [ROSTER_HEADER] + [roster_row(1, f"丙{i}", pid) for i, (pid, _) in enumerate(ROSTER_ID_CASES)],
        "表头": [
            [*decorated_headers, "上年度参保", "备注"],
            [1, "张别名", "张三", next(IDS), "浮梁县", "浮梁镇", "新平村", "是", "无"],
        ],
    }


@pytest.fixture(scope="module")
def cells_night(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cells")
    roster = write_workbook(folder / "roster.xlsx", roster_sheets())
    sheets, merges = payment_sheets()
    payments = write_workbook(folder / "payments.xlsx", sheets, merges=merges)
    # the same two-row header as an .xls and as the CSV LibreOffice writes of it (merged cells empty)
    filled, start_only = two_column_row("2026-01-01", "2026-12-31"), two_column_row("202601", None)
    old_xls = write_xls(
        folder / "payments_97.xls", {"两行表头xls": two_row_sheet("费款所属期", ("起", "止"), [filled, start_only])}
    )
    rows, _ = two_row_sheet(
        "费款所属期", ("起", "止"), [two_column_row("2026-01-01", "2026-12-31"), two_column_row(None, "2026-12")]
    )
    text = folder / "两行表头csv.csv"
    text.write_bytes("\n".join(text_line(row, ",") for row in rows).encode("gb18030") + b"\n")
    return night(folder / "out", [roster], [payments, old_xls, text])


def payments_of(db: Path, sheet: str) -> dict[int, dict]:
    return {
        r["row_number"]: r
        for r in query(
            db,
            "SELECT row_number, coverage_year, paid_on, amount, ticket_no, extra_columns FROM payments WHERE sheet = ?",
            sheet,
        )
    }


def residents_of(db: Path, sheet: str) -> dict[int, dict]:
    return {r["row_number"]: r for r in query(db, "SELECT * FROM residents WHERE sheet = ?", sheet)}


# === 5. headers in a night ==================================================================================


def test_id_type_codes_01_and_1_mean_resident_id_card_other_codes_are_kept_as_written(cells_night):
    result, db = cells_night
    assert lines(result, "roster", "证件类型") == []
    got = {row: r["id_type"] for row, r in residents_of(db, "证件类型").items()}
    assert got == {i + 2: want for i, (_, want) in enumerate(ID_TYPE_CASES)}


def test_decorated_headers_find_their_fields_and_the_first_listed_alias_wins(cells_night):
    _, db = cells_night
    (person,) = residents_of(db, "表头").values()
    # 姓名 is listed before 参保人姓名, whatever the column order
    assert (person["name"], person["county"], person["township"], person["village"]) == (
        "张三",
        "浮梁县",
        "浮梁镇",
        "新平村",
    )
    assert json.loads(person["extra_columns"]) == {"参保人姓名": "张别名", "备注": "无"}


@pytest.mark.parametrize("sheet", ["入库日期在前", "缴款日期在前"])
def test_payment_date_beats_posting_date_whatever_the_column_order(cells_night, sheet):
    _, db = cells_night
    (row,) = payments_of(db, sheet).values()
    assert (row["paid_on"], json.loads(row["extra_columns"])) == (dt.date(2025, 11, 1), {"入库日期": "2025-11-05"})


def test_a_trailing_unit_is_dropped_and_the_first_listed_amount_alias_wins(cells_night):
    _, db = cells_night
    (row,) = payments_of(db, "金额单位").values()
    assert (float(row["amount"]), json.loads(row["extra_columns"])) == (400.0, {"实缴金额(元)": "380.00"})


def test_the_paper_ticket_number_is_an_extra_column_never_the_electronic_ticket(cells_night):
    _, db = cells_night
    (row,) = payments_of(db, "票证号码").values()
    assert json.loads(row["extra_columns"]) == {"票证号码": "A00000001"}
    assert row["ticket_no"] != "A00000001" and len(row["ticket_no"]) == 20


@pytest.mark.parametrize(
    "renamed, missing",
    [
        ({"电子税票号码": "票证号码"}, "电子税票号码（也可写作：电子税票号）"),
        ({"缴费金额": "缴费总金额"}, "缴费金额（也可写作：实缴金额、个人缴费金额）"),
    ],
)
def test_a_payments_file_with_only_the_look_alike_column_is_refused_naming_the_real_one(tmp_path, renamed, missing):
    """票证号码 is no 电子税票号码 and 缴费总金额 (with the fiscal subsidy) no 缴费金额: a sheet that has
    only the look-alike lacks a required column, and its file is refused whole (docs/RULES.md §6)."""
    roster = write_workbook(tmp_path / "roster.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", next(IDS))]})
    payments = write_workbook(tmp_path / "payments.xlsx", {"S": [with_header(PAYMENT_HEADER, renamed), payment_row()]})
    with pytest.raises(InputFileError) as refused:
        night(tmp_path / "out", [roster], [payments])
    assert str(refused.value).startswith(f"税务缴费明细缺少必填列：{missing}。")


def test_the_total_amount_with_the_fiscal_subsidy_is_never_the_amount(cells_night):
    _, db = cells_night
    (row,) = payments_of(db, "缴费总金额").values()
    assert (float(row["amount"]), json.loads(row["extra_columns"])) == (400.0, {"缴费总金额": "1280.00"})


# === 6. two-row headers ==================================================================================

# (sheet, Excel row of the first data row, data rows): the sub-header row is no data row
TWO_ROW_SHEETS = [
    ("两行表头", 4, 3),
    ("两行表头_对应", 4, 2),
    ("两行表头_税款", 3, 1),
    ("两行表头xls", 4, 2),
    ("两行表头csv", 4, 2),
]


@pytest.mark.parametrize(("sheet", "first_data_row", "n_rows"), TWO_ROW_SHEETS)
def test_a_period_merged_over_start_and_end_reads_as_two_columns_below_a_sub_header(
    cells_night, sheet, first_data_row, n_rows
):
    result, db = cells_night
    counted = counts(result, "payments")[sheet]
    assert (counted["rows_read"], counted["skipped_blank"], counted["skipped_footer"]) == (n_rows, 0, 0)
    assert counted["accepted"] + counted["rejected"] == n_rows
    assert payments_of(db, sheet)[first_data_row]["coverage_year"] == 2026


def test_a_period_in_two_plain_columns_text_or_excel_dates(cells_night):
    result, db = cells_night
    assert lines(result, "payments", "一行起止") == []
    assert {row: r["coverage_year"] for row, r in payments_of(db, "一行起止").items()} == {2: 2026, 3: 2026}


def test_one_empty_end_of_a_two_column_period_rejects_the_row_naming_that_column(cells_night):
    result, _ = cells_night
    rejected = {
        sheet: reasons_by_row(result, "payments", sheet)
        for sheet in ("两行表头", "两行表头_对应", "两行表头xls", "两行表头csv")
    }
    assert rejected == {
        "两行表头": {
            5: [("费款所属期止", "费款所属期止为空，此项必填")],
            6: [
                (
                    "费款所属期",
                    "费款所属期跨年度（“2025-12-01至2026-11-30”的起止不在同一年），无法确定待遇年度；请按年度分开",
                )
            ],
        },
        "两行表头_对应": {5: [("对应费款所属期起始", "对应费款所属期起始为空，此项必填")]},
        "两行表头xls": {5: [("费款所属期止", "费款所属期止为空，此项必填")]},
        "两行表头csv": {5: [("费款所属期起", "费款所属期起为空，此项必填")]},
    }


# === 7. every 费款所属期 form ============================================================================


def test_every_period_form_gives_its_coverage_year(cells_night):
    _, db = cells_night
    got = {row: r["coverage_year"] for row, r in payments_of(db, "所属期").items()}
    assert got == {i + 2: year for i, (_, year) in enumerate(PERIOD_FORMS)}


def test_a_period_across_two_years_is_rejected(cells_night):
    result, _ = cells_night
    assert reasons_by_row(result, "payments", "所属期") == {
        len(PERIOD_FORMS) + 2: [
            ("费款所属期", f"费款所属期跨年度（“{CROSS_YEAR}”的起止不在同一年），无法确定待遇年度；请按年度分开")
        ]
    }


def test_a_range_in_one_column_named_period_from_to(cells_night):
    result, db = cells_night
    assert lines(result, "payments", "所属期起止") == []
    got = {row: r["coverage_year"] for row, r in payments_of(db, "所属期起止").items()}
    assert got == {i + 2: year for i, (_, year) in enumerate(PERIOD_RANGE_FORMS)}


@pytest.mark.parametrize("form", MIXED_RANGES)
def test_a_range_of_two_different_forms_joined_by_a_dash(cells_night, form):
    result, db = cells_night
    row = MIXED_RANGES.index(form) + 2
    assert (
        payments_of(db, "混合区间").get(row, {}).get("coverage_year"),
        reasons_by_row(result, "payments", "混合区间").get(row),
    ) == (2026, None)


# === 8. dates that cannot be right =======================================================================


def test_payment_dates_that_cannot_be_right_each_get_their_reason(cells_night):
    result, db = cells_night
    rejected = reasons_by_row(result, "payments", "缴费日期")
    accepted = {row: r["paid_on"] for row, r in payments_of(db, "缴费日期").items()}
    assert rejected == {
        i + 2: [("缴费日期", want)] for i, (*_, want) in enumerate(PAID_ON_CASES) if isinstance(want, str)
    }
    assert accepted == {i + 2: want for i, (*_, want) in enumerate(PAID_ON_CASES) if isinstance(want, dt.date)}


def test_future_roster_dates_are_rejected_and_a_month_is_enough_only_for_the_identification_date(cells_night):
    result, db = cells_night
    rejected, residents = reasons_by_row(result, "roster", "日期"), residents_of(db, "日期")
    got, want = {}, {}
    for row, (_, _, column, expected) in enumerate(ROSTER_DATE_CASES, start=2):
        got[row] = rejected.get(row) or (column, residents[row][column])
        want[row] = [(column, expected)] if isinstance(expected, str) else (column, expected)
    assert got == want


def test_a_birth_date_after_the_run_date_is_rejected(cells_night):
    result, db = cells_night
    rejected = reasons_by_row(result, "roster", "日期")
    late_row, ok_row = len(ROSTER_DATE_CASES) + 2, len(ROSTER_DATE_CASES) + 3
    assert ("出生日期", "出生日期晚于今天") in rejected[late_row]
    assert ok_row not in rejected and residents_of(db, "日期")[ok_row]["birth_date"] == BORN


@pytest.mark.parametrize("cell", IDENTIFIED_NOT_A_MONTH, ids=["text 2026", "number 2026", "202613", "202600"])
def test_an_identification_date_that_is_no_month_is_rejected_not_dropped(cells_night, cell):
    result, db = cells_night
    row = IDENTIFIED_NOT_A_MONTH.index(cell) + 2
    assert [c for c, _ in reasons_by_row(result, "roster", "认定日期").get(row, [])] == ["资助认定日期"]
    assert row not in residents_of(db, "认定日期")


# === 9. old and corrupted ID numbers ======================================================================


@pytest.mark.parametrize(
    ("kind", "column", "cases"),
    [("roster", "证件号码", ROSTER_ID_CASES), ("payments", "缴费人证件号码", PAYMENT_ID_CASES)],
)
def test_a_15_digit_id_and_an_id_written_as_a_number_each_get_their_reason(cells_night, kind, column, cases):
    result, _ = cells_night
    got = [(row, c, why) for _, row, c, _, why in lines(result, kind, "旧证")]
    assert got == [(i + 2, column, why) for i, (_, why) in enumerate(cases)]
