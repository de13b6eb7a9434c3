"""Sheets written top to bottom, and the .xlsx workbooks (xlsxwriter).

`Sheet` keeps the row bookkeeping every format shares: title rows, the header
(one row, or two under a merged group cell), data, blank and footer rows, and
the record of each planted bad row with its place as Excel shows it. The
formats only put cells: `XlsxSheet` here, `XlsSheet` and `CsvSheet` in
formats.py.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import xlsxwriter

from tools.sample.context import Sample, cn_date
from tools.sample.defects import reason_of
from tools.sample.render import EXCEL_DATE_FORMATS, SEQ, Cell

# Fixed document properties: xlsxwriter stamps "now" otherwise.
DOC_CREATED = dt.datetime(2025, 1, 1)


class Sheet:
    """One sheet (or CSV file) being written row by row."""

    typed = True  # cells keep their type (False for CSV: everything is text)

    def __init__(
        self,
        s: Sample,
        file_name: str,
        name: str,
        kind: str,
        keys: list[str],
        headers: list[str],
        groups: dict[int, str] | None = None,
    ) -> None:
        self.s, self.file_name, self.name, self.kind = s, file_name, name, kind
        self.keys, self.headers = keys, headers
        self.groups = groups or {}  # column -> the header cell above it (a two-row header)
        self.col = {k: i for i, k in enumerate(keys)}
        self.header_of = {k: self.groups.get(i, "") + h for i, (k, h) in enumerate(zip(keys, headers))}
        self.row = 0
        self.seq = 0
        self.header_row = 0
        self.data_rows = self.blank_rows = self.footer_rows = 0
        self.copies: list[tuple[int, int, str, Any]] = []  # heap of (due index, n, what, payload)
        self.blank_at: set[int] = set()
        self.numeric_rows: set[int] = set()  # Excel row numbers that must hold a numeric ID
        self.style: dict[str, Any] = {}

    # ------------------------------------------------------------ format hooks
    def _put_row(self, row: int, cells: dict[int, Cell]) -> None:
        raise NotImplementedError

    def _put_title(self, row: int, text: str) -> None:
        self._put_row(row, {0: ("s", text)})

    def _put_header(self, row: int, vertical: bool) -> None:
        if self.groups:
            raise ValueError(f"{self.file_name}: this format has no two-row header")
        self._put_row(row, {c: ("s", h) for c, h in enumerate(self.headers)})

    # ------------------------------------------------------------ rows
    def start(self, titles: list[str], vertical_merge: bool = False) -> None:
        """Title rows, then the header (two rows when columns are grouped)."""
        for title in titles:
            self._put_title(self.row, title)
            self.row += 1
        self.header_row = self.row + 1  # as Excel shows it
        self._put_header(self.row, vertical_merge)
        self.row += 2 if self.groups else 1

    @property
    def excel_row(self) -> int:
        """Excel row number the next write lands on."""
        return self.row + 1

    def emit(self, cells: dict[str, Cell], defect: tuple[str, str, str] | None = None) -> None:
        """Write one data row; record a planted defect (kind, field, raw) with its place."""
        self.seq += 1
        out: dict[int, Cell] = {self.col[SEQ]: ("n", self.seq)} if SEQ in self.col else {}
        for key, cell in cells.items():
            if cell is not None and key in self.col:
                out[self.col[key]] = cell
        self._put_row(self.row, out)
        if defect is not None:
            kind, key, raw = defect
            self.s.planted.append(
                {
                    "kind": kind,
                    "file": self.file_name,
                    "sheet": self.name,
                    "row": self.row + 1,
                    "column": self.header_of.get(key, key),
                    "raw": raw,
                    "what": self.kind,
                    "reason_code": reason_of(self.kind, kind),
                }
            )
        self.row += 1
        self.data_rows += 1

    def blank(self) -> None:
        self._put_row(self.row, {})
        self.row += 1
        self.blank_rows += 1

    def footer(self, text: str) -> None:
        self._put_row(self.row, {0: ("s", text)})
        self.row += 1
        self.footer_rows += 1

    def info(self) -> dict[str, Any]:
        return {
            "file": self.file_name,
            "kind": self.kind,
            "sheet": self.name,
            "header_row": self.header_row,
            "header_rows": 2 if self.groups else 1,
            "data_rows": self.data_rows,
            "blank_rows": self.blank_rows,
            "footer_rows": self.footer_rows,
            "rows_after_header": self.data_rows + self.blank_rows + self.footer_rows,
        }


class XlsxBook:
    """An .xlsx workbook with fixed properties (same bytes for the same seed), written to a .part file."""

    def __init__(self, s: Sample, path: Path, title: str) -> None:
        self.s, self.path = s, path
        self.tmp = path.with_name(f".{path.name}.part")
        options: dict[str, Any] = {"constant_memory": True} if s.big else {"in_memory": True}
        self.wb = xlsxwriter.Workbook(str(self.tmp), options)
        self.wb.set_properties(
            {
                "title": title,
                "author": "medins sample",
                "company": f"{s.vocab['city']}医疗保障局",
                "comments": f"tools.sample seed={s.seed} coverage_year={s.year}",
                "created": DOC_CREATED,
            }
        )
        self.fmt = {
            "title": self.wb.add_format({"bold": True, "align": "center", "font_size": 14}),
            "header": self.wb.add_format({"bold": True, "border": 1, "align": "center", "valign": "vcenter"}),
        }
        for style, num_format in EXCEL_DATE_FORMATS.items():
            self.fmt[style] = self.wb.add_format({"num_format": num_format})

    def add_sheet(
        self, name: str, kind: str, keys: list[str], headers: list[str], groups: dict[int, str] | None = None
    ) -> XlsxSheet:
        return XlsxSheet(self, name, kind, keys, headers, groups)

    def close(self) -> Path:
        self.wb.close()
        os.replace(self.tmp, self.path)
        return self.path


class XlsxSheet(Sheet):
    def __init__(
        self, book: XlsxBook, name: str, kind: str, keys: list[str], headers: list[str], groups: dict[int, str] | None
    ) -> None:
        super().__init__(book.s, book.path.name, name, kind, keys, headers, groups)
        self.fmt = book.fmt
        self.ws = book.wb.add_worksheet(name)
        self.ws.set_column(0, len(keys) - 1, 14)

    def _put_row(self, row: int, cells: dict[int, Cell]) -> None:
        ws = self.ws
        for c, cell in cells.items():
            if cell is None:
                continue
            if cell[0] == "s":
                ws.write_string(row, c, cell[1])
            elif cell[0] == "n":
                ws.write_number(row, c, cell[1])
            else:
                ws.write_datetime(row, c, cell[1], self.fmt[cell[2]])

    def _put_title(self, row: int, text: str) -> None:
        if len(self.keys) > 1:
            self.ws.merge_range(row, 0, row, len(self.keys) - 1, text, self.fmt["title"])
        else:
            self.ws.write_string(row, 0, text, self.fmt["title"])

    def _put_header(self, row: int, vertical: bool) -> None:
        """One header row; or a group cell merged over its columns with their names in the row below,
        the other header cells merged down over both rows (vertical) or alone above an empty cell.

        Row by row, as constant_memory needs: vertical merges only outside it (the caller's choice).
        """
        ws, f = self.ws, self.fmt["header"]
        for c, h in enumerate(self.headers):
            group = self.groups.get(c)
            if group is None and vertical and self.groups:
                ws.merge_range(row, c, row + 1, c, h, f)
            elif group is None:
                ws.write_string(row, c, h, f)
            elif self.groups.get(c - 1) != group:
                last = max(k for k, g in self.groups.items() if g == group)
                ws.merge_range(row, c, row, last, group, f)
        for c in sorted(self.groups):
            ws.write_string(row + 1, c, self.headers[c], f)


def titles(s: Sample, title: str, subtitle: str) -> list[str]:
    """A title row, sometimes a subtitle: none in a clean file."""
    if not s.messy:
        return []
    return [title, subtitle] if s.rrng.random() < 0.5 else [title]


def sheet_name(base: str, j: int, n: int) -> str:
    return base if n == 1 else f"{base}{j + 1}"


TOWNSHIP_REMARK = "备注：本表由乡镇(街道)医保经办机构填报，身份证号码以公安户籍系统为准。"


def write_footers(s: Sample, sh: Sheet, unit: str, remark: str = TOWNSHIP_REMARK) -> None:
    """合计 / 制表人 (/ 备注) rows under the data, which the reader skips and counts."""
    if not s.messy:
        return
    r = s.rrng
    if r.random() < 0.5:
        sh.blank()
    sh.footer(f"合计：{sh.data_rows}{unit}")
    clerk, checker = s.name(r.random() < 0.5, r), s.name(r.random() < 0.5, r)
    sh.footer(f"制表人：{clerk}  审核人：{checker}  填报日期：{cn_date(s.CE + dt.timedelta(days=21))}")
    if r.random() < 0.3:
        sh.footer(remark)
