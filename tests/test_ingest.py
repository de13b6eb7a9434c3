"""Ingest: messy workbooks in, validated rows out, every row accounted for (docs/RULES.md §6)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import polars as pl
import pytest

from builders import (
    PAYMENT_HEADER,
    ROSTER_HEADER,
    Num,
    XDate,
    make_id,
    roster_row,
    with_check_digit,
    with_wrong_check_digit,
    write_workbook,
)
from ingest_cases import (
    TODAY,
    A,
    B,
    C,
    pay_row,
    reasons,
    run,
    sheet_counts,
)
from pipeline.errors import InputFileError

# --- the messy layout ---------------------------------------------------------


def test_title_rows_blank_rows_and_footers_are_counted_not_rejected(tmp_path):
    rows = [
        ["浮梁县2026年度城乡居民医保参保登记花名册"],
        ["填报单位：浮梁镇人民政府"],
        ROSTER_HEADER,
        roster_row(1, "张三", A),
        [],
        roster_row(2, "李四", B),
        [None, None, None],
        ["合计：2人"],
        ["制表人：王五  审核人：赵六  填报日期：2025年10月20日"],
    ]
    path = write_workbook(tmp_path / "r.xlsx", {"花名册": rows})
    result = run(tmp_path, path)
    # header on Excel row 3; 6 rows below it: 2 people, 2 blank, 2 footers
    assert sheet_counts(result) == {
        "header_row": 3,
        "rows_read": 6,
        "accepted": 2,
        "rejected": 0,
        "skipped_blank": 2,
        "skipped_footer": 2,
        "skipped_duplicate": 0,
    }
    assert result.table("determinations")["row_number"].sort().to_list() == [4, 6]


def test_excel_row_numbers_survive_leading_empty_and_formatted_rows(tmp_path):
    # calamine starts its range at the first cell with a value (row 4 here); rows must still be Excel's.
    path = write_workbook(
        tmp_path / "r.xlsx",
        {"S": [ROSTER_HEADER, roster_row(1, "张三", A), roster_row(2, "李四", "36022219850715000")]},
        start_row=3,
    )
    result = run(tmp_path, path)
    assert sheet_counts(result)["header_row"] == 4
    assert result.rejected["row_number"].to_list() == [6]


def test_header_aliases_extra_columns_and_column_order(tmp_path):
    header = ["备注信息", "公民身份号码", "姓名", "乡镇", "所属县区", "上年度参保", "联系电话"]
    rows = [header, ["无", A, "张三", "浮梁镇", "浮梁县", "Y", "13800000000"]]
    path = write_workbook(tmp_path / "r.xlsx", {"S": rows})
    result = run(tmp_path, path)
    assert sheet_counts(result)["accepted"] == 1
    con = duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True)
    extra, phone = con.execute("SELECT extra_columns, phone FROM residents").fetchall()[0]
    con.close()
    assert (extra, phone) == ('{"备注信息":"无"}', "13800000000")


def test_every_sheet_is_read_and_a_sheet_without_header_is_reported(tmp_path):
    path = write_workbook(
        tmp_path / "r.xlsx",
        {
            "浮梁镇": [ROSTER_HEADER, roster_row(1, "张三", A)],
            "填表说明": [["请按模板填写"], ["证件号码须为文本格式"]],
            "鹅湖镇": [ROSTER_HEADER, roster_row(1, "李四", B, township="鹅湖镇")],
        },
    )
    result = run(tmp_path, path)
    roster = result.sheets.filter(pl.col("kind") == "roster").sort("sheet")
    assert roster["sheet"].to_list() == ["填表说明", "浮梁镇", "鹅湖镇"]
    assert roster["accepted"].to_list() == [0, 1, 1]
    note = roster.filter(pl.col("sheet") == "填表说明")["note"].item()
    assert note == "未找到参保登记花名册表头，整张工作表未读取 / no roster header row, sheet not read"


# --- values in every form ---------------------------------------------------------

DATE_FORMS = [
    (XDate(dt.date(2025, 10, 15)), dt.date(2025, 10, 15)),
    ("2025-10-15", dt.date(2025, 10, 15)),
    ("2025/10/15", dt.date(2025, 10, 15)),
    ("2025.10.15", dt.date(2025, 10, 15)),
    ("20251015", dt.date(2025, 10, 15)),
    ("2025年10月15日", dt.date(2025, 10, 15)),
    ("2025/1/5", dt.date(2025, 1, 5)),
    (45945, dt.date(2025, 10, 15)),  # an Excel serial number without a date format
    ("２０２５－１０－１５", dt.date(2025, 10, 15)),
]


def test_every_date_form_is_read(tmp_path):
    people = [make_id("360222", dt.date(1970, 1, 1), i) for i in range(len(DATE_FORMS))]
    rows = [ROSTER_HEADER] + [
        roster_row(i, f"人{i}", pid, registered=form) for i, (pid, (form, _)) in enumerate(zip(people, DATE_FORMS))
    ]
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": rows}))
    got = dict(result.table("determinations").select("id_number", "enrolled_on").iter_rows())
    # due is 400 for these people, so enrolled_on comes from payments; read the residents table instead
    con = duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True)
    registered = dict(con.execute("SELECT id_number, registered_on FROM residents").fetchall())
    con.close()
    assert got.keys() == registered.keys()
    assert [registered[pid] for pid in people] == [want for _, want in DATE_FORMS]


@pytest.mark.parametrize("bad", ["15/10/2025", "2025-13-45", "2025-02-30", "下月", "2025/10"])
def test_unreadable_or_ambiguous_dates_are_rejected_not_guessed(tmp_path, bad):
    rows = [ROSTER_HEADER, roster_row(1, "张三", A, registered=bad)]
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": rows}))
    assert reasons(result) == [
        (
            2,
            "参保登记日期",
            f"参保登记日期“{bad}”不是可识别的日期（可用 2025-10-15、2025/10/15、2025.10.15、20251015、2025年10月15日）",
        )
    ]


AMOUNT_FORMS = [
    (400, 40000),
    ("400.00元", 40000),
    ("1,000.00", 100000),
    ("80", 8000),
    ("-400", -40000),
    ("￥400", 40000),
    (399.99999999999994, 40000),
    ("４００", 40000),
]


def test_every_amount_form_is_read(tmp_path):
    rows = [PAYMENT_HEADER] + [pay_row(i + 1, "张三", A, amount=form) for i, (form, _) in enumerate(AMOUNT_FORMS)]
    payments = write_workbook(tmp_path / "p.xlsx", {"S": rows})
    roster = write_workbook(tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A)]})
    result = run(tmp_path, roster, payments)
    assert result.rejected.height == 0
    assert result.table("reconciliation")["net_paid"].item() * 100 == sum(fen for _, fen in AMOUNT_FORMS)


@pytest.mark.parametrize("bad", ["四百元", "400.005", "", "0"])
def test_unreadable_amounts_are_rejected(tmp_path, bad):
    payments = write_workbook(tmp_path / "p.xlsx", {"S": [PAYMENT_HEADER, pay_row(1, "张三", A, amount=bad or None)]})
    roster = write_workbook(tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A)]})
    result = run(tmp_path, roster, payments)
    expected = {
        "四百元": "缴费金额“四百元”不是可识别的金额（可写作 400、400.00、400元、￥400、1,000.00；退费写作 -400）",
        "400.005": "缴费金额“400.005”不是可识别的金额（可写作 400、400.00、400元、￥400、1,000.00；退费写作 -400）",
        "": "缴费金额为空，此项必填",
        "0": "缴费金额为0",
    }[bad]
    assert reasons(result) == [(2, "缴费金额", expected)]


def test_coverage_year_forms(tmp_path):
    forms = ["2026", "2026年", "2026-01-01..2026-12-31", 2026, "2025-10-01..2026-09-30"]
    rows = [PAYMENT_HEADER] + [pay_row(i + 1, "张三", A, amount=100, year=f) for i, f in enumerate(forms)]
    payments = write_workbook(tmp_path / "p.xlsx", {"S": rows})
    roster = write_workbook(tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A)]})
    result = run(tmp_path, roster, payments)
    assert result.table("reconciliation")["net_paid"].item() * 100 == 40000
    # a period whose ends lie in two years (docs/RULES.md §6)
    assert reasons(result) == [
        (
            6,
            "费款所属期",
            "费款所属期跨年度（“2025-10-01..2026-09-30”的起止不在同一年），无法确定待遇年度；请按年度分开",
        )
    ]


# --- ID numbers --------------------------------------------------------------------


def test_id_numbers_are_normalised(tmp_path):
    x_id = make_id("360222", dt.date(1990, 1, 1), 12)
    while not x_id.endswith("X"):
        x_id = make_id("360222", dt.date(1990, 1, 1), int(x_id[14:17]) + 1)
    full_width = A.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    rows = [
        ROSTER_HEADER,
        roster_row(1, "张三", full_width),
        roster_row(2, "李四", x_id.lower()),
        roster_row(3, "王五", f"  {C}\u3000"),
    ]
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": rows}))
    assert result.rejected.height == 0
    assert sorted(result.table("determinations")["id_number"]) == sorted([A, x_id, C])


def test_real_people_are_not_rejected_on_region_codes(tmp_path):
    # 360426 (德安县) born before 1983, and residence permits of Hong Kong (81), Macao (82), Taiwan (83).
    ids = [
        make_id("360426", dt.date(1950, 3, 3), 1),
        make_id("810000", dt.date(1980, 1, 2), 2),
        make_id("820000", dt.date(1975, 6, 7), 3),
        make_id("830000", dt.date(1991, 12, 31), 4),
    ]
    rows = [ROSTER_HEADER] + [roster_row(i, f"人{i}", pid) for i, pid in enumerate(ids)]
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": rows}))
    assert result.rejected.height == 0
    assert result.table("determinations").height == 4


def test_bad_id_numbers_each_get_their_reason(tmp_path):
    impossible_birth = make_id("360222", dt.date(1990, 1, 1), 5)[:10] + "1332" + "0051"
    future = make_id("360222", dt.date(2027, 1, 1), 6)
    rows = [
        ROSTER_HEADER,
        roster_row(1, "甲", with_wrong_check_digit(A)),
        roster_row(2, "乙", "36022219900101"),
        roster_row(3, "丙", make_id("360222", dt.date(1990, 1, 1), 7)[:-1] + "Y"),
        roster_row(4, "丁", with_check_digit(impossible_birth[:17])),
        roster_row(5, "戊", future),
        roster_row(6, "己", None),
    ]
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": rows}))
    assert reasons(result) == [
        (2, "证件号码", "证件号码校验位错误（GB 11643），请核对号码"),
        (3, "证件号码", "证件号码应为18位：17位数字加1位数字或X"),
        (4, "证件号码", "证件号码应为18位：17位数字加1位数字或X"),
        (5, "证件号码", "证件号码中的出生日期不存在或晚于今天"),
        (6, "证件号码", "证件号码中的出生日期不存在或晚于今天"),
        (7, "证件号码", "证件号码为空，此项必填"),
    ]


NUMERIC_ID_REASON = "证件号码被Excel存成了数字，末几位已丢失；请把该列设置为文本格式后重新录入"


def test_id_stored_as_an_excel_number_is_rejected_by_cell_type_even_when_checksum_passes(tmp_path):
    # Pick an ID that survives float64 (so its digits and check digit still look right):
    # only the cell type can tell that Excel stored it as a number.
    survivor = next(
        pid
        for i in range(1000)
        if (pid := make_id("360222", dt.date(1990, 1, 1), i)).isdigit() and str(int(float(pid))) == pid
    )
    rows = [ROSTER_HEADER, roster_row(1, "张三", A), roster_row(2, "李四", Num(float(survivor)))]
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": rows}))
    assert reasons(result) == [(3, "证件号码", NUMERIC_ID_REASON)]


def test_numeric_id_at_row_5000_is_caught_beyond_the_type_sample(tmp_path):
    # fastexcel guesses column types from the first 1,000 rows; the cell-type read must not.
    rows = [ROSTER_HEADER] + [
        roster_row(i, f"人{i}", make_id("360222", dt.date(1950 + i % 50, 1 + i % 12, 1 + i % 28), i % 1000))
        for i in range(1, 5000)
    ]
    numeric = make_id("360281", dt.date(1990, 1, 1), 1)
    rows.append(roster_row(5000, "末行", Num(float(numeric))))
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": rows}))
    numeric_rejections = result.rejected.filter(pl.col("reason") == NUMERIC_ID_REASON)
    assert numeric_rejections["row_number"].to_list() == [5001]


# --- labels, events, required cells ------------------------------------------------


def test_unknown_identity_label_and_special_event_are_rejected(tmp_path):
    rows = [
        ROSTER_HEADER,
        roster_row(1, "张三", A, labels="特困供养人"),
        roster_row(2, "李四", B, event="出国", event_date="2026-03-01"),
        roster_row(3, "王五", C, event="户口迁入"),
    ]
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": rows}))
    assert reasons(result) == [
        (
            2,
            "人员身份",
            "人员身份“特困供养人”中有政策参数未列出的类别“特困供养人”（是否为：特困供养人员？），请核对写法",
        ),
        (3, "特殊情形", "特殊情形“出国”不是政策规定的情形（是否为：出国回国？）"),
        (4, "特殊情形日期", "填写了特殊情形但缺少特殊情形日期"),
    ]


def test_labels_split_on_every_separator_and_aliases(tmp_path):
    ids = [make_id("360222", dt.date(1980, 1, 1), i) for i in range(5)]
    forms = [
        "特困人员",
        "低保对象，孤儿",
        "城乡低保对象;脱贫不稳定人口",
        "医疗救助对象 | 宗教教职人员",
        "边缘易致贫人口/低保对象",
    ]
    rows = [ROSTER_HEADER] + [roster_row(i, f"人{i}", pid, labels=f) for i, (pid, f) in enumerate(zip(ids, forms))]
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": rows}))
    labels = dict(result.table("determinations").select("id_number", "identity_labels").iter_rows())
    assert [labels[pid] for pid in ids] == [
        "特困供养人员",
        "城乡低保对象、孤儿",
        "城乡低保对象、脱贫不稳定人口",
        "医疗救助对象、宗教教职人员",
        "边缘易致贫人口、城乡低保对象",
    ]


def test_missing_required_cells_and_prev_year_required_from_2026(tmp_path):
    rows = [
        ROSTER_HEADER,
        roster_row(1, None, A),
        roster_row(2, "李四", B, township=None),
        roster_row(3, "王五", C, prev=None),
        roster_row(4, "赵六", make_id("360222", dt.date(1999, 9, 9), 4), prev="也许"),
    ]
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": rows}))
    assert reasons(result) == [
        (2, "姓名", "姓名为空，此项必填"),
        (3, "乡镇(街道)", "乡镇(街道)为空，此项必填"),
        (4, "上年度参保", "上年度参保为空，此项必填"),
        (5, "上年度参保", "上年度参保“也许”应为 是/否"),
    ]
    # 2025 does not need 上年度参保
    result_2025 = run(tmp_path, write_workbook(tmp_path / "r25.xlsx", {"S": rows[:1] + rows[3:4]}), year=2025)
    assert result_2025.rejected.height == 0


def test_a_missing_required_column_refuses_the_file_naming_the_header(tmp_path):
    """A missing column is the file's problem, not each row's (docs/RULES.md §6): the night stops with
    exit code 2 and one line naming the header in the bureau's words, with its accepted spellings."""
    header = [h for h in ROSTER_HEADER if h != "乡镇(街道)"]
    rows: list[list[Any]] = [header, [1, "张三", A, "浮梁县", "新平村", None, "是", None, None, "2025-10-20", None]]
    path = write_workbook(tmp_path / "r.xlsx", {"S": rows})
    with pytest.raises(InputFileError) as e:
        run(tmp_path, path)
    assert e.value.exit_code == 2
    assert str(e.value).startswith(
        "参保登记花名册缺少必填列：乡镇(街道)（也可写作：乡镇、街道、乡(镇)、镇(街)、镇街、街镇、街道乡镇、所属乡镇、乡镇街道）。"
    )
    assert f"of sheet [S]: {path}" in str(e.value)
    assert not (tmp_path / "m.duckdb").exists()  # nothing written


# --- duplicates ---------------------------------------------------------------------


def test_exact_duplicate_is_merged_and_conflicting_duplicates_are_both_rejected(tmp_path):
    rows = [
        ROSTER_HEADER,
        roster_row(1, "张三", A),
        roster_row(2, "李四", B),
        roster_row(3, "张三", A, registered="2025/10/20"),  # same content, other date form: exact duplicate
        roster_row(4, "王五", C),
        roster_row(5, "王五", C, township="鹅湖镇"),
    ]  # same ID, other township: conflict
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": rows}))
    counts = sheet_counts(result)
    assert (counts["rows_read"], counts["accepted"], counts["rejected"], counts["skipped_duplicate"]) == (5, 2, 2, 1)
    conflict = "同一证件号码在花名册中出现2次且内容不一致，全部暂不处理，请核实后只保留一行"
    assert reasons(result) == [(5, "证件号码", conflict), (6, "证件号码", conflict)]
    assert any("第4行与" in w and "第2行完全相同" in w for w in result.warnings)


def test_duplicate_payment_rows_same_ticket(tmp_path):
    rows = [
        PAYMENT_HEADER,
        pay_row(1, "张三", A, ticket="33600000000000000001"),
        pay_row(2, "张三", A, ticket="33600000000000000001"),
        pay_row(3, "李四", B, ticket="33600000000000000002"),
        pay_row(4, "李四", B, amount=380, ticket="33600000000000000002"),
    ]
    roster = write_workbook(
        tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A), roster_row(2, "李四", B)]}
    )
    result = run(tmp_path, roster, write_workbook(tmp_path / "p.xlsx", {"S": rows}))
    counts = sheet_counts(result, "payments")
    assert (counts["accepted"], counts["rejected"], counts["skipped_duplicate"]) == (1, 2, 1)
    assert result.rejected["reason"].unique().to_list() == [
        "同一电子税票号码出现多次且内容不一致，全部暂不处理，请向税务核实"
    ]


# --- conservation, storage ------------------------------------------------------------


def test_conservation_on_a_workbook_with_known_bad_rows(tmp_path):
    rows = [
        ["2026年度花名册"],
        ROSTER_HEADER,
        roster_row(1, "张三", A),
        roster_row(2, "李四", Num(float(B))),
        [],
        roster_row(3, "王五", C, labels="低保"),
        roster_row(4, "张三", A),
        roster_row(5, "赵六", make_id("360222", dt.date(2001, 2, 3), 9), registered="2025-02-30"),
        ["合计：5人"],
    ]
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": rows}))
    assert sheet_counts(result) == {
        "header_row": 2,
        "rows_read": 7,
        "accepted": 1,
        "rejected": 3,
        "skipped_blank": 1,
        "skipped_footer": 1,
        "skipped_duplicate": 1,
    }
    assert [r[0] for r in reasons(result)] == [4, 6, 8]
    con = duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True)
    runs = con.execute("SELECT rows_read, rows_accepted, rows_rejected, rows_skipped FROM runs").fetchall()
    con.close()
    # roster 7 rows + payments 1 row
    assert runs == [(8, 2, 3, 3)]


def test_conservation_is_asserted_by_the_pipeline(tmp_path):
    from pipeline.conservation import conservation
    from pipeline.errors import ConservationError
    from pipeline.io.excel_in import SheetRead

    sheet = SheetRead(kind="roster", source_file="r.xlsx", sha256="x", sheet="S", header_row=1, rows_read=3)
    accepted = pl.DataFrame({"source_file": ["r.xlsx"], "sheet": ["S"], "accepted": [1]})
    empty = pl.DataFrame(schema={"source_file": pl.Utf8, "sheet": pl.Utf8, "row_number": pl.Int32})
    with pytest.raises(ConservationError, match="read 3, accepted 1 \\+ rejected 0 \\+ skipped 0"):
        conservation([sheet], accepted, empty, empty)


def test_a_second_run_replaces_its_year_and_leaves_other_years(tmp_path):
    roster = write_workbook(
        tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A), roster_row(2, "李四", B)]}
    )
    run(tmp_path, roster, year=2025)
    run(tmp_path, roster, year=2026)
    smaller = write_workbook(tmp_path / "r2.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A)]})
    run(tmp_path, smaller, year=2026)
    con = duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True)
    counts = con.execute("SELECT coverage_year, count(*) FROM determinations GROUP BY 1 ORDER BY 1").fetchall()
    residents = con.execute("SELECT coverage_year, count(*) FROM residents GROUP BY 1 ORDER BY 1").fetchall()
    payments = con.execute("SELECT run_coverage_year, count(*) FROM payments GROUP BY 1 ORDER BY 1").fetchall()
    runs = con.execute("SELECT count(*) FROM runs").fetchall()
    con.close()
    assert counts == [(2025, 2), (2026, 1)]
    assert residents == [(2025, 2), (2026, 1)]
    assert payments == [(2025, 1), (2026, 1)]
    assert runs == [(3,)]


def test_pandera_checks_values_on_the_collected_frame():
    # pandera validating a LazyFrame checks only names and dtypes, not values.
    from pipeline.validate import failures as failures_of
    from pipeline.validate import parse_payments
    from schemas.models import payments_schema

    raw = pl.DataFrame(
        {
            "id_number": [A],
            "name": ["张三"],
            "amount": ["四百"],
            "paid_on": ["2025-11-01"],
            "coverage_year": ["2026"],
            "period_start": [None],
            "period_end": [None],
            "ticket_no": ["1"],
            "channel": [None],
            "id_number__numeric_cell": [False],
            "ticket_no__numeric_cell": [False],
        },
        schema_overrides={"channel": pl.Utf8, "period_start": pl.Utf8, "period_end": pl.Utf8},
    )
    failures = failures_of(payments_schema(TODAY), parse_payments(raw))
    assert failures.select("index", "column", "code").rows() == [(0, "amount_fen", "amount")]


# --- the phone --------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["联系电话", "手机号码"])
def test_the_phone_is_kept_as_written_never_rejected_and_not_compared_between_duplicates(tmp_path, header):
    """联系电话 (docs/CONTRACT.md "Roster"): text as written, a number cell without `.0`, several
    numbers in one cell; a phone is never a reason to reject a row, and two rows of one person that
    differ only in the phone are one exact duplicate."""
    rows = [
        [*ROSTER_HEADER, header],
        [*roster_row(1, "张三", A), "0798-1234567"],
        [*roster_row(2, "李四", B), 13800138000],
        [*roster_row(3, "王五", C), "13800138000、0798 7654321"],
        [*roster_row(4, "张三", A), "13912345678"],  # 张三 again, another phone only: merged
    ]
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": rows}))
    assert result.rejected.height == 0
    assert sheet_counts(result)["skipped_duplicate"] == 1
    phones = dict(result.table("residents").select("id_number", "phone").iter_rows())
    assert phones == {A: "0798-1234567", B: "13800138000", C: "13800138000、0798 7654321"}


def test_a_roster_without_a_phone_column_gives_no_phone(tmp_path):
    result = run(tmp_path, write_workbook(tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A)]}))
    assert result.table("residents")["phone"].to_list() == [None]
