"""The three morning workbooks, read back as the section chief's Excel would read them."""

from __future__ import annotations

import datetime as dt
import re
import stat
import zipfile

import openpyxl
import pytest

from builders import with_check_digit
from pipeline.io import excel_out
from pipeline.io.excel_out import (
    EXCEL_CELL_MAX_CHARS,
    TRUNCATION_MARKER,
    ReportError,
    display_width,
    write_reports,
)
from pipeline.io.masking import mask_id, mask_ids_in_text
from pipeline.params import load_params
from pipeline.vocabulary import MODEL_NAMES
from report_db import (
    FINGERPRINT,
    FORMULA_NAME,
    FULL_ID,
    ID_OVER,
    ID_REJECTED,
    ID_UNDER,
    ID_UNMATCHED,
    ID_UNPAID,
    PHONES,
    RUN_ID,
    STARTED_AT,
    TICKET,
    build_db,
    insert,
    insert_person,
)

NAMES = ["催缴名单_2026.xlsx", "对账报告_2026.xlsx", "财政补助资金测算表_2026.xlsx"]


@pytest.fixture
def db_2026():
    con = build_db(2026, fiscal_per_head=700, central_share=0.60, critical_per_head=None)
    yield con
    con.close()


def books(paths):
    """The phone lists, the reconciliation report, the fiscal report (WORKBOOKS' order)."""
    return [openpyxl.load_workbook(p) for p in paths]


@pytest.fixture
def reports_2026(db_2026, tmp_path):
    paths = write_reports(db_2026, RUN_ID, 2026, tmp_path / "out", load_params(2026, "jiangxi"))
    return books(paths), paths


def all_cells(wb):
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if cell.value is not None:
                    yield ws.title, cell


def is_heading(row) -> bool:
    """A township's heading row: its text in the first cell, the others empty."""
    return isinstance(row[0], str) and row[0].endswith("人）") and all(v is None for v in row[1:])


def rows_of(ws):
    """A list's rows below the header, without the township heading rows."""
    return [r for r in (tuple(c.value for c in row) for row in ws.iter_rows(min_row=2)) if not is_heading(r)]


def headings_of(ws):
    return [(r[0].row, r[0].value) for r in ws.iter_rows(min_row=2) if is_heading([c.value for c in r])]


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
    shown = mask_id(value)
    assert shown == masked
    assert shown is not None and sum(ch != "*" for ch in shown) <= 10


def test_ids_inside_free_text_are_masked_but_a_20_digit_tax_ticket_is_not():
    text = f"证件号码{ID_REJECTED}重复, 票号{TICKET}"
    assert mask_ids_in_text(text) == f"证件号码360222********1235重复, 票号{TICKET}"


def test_chinese_characters_count_two_columns_wide():
    assert display_width("瑶里镇") == 6
    assert display_width("R-1 镇") == 6


# --- where each list is --------------------------------------------------------


def test_the_three_workbooks_have_the_sheets_the_bureau_expects(reports_2026):
    (phone, recon, fiscal), paths = reports_2026
    assert [p.name for p in paths] == NAMES
    assert phone.sheetnames == ["未缴", "少缴", "说明"]  # no subsidy lists tonight: no 资助对象未参保
    assert recon.sheetnames == ["汇总", "多缴应退费", "无登记缴费", "校验未通过", "较上次变化", "图表数据"]
    assert fiscal.sheetnames == ["财政补助测算", "参数及依据"]
    assert phone.properties.title == "2026年度城乡居民医保催缴名单"


def test_the_summary_lists_every_list_and_links_the_phone_lists_in_their_workbook(reports_2026):
    (_, recon, _), _ = reports_2026
    ws = recon["汇总"]
    first = next(c.row for c in ws["A"] if c.value == "清单")
    lists = {r[0]: r[1:3] for r in ws.iter_rows(min_row=first + 1, max_row=first + 6, values_only=True)}
    assert lists == {
        "未缴": (1, "催缴名单_2026.xlsx：未缴"),
        "少缴": (1, "催缴名单_2026.xlsx：少缴"),
        "多缴应退费": (1, "多缴应退费"),
        "无登记缴费": (1, "无登记缴费"),
        "校验未通过": (3, "校验未通过"),
        "较上次变化": (1, "较上次变化"),
    }
    links = {ws.cell(r, 1).value: ws.cell(r, 1).hyperlink for r in range(first + 1, first + 7)}
    # the phone lists in the file beside this one, the others in this one
    assert (links["未缴"].target, links["未缴"].location) == ("催缴名单_2026.xlsx", "'未缴'!A1")
    assert (links["多缴应退费"].target, links["多缴应退费"].location) == (None, "'多缴应退费'!A1")


def test_exception_lists_carry_the_columns_a_clerk_needs_on_paper(reports_2026):
    (phone, recon, _), _ = reports_2026
    assert header(phone["少缴"]) == [
        "姓名",
        "联系电话",
        "证件号码",
        "乡镇(街道)",
        "村(社区)",
        "资助类别",
        "应缴金额",
        "实缴金额",
        "差额",
        "最后缴费日期",
    ]
    assert header(phone["未缴"]) == [
        "姓名",
        "联系电话",
        "证件号码",
        "乡镇(街道)",
        "村(社区)",
        "资助类别",
        "应缴金额",
    ]
    # the clause of each tier's amount due, once, on 说明
    legend = [r for r in phone["说明"].iter_rows(min_row=4, values_only=True)]
    assert [(tier, due) for tier, due, _ in legend] == [("全额资助", 0), ("定额资助", 80), ("普通", 400)]
    assert header(recon["多缴应退费"]) == [
        "姓名",
        "证件号码",
        "乡镇(街道)",
        "村(社区)",
        "资助类别",
        "应缴金额",
        "实缴金额",
        "应退金额",
        "最后缴费日期",
        "依据",
    ]
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
    # 赵敏 (低保, fixed) owes 80 = 400 standard - 320 fixed subsidy; her phone as the roster wrote it
    (unpaid,) = rows_of(phone["未缴"])
    assert unpaid[:7] == ("赵敏", PHONES[ID_UNPAID], mask_id(ID_UNPAID), "瑶里镇", "瑶里村", "定额资助", 80)
    assert len(unpaid) == 7  # the basis of the amount due is the tier's clause, on 说明
    # the refund's basis code shown as the year's clause (policy_params rule_basis.refund_overpaid)
    (over,) = rows_of(recon["多缴应退费"])
    assert over[7] == 400 and over[9] == "docs/RULES.md §5 实缴净额超过个人应缴金额, 多缴部分应退"
    # the reason code by its name (schemas/vocabulary.toml [unmatched_reasons])
    (stranger,) = rows_of(recon["无登记缴费"])
    assert stranger[5] == "花名册中无此证件号码的参保登记"


def test_a_township_heading_names_the_county_township_and_head_count_above_its_rows(reports_2026):
    (phone, recon, _), _ = reports_2026
    assert headings_of(phone["未缴"]) == [(2, "浮梁县 瑶里镇（1人）")]
    assert headings_of(recon["较上次变化"]) == [(2, "浮梁县 鹅湖镇（1人）")]
    assert headings_of(recon["无登记缴费"]) == []  # not a list of persons by township
    cell = phone["未缴"]["A2"]
    assert cell.font.b and phone["未缴"].row_dimensions[2].height == 18


def test_a_formula_looking_name_comes_back_as_the_same_text(reports_2026):
    (phone, recon, _), _ = reports_2026
    cell = phone["少缴"]["A3"]  # below the heading of 鹅湖镇
    assert cell.value == FORMULA_NAME
    assert cell.data_type == "s"
    change = recon["较上次变化"]["A3"]
    assert change.value == FORMULA_NAME and change.data_type == "s"
    raw = {c.value: c.data_type for c in recon["校验未通过"]["F"][1:]}
    assert raw["+1"] == "s" and raw["@x"] == "s"
    assert any(c.value == "备注 -2" and c.data_type == "s" for c in recon["校验未通过"]["G"])


def test_no_full_id_number_appears_anywhere_in_any_workbook(reports_2026):
    (phone, recon, _), paths = reports_2026
    for path in paths:
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                text = z.read(member).decode("utf-8", errors="replace")
                assert not FULL_ID.search(text), (path.name, member, FULL_ID.search(text))
    shown = {cell.value for book in (phone, recon) for _, cell in all_cells(book)}
    assert mask_id(ID_UNDER) in shown
    assert "360222********1235" in shown  # the rejected raw ID
    assert TICKET in shown  # the tax ticket is not an ID


def test_a_mangled_id_under_an_id_header_is_masked_whole(tmp_path):
    # Excel turned the ID into a number: 3.60222199001012E+17 keeps 15 digits of it.
    con = build_db(2026, 700, 0.6, None)
    insert(
        con,
        "rejected_rows",
        run_id=RUN_ID,
        coverage_year=2026,
        kind="roster",
        source_file="花名册.xlsx",
        sheet="鹅湖镇",
        row_number=30,
        column="证件号码*",
        raw_value="3.60222199001012E+17",
        reason="证件号码被Excel存成了数字",
        id_number=None,
    )
    paths = write_reports(con, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"))
    raw = [c.value for c in openpyxl.load_workbook(paths[1])["校验未通过"]["F"]]
    assert "3.60222199001012E+17" not in raw
    assert mask_id("3.60222199001012E+17") in raw


def test_ids_are_shown_in_full_only_when_unmasked(db_2026, tmp_path):
    paths = write_reports(db_2026, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"), unmask=True)
    phone, recon, _ = books(paths)
    shown = {cell.value for book in (phone, recon) for _, cell in all_cells(book)}
    assert {ID_UNDER, ID_UNPAID, ID_OVER, ID_UNMATCHED, ID_REJECTED} <= shown


def test_money_cells_are_numbers_in_yuan_and_dates_are_real_dates(reports_2026):
    (phone, _, _), _ = reports_2026
    ws = phone["少缴"]
    due, paid, diff, last_paid = (ws.cell(3, c) for c in (7, 8, 9, 10))
    assert (due.value, paid.value, diff.value) == (400, 150, 250)  # 400 due - 150 paid = 250
    for cell in (due, paid, diff):
        assert cell.data_type == "n" and cell.number_format == "#,##0.00"
    assert last_paid.value == dt.datetime(2025, 12, 9) and last_paid.number_format == "yyyy-mm-dd"


def test_lists_have_a_frozen_header_an_autofilter_and_widths_that_fit_chinese(reports_2026):
    (phone, _, _), _ = reports_2026
    ws = phone["少缴"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:J3"  # the header, the heading of 鹅湖镇, one person
    # 最后缴费日期 is 6 wide characters = 12 columns, + 4 for the filter button
    assert ws.column_dimensions["J"].width >= 16
    # xlsxwriter stores a width of 50 characters as 50.71 (cell padding)
    assert all(d.width < 51 for d in ws.column_dimensions.values())


def test_every_list_prints_with_a_title_and_its_header_on_each_page(reports_2026):
    """Township clerks print the lists and work down them: A4 across, fit to the page width, the
    header row repeated, a title naming the list, year and data date."""
    (phone, recon, fiscal), _ = reports_2026
    lists = [ws for ws in phone.worksheets if ws.title != "说明"]
    for ws in [*lists, *recon.worksheets[1:5], fiscal["财政补助测算"], fiscal["参数及依据"]]:
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
        assert "2026年度" in ws.oddHeader.center.text, ws.title
    assert "少缴名单" in phone["少缴"].oddHeader.center.text
    assert "数据日期2026-03-01" in phone["少缴"].oddHeader.center.text


def test_the_summary_holds_the_key_figures_and_three_charts(reports_2026):
    (_, recon, _), paths = reports_2026
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
    with zipfile.ZipFile(paths[1]) as z:
        charts = sorted(n for n in z.namelist() if re.fullmatch(r"xl/charts/chart\d+\.xml", n))
        assert len(charts) == 3
        assert all("图表数据" in z.read(c).decode() for c in charts)
    assert len(recon["汇总"]._charts) == 3


def test_with_several_counties_the_township_bars_carry_the_county_name(tmp_path):
    con = build_db(2026, 700, 0.6, None)
    con.execute("UPDATE determinations SET county = '乐平市' WHERE township = '瑶里镇'")
    paths = write_reports(con, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"))
    data = openpyxl.load_workbook(paths[1])["图表数据"]
    assert [c.value for c in data[2]] == ["县(市、区)", "乡镇(街道)", "参保登记人数", "参保人数", "参保率", "图表标签"]
    assert [c.value for c in data["F"][2:4]] == ["乐平市 瑶里镇", "浮梁县 鹅湖镇"]
    with zipfile.ZipFile(paths[1]) as z:
        assert "'图表数据'!$F$3:$F$4" in z.read("xl/charts/chart1.xml").decode()


def test_a_person_new_since_the_last_run_is_listed_as_such(db_2026, tmp_path):
    insert(
        db_2026,
        "status_changes",
        run_id=RUN_ID,
        coverage_year=2026,
        id_number=ID_OVER,
        name="钱进",
        county="浮梁县",
        township="瑶里镇",
        previous_run_id="R-prev",
        previous_status=None,
        status="overpaid",
        previous_amount_diff=None,
        amount_diff=400,
    )
    paths = write_reports(db_2026, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"))
    changes = {r[0]: r for r in rows_of(openpyxl.load_workbook(paths[1])["较上次变化"])}
    assert changes["钱进"][3:7] == ("(上次无此人)", "多缴应退费", None, 400)
    assert changes[FORMULA_NAME][3:7] == ("未缴", "少缴", 400, 250)


def test_a_long_list_continues_on_further_sheets_each_opening_on_a_heading(tmp_path):
    con = build_db(2026, 700, 0.6, None)
    for i in range(10):
        person = (f"补缴{i:02d}", with_check_digit(f"360222199102{i:02d}011"), "瑶里镇", "瑶里村", "none")
        insert_person(con, 2026, (*person, 400, 100, 1, "underpaid", 300, dt.date(2025, 12, 1), False))
    paths = write_reports(con, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"), max_rows_per_sheet=5)
    phone, recon, _ = books(paths)
    # 11 underpaid in 2 townships: a sheet holds max(5 - 2, 5 // 2) = 3 of them, and a heading each
    names = ["少缴", "少缴(2)", "少缴(3)", "少缴(4)"]
    assert [n for n in phone.sheetnames if n.startswith("少缴")] == names
    parts = [rows_of(phone[n]) for n in names]
    assert [len(p) for p in parts] == [3, 3, 3, 2]
    assert {row[0] for part in parts for row in part} == {FORMULA_NAME} | {f"补缴{i:02d}" for i in range(10)}
    assert [headings_of(phone[n])[0] for n in names] == [(2, "浮梁县 瑶里镇（10人）")] * 4
    assert headings_of(phone["少缴(4)"])[1] == (4, "浮梁县 鹅湖镇（1人）")
    assert all(phone[n].max_row <= 6 for n in names)  # the header and at most 5 rows
    assert header(phone["少缴(4)"]) == header(phone["少缴"])
    summary = recon["汇总"]
    assert "催缴名单_2026.xlsx：少缴、少缴(2)、少缴(3)、少缴(4)" in [c.value for c in summary["C"]]


def test_a_cell_longer_than_excel_allows_is_cut_visibly_and_counted(tmp_path):
    con = build_db(2026, 700, 0.6, None, rejected_raw_values=("特困" * 20_000,))
    paths = write_reports(con, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"))
    recon = openpyxl.load_workbook(paths[1])
    cut = [c.value for c in recon["校验未通过"]["F"] if c.value and c.value.startswith("特困")]
    assert len(cut) == 1 and cut[0].endswith(TRUNCATION_MARKER)
    assert len(cut[0]) == EXCEL_CELL_MAX_CHARS
    figures = {r[0]: r[1] for r in recon["汇总"].iter_rows(min_row=4, values_only=True) if r[0]}
    assert figures["被截断的单元格数"] == 1


def test_text_shaped_like_rich_text_xml_stays_plain_text(tmp_path):
    con = build_db(2026, 700, 0.6, None, rejected_raw_values=("<r>x</r>",))
    paths = write_reports(con, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"))
    recon = openpyxl.load_workbook(paths[1])
    assert "<r>x</r>" in [c.value for c in recon["校验未通过"]["F"]]


def test_two_runs_give_byte_identical_files_and_leave_no_temporary_file(db_2026, tmp_path):
    params = load_params(2026, "jiangxi")
    first = [p.read_bytes() for p in write_reports(db_2026, RUN_ID, 2026, tmp_path / "a", params)]
    paths = write_reports(db_2026, RUN_ID, 2026, tmp_path / "b", params)
    assert [p.read_bytes() for p in paths] == first
    for out in (tmp_path / "a", tmp_path / "b"):
        assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)
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


def test_the_fiscal_table_opens_on_the_grand_total_with_2026s_60_percent_central_share(reports_2026):
    _, paths = reports_2026
    ws, rows = fiscal_rows(paths[2])
    # the grand total, the county subtotal, then its townships in code-point order
    assert [r[:2] for r in rows] == [("合计", "合计"), ("浮梁县", "小计"), ("浮梁县", "瑶里镇"), ("浮梁县", "鹅湖镇")]
    total = rows[0]
    # fiscal 700 x enrolled 3 = 2100.00; central 60% = 1260.00; local 2100 - 1260 = 840.00
    assert total[3:9] == (5, 3, pytest.approx(0.6), 2100, 1260, 840)
    assert total[10] == "未规定"  # the province gives no critical-illness amount for 2026
    assert ws.cell(2, 7).number_format == "#,##0.00"
    assert ws.cell(2, 6).number_format == "0.00%"
    assert ws.cell(2, 1).font.b  # the grand total stands out


def test_2025_has_no_central_local_split_and_says_so(tmp_path):
    con = build_db(2025, fiscal_per_head=670, central_share=None, critical_per_head=107)
    paths = write_reports(con, RUN_ID, 2025, tmp_path, load_params(2025, "jiangxi"))
    _, rows = fiscal_rows(paths[2])
    for row in rows:
        assert row[7] == "未规定" and row[8] == "未规定"
    total = rows[0]
    assert total[6] == 2010  # 670 x 3 enrolled
    assert total[10] == 321  # critical illness 107 x 3


def test_the_parameters_sheet_lists_each_value_in_words_with_its_citation(reports_2026):
    (_, _, fiscal), _ = reports_2026
    ws = fiscal["参数及依据"]
    assert header(ws) == ["参数", "取值", "依据", "参数代码"]
    by_code = {r[3]: r for r in rows_of(ws)}
    params = load_params(2026, "jiangxi")
    assert len(by_code) == len(params.as_rows())
    assert by_code["fiscal_per_capita_yuan"][1:3] == ("700", params.fiscal_per_capita_yuan.cite)
    assert by_code["critical_illness_per_capita_yuan"][1] == "未规定"
    assert by_code["central_share"][1] == "60%"
    assert by_code["benefit_model"][1] == MODEL_NAMES["benefit_model"]["continuity"]
    assert by_code["newborn_model"][1] == "出生后期限内参保登记的，自出生之日起享受待遇；此后登记的，登记次日起"
    assert by_code["subsidized_no_waiting"][1] == "否"
