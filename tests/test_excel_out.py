"""The two morning workbooks, read back as the section chief's Excel would read them."""

from __future__ import annotations

import datetime as dt
import re
import stat
import zipfile

import duckdb
import openpyxl
import pytest

from pipeline.io import excel_out
from pipeline.io.excel_out import (
    EXCEL_CELL_MAX_CHARS,
    TRUNCATION_MARKER,
    ReportError,
    display_width,
    write_reports,
)
from pipeline.io.masking import mask_id, mask_ids_in_text
from pipeline.io.tables import DDL
from pipeline.params import load_params

RUN_ID = "20260301T020000-a1b2"
FINGERPRINT = "0123456789abcdef"
STARTED_AT = dt.datetime(2026, 3, 1, 2, 0, 0)
FORMULA_NAME = '=HYPERLINK("http://x","y")'
FULL_ID = re.compile(r"(?<!\d)\d{17}[\dX](?!\d)")


def with_check_digit(first17: str) -> str:
    """GB 11643 check digit, so the fixture IDs are real-looking IDs."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights)) % 11]


ID_FULL = with_check_digit("36022219580304002")  # 王芳, 特困 -> subsidized
ID_PAID = with_check_digit("36022219850612003")  # 李强, paid 400 of 400
ID_UNDER = with_check_digit("36022219900101123")  # formula-looking name, paid 150 of 400
ID_UNPAID = with_check_digit("36022220010203004")  # 赵敏, 低保 fixed, paid nothing of 80
ID_OVER = with_check_digit("36022219770909005")  # 钱进, paid 800 of 400
ID_UNMATCHED = with_check_digit("36022219660101006")  # 孙丽, payment without roster row
ID_REJECTED = "360222199001011235"  # bad check digit, rejected as raw value
TICKET = "33601625010001234567"  # 20-digit 电子税票号码: not an ID

#            name          id          township  village  tier    due  net  n  status        diff  last paid      enrolled
PEOPLE = [
    ("王芳", ID_FULL, "鹅湖镇", "桃岭村", "full", 0, 0, 0, "subsidized", 0, None, True),
    ("李强", ID_PAID, "鹅湖镇", "桃岭村", "none", 400, 400, 1, "paid_in_full", 0, dt.date(2025, 11, 2), True),
    (FORMULA_NAME, ID_UNDER, "鹅湖镇", "新村", "none", 400, 150, 1, "underpaid", 250, dt.date(2025, 12, 9), False),
    ("赵敏", ID_UNPAID, "瑶里镇", "瑶里村", "fixed", 80, 0, 0, "unpaid", 80, None, False),
    ("钱进", ID_OVER, "瑶里镇", "瑶里村", "none", 400, 800, 2, "overpaid", 400, dt.date(2026, 1, 5), True),
]


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    for name, ddl in DDL.items():
        con.execute(f"CREATE TABLE {name} ({ddl})")


def insert_person(con, year: int, person: tuple, run_id: str = RUN_ID) -> None:
    name, id_number, township, village, tier, due, net, n, status, diff, last_paid, enrolled = person
    subsidy = {"full": 400, "fixed": 320, "none": 0}[tier]
    con.execute(
        "INSERT INTO determinations (run_id, coverage_year, id_number, name, county, township, "
        "village, tier, individual_due, subsidy_amount, enrolled, rule_basis) "
        "VALUES (?, ?, ?, ?, '浮梁县', ?, ?, ?, ?, ?, ?, '赣医保发〔2025〕12号(八)1')",
        [run_id, year, id_number, name, township, village, tier, due, subsidy, enrolled],
    )
    con.execute(
        "INSERT INTO reconciliation (run_id, coverage_year, id_number, name, county, township, "
        "village, tier, individual_due, net_paid, n_payments, status, amount_diff, last_paid_on, "
        "refund_basis) VALUES (?, ?, ?, ?, '浮梁县', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            year,
            id_number,
            name,
            township,
            village,
            tier,
            due,
            net,
            n,
            status,
            diff,
            last_paid,
            "refund_overpaid" if status == "overpaid" else None,
        ],
    )


def build_db(
    year: int,
    fiscal_per_head: int,
    central_share: float | None,
    critical_per_head: int | None,
    rejected_raw_values: tuple[str, ...] = (),
):
    """Five people in two townships of one county; three are enrolled (王芳, 李强, 钱进)."""
    con = duckdb.connect()
    create_tables(con)
    con.execute(
        "INSERT INTO runs (run_id, started_at, finished_at, coverage_year, region, rows_read, "
        "rows_accepted, rows_rejected, rows_skipped, status, fingerprint, as_of_date) "
        "VALUES (?, ?, ?, ?, 'jiangxi', 11, 7, 3, 1, 'completed', ?, ?)",
        [RUN_ID, STARTED_AT, STARTED_AT + dt.timedelta(minutes=3), year, FINGERPRINT, STARTED_AT.date()],
    )
    for person in PEOPLE:
        insert_person(con, year, person)
    con.execute(
        "INSERT INTO unmatched_payments VALUES (?, ?, ?, '孙丽', 400, DATE '2025-12-01', ?, "
        "'not_on_roster', '缴费明细.xlsx', 'Sheet1', 7)",
        [RUN_ID, year, ID_UNMATCHED, TICKET],
    )
    rejected = [
        ("roster", "花名册.xlsx", "鹅湖镇", 5, "证件号码", ID_REJECTED, "证件号码校验位错误", None),
        ("payments", "缴费明细.xlsx", "Sheet1", 9, "缴费金额", "+1", "缴费金额无法识别", ID_PAID),
        ("payments", "缴费明细.xlsx", "Sheet1", 10, "缴费渠道", "@x", "备注 -2", None),
    ] + [
        ("roster", "花名册.xlsx", "瑶里镇", 20 + i, "备注", v, "人员身份无法识别", None)
        for i, v in enumerate(rejected_raw_values)
    ]
    for row in rejected:
        con.execute("INSERT INTO rejected_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [RUN_ID, year, *row])
    con.execute(
        "INSERT INTO status_changes VALUES (?, ?, ?, ?, '浮梁县', '鹅湖镇', 'R-prev', 'unpaid', 'underpaid', 400, 250)",
        [RUN_ID, year, ID_UNDER, FORMULA_NAME],
    )

    def totals(level, county, township, roster, enrolled, participation, due, collected):
        # fiscal = enrolled x fiscal per head; central = fiscal x share; local = the rest
        fiscal = enrolled * fiscal_per_head
        central = None if central_share is None else round(fiscal * central_share, 2)
        local = None if central is None else fiscal - central
        critical = None if critical_per_head is None else enrolled * critical_per_head
        con.execute(
            "INSERT INTO subsidy_totals VALUES (?, ?, ?, ?, ?, 'all', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                RUN_ID,
                year,
                level,
                county,
                township,
                roster,
                enrolled,
                enrolled / roster,
                fiscal,
                central,
                local,
                participation,
                critical,
                due,
                collected,
            ],
        )

    totals("township", "浮梁县", "鹅湖镇", 3, 2, 400, 800, 550)  # 王芳 + 李强 enrolled
    totals("township", "浮梁县", "瑶里镇", 2, 1, 0, 480, 800)  # 钱进 enrolled
    totals("county", "浮梁县", "小计", 5, 3, 400, 1280, 1350)
    totals("total", "合计", "合计", 5, 3, 400, 1280, 1350)
    return con


@pytest.fixture
def db_2026():
    con = build_db(2026, fiscal_per_head=700, central_share=0.60, critical_per_head=None)
    yield con
    con.close()


@pytest.fixture
def reports_2026(db_2026, tmp_path):
    paths = write_reports(db_2026, RUN_ID, 2026, tmp_path / "out", load_params(2026, "jiangxi"))
    return [openpyxl.load_workbook(p) for p in paths], paths


def all_cells(wb):
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if cell.value is not None:
                    yield ws.title, cell


def rows_of(ws):
    return [tuple(c.value for c in row) for row in ws.iter_rows(min_row=2)]


def header(ws):
    return [c.value for c in ws[1]]


# --- masking -------------------------------------------------------------------


def test_an_18_character_id_shows_its_first_6_and_last_4_characters():
    assert mask_id("360222199001011234") == "360222********1234"
    assert mask_id("36022219900101123X") == "360222********123X"


@pytest.mark.parametrize(
    "value, masked",
    [
        ("360222900101123", "360**********23"),  # a 15-digit ID: first 3, last 2
        ("1234", "1**4"),
        ("12", "**"),
        ("", ""),
    ],
)
def test_other_lengths_show_at_most_the_first_3_and_last_2_characters(value, masked):
    assert mask_id(value) == masked
    assert sum(ch != "*" for ch in mask_id(value)) <= 10


def test_ids_inside_free_text_are_masked_but_a_20_digit_tax_ticket_is_not():
    text = f"证件号码{ID_REJECTED}重复, 票号{TICKET}"
    assert mask_ids_in_text(text) == f"证件号码360222********1235重复, 票号{TICKET}"


def test_chinese_characters_count_two_columns_wide():
    assert display_width("瑶里镇") == 6
    assert display_width("R-1 镇") == 6


# --- the reconciliation workbook -------------------------------------------------


def test_both_workbooks_have_the_sheets_the_bureau_expects(reports_2026):
    (recon, fiscal), paths = reports_2026
    assert [p.name for p in paths] == ["对账报告_2026.xlsx", "财政补助资金测算表_2026.xlsx"]
    assert recon.sheetnames == [
        "汇总",
        "少缴",
        "未缴",
        "多缴应退费",
        "无登记缴费",
        "校验未通过",
        "较上次变化",
        "图表数据",
    ]
    assert fiscal.sheetnames == ["财政补助测算", "参数及依据"]


def test_exception_lists_carry_the_columns_a_clerk_needs_to_phone_the_person(reports_2026):
    (recon, _), _ = reports_2026
    assert header(recon["少缴"]) == [
        "姓名",
        "证件号码",
        "县(市、区)",
        "乡镇(街道)",
        "村(社区)",
        "资助类别",
        "应缴金额",
        "实缴金额",
        "差额",
        "缴费笔数",
        "最后缴费日期",
        "依据",
    ]
    assert header(recon["多缴应退费"])[8] == "应退金额"
    assert header(recon["无登记缴费"]) == [
        "姓名",
        "证件号码",
        "缴费金额",
        "缴费日期",
        "电子税票号码",
        "原因",
        "文件",
        "工作表",
        "行号",
    ]
    assert header(recon["校验未通过"])[1:7] == ["文件", "工作表", "行号", "列", "原始值", "原因"]
    # 赵敏 (低保, fixed) owes 80 = 400 standard - 320 fixed subsidy
    (unpaid,) = rows_of(recon["未缴"])
    assert unpaid[:11] == ("赵敏", mask_id(ID_UNPAID), "浮梁县", "瑶里镇", "瑶里村", "定额资助", 80, 0, 80, 0, None)
    assert "320" in unpaid[11]  # the basis of the amount due: the fixed-subsidy clause
    # the refund's basis code shown as the year's clause (policy_params rule_basis.refund_overpaid)
    (over,) = rows_of(recon["多缴应退费"])
    assert over[8] == 400 and over[11] == "docs/RULES.md §5 实缴净额超过个人应缴金额, 多缴部分应退"
    # the reason code by its name (schemas/vocabulary.toml [unmatched_reasons])
    (stranger,) = rows_of(recon["无登记缴费"])
    assert stranger[5] == "花名册中无此证件号码的参保登记"


def test_a_formula_looking_name_comes_back_as_the_same_text(reports_2026):
    (recon, _), _ = reports_2026
    cell = recon["少缴"]["A2"]
    assert cell.value == FORMULA_NAME
    assert cell.data_type == "s"
    change = recon["较上次变化"]["A2"]
    assert change.value == FORMULA_NAME and change.data_type == "s"
    raw = {c.value: c.data_type for c in recon["校验未通过"]["F"][1:]}
    assert raw["+1"] == "s" and raw["@x"] == "s"
    assert any(c.value == "备注 -2" and c.data_type == "s" for c in recon["校验未通过"]["G"])


def test_no_full_id_number_appears_anywhere_in_either_workbook(reports_2026):
    _, paths = reports_2026
    for path in paths:
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                text = z.read(member).decode("utf-8", errors="replace")
                assert not FULL_ID.search(text), (path.name, member, FULL_ID.search(text))
    (recon, _), _ = reports_2026
    shown = {cell.value for _, cell in all_cells(recon)}
    assert mask_id(ID_UNDER) in shown
    assert "360222********1235" in shown  # the rejected raw ID
    assert TICKET in shown  # the tax ticket is not an ID


def test_a_mangled_id_under_an_id_header_is_masked_whole(tmp_path):
    # Excel turned the ID into a number: 3.60222199001012E+17 keeps 15 digits of it.
    con = build_db(2026, 700, 0.6, None)
    con.execute(
        "INSERT INTO rejected_rows VALUES (?, 2026, 'roster', '花名册.xlsx', '鹅湖镇', 30, "
        "'证件号码*', '3.60222199001012E+17', '证件号码被Excel存成了数字', NULL)",
        [RUN_ID],
    )
    paths = write_reports(con, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"))
    raw = [c.value for c in openpyxl.load_workbook(paths[0])["校验未通过"]["F"]]
    assert "3.60222199001012E+17" not in raw
    assert mask_id("3.60222199001012E+17") in raw


def test_ids_are_shown_in_full_only_when_unmasked(db_2026, tmp_path):
    paths = write_reports(db_2026, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"), unmask=True)
    recon = openpyxl.load_workbook(paths[0])
    shown = {cell.value for _, cell in all_cells(recon)}
    assert {ID_UNDER, ID_UNPAID, ID_OVER, ID_UNMATCHED, ID_REJECTED} <= shown


def test_money_cells_are_numbers_in_yuan_and_dates_are_real_dates(reports_2026):
    (recon, _), _ = reports_2026
    ws = recon["少缴"]
    due, paid, diff, count, last_paid = (ws.cell(2, c) for c in (7, 8, 9, 10, 11))
    assert (due.value, paid.value, diff.value) == (400, 150, 250)  # 400 due - 150 paid = 250
    for cell in (due, paid, diff):
        assert cell.data_type == "n" and cell.number_format == "#,##0.00"
    assert count.value == 1
    assert last_paid.value == dt.datetime(2025, 12, 9) and last_paid.number_format == "yyyy-mm-dd"


def test_lists_have_a_frozen_header_an_autofilter_and_widths_that_fit_chinese(reports_2026):
    (recon, _), _ = reports_2026
    ws = recon["少缴"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:L2"
    # 最后缴费日期 is 6 wide characters = 12 columns, + 4 for the filter button
    assert ws.column_dimensions["K"].width >= 16
    # xlsxwriter stores a width of 50 characters as 50.71 (cell padding)
    assert all(ws.column_dimensions[c].width < 51 for c in "ABCDEFGHIJKL")


def test_every_list_prints_with_a_title_its_header_on_each_page_and_a_new_page_per_township(reports_2026):
    """Township clerks print the lists and work down them: A4 across, fit to the page width, the
    header row repeated, a title naming the list, year and data date, a page break before each
    township (the 未缴/少缴 lists are sorted by county, township, village)."""
    (recon, fiscal), _ = reports_2026
    for ws in [*recon.worksheets[1:6], fiscal["财政补助测算"]]:
        assert ws.print_title_rows == "$1:$1", ws.title
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        # fit to one page across (1 is the default width, left out of the file), any number down
        setup = ws.page_setup
        assert (setup.orientation, setup.paperSize, setup.fitToWidth or 1, setup.fitToHeight) == (
            "landscape",
            9,
            1,
            0,
        ), ws.title
        assert "2026年度" in ws.oddHeader.center.text and "数据日期2026-03-01" in ws.oddHeader.center.text
    assert "少缴名单" in recon["少缴"].oddHeader.center.text
    assert [b.id for b in recon["少缴"].row_breaks.brk] == []  # one person: no break


def test_a_list_of_two_townships_breaks_the_page_before_the_second(tmp_path):
    con = build_db(2026, 700, 0.6, None)
    insert_person(
        con,
        2026,
        (
            "周八",
            with_check_digit("36022219880808007"),
            "鹅湖镇",
            "桃岭村",
            "none",
            400,
            0,
            0,
            "unpaid",
            400,
            None,
            False,
        ),
    )
    paths = write_reports(con, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"))
    ws = openpyxl.load_workbook(paths[0])["未缴"]
    townships = [row[3] for row in rows_of(ws)]
    assert townships == ["瑶里镇", "鹅湖镇"] or townships == ["鹅湖镇", "瑶里镇"]
    # the second township starts on row 3 (header, first township's one row): a break after row 2
    assert [b.id for b in ws.row_breaks.brk] == [2]


def test_the_summary_holds_the_key_figures_and_three_charts(reports_2026):
    (recon, _), paths = reports_2026
    figures = {row[0]: row[1] for row in recon["汇总"].iter_rows(min_row=4, values_only=True) if row[0]}
    assert figures["数据批次"] == FINGERPRINT
    assert figures["数据日期"] == dt.datetime.combine(STARTED_AT.date(), dt.time())
    assert figures["读取行数"] == 11 and figures["校验未通过行数"] == 3 and figures["跳过行数"] == 1
    assert figures["花名册人数"] == 5 and figures["参保人数"] == 3
    assert figures["参保率"] == pytest.approx(0.6)
    assert figures["少缴人数"] == 1 and figures["多缴应退费人数"] == 1
    assert figures["个人应缴总额(元)"] == 1280  # 0 + 400 + 400 + 80 + 400
    assert figures["个人实缴总额(元)"] == 1350  # 0 + 400 + 150 + 0 + 800
    assert figures["应退费总额(元)"] == 400
    assert figures["欠缴总额(元)"] == 330  # 250 underpaid + 80 unpaid
    assert figures["被截断的单元格数"] == 0
    with zipfile.ZipFile(paths[0]) as z:
        charts = sorted(n for n in z.namelist() if re.fullmatch(r"xl/charts/chart\d+\.xml", n))
        assert len(charts) == 3
        assert all("图表数据" in z.read(c).decode() for c in charts)
    assert len(recon["汇总"]._charts) == 3


def test_with_several_counties_the_township_bars_carry_the_county_name(tmp_path):
    con = build_db(2026, 700, 0.6, None)
    con.execute("UPDATE determinations SET county = '乐平市' WHERE township = '瑶里镇'")
    paths = write_reports(con, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"))
    data = openpyxl.load_workbook(paths[0])["图表数据"]
    assert [c.value for c in data[2]] == ["县(市、区)", "乡镇(街道)", "参保登记人数", "参保人数", "参保率", "图表标签"]
    assert [c.value for c in data["F"][2:4]] == ["乐平市 瑶里镇", "浮梁县 鹅湖镇"]
    with zipfile.ZipFile(paths[0]) as z:
        assert "'图表数据'!$F$3:$F$4" in z.read("xl/charts/chart1.xml").decode()


def test_a_person_new_since_the_last_run_is_listed_as_such(db_2026, tmp_path):
    db_2026.execute(
        "INSERT INTO status_changes VALUES (?, 2026, ?, '钱进', '浮梁县', '瑶里镇', "
        "'R-prev', NULL, 'overpaid', NULL, 400)",
        [RUN_ID, ID_OVER],
    )
    paths = write_reports(db_2026, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"))
    changes = {r[0]: r for r in rows_of(openpyxl.load_workbook(paths[0])["较上次变化"])}
    assert changes["钱进"][4:8] == ("(上次无此人)", "多缴应退费", None, 400)
    assert changes[FORMULA_NAME][4:8] == ("未缴", "少缴", 400, 250)


def test_a_long_list_continues_on_further_sheets_with_every_row(tmp_path):
    con = build_db(2026, 700, 0.6, None)
    for i in range(10):
        insert_person(
            con,
            2026,
            (
                f"补缴{i:02d}",
                with_check_digit(f"360222199102{i:02d}011"),
                "瑶里镇",
                "瑶里村",
                "none",
                400,
                100,
                1,
                "underpaid",
                300,
                dt.date(2025, 12, 1),
                False,
            ),
        )
    paths = write_reports(con, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"), max_rows_per_sheet=5)
    recon = openpyxl.load_workbook(paths[0])
    assert [n for n in recon.sheetnames if n.startswith("少缴")] == ["少缴", "少缴(2)", "少缴(3)"]
    parts = [rows_of(recon[n]) for n in ("少缴", "少缴(2)", "少缴(3)")]
    assert [len(p) for p in parts] == [5, 5, 1]  # 11 underpaid people
    names = {row[0] for part in parts for row in part}
    assert names == {FORMULA_NAME} | {f"补缴{i:02d}" for i in range(10)}
    assert header(recon["少缴(3)"]) == header(recon["少缴"])


def test_a_cell_longer_than_excel_allows_is_cut_visibly_and_counted(tmp_path):
    con = build_db(2026, 700, 0.6, None, rejected_raw_values=("特困" * 20_000,))
    paths = write_reports(con, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"))
    recon = openpyxl.load_workbook(paths[0])
    cut = [c.value for c in recon["校验未通过"]["F"] if c.value and c.value.startswith("特困")]
    assert len(cut) == 1 and cut[0].endswith(TRUNCATION_MARKER)
    assert len(cut[0]) == EXCEL_CELL_MAX_CHARS
    figures = {r[0]: r[1] for r in recon["汇总"].iter_rows(min_row=4, values_only=True) if r[0]}
    assert figures["被截断的单元格数"] == 1


def test_text_shaped_like_rich_text_xml_stays_plain_text(tmp_path):
    con = build_db(2026, 700, 0.6, None, rejected_raw_values=("<r>x</r>",))
    paths = write_reports(con, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"))
    recon = openpyxl.load_workbook(paths[0])
    assert "<r>x</r>" in [c.value for c in recon["校验未通过"]["F"]]


def test_two_runs_give_byte_identical_files_and_leave_no_temporary_file(db_2026, tmp_path):
    params = load_params(2026, "jiangxi")
    first = [p.read_bytes() for p in write_reports(db_2026, RUN_ID, 2026, tmp_path / "a", params)]
    paths = write_reports(db_2026, RUN_ID, 2026, tmp_path / "b", params)
    assert [p.read_bytes() for p in paths] == first
    for out in (tmp_path / "a", tmp_path / "b"):
        assert sorted(p.name for p in out.iterdir()) == ["对账报告_2026.xlsx", "财政补助资金测算表_2026.xlsx"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in paths)


def test_a_crash_while_writing_keeps_the_previous_reports(db_2026, tmp_path, monkeypatch):
    params = load_params(2026, "jiangxi")
    paths = write_reports(db_2026, RUN_ID, 2026, tmp_path, params)
    before = [p.read_bytes() for p in paths]

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(excel_out, "_write_fiscal", crash)
    with pytest.raises(RuntimeError):
        write_reports(db_2026, RUN_ID, 2026, tmp_path, params, unmask=True)
    assert [p.read_bytes() for p in paths] == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_a_run_that_is_not_in_the_database_is_refused(db_2026, tmp_path):
    with pytest.raises(ReportError, match="no run 'nope'"):
        write_reports(db_2026, "nope", 2026, tmp_path, load_params(2026, "jiangxi"))


def test_results_of_another_run_are_refused_rather_than_reported(db_2026, tmp_path):
    db_2026.execute("INSERT INTO runs (run_id, coverage_year) VALUES ('other', 2026)")
    with pytest.raises(ReportError, match="another run"):
        write_reports(db_2026, "other", 2026, tmp_path, load_params(2026, "jiangxi"))


# --- the fiscal-subsidy workbook -------------------------------------------------


def fiscal_rows(path):
    ws = openpyxl.load_workbook(path)["财政补助测算"]
    assert header(ws) == [
        "县(市、区)",
        "乡镇(街道)",
        "资助类别",
        "参保登记人数",
        "参保人数",
        "参保率",
        "财政补助总额",
        "中央财政",
        "地方财政",
        "资助参保金额",
        "大病保险",
        "个人应缴",
        "个人实缴",
    ]
    return ws, [r for r in rows_of(ws) if r[2] is not None]


def test_2026_splits_the_fiscal_subsidy_60_percent_central(reports_2026):
    _, paths = reports_2026
    ws, rows = fiscal_rows(paths[1])
    # townships in code-point order, then the county subtotal, then the grand total
    assert [r[:2] for r in rows] == [("浮梁县", "瑶里镇"), ("浮梁县", "鹅湖镇"), ("浮梁县", "小计"), ("合计", "合计")]
    total = rows[-1]
    # fiscal 700 x enrolled 3 = 2100.00; central 60% = 1260.00; local 2100 - 1260 = 840.00
    assert total[3:9] == (5, 3, pytest.approx(0.6), 2100, 1260, 840)
    assert total[10] == "未规定"  # the province gives no critical-illness amount for 2026
    assert ws.cell(len(rows) + 1, 7).number_format == "#,##0.00"
    assert ws.cell(len(rows) + 1, 6).number_format == "0.00%"
    assert ws.cell(len(rows) + 1, 1).font.b  # the grand total stands out


def test_2025_has_no_central_local_split_and_says_so(tmp_path):
    con = build_db(2025, fiscal_per_head=670, central_share=None, critical_per_head=107)
    paths = write_reports(con, RUN_ID, 2025, tmp_path, load_params(2025, "jiangxi"))
    _, rows = fiscal_rows(paths[1])
    for row in rows:
        assert row[7] == "未规定" and row[8] == "未规定"
    total = rows[-1]
    assert total[6] == 2010  # 670 x 3 enrolled
    assert total[10] == 321  # critical illness 107 x 3


def test_the_parameters_sheet_lists_each_value_with_its_citation(reports_2026):
    (_, fiscal), _ = reports_2026
    ws = fiscal["参数及依据"]
    assert header(ws) == ["参数", "取值", "依据", "参数代码"]
    by_code = {r[3]: r for r in rows_of(ws)}
    params = load_params(2026, "jiangxi")
    assert len(by_code) == len(params.as_rows())
    assert by_code["fiscal_per_capita_yuan"][1:3] == ("700", params.fiscal_per_capita_yuan.cite)
    assert by_code["critical_illness_per_capita_yuan"][1] == "未规定"
