"""Read one input file's sheets into rows: header found, blank and footer rows counted, row numbers kept.

Any format of `pipeline.io.grids` (xlsx, xls, xlsb, ods, delimited text).
The header row is found by its names (schemas/headers.toml, docs/CONTRACT.md
"Inputs"); a second header row under merged group cells (费款所属期 over 起 |
止) is joined to it; blank rows and footer rows (合计, 制表人, a repeated
header) are counted and dropped; every other row goes on to validation with
the row number a person sees when opening the file.
"""

from __future__ import annotations

import glob
import hashlib
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import fastexcel
import polars as pl

from pipeline.errors import InputFileError
from pipeline.io.grids import Grid, read_grids
from pipeline.io.machine import kind_of
from pipeline.io.preflight import check_file
from pipeline.io.rows import Rows
from pipeline.parse import normalise_columns
from schemas.headers import Field, HeaderMap, match_header

# Fields whose digits Excel destroys when the cell is a number (15 significant digits).
TEXT_ONLY_FIELDS = ("id_number", "ticket_no")


def numeric_flag(field_name: str) -> str:
    return f"{field_name}__numeric_cell"


@dataclass
class SheetRead:
    """One sheet of one input file as read: its rows under the header as text, and the counts.

    This is what a parser child returns and what the cache keeps (keyed by the
    sheet's bytes and the reader's version, pipeline/io/cache.py); the checks
    of pipeline/validate.py run on `rows` every night, with the night's
    parameters and data date.
    """

    kind: str
    source_file: str
    sha256: str
    sheet: str
    header_row: int | None = None  # row of the header as the file shows it; None: no header found
    rows_read: int = 0
    skipped_blank: int = 0
    skipped_footer: int = 0
    note: str = ""
    columns_seen: dict[str, str] = field(default_factory=dict)  # field -> header as written
    # row_number, the number-cell flags, every field of the kind as text, extra_columns (JSON); None: no rows
    rows: Rows | None = None
    read_seconds: float | None = None  # measured in the parser child
    reused: bool = False  # taken from the cache (the same sheet bytes read before)
    checks_reused: bool = False  # its checks too (the parent's, pipeline/night.py check_sheets)


SUPPORTED_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods", ".csv", ".txt", ".et")


def _is_input(path: Path) -> bool:
    """Not an office lock file (`~$...`) or a hidden file."""
    return path.is_file() and not path.name.startswith(("~$", "."))


def expand_inputs(specs: list[str]) -> list[Path]:
    """Files, folders (their files, not subfolders) and globs -> paths in order, each file once."""
    paths: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if any(ch in spec for ch in "*?["):
            matched = [m for m in sorted(Path(m) for m in glob.glob(spec)) if _is_input(m)]
            if not matched:
                raise InputFileError(f"没有文件匹配 / no file matches: {spec}")
            paths.extend(matched)
        elif p.is_dir():
            found = sorted(x for x in p.iterdir() if _is_input(x) and x.suffix.lower() in SUPPORTED_SUFFIXES)
            if not found:
                raise InputFileError(f"目录中没有表格文件 / no spreadsheet or CSV file in folder: {spec}")
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


# --- the header ----------------------------------------------------------------------


def _find_header(head: pl.DataFrame, header_map: HeaderMap) -> int | None:
    """Index of the first row (of the first `header_scan_rows`) holding enough known header names."""
    for i, row in enumerate(head.iter_rows()):  # a few dozen rows at most
        hits = {match_header(cell, header_map) for cell in row if cell is not None} - {None}
        if len(hits) >= header_map.min_header_matches:
            return i
    return None


def _groups(header: list[str | None]) -> list[int | None]:
    """Per column, the column of the header cell it sits under when that cell spans several columns
    (a named cell followed by empty ones, as a merged cell reads); None for a one-column header."""
    owner: list[int | None] = [None] * len(header)
    for i, cell in enumerate(header):
        if cell is None:
            continue
        j = i + 1
        while j < len(header) and header[j] is None:
            j += 1
        if j > i + 1:
            owner[i:j] = [i] * (j - i)
    return owner


def _sub_header(header: list[str | None], below: list[str | None], header_map: HeaderMap) -> list[str | None] | None:
    """The header names joined with the row below it, when that row is a sub-header: it has values
    only under header cells spanning several columns or under empty ones, at least one under a
    spanning cell (a merged 费款所属期 over 起 | 止 reads as 费款所属期起, 费款所属期止). A joined name
    that is no alias gives way to the lower name alone when that one is (缴费信息 over 缴费金额)."""
    owner = _groups(header)
    filled = [i for i, v in enumerate(below) if v is not None]
    if (
        not filled
        or any(header[i] is not None and owner[i] is None for i in filled)
        or not any(owner[i] is not None for i in filled)
    ):
        return None
    names: list[str | None] = []
    for i, lower in enumerate(below):
        group = owner[i]
        upper = header[group] if group is not None else header[i]
        if lower is None:
            names.append(header[i])
            continue
        joined = f"{upper or ''}{lower}"
        alone_known = match_header(lower, header_map) is not None
        names.append(lower if match_header(joined, header_map) is None and alone_known else joined)
    return names


def _column_plan(
    header: list[str | None], header_map: HeaderMap
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Column -> field, column -> extra name, field -> header as written. Two columns for one field:
    the one whose alias is listed first wins, the other is an extra column (缴款日期 beats 入库日期)."""
    best: dict[str, tuple[int, str, str]] = {}  # field -> (alias rank, column, header)
    extras: dict[str, str] = {}
    for idx, cell in enumerate(header):
        col = f"__c{idx}"
        if cell is None or not str(cell).strip():
            extras[col] = f"第{idx + 1}列"
            continue
        name = match_header(cell, header_map)
        if name is None:
            if not header_map.is_ignored(cell):
                extras[col] = str(cell).strip()
            continue
        rank = header_map.alias_rank(cell)
        if name in best and best[name][0] <= rank:
            extras[col] = str(cell).strip()
            continue
        if name in best:
            extras[best[name][1]] = best[name][2]
        best[name] = (rank, col, str(cell).strip())
    labels: dict[str, str] = {}
    for col, label in extras.items():  # two unknown columns of one name stay apart
        while label in labels.values():
            label += "_"
        labels[col] = label
    return {c: f for f, (_, c, _) in best.items()}, labels, {f: h for f, (_, _, h) in best.items()}


# --- rows ------------------------------------------------------------------------------


def _marks(body: pl.DataFrame, header_map: HeaderMap, header: list[str | None]) -> pl.DataFrame:
    """Adds __blank and __footer (合计 / 制表人 ... in the first filled cell, or the header repeated:
    a row holding enough of the known header names, or of this sheet's own header cells)."""
    cols = [c for c in body.columns if c.startswith("__c")]
    blank = pl.all_horizontal(pl.col(c).is_null() for c in cols)
    prefixes = "|".join(re.escape(p) for p in header_map.footer_prefixes)
    first_cell = pl.coalesce(*[pl.col(c) for c in cols])
    names = sorted(set(header_map.alias_to_field()) | {str(h).strip() for h in header if h is not None})
    repeated = (
        pl.sum_horizontal(pl.col(c).is_in(names).fill_null(False).cast(pl.Int32) for c in cols)
        >= header_map.min_header_matches
    )
    footer = (first_cell.str.contains(f"^(?:{prefixes})").fill_null(False) | repeated) & ~blank
    return body.with_columns(__blank=blank, __footer=footer)


def _flag_number_cells(body: pl.DataFrame, text_cols: dict[str, str], grid: Grid, offset: int) -> pl.DataFrame:
    """Adds a Boolean column per text-only field: True where the file stores that cell as a number.
    Only rows whose text is exactly what a number renders as can be one; the format settles those."""
    for flag, col in text_cols.items():
        value = pl.col(col)
        exact = (
            value.cast(pl.Float64, strict=False).cast(pl.Int128, strict=False)
            == value.str.to_integer(dtype=pl.Int128, strict=False)
        ).fill_null(False)
        cand = body.filter(exact).select("__pos", value.cast(pl.Float64).alias("v"))
        found = (
            grid.number_cells(int(col[3:]), cand["__pos"].cast(pl.Int64) + offset, cand["v"]) if cand.height else None
        )
        hits = pl.Series([], dtype=pl.Int64) if found is None else found - offset
        body = body.with_columns(pl.col("__pos").cast(pl.Int64).is_in(hits.implode()).alias(flag))
    return body


def _body(grid: Grid, start: int, header: list[str | None], header_map: HeaderMap, result: SheetRead) -> pl.DataFrame:
    """The rows under the header, trimmed, with row_number and the fields (source_file and sheet are
    the SheetRead's: a cached sheet is read again under tonight's file name)."""
    to_field, extras, seen = _column_plan(header, header_map)
    result.columns_seen = seen
    body = grid.cells.slice(start).with_row_index("__pos")
    result.rows_read = body.height
    body = _marks(normalise_columns(body, [c for c in body.columns if c.startswith("__c")]), header_map, header)
    result.skipped_blank, result.skipped_footer = (
        int(n) for n in body.select(pl.col("__blank").sum(), pl.col("__footer").sum()).row(0)
    )
    body = body.filter(~pl.col("__blank") & ~pl.col("__footer"))
    flags = [numeric_flag(f) for f in TEXT_ONLY_FIELDS if header_map.has_field(f)]
    text_cols = {numeric_flag(f): c for c, f in to_field.items() if f in TEXT_ONLY_FIELDS}
    body = _flag_number_cells(body, text_cols, grid, start)
    selects = [
        (pl.col("__pos").cast(pl.Int32) + (grid.first_row + start)).alias("row_number"),
        *[(pl.col(flag) if flag in text_cols else pl.lit(False)).fill_null(False).alias(flag) for flag in flags],
    ]
    for f in header_map.fields:
        col = next((c for c, name in to_field.items() if name == f.name), None)
        selects.append((pl.col(col) if col else pl.lit(None, dtype=pl.Utf8)).alias(f.name))
    extra = (
        pl.struct([pl.col(c).alias(n) for c, n in extras.items()]).struct.json_encode()
        if extras
        else pl.lit(None, dtype=pl.Utf8)
    )
    return body.select(*selects, extra.alias("extra_columns"))


def read_sheet(grid: Grid, header_map: HeaderMap, source_file: str, sha256: str) -> SheetRead:
    """One sheet, read and trimmed (the row numbers are the file's own)."""
    result = SheetRead(kind=header_map.kind, source_file=source_file, sha256=sha256, sheet=grid.sheet)
    if grid.cells.height == 0:
        result.note = "空工作表 / empty sheet"
        return result
    header_idx = _find_header(grid.cells.head(header_map.header_scan_rows), header_map)
    if header_idx is None:
        result.note = (
            f"未找到{header_map.title}表头，整张工作表未读取 / no {header_map.kind} header row, sheet not read"
        )
        return result
    header = list(grid.cells.row(header_idx))
    start = header_idx + 1
    if grid.cells.height > start:
        joined = _sub_header(header, list(grid.cells.row(start)), header_map)
        if joined is not None:
            header, start = joined, start + 1
    result.header_row = grid.first_row + start - 1
    result.rows = Rows(frame=_body(grid, start, header, header_map, result))
    return result


def empty_read(header_map: HeaderMap) -> pl.DataFrame:
    """The columns `read_sheet` returns, with no rows (a kind with no sheet left to read)."""
    flags = [numeric_flag(f.name) for f in header_map.fields if f.name in TEXT_ONLY_FIELDS]
    schema = {
        "row_number": pl.Int32,
        **{f: pl.Boolean for f in flags},
        **{f.name: pl.Utf8 for f in header_map.fields},
        "extra_columns": pl.Utf8,
    }
    return pl.DataFrame(schema=schema)


def read_file(
    path: Path,
    header_map: HeaderMap,
    sha256: str | None = None,
    only_sheet: int | None = None,
    fmt: str | None = None,
) -> list[SheetRead]:
    """Every sheet of one input file (or only sheet `only_sheet`). `fmt`: the caller already ran the
    preflight (pipeline/io/preflight.py), which names the format."""
    fmt = fmt or check_file(path)
    sha = sha256 or sha256_of(path)
    try:
        return [read_sheet(grid, header_map, str(path), sha) for grid in read_grids(path, fmt, only_sheet)]
    except (fastexcel.FastExcelError, zipfile.BadZipFile, OSError, KeyError, SyntaxError) as e:
        if kind_of(e) is not None:
            raise  # the machine's (the file removed, unreadable, no space): not a damaged file
        # calamine's errors for a damaged file; the preflight refuses what it can name before this
        raise InputFileError(
            f"文件已损坏或无法读取，请重新导出或重新下载 / cannot read file (damaged or truncated): export or "
            f"download it again: {path} ({_first_line(e)})"
        ) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def _field_words(wanted: Field, header_map: HeaderMap) -> str:
    """A required field in the bureau's words: its header, the other spellings accepted, and the
    columns that may stand in for it (费款所属期起 + 费款所属期止)."""
    words = wanted.header
    if len(wanted.aliases) > 1:
        words += f"（也可写作：{'、'.join(wanted.aliases[1:])}）"
    if wanted.or_fields:
        words += "，或两列 " + " + ".join(header_map.header_of(f) for f in wanted.or_fields)
    return words


def file_problem(path: Path, header_map: HeaderMap, sheets: list[SheetRead], coverage_year: int) -> str | None:
    """Why a file is refused whole (docs/RULES.md §6), or None: no sheet has a header row of its kind,
    or a sheet whose header row was found lacks a column required for its kind and year. A missing
    column is the file's problem, not each row's."""
    if not any(s.header_row is not None for s in sheets):
        return f"工作簿中没有找到{header_map.title}的表头行 / no {header_map.kind} header row in any sheet: {path}"
    for sheet in sheets:
        if sheet.header_row is None:
            continue
        missing = header_map.missing_required(set(sheet.columns_seen), coverage_year)
        if missing:
            words = "；".join(_field_words(header_map.field(name), header_map) for name in missing)
            return (
                f"{header_map.title}缺少必填列：{words}。请在表头行补上该列后重新导出 / missing required column(s) "
                f"{', '.join(missing)} in the header row (row {sheet.header_row}) of sheet [{sheet.sheet}]: {path}"
            )
    return None
