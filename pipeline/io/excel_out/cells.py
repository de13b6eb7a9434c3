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
    """One column of a list sheet: its Chinese header and what kind of value it holds."""

    header: str
    kind: str


@dataclass
class Stats:
    truncated_cells: int = 0


@dataclass
class Formats:
    header: Any
    title: Any
    note: Any
    value_text: Any
    top: Any
    wrap: Any
    link: Any
    warn: Any
    plain: Any
    wrap_note: Any
    number: dict[str, Any]
    # fiscal table rows by kind: (text format, number formats, 未规定 format)
    row_styles: dict[str, tuple[Any, dict[str, Any], Any]]


def make_formats(wb: Workbook) -> Formats:
    def numbers(extra: dict) -> dict[str, Any]:
        return {
            k: wb.add_format({"num_format": f, **_NUMBER_ALIGNMENT.get(k, _RIGHT_INDENTED), **extra})
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
        top=wb.add_format({"valign": "top"}),
        wrap=wb.add_format({"text_wrap": True, "valign": "top"}),
        link=wb.add_format({"font_color": "#0563C1", "underline": 1}),
        warn=wb.add_format({"bg_color": "#F8CBAD", "num_format": "0.00%", **_RIGHT_INDENTED}),
        plain=wb.add_format({}),
        wrap_note=wb.add_format({"font_color": "#595959", "text_wrap": True, "valign": "top"}),
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


def column_width(header: str, width_of_content: int) -> int:
    """A width that shows the header (and its filter button) and the longest value, capped."""
    return min(MAX_COLUMN_WIDTH, max(display_width(header) + 4, width_of_content + 2))


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
    return f'&C&"宋体,加粗"&12{text.replace("&", "&&")}'
