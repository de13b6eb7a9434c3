"""The other formats real systems export: old binary .xls (xlwt), CSV in GB18030, and the fixed
column layouts of layouts.toml (a township's system, the tax bureau, the departments' lists).
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import xlwt

from pipeline.errors import ParamsError
from tools.sample.context import Sample, SampleArgumentError, read_toml
from tools.sample.render import EXCEL_DATE_FORMATS, SEQ, Cell, text_date
from tools.sample.workbook import Sheet

XLS_MAX_ROWS = 65_536
CSV_ENCODING = "gb18030"  # what Chinese Excel and WPS write by default


# --------------------------------------------------------------------------- .xls
class XlsBook:
    """An old binary workbook (BIFF8). xlwt writes no timestamps: same cells, same bytes."""

    def __init__(self, s: Sample, path: Path) -> None:
        self.s, self.path = s, path
        self.tmp = path.with_name(f".{path.name}.part")
        self.wb = xlwt.Workbook(encoding="utf-8")
        self.styles = {
            "title": xlwt.easyxf("font: bold on, height 280; align: horiz center"),
            "header": xlwt.easyxf(
                "font: bold on; align: horiz center, vert center; borders: left thin, right thin, top thin, bottom thin"
            ),
        }
        for style, num_format in EXCEL_DATE_FORMATS.items():
            xf = xlwt.XFStyle()
            xf.num_format_str = num_format
            self.styles[style] = xf

    def add_sheet(
        self, name: str, kind: str, keys: list[str], headers: list[str], groups: dict[int, str] | None = None
    ) -> XlsSheet:
        return XlsSheet(self, name, kind, keys, headers, groups)

    def close(self) -> Path:
        self.wb.save(str(self.tmp))
        os.replace(self.tmp, self.path)
        return self.path


class XlsSheet(Sheet):
    def __init__(
        self, book: XlsBook, name: str, kind: str, keys: list[str], headers: list[str], groups: dict[int, str] | None
    ) -> None:
        super().__init__(book.s, book.path.name, name, kind, keys, headers, groups)
        self.styles = book.styles
        self.ws = book.wb.add_sheet(name)
        for c in range(len(keys)):
            self.ws.col(c).width = 256 * 14

    def _put_row(self, row: int, cells: dict[int, Cell]) -> None:
        if row >= XLS_MAX_ROWS:
            raise SampleArgumentError(f"{self.file_name}: .xls holds at most {XLS_MAX_ROWS} rows per sheet")
        for c, cell in cells.items():
            if cell is None:
                continue
            if cell[0] == "d":
                self.ws.write(row, c, cell[1], self.styles[cell[2]])
            else:
                self.ws.write(row, c, cell[1])

    def _put_title(self, row: int, text: str) -> None:
        self.ws.write_merge(row, row, 0, len(self.keys) - 1, text, self.styles["title"])

    def _put_header(self, row: int, vertical: bool) -> None:
        for c, h in enumerate(self.headers):
            self.ws.write(row, c, h, self.styles["header"])


# --------------------------------------------------------------------------- CSV
class CsvBook:
    """A CSV file as Excel saves one: GB18030, CRLF, every row as wide as the header."""

    def __init__(self, s: Sample, path: Path) -> None:
        self.s, self.path = s, path
        self.tmp = path.with_name(f".{path.name}.part")
        self.file: IO[str] = self.tmp.open("w", encoding=CSV_ENCODING, newline="")
        self.writer = csv.writer(self.file, lineterminator="\r\n")

    def add_sheet(self, kind: str, keys: list[str], headers: list[str]) -> CsvSheet:
        """The file's only "sheet", named like the file without its extension (docs/CONTRACT.md)."""
        return CsvSheet(self, kind, keys, headers)

    def close(self) -> Path:
        self.file.close()
        os.replace(self.tmp, self.path)
        return self.path


class CsvSheet(Sheet):
    typed = False

    def __init__(self, book: CsvBook, kind: str, keys: list[str], headers: list[str]) -> None:
        super().__init__(book.s, book.path.name, book.path.stem, kind, keys, headers)
        self.writer = book.writer

    def _put_row(self, row: int, cells: dict[int, Cell]) -> None:
        values = [""] * len(self.keys)
        for c, cell in cells.items():
            if cell is not None:
                values[c] = text_date(cell[1], "iso") if cell[0] == "d" else str(cell[1])
        self.writer.writerow(values)


# --------------------------------------------------------------------------- fixed layouts
@dataclass(frozen=True)
class Layout:
    name: str
    kind: str  # roster / payments / subsidy_list (the header map it is read with)
    keys: list[str]
    headers: list[str]
    groups: dict[int, str]  # column -> group header above it
    spec: dict[str, Any]  # the rest of its table: file, department, labels, title, ...


def fixed_layout(s: Sample, name: str) -> Layout:
    """A layout of layouts.toml (`lists.<department>` for a list), checked against schemas/headers.toml."""
    data = read_toml("layouts.toml")
    spec = data["lists"][name.split(".", 1)[1]] if name.startswith("lists.") else data[name]
    columns = spec["columns"]
    out = Layout(
        name,
        spec["kind"],
        [c["key"] for c in columns],
        [c["header"] for c in columns],
        {i: c["group"] for i, c in enumerate(columns) if "group" in c},
        spec,
    )
    _check(s, out)
    return out


def fixed_style(s: Sample, layout: Layout) -> dict[str, Any]:
    """A fixed-layout sheet's habits, from its layouts.toml table."""
    r, spec = s.rrng, layout.spec
    forms = spec.get("date_forms", ["excel_iso"])
    usual = r.choice(forms) if s.messy and r.random() < 0.3 else forms[0]
    return {
        "date": {k: usual for k in layout.keys},
        "date_choices": tuple(forms),
        "amount": spec.get("amount", "number"),
        "yes_no": "是否",
        "coverage": r.choice(spec.get("coverage_forms", ["text"])),
        "period": r.choice(spec.get("period_forms", ["dates"])),
        "id_type_codes": spec.get("id_type_codes", {}),
    }


def _normalise(text: str) -> str:
    """A header cell as docs/CONTRACT.md compares it: NFKC, no whitespace, no leading or trailing '*'."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).strip("*")


def _check(s: Sample, layout: Layout) -> None:
    """Every header reads as its field; an extra column reads as none, as one held further left, or as
    an optional field the layout does not hold otherwise (联系电话, the roster's phone since it became a
    field: the sample keeps writing it where it always did, so its bytes stay the same)."""
    header_map = s.header_maps[layout.kind]
    aliases = header_map.alias_to_field()
    held: set[str] = set()
    for i, (key, header) in enumerate(zip(layout.keys, layout.headers)):
        text = _normalise(layout.groups.get(i, "") + header)
        field = aliases.get(text) or aliases.get(re.sub(r"\([^()]*\)$", "", text))
        if key == SEQ:
            ok = text in header_map.ignore
        elif key.startswith("extra:"):
            optional = field is not None and not header_map.field(field).required and field not in layout.keys
            ok = field is None or field in held or optional
        else:
            ok = field == key
            held.add(key)
        if not ok:
            raise ParamsError(
                f"tools/sample/layouts.toml [{layout.name}]: header '{header}' does not read as "
                f"'{key}' in schemas/headers.toml [{layout.kind}] (it reads as {field!r})"
            )
