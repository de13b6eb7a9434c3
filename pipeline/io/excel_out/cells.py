"""Cell values, widths and formats shared by the workbooks (xlsxwriter's public API only)."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xlsxwriter import Workbook

EXCEL_MAX_DATA_ROWS = 1_048_575  # 1,048,576 rows less the header row
EXCEL_CELL_MAX_CHARS = 32_767  # counted in UTF-16 units, as Excel does
EXCEL_MAX_PAGE_BREAKS = 1_023
TRUNCATION_MARKER = "…[截断]"
MAX_COLUMN_WIDTH = 50
NOT_GIVEN = "未规定"
CITATION_COLUMN_WIDTH = 60
_EXCEL_EPOCH = dt.date(1899, 12, 30)
_FIRST_TRUE_EXCEL_DATE = dt.date(1900, 3, 1)  # before it Excel counts a 1900-02-29

# The printed page: A4 across, fit to the page width (README "The workbooks"). Excel's column width
# unit is the width of "0" in the workbook's default font, 11 pt Calibri (xlsxwriter's); a column
# given width w is stored as w + 5/7 (5 pixels of cell padding at 7 pixels a unit), the width
# openpyxl reads back. How wide a unit prints differs: Calibri's "0" is 1038/2048 em, 5.575 pt at
# 11 pt, and LibreOffice prints a unit so wide; Excel rounds it to whole pixels at 96 dpi, 7 px =
# 5.25 pt. The body's printed size is checked at the wider unit (the smaller scale), a page's fill
# at the narrower one (the larger scale: fewer rows a page).
A4_LANDSCAPE_PT = (841.89, 595.28)  # 297 x 210 mm
MARGINS_IN = {
    "left": 0.4,
    "right": 0.4,
    "top": 0.75,
    "bottom": 0.75,
}  # the title and page number print in top and bottom
POINTS_PER_INCH = 72
PRINTABLE_PT = (
    A4_LANDSCAPE_PT[0] - POINTS_PER_INCH * (MARGINS_IN["left"] + MARGINS_IN["right"]),
    A4_LANDSCAPE_PT[1] - POINTS_PER_INCH * (MARGINS_IN["top"] + MARGINS_IN["bottom"]),
)
CALIBRI_UNIT_PT = 11 * 1038 / 2048  # a width unit as LibreOffice prints it
EXCEL_UNIT_PT = 7 * 0.75  # a width unit as Excel prints it
CELL_PADDING_UNITS = 5 / 7
ROW_HEIGHT_PT = 15  # a row of 11 pt text; a wrapped cell's row is this per line
HEADING_HEIGHT_PT = 18  # a township's heading row
PAPER_A4 = 9

# kinds of list columns: text, id (masked ID), free (text that may quote an ID), tier, status,
# status_change, kind (roster/payments/...), reason (not enrolled), money, count, date, rate
TEXT_KINDS = frozenset({"text", "id", "free", "tier", "status", "status_change", "kind", "reason"})
NUMBER_FORMATS = {
    "money": "#,##0.00",
    "count": "#,##0",
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm:ss",
    "rate": "0.00%",
    "year": "0",
}
_NUMBER_ALIGNMENT = {"date": {"align": "center"}, "datetime": {"align": "center"}}
_RIGHT_INDENTED = {"align": "right", "indent": 1}  # keeps a number off the next column's text


@dataclass(frozen=True)
class Column:
    """One column of a list sheet: its Chinese header, what kind of value it holds, the field of the
    list's rows it shows, the widest it grows (a longer text wraps inside that width), and whether
    it prints (a column shown on screen only stands after the printed ones, outside the print area)."""

    header: str
    kind: str
    field: str = ""
    width: int = MAX_COLUMN_WIDTH
    printed: bool = True


@dataclass
class Stats:
    truncated_cells: int = 0


@dataclass
class Formats:
    header: Any
    title: Any
    note: Any
    value_text: Any
    middle: Any
    wrap: Any
    link: Any
    warn: Any
    plain: Any
    wrap_note: Any
    heading: Any
    number: dict[str, Any]
    # fiscal table rows by kind: (text format, number formats, 未规定 format)
    row_styles: dict[str, tuple[Any, dict[str, Any], Any]]


def make_formats(wb: Workbook) -> Formats:
    def numbers(extra: dict) -> dict[str, Any]:
        return {
            k: wb.add_format(
                {"num_format": f, "valign": "vcenter", **_NUMBER_ALIGNMENT.get(k, _RIGHT_INDENTED), **extra}
            )
            for k, f in NUMBER_FORMATS.items()
        }

    def row_style(extra: dict) -> tuple[Any, dict[str, Any], Any]:
        return (
            wb.add_format(extra) if extra else None,
            numbers(extra),
            wb.add_format({**extra, "align": "center", "font_color": "#7F7F7F"}),
        )

    return Formats(
        header=wb.add_format(
            {
                "bold": True,
                "bg_color": "#D9E1F2",
                "border": 1,
                "align": "center",
                "valign": "vcenter",
                "text_wrap": True,
            }
        ),
        title=wb.add_format({"bold": True, "font_size": 14}),
        note=wb.add_format({"font_color": "#595959", "indent": 1}),
        value_text=wb.add_format({"align": "right", "indent": 1}),
        middle=wb.add_format({"valign": "vcenter"}),
        wrap=wb.add_format({"text_wrap": True, "valign": "vcenter"}),
        link=wb.add_format({"font_color": "#0563C1", "underline": 1}),
        warn=wb.add_format({"bg_color": "#F8CBAD", "num_format": "0.00%", **_RIGHT_INDENTED}),
        plain=wb.add_format({}),
        wrap_note=wb.add_format({"font_color": "#595959", "text_wrap": True, "valign": "top"}),
        heading=wb.add_format({"bold": True, "bg_color": "#E2EFDA", "bottom": 1, "valign": "vcenter"}),
        number=numbers({}),
        row_styles={
            "township": row_style({}),
            "township_all_tiers": row_style({"bg_color": "#F2F2F2"}),
            "county": row_style({"bold": True, "bg_color": "#D9D9D9"}),
            "total": row_style({"bold": True, "bg_color": "#FFF2CC", "top": 1}),
        },
    )


def display_width(text: str) -> int:
    """Columns `text` takes in a spreadsheet: East Asian wide characters count 2."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fit_cell_text(text: str) -> tuple[str, bool]:
    """Text Excel can hold in one cell; longer text is cut and ends in `…[截断]`."""
    if len(text) * 2 <= EXCEL_CELL_MAX_CHARS or _utf16_len(text) <= EXCEL_CELL_MAX_CHARS:
        return text, False
    room = EXCEL_CELL_MAX_CHARS - _utf16_len(TRUNCATION_MARKER)
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1  # astral characters take two UTF-16 units
        if units > room:
            return text[:i] + TRUNCATION_MARKER, True
    return text, False


def excel_serial(value: dt.date | dt.datetime) -> float:
    """Excel's 1900 serial number for a date or timestamp (shown through a date format)."""
    day = value.date() if isinstance(value, dt.datetime) else value
    serial = float((day - _EXCEL_EPOCH).days)
    if day < _FIRST_TRUE_EXCEL_DATE:
        serial -= 1
    if isinstance(value, dt.datetime):
        serial += (value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6) / 86400
    return serial


def excel_date_sql(expr: str) -> str:
    """A DATE as Excel's serial day number, computed by DuckDB."""
    return (
        f"(date_diff('day', DATE '{_EXCEL_EPOCH}', {expr})"
        f" - CASE WHEN {expr} < DATE '{_FIRST_TRUE_EXCEL_DATE}' THEN 1 ELSE 0 END)"
    )


def content_width(values: Sequence[Any], kind: str) -> int:
    """The widest value of a column as shown (numbers with their format)."""
    present = [v for v in values if v is not None]
    if not present:
        return 0
    if kind in TEXT_KINDS:
        return max(display_width(str(v)) for v in set(present))
    if kind == "date":
        return 10
    if kind == "datetime":
        return 19
    if kind == "rate":
        return 8
    biggest = max(max(present), -min(present))
    shown = f"{biggest:,.2f}" if kind == "money" else f"{biggest:,.0f}"
    return len(shown) + (1 if min(present) < 0 else 0)


def column_width(header: str, width_of_content: int, most: int = MAX_COLUMN_WIDTH) -> int:
    """A width that shows the header (and its filter button) and the longest value, up to `most`."""
    return max(display_width(header) + 4, min(most, width_of_content + 2))


def print_scale(widths: Sequence[float], unit_pt: float = CALIBRI_UNIT_PT) -> float:
    """The scale of a page fit to the width of A4 across, its columns given `widths`, a width unit
    printing `unit_pt` wide: at most 1 (a page is never enlarged)."""
    return min(1.0, PRINTABLE_PT[0] / sum((w + CELL_PADDING_UNITS) * unit_pt for w in widths))


def set_print_layout(ws: Any, title: str, printed: tuple[int, int] | None = None) -> None:
    """A4 across with the list's margins, fit to the page width, any number of pages down, the
    header row on every page, the title on top and the page number below; when `printed` (last
    row, number of columns) is given, only those first columns print."""
    ws.set_landscape()
    ws.set_paper(PAPER_A4)
    ws.set_margins(**MARGINS_IN)
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0)
    ws.set_header(page_title(title))
    ws.set_footer("&C第 &P 页 / 共 &N 页")
    if printed is not None:
        ws.print_area(0, 0, printed[0], printed[1] - 1)


def looks_rich(text: object) -> bool:
    """Text xlsxwriter would write as raw rich-text XML (a string that starts with <r> and ends with
    </r>): an input cell could otherwise break the sheet's XML or vanish."""
    return isinstance(text, str) and text.startswith("<r>") and text.endswith("</r>")


def write_text(ws: Any, row: int, col: int, text: str, fmts: Formats, cell_format: Any = None) -> None:
    """A text cell, always read back as the same text: one that `looks_rich` goes as two plain runs."""
    if looks_rich(text):
        ws.write_rich_string(row, col, text[:1], fmts.plain, text[1:], *([cell_format] if cell_format else []))
    else:
        ws.write_string(row, col, text, cell_format)


def page_title(text: str) -> str:
    """A print header (on every printed page) naming the list; `&` is Excel's header escape."""
    return f'&C&12&"宋体,加粗"{text.replace("&", "&&")}'
