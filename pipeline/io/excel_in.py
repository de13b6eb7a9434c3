"""Read the bureau's .xlsx exports: every sheet, as text, with file/sheet/Excel row kept.

calamine (through fastexcel) reads each sheet with every column as text. The
header row is found by its names (schemas/headers.toml); blank rows and
footer rows are counted and dropped here, everything else goes on to
validation with its Excel row number.

Two facts of calamine this module works around:
- the range it returns starts at the first cell holding a value, not at A1,
  so the Excel row of the first returned row is read from the sheet XML;
- a cell's *type* is lost in a text read, but an ID that Excel stored as a
  number has already lost its last digits; reading the ID column a second
  time as Boolean (coerce) leaves exactly the numeric cells non-null.
"""

from __future__ import annotations

import glob
import hashlib
import re
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import iterparse

import fastexcel
import polars as pl

from pipeline.errors import InputFileError
from pipeline.io.preflight import check_file
from pipeline.parse import normalise_columns
from schemas.headers import HeaderMap, normalise_header

# Fields whose digits Excel destroys when the cell is a number (15 significant digits).
TEXT_ONLY_FIELDS = ("id_number", "ticket_no")


def numeric_flag(field_name: str) -> str:
    return f"{field_name}__numeric_cell"


@dataclass
class SheetRead:
    """One sheet of one input file, read and trimmed to its data rows."""

    kind: str
    source_file: str
    sha256: str
    sheet: str
    header_row: int | None = None  # Excel row of the header; None: no header found
    rows_read: int = 0
    skipped_blank: int = 0
    skipped_footer: int = 0
    missing_required: tuple[str, ...] = ()
    note: str = ""
    data: pl.DataFrame | None = None  # canonical fields as text + row_number + flags; typed once checked
    columns_seen: dict[str, str] = field(default_factory=dict)  # field -> header as written
    rejected: pl.DataFrame | None = None  # rejected_rows lines, once checked (pipeline/validate.py)
    today_from: str | None = None  # ISO dates: the checks hold for "today" in [today_from, today_until)
    today_until: str | None = None
    read_seconds: float | None = None  # measured in the parser child: reading, then the row checks
    check_seconds: float | None = None
    reused: bool = False  # rows and checks taken from the cache (the sheet's parts were read before)
    # read lazily (a night run in partitions): data and rejected stay in these Arrow IPC files
    data_path: str | None = None
    rejected_path: str | None = None
    # the sheet's row checkpoints (`row_checkpoints`), header and parts digest, kept in its cache
    # entry so that a later version of the sheet can reuse the rows it shares with this one
    prefix: dict | None = None
    # the Excel row through which the checked rows came from the cache entry of a previous version
    # of this sheet (identical up to that row); 0: none
    reused_through: int = 0

    @property
    def rows_reused(self) -> int:
        """Body rows whose checks came from a previous version of the sheet (`reused_through`)."""
        return self.reused_through - self.header_row if self.reused_through and self.header_row else 0


def expand_inputs(specs: list[str]) -> list[Path]:
    """Files, directories (their *.xlsx) and globs -> sorted unique paths."""
    paths: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if any(ch in spec for ch in "*?["):
            matched = sorted(Path(m) for m in glob.glob(spec, recursive=True))
            if not matched:
                raise InputFileError(f"没有文件匹配 / no file matches: {spec}")
            paths.extend(m for m in matched if m.is_file())
        elif p.is_dir():
            found = sorted(x for x in p.rglob("*.xlsx") if not x.name.startswith(("~$", ".")))
            if not found:
                raise InputFileError(f"目录中没有 .xlsx 文件 / no .xlsx file in directory: {spec}")
            paths.extend(found)
        elif p.exists():
            paths.append(p)
        else:
            raise InputFileError(f"找不到输入文件 / input file not found: {spec}")
    unique: dict[str, Path] = {}
    for p in paths:
        unique.setdefault(str(p.resolve()), p)
    return list(unique.values())


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def sheet_members(path: Path) -> dict[str, str | None]:
    """Sheet name -> its XML part in the zip (None when the workbook points nowhere), in order."""
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        rels: dict[str, str] = {}
        rels_path = "xl/_rels/workbook.xml.rels"
        if rels_path in names:
            with z.open(rels_path) as f:
                for _, el in iterparse(f):
                    if _local(el.tag) == "Relationship":
                        target = el.get("Target", "")
                        target = target.lstrip("/")
                        if not target.startswith("xl/"):
                            target = "xl/" + target
                        rels[el.get("Id", "")] = target
        out: dict[str, str | None] = {}
        with z.open("xl/workbook.xml") as f:
            for _, el in iterparse(f):
                if _local(el.tag) == "sheet":
                    rid = next((v for k, v in el.attrib.items() if _local(k) == "id"), "")
                    target = rels.get(rid, "")
                    out[el.get("name", "")] = target if target in names else None
    return out


_CELL = re.compile(rb"<c\b([^>]*?)(?:/>|>(.*?)</c>)", re.S)
_VALUE = re.compile(rb"<v>([^<]*)</v>")
_TYPE = re.compile(rb'\bt="([^"]*)"')


# The sheet XML is cut into about this many stretches, each ending at a row's end and at least
# CHECKPOINT_MIN_BYTES long; the running digest at each cut is a checkpoint (`row_checkpoints`).
# A 500,000-row sheet (about 260 MB of XML) then has a checkpoint every 1 MB, about 2,000 rows.
CHECKPOINTS_PER_SHEET = 256
CHECKPOINT_MIN_BYTES = 1024
_ROW_R = re.compile(rb'<row\b[^>]*?\sr="(\d+)"')


@dataclass(frozen=True)
class PrefixHint:
    """A previous version of a sheet, as its cache entry describes it: rows whose XML is the same
    bytes up to one of its checkpoints, under the same header and the same other parts of the file,
    give the same checked rows, so they are taken from that entry instead of being checked again.

    `checkpoints`: (Excel row, bytes from `<sheetData`, digest of those bytes, blank body rows and
    footer rows up to that Excel row), in order."""

    entry: str
    data_file: str
    rejected_file: str
    first_row: int
    header_row: int
    header_cells: tuple
    common: str
    checkpoints: tuple
    today_from: str | None = None
    today_until: str | None = None


@dataclass(frozen=True)
class PrefixRequest:
    """What the reader of one sheet needs to record its checkpoints (`common`: the digest of the
    file's parts other than the sheets, isolate.parts_digests) and, with `hint`, to reuse rows."""

    common: str
    hint: PrefixHint | None = None


def row_checkpoints(xml: bytes, known: tuple = ()) -> tuple[list[list], int]:
    """The sheet's checkpoints and how many of `known` (a previous version's) it shares.

    From `<sheetData`, a running sha256 is taken at the end of a row about every 1/256 of the XML;
    each checkpoint is [Excel row, byte offset, digest, None, None] (the reader fills in the
    counts). The known checkpoints are tried first, in order: one whose bytes hash the same is
    shared (every byte before it is the same). Rows without an `r` attribute end the list (their
    numbering is not written in the XML)."""
    start = xml.find(b"<sheetData")
    if start < 0:
        return [], 0
    step = max(CHECKPOINT_MIN_BYTES, (len(xml) - start) // CHECKPOINTS_PER_SHEET)
    view = memoryview(xml)
    digest = hashlib.sha256()
    pos, out = start, []
    for cp in known:
        end = start + cp[1]
        if end > len(xml):
            break
        trial = digest.copy()
        trial.update(view[pos:end])
        if trial.hexdigest()[:32] != cp[2]:
            break
        digest, pos = trial, end
        out.append(list(cp))
    shared = len(out)
    while True:
        close = xml.find(b"</row>", pos + step)
        if close < 0:
            break
        end = close + len(b"</row>")
        row_start = xml.rfind(b"<row", pos, close)
        m = _ROW_R.match(xml, row_start) if row_start >= 0 else None
        if m is None:
            break
        digest.update(view[pos:end])
        pos = end
        out.append([int(m.group(1)), end - start, digest.hexdigest()[:32], None, None])
    return out, shared


class SheetXml:
    """A sheet's XML, inflated in a thread started before calamine parses the sheet: calamine and
    zlib both release the GIL, so on a core left idle (a night with one sheet to parse) the number-
    cell check's inflate costs no wall time. With `prefix`, the same thread then takes the sheet's
    row checkpoints (hashlib releases the GIL too)."""

    def __init__(self, path: Path, member: str, prefix: PrefixRequest | None = None) -> None:
        self._xml: bytes | None = None
        self._error: BaseException | None = None
        self._checkpoints: tuple[list[list], int] = ([], 0)
        self._thread = threading.Thread(target=self._inflate, args=(path, member, prefix), daemon=True)
        self._thread.start()

    def _inflate(self, path: Path, member: str, prefix: PrefixRequest | None) -> None:
        try:
            with zipfile.ZipFile(path) as z:
                self._xml = z.read(member)
            if prefix is not None:
                known = prefix.hint.checkpoints if prefix.hint is not None else ()
                self._checkpoints = row_checkpoints(self._xml, known)
        except BaseException as e:  # handed to the reader's thread by get()
            self._error = e

    def get(self) -> bytes:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._xml is not None
        return self._xml

    def checkpoints(self) -> tuple[list[list], int]:
        self.get()
        return self._checkpoints


def numeric_cells(path: Path, member: str, candidates: dict[int, set[float]],
                  sheet_xml: SheetXml | None = None) -> set[int] | None:
    """Of the candidate Excel rows, those holding a *number* cell with one of the given values.

    A candidate is a row whose ID (or ticket) text is exactly what a number cell
    renders as; only the sheet XML can tell whether Excel stored a number
    there (its digits already lost) or text. One forward scan over the sheet's
    XML in C (bytes.find), a regex on each candidate row only. Returns None
    when the XML is not laid out as expected (rows without r=), so the caller
    falls back to a full cell-type read.
    """
    if sheet_xml is not None:
        xml = sheet_xml.get()
    else:
        with zipfile.ZipFile(path) as z:
            xml = z.read(member)
    found: set[int] = set()
    pos = 0
    for row in sorted(candidates):
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
                if v and float(v.group(1)) in candidates[row]:
                    found.add(row)
                    break
            except ValueError:
                continue
        pos = end
    return found


def _first_value_row(z: zipfile.ZipFile, member: str) -> int | None:
    with z.open(member) as f:
        row_no = 0
        for event, el in iterparse(f, events=("start", "end")):
            tag = _local(el.tag)
            if event == "start" and tag == "row":
                row_no = int(el.get("r", row_no + 1))
            elif event == "start" and tag == "c":
                ref = el.get("r")
                if ref:
                    m = re.match(r"[A-Z]+(\d+)", ref)
                    if m:
                        row_no = int(m.group(1))
            elif event == "end" and tag in ("v", "is"):
                return row_no
            elif event == "end" and tag == "sheetData":
                return None
    return None


def _find_header(head: pl.DataFrame, header_map: HeaderMap) -> int | None:
    """Index of the first row (in the first N rows) holding enough known header names."""
    aliases = header_map.alias_to_field()
    for i, row in enumerate(zip(*head.get_columns())):  # the first header_scan_rows rows only
        hits = {aliases[h] for cell in row if cell is not None and (h := normalise_header(cell)) in aliases}
        if len(hits) >= header_map.min_header_matches:
            return i
    return None


def _column_plan(header_cells: list[str | None], header_map: HeaderMap) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Raw column -> field, raw column -> extra name, field -> header as written."""
    aliases = header_map.alias_to_field()
    to_field: dict[str, str] = {}
    extras: dict[str, str] = {}
    seen: dict[str, str] = {}
    for idx, cell in enumerate(header_cells):
        col = f"__c{idx}"
        if cell is None or not str(cell).strip():
            extras[col] = f"第{idx + 1}列"
            continue
        norm = normalise_header(cell)
        name = aliases.get(norm)
        if name is not None and name not in seen:
            to_field[col] = name
            seen[name] = str(cell).strip()
        elif norm in header_map.ignore:
            continue
        else:
            label = str(cell).strip()
            while label in extras.values():
                label += "_"
            extras[col] = label
    return to_field, extras, seen


_MAX_CANDIDATE_SHARE = 0.10


def _flag_number_cells(body: pl.DataFrame, text_cols: dict[str, str], reader: fastexcel.ExcelReader,
                       idx: int, header_idx: int, result: SheetRead, path: Path | None,
                       member: str | None, sheet_xml: SheetXml | None = None) -> pl.DataFrame:
    """Adds a Boolean column per text-only field: True where Excel stored that cell as a number."""
    raw_rows = result.header_row + 1
    exact = {
        flag: (pl.col(col).cast(pl.Float64, strict=False).cast(pl.Int128, strict=False)
               == pl.col(col).str.to_integer(dtype=pl.Int128, strict=False)).fill_null(False)
        for flag, col in text_cols.items()
    }
    cand = body.select(
        "__pos", *[pl.col(c).alias(f"__v_{flag}") for flag, c in text_cols.items()],
        *[e.alias(f"__cand_{flag}") for flag, e in exact.items()],
    ).filter(pl.any_horizontal(pl.col(f"__cand_{flag}") for flag in text_cols))
    if cand.height == 0:
        return body.with_columns(pl.lit(False).alias(flag) for flag in text_cols)
    found = None
    if path is not None and member is not None and cand.height <= _MAX_CANDIDATE_SHARE * body.height:
        # a dict of the few candidate rows (a few per cent at most), for the XML scan
        wanted: dict[int, set[float]] = {pos + raw_rows: set() for pos in cand["__pos"].to_list()}
        for flag in text_cols:
            hit = cand.filter(pl.col(f"__cand_{flag}"))
            positions = hit["__pos"].to_list()
            values = hit[f"__v_{flag}"].cast(pl.Float64).to_list()
            for pos, value in zip(positions, values):
                wanted[pos + raw_rows].add(value)
        found = numeric_cells(path, member, wanted, sheet_xml)
    if found is not None:
        hits = pl.DataFrame({"__pos": [r - raw_rows for r in sorted(found)]}, schema={"__pos": pl.UInt32})
        marked = cand.join(hits, on="__pos", how="semi")
        return body.with_columns(
            (pl.col("__pos").is_in(marked.filter(pl.col(f"__cand_{flag}"))["__pos"].implode()))
            .alias(flag) for flag in text_cols
        )
    indexes = {flag: int(col[3:]) for flag, col in text_cols.items()}
    columns = sorted(set(indexes.values()))
    typed = reader.load_sheet(idx, header_row=None, use_columns=columns,
                              dtypes={i: "boolean" for i in columns}).to_polars()
    by_index = dict(zip(columns, typed.columns))
    cells = typed.slice(header_idx + 1).select(
        pl.int_range(0, pl.len(), dtype=pl.UInt32).alias("__pos"),
        *[pl.col(by_index[i]).is_not_null().alias(flag) for flag, i in indexes.items()],
    )
    return body.join(cells, on="__pos", how="left", maintain_order="left")


def _reused_through(prefix: PrefixRequest | None, checkpoints: list[list], shared: int, first_row: int,
                    header_row: int, header_cells: list) -> int:
    """The Excel row through which this sheet's rows can be taken from its previous version's cache
    entry (0: none): the XML is the same bytes up to that row (a shared checkpoint), and so are the
    other parts of the file, the first row and the header (its row and every cell, so the columns
    line up the same)."""
    hint = prefix.hint if prefix is not None else None
    if hint is None or not shared or hint.common != prefix.common or hint.first_row != first_row \
            or hint.header_row != header_row or list(hint.header_cells) != header_cells:
        return 0
    through = checkpoints[shared - 1][0]
    return through if through > header_row else 0


def _count_checkpoints(checkpoints: list[list], marks: pl.DataFrame, header_row: int, base: tuple[int, int],
                       keep: int) -> list[list]:
    """Fills in each checkpoint's blank and footer body rows up to its Excel row: `base` plus those
    of `marks` (__pos, __blank, __footer of the rows read), the first `keep` left as they are."""
    todo = checkpoints[keep:]
    if todo:
        limits = pl.Series([cp[0] - header_row - 1 for cp in todo], dtype=pl.Int64)
        upto = marks["__pos"].cast(pl.Int64).search_sorted(limits, side="right")
        for flag, i in (("__blank", 3), ("__footer", 4)):
            cum = pl.concat([pl.Series([0], dtype=pl.Int64), marks[flag].cast(pl.Int64).cum_sum()])
            for cp, n in zip(todo, cum.gather(upto).to_list()):
                cp[i] = base[i - 3] + n
    return checkpoints


def read_sheet(
    reader: fastexcel.ExcelReader, idx: int, sheet: str, first_row: int | None,
    header_map: HeaderMap, source_file: str, sha256: str, coverage_year: int,
    path: Path | None = None, member: str | None = None, sheet_xml: SheetXml | None = None,
    prefix: PrefixRequest | None = None,
) -> SheetRead:
    """One sheet, read and trimmed. With `prefix` the sheet's row checkpoints are recorded
    (`SheetRead.prefix`), and with its hint the body rows shared with the previous version are left
    out of `data` (`reused_through`): the caller takes them from that version's cache entry."""
    result = SheetRead(kind=header_map.kind, source_file=source_file, sha256=sha256, sheet=sheet)
    raw = reader.load_sheet(idx, header_row=None, dtypes="string").to_polars()
    if raw.height == 0 or first_row is None:
        result.note = "空工作表 / empty sheet"
        return result
    raw = raw.rename({c: f"__c{i}" for i, c in enumerate(raw.columns)})
    header_idx = _find_header(raw.head(header_map.header_scan_rows), header_map)
    if header_idx is None:
        result.note = (
            f"未找到{header_map.title}表头，整张工作表未读取 / no {header_map.kind} header row, sheet not read"
        )
        return result
    result.header_row = first_row + header_idx
    header_cells = list(raw.row(header_idx))
    to_field, extras, seen = _column_plan(header_cells, header_map)
    result.columns_seen = seen
    result.missing_required = tuple(
        f.name for f in header_map.fields if f.is_required(coverage_year) and f.name not in seen
    )

    body = raw.slice(header_idx + 1).with_row_index("__pos")
    result.rows_read = body.height
    checkpoints, shared = sheet_xml.checkpoints() if prefix is not None and sheet_xml is not None else ([], 0)
    through = _reused_through(prefix, checkpoints, shared, first_row, result.header_row, header_cells)
    base = (0, 0)
    if through:
        base = (checkpoints[shared - 1][3], checkpoints[shared - 1][4])
        result.reused_through = through
        body = body.slice(result.rows_reused)
    text_cols = [c for c in raw.columns]
    body = normalise_columns(body, text_cols)

    blank = pl.all_horizontal(pl.col(c).is_null() for c in text_cols)
    prefixes = "|".join(re.escape(p) for p in header_map.footer_prefixes)
    first_cell = pl.coalesce(*[pl.col(c) for c in text_cols])
    aliases = set(header_map.alias_to_field())
    repeated_header = pl.sum_horizontal(
        pl.col(c).str.replace_all(r"\s+", "").is_in(list(aliases)).fill_null(False).cast(pl.Int32)
        for c in text_cols
    ) >= header_map.min_header_matches
    footer = (first_cell.str.contains(f"^(?:{prefixes})").fill_null(False) | repeated_header) & ~blank
    body = body.with_columns(__blank=blank, __footer=footer)
    counts = body.select(pl.col("__blank").sum(), pl.col("__footer").sum()).row(0)
    result.skipped_blank, result.skipped_footer = base[0] + int(counts[0]), base[1] + int(counts[1])
    if prefix is not None:
        marks = body.select("__pos", "__blank", "__footer")
        result.prefix = {
            "first_row": first_row, "header_row": result.header_row, "header_cells": header_cells,
            "common": prefix.common,
            "checkpoints": _count_checkpoints(checkpoints, marks, result.header_row, base, shared if through else 0),
        }
    body = body.filter(~pl.col("__blank") & ~pl.col("__footer"))

    # Cell types of the text-only columns (ID, ticket number): a number cell has already lost
    # digits. Only rows whose text is exactly what a number renders as can be one; the sheet XML
    # settles those few. Where that is not possible, one more calamine pass reads the columns as
    # Boolean (only number cells come back non-null).
    flags = [numeric_flag(f) for f in TEXT_ONLY_FIELDS if f in {fl.name for fl in header_map.fields}]
    text_cols = {numeric_flag(f): c for c, f in to_field.items() if f in TEXT_ONLY_FIELDS}
    if text_cols and body.height:
        body = _flag_number_cells(body, text_cols, reader, idx, header_idx, result, path, member, sheet_xml)
        body = body.with_columns(pl.lit(False).alias(f) for f in flags if f not in text_cols)
    else:  # no data row under the header (or no such column): nothing was stored as a number
        body = body.with_columns(pl.lit(False).alias(f) for f in flags)

    selects = [
        pl.lit(source_file).alias("source_file"),
        pl.lit(sheet).alias("sheet"),
        (pl.col("__pos").cast(pl.Int32) + (result.header_row + 1)).alias("row_number"),
        *[pl.col(flag).fill_null(False) for flag in flags],
    ]
    for f in header_map.fields:
        col = next((c for c, name in to_field.items() if name == f.name), None)
        selects.append((pl.col(col) if col else pl.lit(None, dtype=pl.Utf8)).alias(f.name))
    if extras:
        selects.append(
            pl.struct([pl.col(c).alias(name) for c, name in extras.items()]).struct.json_encode().alias("extra_columns")
        )
    else:
        selects.append(pl.lit(None, dtype=pl.Utf8).alias("extra_columns"))
    result.data = body.select(selects)
    return result


def empty_read(header_map: HeaderMap) -> pl.DataFrame:
    """The columns `read_sheet` returns, with no rows (a kind with no sheet left to read)."""
    flags = [numeric_flag(f.name) for f in header_map.fields if f.name in TEXT_ONLY_FIELDS]
    schema = {"source_file": pl.Utf8, "sheet": pl.Utf8, "row_number": pl.Int32,
              **{f: pl.Boolean for f in flags}, **{f.name: pl.Utf8 for f in header_map.fields},
              "extra_columns": pl.Utf8}
    return pl.DataFrame(schema=schema)


_DIMENSION = re.compile(rb'<dimension\s+ref="[A-Z]+\d+:?[A-Z]*(\d*)"')


def estimated_rows(path: Path) -> int:
    """About how many rows the workbook's sheets hold, from each sheet's <dimension> (the first bytes
    of its XML); a sheet without one counts its stored size / 60 bytes. Only a planning figure (how
    many partitions a night runs in), never a count of rows."""
    total = 0
    with zipfile.ZipFile(path) as z:
        for member in filter(None, sheet_members(path).values()):
            with z.open(member) as f:
                m = _DIMENSION.search(f.read(4096))
            total += int(m.group(1)) if m and m.group(1) else z.getinfo(member).compress_size // 60
    return total


def sheet_names(path: Path) -> list[str]:
    """The workbook's sheets in order, read from xl/workbook.xml (no native parser involved)."""
    return list(sheet_members(path))


def read_workbook(path: Path, header_map: HeaderMap, coverage_year: int, sha256: str | None = None,
                  only_sheet: int | None = None, checked: bool = False,
                  prefix: PrefixRequest | None = None) -> list[SheetRead]:
    """Every sheet of one workbook (or only sheet `only_sheet`); refuses a workbook where no sheet has a header.

    `checked`: the caller already ran the preflight (pipeline/io/preflight.py) on this file.
    `prefix`: for `only_sheet`, see `read_sheet`.
    """
    if not checked:
        check_file(path)
    sha = sha256 or sha256_of(path)
    try:
        members = sheet_members(path)
        reader = fastexcel.read_excel(str(path))
        sheets = []
        with zipfile.ZipFile(path) as z:
            for i, name in enumerate(reader.sheet_names):
                if only_sheet is not None and i != only_sheet:
                    continue
                member = members.get(name)
                first_row = _first_value_row(z, member) if member else None
                sheet_xml = SheetXml(path, member, prefix) if member else None
                sheets.append(read_sheet(reader, i, name, first_row, header_map, str(path), sha, coverage_year,
                                         path, member, sheet_xml, prefix))
                del sheet_xml
    except InputFileError:
        raise
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, SyntaxError) as e:
        raise InputFileError(f"无法读取工作簿 / cannot read workbook: {path} ({type(e).__name__})") from None
    except Exception as e:  # fastexcel raises its own error types for damaged workbooks
        if type(e).__module__.startswith("fastexcel") or "Calamine" in type(e).__name__:
            raise InputFileError(f"无法读取工作簿 / cannot read workbook: {path} ({type(e).__name__})") from None
        raise
    if only_sheet is None:
        require_a_header(path, header_map, sheets)
    return sheets


def require_a_header(path: Path, header_map: HeaderMap, sheets: list[SheetRead]) -> None:
    if not any(s.header_row is not None for s in sheets):
        raise InputFileError(
            f"工作簿中没有找到{header_map.title}的表头行 / no {header_map.kind} header row in any sheet: {path}"
        )
