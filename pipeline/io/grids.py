"""Every input format as grids of text cells that keep the row numbers a person sees.

A `Grid` is one sheet: every cell as text (`__c0`, `__c1`, ...; an empty cell
is null), the row number of its first row as the file's viewer shows it, and
a way to ask which cells of a column are stored as numbers (an ID that Excel
stored as a number has already lost its last digits: docs/RULES.md §6).

- `.xlsx` / `.xlsm`, `.xls`, `.xlsb`, `.ods`: calamine (fastexcel) reads the
  cells from row 1 (`skip_rows=0`: its range would otherwise start at the
  first row holding a value). Number cells come from a second, typed read of
  the column (only number cells survive a Boolean read); in an .xlsx the few
  candidate rows are looked up in the sheet XML instead.
- delimited text (`.csv`, `.txt`): polars reads the records; the row number is
  the record number counting from the first. Text has no cell types.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import iterparse

import fastexcel
import polars as pl

from pipeline.errors import InputFileError

TEXT_FORMAT = "csv"


@dataclass
class Grid:
    """One sheet's cells as text; `first_row` is the row number of `cells`' first row (0: empty)."""

    sheet: str
    cells: pl.DataFrame
    first_row: int
    source: SheetSource

    def number_cells(self, column: int, rows: pl.Series, values: pl.Series) -> pl.Series | None:
        """Of the grid rows `rows` (whose text in `column` reads as the number in `values`), those
        where the cell is stored as a number; None: the format has no cell types (delimited text)."""
        return self.source.number_cells(self, column, rows, values)


class SheetSource:
    """How a grid's cell types are found (one subclass per family of formats)."""

    def number_cells(self, grid: Grid, column: int, rows: pl.Series, values: pl.Series) -> pl.Series | None:
        raise NotImplementedError


@dataclass
class _TypedRead(SheetSource):
    """A second calamine read of the column as Boolean: only number cells come back non-null."""

    reader: fastexcel.ExcelReader
    index: int

    def number_cells(self, grid: Grid, column: int, rows: pl.Series, values: pl.Series) -> pl.Series:
        name = f"__UNNAMED__{column}"  # calamine's name of the column (indexes count from the first used one)
        typed = self.reader.load_sheet(
            self.index, header_row=None, skip_rows=0, use_columns=[name], dtypes={name: "boolean"}
        ).to_polars()
        is_number = typed.to_series(0).is_not_null()
        return rows.filter(is_number.gather(rows))


_CELL = re.compile(rb"<c\b([^>]*?)(?:/>|>(.*?)</c>)", re.S)
_VALUE = re.compile(rb"<v>([^<]*)</v>")
_TYPE = re.compile(rb'\bt="([^"]*)"')
# More candidates than this share of the rows: the typed read is cheaper than the XML scan.
_MAX_CANDIDATE_SHARE = 0.10


@dataclass
class _XlsxSource(_TypedRead):
    """xlsx: the candidate rows looked up in the sheet XML (one forward scan), else the typed read.
    The XML is inflated in a thread started with the sheet, beside calamine's parse (zlib and
    calamine both release the GIL): on a parser's own core it costs little wall time."""

    xml: Future[bytes] | None = None

    def number_cells(self, grid: Grid, column: int, rows: pl.Series, values: pl.Series) -> pl.Series:
        if self.xml is None or len(rows) > _MAX_CANDIDATE_SHARE * grid.cells.height:
            return super().number_cells(grid, column, rows, values)
        xml = self.xml.result()
        # a few per cent of the rows at most: a dict for the scan
        wanted = dict(zip((rows + grid.first_row).to_list(), values.to_list()))
        found = _numbers_in_xml(xml, wanted)
        if found is None:
            return super().number_cells(grid, column, rows, values)
        return pl.Series(rows.name, sorted(found), dtype=rows.dtype) - grid.first_row


def _numbers_in_xml(xml: bytes, wanted: dict[int, float]) -> set[int] | None:
    """Of the wanted Excel rows, those holding a number cell with the wanted value. None when the XML
    does not number its rows (then the typed read decides)."""
    found: set[int] = set()
    pos = 0
    for row in sorted(wanted):
        start = xml.find(b'<row r="%d"' % row, pos)
        if start < 0:
            return None
        end = xml.find(b"</row>", start)
        end = len(xml) if end < 0 else end
        for m in _CELL.finditer(xml, start, end):
            t = _TYPE.search(m.group(1))
            if t and t.group(1) not in (b"n", b""):
                continue
            v = _VALUE.search(m.group(2) or b"")
            try:
                if v and float(v.group(1)) == wanted[row]:
                    found.add(row)
                    break
            except ValueError:
                continue
        pos = end
    return found


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def sheet_members(path: Path) -> dict[str, str | None]:
    """xlsx: sheet name -> its XML part in the zip (None when the workbook points nowhere), in order."""
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        rels: dict[str, str] = {}
        rels_path = "xl/_rels/workbook.xml.rels"
        if rels_path in names:
            with z.open(rels_path) as f:
                for _, el in iterparse(f):
                    if _local(el.tag) == "Relationship":
                        target = el.get("Target", "").lstrip("/")
                        rels[el.get("Id", "")] = target if target.startswith("xl/") else "xl/" + target
        out: dict[str, str | None] = {}
        with z.open("xl/workbook.xml") as f:
            for _, el in iterparse(f):
                if _local(el.tag) == "sheet":
                    rid = next((v for k, v in el.attrib.items() if _local(k) == "id"), "")
                    target = rels.get(rid, "")
                    out[el.get("name", "")] = target if target in names else None
    return out


def _text_frame(reader: fastexcel.ExcelReader, index: int) -> pl.DataFrame:
    """Every cell as text, from row 1 (empty leading rows kept, so row numbers are the file's own)."""
    raw = reader.load_sheet(index, header_row=None, skip_rows=0, dtypes="string").to_polars()
    return raw.rename({c: f"__c{i}" for i, c in enumerate(raw.columns)})


_SUFFIX = {"xlsx": ".xlsx", "xls": ".xls", "xlsb": ".xlsb", "ods": ".ods"}


@contextmanager
def as_named(path: Path, fmt: str) -> Iterator[Path]:
    """The file under a name whose suffix says its format (calamine picks its reader by the suffix; the
    preflight tells the format by content): the path itself, or a link to it in a temporary folder."""
    if path.suffix.lower() == _SUFFIX[fmt] or (fmt == "xlsx" and path.suffix.lower() == ".xlsm"):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=".medins-link-") as folder:
        link = Path(folder) / f"input{_SUFFIX[fmt]}"
        link.symlink_to(path.resolve())
        yield link


def read_grids(path: Path, fmt: str, only_sheet: int | None = None) -> Iterator[Grid]:
    """The grids of a file (or of sheet `only_sheet` only), in order."""
    if fmt == TEXT_FORMAT:
        yield read_text_grid(path)
        return
    with as_named(path, fmt) as named, ThreadPoolExecutor(max_workers=1) as inflating:
        reader = fastexcel.read_excel(str(named))
        members = sheet_members(path) if fmt == "xlsx" else {}
        for i, name in enumerate(reader.sheet_names):
            if only_sheet is not None and i != only_sheet:
                continue
            member = members.get(name)
            source: SheetSource = (
                _XlsxSource(reader, i, xml=inflating.submit(_inflate, path, member) if member else None)
                if fmt == "xlsx"
                else _TypedRead(reader, i)
            )
            cells = _text_frame(reader, i)
            yield Grid(sheet=name, cells=cells, first_row=1 if cells.height else 0, source=source)


def _inflate(path: Path, member: str) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(member)


# --- delimited text ---------------------------------------------------------------

_SEPARATORS = (",", "\t", ";")


def utf8_text(data: bytes) -> bytes:
    """The file's text as UTF-8 bytes: UTF-8 (with or without BOM) as it is, else GB18030 (what
    Chinese Excel and WPS write; a superset of GBK) re-encoded."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030").encode("utf-8")
    except UnicodeDecodeError:
        raise InputFileError(
            "文本文件的编码无法识别（不是UTF-8也不是GB18030/GBK），请另存为UTF-8或Excel工作簿"
            " / text file is neither UTF-8 nor GB18030/GBK: save it as UTF-8 CSV or .xlsx"
        ) from None


def _separator(data: bytes) -> str:
    """The separator most lines of the first 50 use most (title lines have none)."""
    lines = [line for line in data.split(b"\n", 50)[:50] if line.strip()]
    return max(_SEPARATORS, key=lambda sep: sum(line.count(sep.encode()) for line in lines))


class _NoTypes(SheetSource):
    def number_cells(self, grid: Grid, column: int, rows: pl.Series, values: pl.Series) -> None:
        return None


def read_text_grid(path: Path) -> Grid:
    """A delimited text file as one grid: every record a row (title, blank and header lines too)."""
    data = utf8_text(path.read_bytes())
    sep = _separator(data)
    # the widest line bounds the number of fields (a quoted separator only adds an empty column)
    most = (
        pl.Series([data], dtype=pl.Binary)
        .cast(pl.Utf8)
        .str.split("\n")
        .explode()
        .str.count_matches(sep, literal=True)
        .max()
    )
    width = (most if isinstance(most, int) else 0) + 1
    cells = pl.read_csv(
        io.BytesIO(data),
        has_header=False,
        separator=sep,
        infer_schema=False,
        schema={f"__c{i}": pl.Utf8 for i in range(width)},
        missing_columns="insert",
        truncate_ragged_lines=True,
        quote_char='"',
    )
    used = [c for c, n in zip(cells.columns, cells.null_count().row(0)) if n < cells.height]
    cells = cells.select(cells.columns[: cells.columns.index(used[-1]) + 1] if used else [])
    return Grid(sheet=path.stem, cells=cells, first_row=1 if cells.height else 0, source=_NoTypes())
