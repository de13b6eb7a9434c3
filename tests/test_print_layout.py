"""The lists on paper (README "The workbooks"): A4 across, the body at 9 pt or more, a heading row
above each township, a township of 14 people or more on pages of its own.

The printed size is computed from the saved file as a printer would: a page fit to one page across
prints at min(1, printable width / the printed columns' width). A column's width unit is the width
of "0" in the default font, 11 pt Calibri: its glyph is 1038/2048 em, 5.575 pt (LibreOffice prints
a unit so wide; Excel rounds it to 7 pixels at 96 dpi, 5.25 pt, and so prints the same sheet a
little larger). openpyxl reads a column's width with its 5-pixel padding included.
"""

from __future__ import annotations

import openpyxl
import pytest
import xlsxwriter
from openpyxl.utils import range_boundaries

from builders import with_check_digit
from pipeline.io.excel_out import write_reports
from pipeline.io.excel_out.lists import page_breaks
from pipeline.params import load_params
from report_db import RUN_ID, build_db, insert, insert_person

A4_LANDSCAPE_WIDTH_PT = 297 / 25.4 * 72
UNIT_PT = 11 * 1038 / 2048
LONG = "很长的文字" * 12  # 120 columns wide: every text column at its widest


def printed_body_font_pt(ws) -> float:
    """The body font's printed size on A4 across, from the sheet's widths, print area, margins and
    fit (or scale), as saved."""
    setup = ws.page_setup
    assert (setup.paperSize, setup.orientation) == (9, "landscape"), ws.title
    widths = {c: d.width for d in ws.column_dimensions.values() for c in range(d.min, d.max + 1)}
    last = max(widths)
    if ws.print_area:
        _, _, last, _ = range_boundaries(ws.print_area.split("!")[-1])
    columns_pt = sum(widths.get(c, 8.43 + 5 / 7) * UNIT_PT for c in range(1, last + 1))
    printable_pt = A4_LANDSCAPE_WIDTH_PT - 72 * (ws.page_margins.left + ws.page_margins.right)
    if ws.sheet_properties.pageSetUpPr.fitToPage:
        assert (setup.fitToWidth or 1) == 1, ws.title
        scale = min(1.0, printable_pt / columns_pt)
    else:
        scale = (setup.scale or 100) / 100
    return ws.cell(2, 1).font.sz * scale


def test_the_computed_print_size_can_fail_on_a_page_of_thirteen_wide_columns(tmp_path):
    # 13 columns of 20: 13 x 20.71 x 5.575 = 1501 pt on 841.89 - 2 x 0.7 x 72 = 741 pt: 11 x 0.49 = 5.4 pt
    wb = xlsxwriter.Workbook(tmp_path / "wide.xlsx")
    ws = wb.add_worksheet("宽")
    ws.set_column(0, 12, 20)
    ws.write_row(0, 0, [f"列{i}" for i in range(13)])
    ws.write_row(1, 0, ["文字"] * 13)
    ws.set_landscape()
    ws.set_paper(9)
    ws.fit_to_pages(1, 0)
    wb.close()
    assert printed_body_font_pt(openpyxl.load_workbook(tmp_path / "wide.xlsx")["宽"]) == pytest.approx(5.43, abs=0.01)


def _widest_night():
    """The small night with every text as long as a cell may hold it: each column at its widest."""
    con = build_db(2026, 700, 0.6, None, rejected_raw_values=(LONG,), phones={})
    for table, columns in {
        "reconciliation": ("name", "township", "village", "refund_basis"),
        "residents": ("phone",),
        "unmatched_payments": ("name", "reason", "source_file", "sheet", "ticket_no"),
        "rejected_rows": ("source_file", "sheet", "column", "reason"),
        "status_changes": ("name", "township", "previous_run_id"),
    }.items():
        con.execute(f"UPDATE {table} SET " + ", ".join(f"\"{c}\" = '{LONG}'" for c in columns))
    con.execute("UPDATE unmatched_payments SET amount = 1234567.89")
    insert(con, "subsidy_list_rows", run_id=RUN_ID, coverage_year=2026, id_number="x", name="甲")
    insert(
        con,
        "subsidy_not_enrolled",
        run_id=RUN_ID,
        coverage_year=2026,
        id_number=with_check_digit("36022219700101777"),
        name=LONG,
        county="浮梁县",
        township=LONG,
        village=LONG,
        identity_labels=LONG,
        department=LONG,
        reason="not_on_roster",
    )
    return con


def test_every_list_prints_its_body_at_9_pt_or_more_on_a4_across_even_with_its_widest_texts(tmp_path):
    paths = write_reports(_widest_night(), RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"))
    phone, recon, fiscal = (openpyxl.load_workbook(p) for p in paths)
    phone_lists = [ws for ws in phone.worksheets if ws.title != "说明"]
    lists = [*phone_lists, *(recon[n] for n in ("多缴应退费", "无登记缴费", "校验未通过", "较上次变化"))]
    assert [ws.title for ws in phone_lists] == ["未缴", "少缴", "资助对象未参保"]
    sizes = {ws.title: round(printed_body_font_pt(ws), 2) for ws in [*lists, fiscal["参数及依据"]]}
    assert min(sizes.values()) >= 9, sizes
    # a long text wraps inside its column and its row grows: 姓名 at its widest, 12, holds 5 characters a
    # line, 60 take 12 lines of 15 pt
    assert phone["未缴"].column_dimensions["A"].width == pytest.approx(12 + 5 / 7, abs=0.01)
    assert phone["未缴"]["A3"].alignment.wrap_text
    assert phone["未缴"].row_dimensions[3].height == 12 * 15


# --- townships on paper ----------------------------------------------------------------

# At scale 1 (narrow columns) a page holds 595.28 - 2 x 0.75 x 72 = 487.28 pt, less the header row and a
# row to spare: 457.28 pt. A heading is 18 pt, a row 15 pt.
NARROW = [10] * 5


def test_small_townships_follow_one_another_on_a_page():
    # two townships of 2 people: 18 + 2 x 15 = 48 pt each
    assert page_breaks([(1, 48), (4, 48)], NARROW) == []


def test_a_township_of_14_people_has_pages_of_its_own_one_of_13_does_not():
    # 14 people: 18 + 14 x 15 = 228 pt, 15 lines or more; 13 people: 213 pt
    assert page_breaks([(1, 48), (4, 228), (19, 48)], NARROW) == [4, 19]
    assert page_breaks([(1, 48), (4, 213), (18, 48)], NARROW) == []


def test_a_small_township_that_would_not_fit_on_what_is_left_of_the_page_starts_a_new_one():
    # 213 + 213 = 426 pt fits in 457.28; a third 213 would end at 639: it starts page 2
    assert page_breaks([(1, 213), (15, 213), (29, 213)], NARROW) == [29]
    # five columns printing 784.29 / 0.8 pt wide at Excel's 5.25 pt a unit print at 0.8: a page holds
    # 487.28 / 0.8 - 30 = 579.1 pt, and 213 + 213 + 150 = 576 fits
    wide = [784.29 / 0.8 / 5 / 5.25 - 5 / 7] * 5
    assert page_breaks([(1, 213), (15, 213), (29, 150)], wide) == []


@pytest.mark.parametrize("people, breaks", [(13, []), (14, [16])])
def test_in_the_workbook_the_township_after_one_of_14_people_starts_a_new_page(tmp_path, people, breaks):
    con = build_db(2026, 700, 0.6, None, phones={})  # one line a person
    for i in range(people - 1):  # 赵敏 of 瑶里镇 is unpaid already
        person = (f"未缴{i:02d}", with_check_digit(f"360222199203{i:02d}011"), "瑶里镇", "瑶里村", "none")
        insert_person(con, 2026, (*person, 400, 0, 0, "unpaid", 400, None, False))
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
    ws = openpyxl.load_workbook(write_reports(con, RUN_ID, 2026, tmp_path, load_params(2026, "jiangxi"))[0])["未缴"]
    # the header (row 1), 瑶里镇's heading (row 2) and its people; 鹅湖镇's heading right after them
    assert ws.cell(people + 3, 1).value == "浮梁县 鹅湖镇（1人）"
    assert [b.id for b in ws.row_breaks.brk] == breaks  # a break after row 16: 鹅湖镇 starts page 2
    assert ws.cell(2, 1).value == f"浮梁县 瑶里镇（{people}人）"
