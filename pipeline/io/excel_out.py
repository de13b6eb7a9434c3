"""The two Excel workbooks the bureau reads in the morning (CONTRACT.md "Outputs").

- 对账报告_{Y}.xlsx: a summary with key figures and charts, then one sheet per
  exception list (少缴, 未缴, 多缴应退费, 无登记缴费, 校验未通过, 较上次变化),
  with the columns a clerk needs to phone the person.
- 财政补助资金测算表_{Y}.xlsx: the totals of RULES.md §8 by county, township
  and tier, with county subtotals, the grand total and the parameters with
  their citations.

Everything is read from the DuckDB tables of `pipeline.io.tables`. IDs are
masked unless `unmask=True`. Text is always written as text (a name such as
`=HYPERLINK(...)` stays a name). The same run gives byte-identical files: the
workbook's creation time is the run's start, not the clock. Each file is
written to `.{name}.tmp` and moved into place only when both are complete.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import sys
import tomllib
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import duckdb
import polars as pl
from xlsxwriter.utility import xl_col_to_name
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

import schemas
from pipeline.errors import ReportError
from pipeline.io.masking import mask_id, mask_id_expr, mask_ids_in_text, mask_ids_in_text_expr
from pipeline.params import Params

EXCEL_MAX_DATA_ROWS = 1_048_575  # 1,048,576 rows less the header row
EXCEL_CELL_MAX_CHARS = 32_767  # counted in UTF-16 units, as Excel does
TRUNCATION_MARKER = "…[截断]"
MAX_COLUMN_WIDTH = 50
NOT_GIVEN = "未规定"
CITATION_COLUMN_WIDTH = 60

RECONCILIATION_REPORT = "对账报告_{year}.xlsx"
FISCAL_REPORT = "财政补助资金测算表_{year}.xlsx"

TIER_LABELS = {"full": "全额资助", "fixed": "定额资助", "none": "普通", "all": "全部"}
TIER_ORDER = ("full", "fixed", "none", "all")
STATUS_LABELS = {
    "subsidized": "资助参保(无需缴费)",
    "paid_in_full": "足额缴费",
    "underpaid": "少缴",
    "unpaid": "未缴",
    "overpaid": "多缴应退费",
}
STATUS_ORDER = ("subsidized", "paid_in_full", "underpaid", "unpaid", "overpaid")
KIND_LABELS = {"roster": "参保登记花名册", "payments": "税务缴费明细"}
RUN_STATUS_LABELS = {"completed": "已完成", "failed": "失败"}
REGION_LABELS = {"jiangxi": "江西省", "jingdezhen": "景德镇市", "yichun": "宜春市"}

PARAMETER_LABELS = {
    "individual_standard_yuan": "个人缴费标准(元/人·年)",
    "fiscal_per_capita_yuan": "人均财政补助标准(元)",
    "full_subsidy_yuan": "全额资助参保金额(元)",
    "fixed_subsidy_yuan": "定额资助参保金额(元)",
    "critical_illness_per_capita_yuan": "大病保险人均筹资(元)",
    "central_share": "中央财政补助比例",
    "collection_start": "集中征缴期开始",
    "collection_end": "集中征缴期结束",
    "benefit_model": "待遇享受期规则",
    "waiting_days": "等待期(天)",
    "waiting_months": "等待期(月)",
    "lapsed_early_benefit_start": "断保人员征缴期内缴费的待遇起始日",
    "subsidized_no_waiting": "资助参保对象不设等待期",
    "newborn_model": "新生儿参保规则",
    "newborn_window_days": "新生儿出生后参保登记期限(天)",
    "newborn_grace_months": "新生儿出生后缴费期限(月)",
    "newborn_full_from": "新生儿全额资助的出生日期起点",
    "newborn_full_years": "新生儿全额资助的年度数",
}

# Per-year result tables the reports read; all must hold the reported run's rows.
_REPORTED_TABLES = (
    "determinations", "reconciliation", "unmatched_payments", "rejected_rows", "subsidy_totals",
)
_EXCEL_EPOCH = dt.date(1899, 12, 30)
_FIRST_TRUE_EXCEL_DATE = dt.date(1900, 3, 1)  # before it Excel counts a 1900-02-29


# --- cell values ---------------------------------------------------------------

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


# --- list sheets -------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """One column of a list sheet: its Chinese header and what kind of value it holds.

    kinds: text, id (masked ID), free (text that may quote an ID), tier, status,
    status_change, kind (roster/payments), money, count, date.
    """

    header: str
    kind: str


_TEXT_KINDS = frozenset({"text", "id", "free", "tier", "status", "status_change", "kind"})
_NUMBER_FORMATS = {"money": "#,##0.00", "count": "#,##0", "date": "yyyy-mm-dd",
                   "datetime": "yyyy-mm-dd hh:mm:ss", "rate": "0.00%", "year": "0"}
_BOOL_LABELS = {"True": "是", "False": "否"}
_STATUS_CHANGE_MISSING = {"previous": "(上次无此人)", "current": "(已不在花名册)"}


@dataclass
class _Formats:
    header: Any
    title: Any
    note: Any
    value_text: Any
    top: Any
    wrap: Any
    link: Any
    plain: Any
    number: dict[str, Any]
    # fiscal table rows by kind: (text format, number formats, 未规定 format)
    row_styles: dict[str, tuple[Any, dict[str, Any], Any]]


_NUMBER_ALIGNMENT = {"date": {"align": "center"}, "datetime": {"align": "center"}}
_RIGHT_INDENTED = {"align": "right", "indent": 1}  # keeps a number off the next column's text


def _make_formats(wb: Workbook) -> _Formats:
    def numbers(extra: dict) -> dict[str, Any]:
        return {k: wb.add_format({"num_format": f, **_NUMBER_ALIGNMENT.get(k, _RIGHT_INDENTED), **extra})
                for k, f in _NUMBER_FORMATS.items()}

    def row_style(extra: dict) -> tuple[Any, dict[str, Any], Any]:
        return (wb.add_format(extra) if extra else None, numbers(extra),
                wb.add_format({**extra, "align": "center", "font_color": "#7F7F7F"}))

    return _Formats(
        header=wb.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1,
                              "align": "center", "valign": "vcenter", "text_wrap": True}),
        title=wb.add_format({"bold": True, "font_size": 14}),
        note=wb.add_format({"font_color": "#595959", "indent": 1}),
        value_text=wb.add_format({"align": "right", "indent": 1}),
        top=wb.add_format({"valign": "top"}),
        wrap=wb.add_format({"text_wrap": True, "valign": "top"}),
        link=wb.add_format({"font_color": "#0563C1", "underline": 1}),
        plain=wb.add_format({}),
        number=numbers({}),
        row_styles={
            "township": row_style({}),
            "township_all_tiers": row_style({"bg_color": "#F2F2F2"}),
            "county": row_style({"bold": True, "bg_color": "#D9D9D9"}),
            "total": row_style({"bold": True, "bg_color": "#FFF2CC", "top": 1}),
        },
    )


@dataclass
class _Stats:
    truncated_cells: int = 0


def _prepare_text(values: Sequence[Any], kind: str, unmask: bool, stats: _Stats) -> list[str | None]:
    if kind == "id" and not unmask:
        values = [mask_id(v) for v in values]
    elif kind == "free" and not unmask:
        values = [mask_ids_in_text(v) for v in values]
    elif kind == "tier":
        values = [None if v is None else TIER_LABELS.get(v, v) for v in values]
    elif kind == "status":
        values = [None if v is None else STATUS_LABELS.get(v, v) for v in values]
    elif kind == "kind":
        values = [None if v is None else KIND_LABELS.get(v, v) for v in values]
    out = [None if v is None or v == "" else v if v.__class__ is str else str(v) for v in values]
    if max(map(len, filter(None, out)), default=0) > EXCEL_CELL_MAX_CHARS // 2:
        for i, v in enumerate(out):
            if v is not None:
                out[i], cut = fit_cell_text(v)
                stats.truncated_cells += cut
    return out


def _prepare_number(values: Sequence[Any], kind: str) -> list[float | None]:
    """Numbers as floats; dates as Excel serial numbers (the SQL may already give serials)."""
    if kind in ("date", "datetime"):
        return [None if v is None else excel_serial(v) if isinstance(v, dt.date) else float(v)
                for v in values]
    return [None if v is None else float(v) for v in values]


def _content_width(values: Sequence[Any], kind: str) -> int:
    present = [v for v in values if v is not None]
    if not present:
        return 0
    if kind in _TEXT_KINDS:
        # display_width(s) lies between len(s) and 2 * len(s): measure the longest
        # text, then only texts that could still be wider (cheap on 200,000 names).
        distinct = set(present)
        best = display_width(max(distinct, key=len))
        for text in distinct:
            if 2 * len(text) > best:
                best = max(best, display_width(text))
                if best >= MAX_COLUMN_WIDTH:
                    break
        return best
    if kind in ("date",):
        return 10
    if kind == "datetime":
        return 19
    if kind == "rate":
        return 8
    biggest = max(max(present), -min(present))
    shown = f"{biggest:,.2f}" if kind == "money" else f"{biggest:,.0f}"
    return len(shown) + (1 if min(present) < 0 else 0)


def column_width(header: str, content_width: int) -> int:
    """A width that shows the header (and its filter button) and the longest value, capped."""
    return min(MAX_COLUMN_WIDTH, max(display_width(header) + 4, content_width + 2))


# An exception list is built from a polars frame as the sheet's XML, column by column, in polars:
# a 200,000-row list is a few vectorised passes, not a Python call per cell. Text is written as
# inline strings (`t="inlineStr"`, which Excel, WPS and LibreOffice read like any text cell), so no
# shared-string table has to be built in Python either.
_XML_CONTROL = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20))]
_XML_CONTROL_ESCAPED = [f"_x{ord(c):04X}_" for c in _XML_CONTROL]
LIST_XML_CHUNK_ROWS = 50_000


def _xml_text(expr: pl.Expr) -> pl.Expr:
    """Text as xlsxwriter escapes it in a cell: a literal `_xHHHH_` keeps its meaning (`_x005F`
    before it), control characters become `_xHHHH_`, then & < > become entities."""
    return (
        expr.str.replace_all(r"(_x[0-9a-fA-F]{4}_)", "_x005F$1")
        .str.replace_many(_XML_CONTROL, _XML_CONTROL_ESCAPED)
        .str.replace_all("&", "&amp;", literal=True)
        .str.replace_all("<", "&lt;", literal=True)
        .str.replace_all(">", "&gt;", literal=True)
    )


def _fen_text(expr: pl.Expr) -> pl.Expr:
    """Integer fen as the number a cell holds, written as Python's `{yuan:.16G}` writes it
    (12300 -> 123, 1250 -> 12.5, -5 -> -0.05): exact, no float in between."""
    cents = expr.abs() % 100
    return pl.concat_str([
        pl.when(expr < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        (expr.abs() // 100).cast(pl.Utf8),
        pl.when(cents == 0).then(pl.lit(""))
        .when(cents % 10 == 0).then(pl.lit(".") + (cents // 10).cast(pl.Utf8))
        .otherwise(pl.lit(".") + cents.cast(pl.Utf8).str.zfill(2)),
    ])


def _list_text(expr: pl.Expr, kind: str, unmask: bool) -> pl.Expr:
    """What a text column of a list shows: masked, labelled, empty text as no value."""
    if kind == "id" and not unmask:
        expr = mask_id_expr(expr)
    elif kind == "free" and not unmask:
        expr = mask_ids_in_text_expr(expr)
    elif kind in ("tier", "status", "kind"):
        expr = expr.replace({"tier": TIER_LABELS, "status": STATUS_LABELS, "kind": KIND_LABELS}[kind])
    return pl.when(expr == "").then(None).otherwise(expr)


def _prepare_list(frame: pl.DataFrame, columns: Sequence[Column], unmask: bool,
                  stats: _Stats) -> pl.DataFrame:
    """Column c_i: the text of a text column (as shown), or the number of a numeric one (integers:
    money in fen, dates as Excel serial days)."""
    exprs = []
    for i, (col, name) in enumerate(zip(columns, frame.columns)):
        value = pl.col(name)
        if col.kind in _TEXT_KINDS:
            exprs.append(_list_text(value.cast(pl.Utf8), col.kind, unmask).alias(f"c{i}"))
        else:
            exprs.append(value.cast(pl.Int64).alias(f"c{i}"))
    out = frame.select(exprs)
    for i, col in enumerate(columns):  # a text longer than a cell holds is cut (rare: Python per value)
        if col.kind in _TEXT_KINDS:
            long = out.filter(pl.col(f"c{i}").str.len_chars() * 2 > EXCEL_CELL_MAX_CHARS)[f"c{i}"]
            fitted = {v: fit_cell_text(v) for v in long.unique().to_list()}
            cut = {v: text for v, (text, was_cut) in fitted.items() if was_cut}
            if cut:
                stats.truncated_cells += int(long.is_in(list(cut)).sum())
                out = out.with_columns(pl.col(f"c{i}").replace(cut))
    return out


def _list_content_width(values: pl.Series, kind: str) -> int:
    """`_content_width` of a prepared list column, measured in polars: display_width runs only on
    the few texts that could be the widest."""
    present = values.drop_nulls()
    if present.len() == 0:
        return 0
    if kind in _TEXT_KINDS:
        distinct = present.unique().to_frame("v").with_columns(
            pl.col("v").str.len_chars().alias("n"), pl.col("v").str.contains(r"^[\x00-\x7F]*$").alias("ascii"))
        best = int(distinct.filter(pl.col("ascii"))["n"].max() or 0)
        wide = distinct.filter(~pl.col("ascii")).sort("n", descending=True)
        for text, n in zip(wide["v"].to_list(), wide["n"].to_list()):
            if 2 * n <= best or best >= MAX_COLUMN_WIDTH:
                break
            best = max(best, display_width(text))
        return best
    low, high = present.min(), present.max()
    if kind == "money":
        return _content_width([low / 100, high / 100], kind)
    return _content_width([low, high], kind)


class ListWorksheet(Worksheet):
    """A worksheet whose rows below the header are XML made in polars (`set_body`).

    The header row goes through xlsxwriter's ordinary cell table; the body is
    written after it by `write_body(fh)`. The data rows' extent is given to
    `_check_dimensions`, so <dimension>, the autofilter and printing see it.
    """

    _write_body: Callable[[Any], None] | None = None

    def set_body(self, write_body: Callable[[Any], None], last_row: int, last_col: int) -> None:
        self._write_body = write_body
        if last_row >= 1:
            self._check_dimensions(last_row, last_col)

    def _write_rows(self) -> None:
        if self._write_body is None:
            super()._write_rows()
            return
        for row_num in sorted(r for r in self.table if self.table[r]):
            self._write_row(row_num, None)
            for col_num in sorted(self.table[row_num]):
                self._write_cell(row_num, col_num, self.table[row_num][col_num])
            self._xml_end_tag("row")
        self._write_body(self.fh)


def _body_writer(part: pl.DataFrame, columns: Sequence[Column], xf: dict[int, int],
                 first_row: int) -> Callable[[Any], None]:
    """Writes `part`'s rows as <row>/<c> XML, LIST_XML_CHUNK_ROWS at a time (the text of a whole
    list is never held at once). Escaping and xml:space run only on columns that need them."""
    row = pl.col("__r")
    cells = []
    for i, col in enumerate(columns):
        value, ref = pl.col(f"c{i}"), pl.concat_str([pl.lit(xl_col_to_name(i)), row])
        if col.kind in _TEXT_KINDS:
            escape, spaced = part.select(
                value.str.contains(r"[&<>_\x00-\x08\x0b-\x1f]").any().alias("escape"),
                value.str.contains(r"^\s|\s$").any().alias("spaced"),
            ).row(0)
            open_t = (pl.when(value.str.contains(r"^\s|\s$")).then(pl.lit(' xml:space="preserve">'))
                      .otherwise(pl.lit(">")) if spaced else pl.lit(">"))
            cells.append(pl.when(value.is_not_null()).then(pl.concat_str([
                pl.lit('<c r="'), ref, pl.lit('" t="inlineStr"><is><t'), open_t,
                _xml_text(value) if escape else value, pl.lit("</t></is></c>")])))
        else:
            number = _fen_text(value) if col.kind == "money" else value.cast(pl.Utf8)
            cells.append(pl.when(value.is_not_null()).then(pl.concat_str([
                pl.lit('<c r="'), ref, pl.lit(f'" s="{xf[i]}"><v>'), number, pl.lit("</v></c>")])))
    body = pl.concat_str(cells, ignore_nulls=True)
    xml = pl.when(body != "").then(pl.concat_str([pl.lit('<row r="'), row, pl.lit('">'), body, pl.lit("</row>")]))

    def write(fh) -> None:
        fh.flush()  # xlsxwriter's text file: the rows go to its byte buffer, already UTF-8
        for start in range(0, part.height, LIST_XML_CHUNK_ROWS):
            chunk = part.slice(start, LIST_XML_CHUNK_ROWS).with_columns(
                (pl.int_range(pl.len(), dtype=pl.Int64) + first_row + start + 1).cast(pl.Utf8).alias("__r"))
            fh.buffer.write(chunk.select(xml.str.join("").cast(pl.Binary))[0, 0] or b"")
        fh.buffer.flush()
    return write


def _set_up_list_sheet(ws: Worksheet, columns: Sequence[Column], widths: Sequence[int],
                       n_rows: int, fmts: _Formats) -> None:
    for c, (column, width) in enumerate(zip(columns, widths)):
        ws.write_string(0, c, column.header, fmts.header)
        ws.set_column(c, c, width)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, n_rows, len(columns) - 1)
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0)
    ws.set_footer("&C第 &P 页 / 共 &N 页")


def write_list(wb: Workbook, fmts: _Formats, base_name: str, columns: Sequence[Column],
               rows: pl.DataFrame, *, unmask: bool, max_rows_per_sheet: int, stats: _Stats) -> list[str]:
    """Write one exception list (a frame whose columns are `columns`, in order; money in integer
    fen, dates as Excel serial days); past `max_rows_per_sheet` rows it continues on 名称(2), (3)...

    Returns the sheet names used. The cells are prepared and turned into XML
    in polars; the sheet's bytes are written when the workbook closes.
    """
    prepared = _prepare_list(rows, columns, unmask, stats)
    widths = [column_width(col.header, _list_content_width(prepared[f"c{i}"], col.kind))
              for i, col in enumerate(columns)]
    xf = {i: fmts.number[col.kind]._get_xf_index() for i, col in enumerate(columns) if col.kind not in _TEXT_KINDS}
    n = prepared.height
    names = []
    for part, start in enumerate(range(0, max(n, 1), max_rows_per_sheet)):
        name = base_name if part == 0 else f"{base_name}({part + 1})"
        end = min(n, start + max_rows_per_sheet)
        ws = wb.add_worksheet(name, worksheet_class=ListWorksheet)
        _set_up_list_sheet(ws, columns, widths, end - start, fmts)
        ws.set_body(_body_writer(prepared.slice(start, end - start), columns, xf, 1), end - start, len(columns) - 1)
        names.append(name)
    return names


# --- reading ---------------------------------------------------------------------

def _money(expr: str) -> str:
    return f"CAST({expr} AS DOUBLE)"


def _excel_date(expr: str) -> str:
    """A DATE as Excel's serial day number, computed by DuckDB (cheaper than per-cell Python)."""
    return (f"(date_diff('day', DATE '{_EXCEL_EPOCH}', {expr})"
            f" - CASE WHEN {expr} < DATE '{_FIRST_TRUE_EXCEL_DATE}' THEN 1 ELSE 0 END)")


def _fen(expr: str) -> str:
    """A DECIMAL(14,2) amount as integer fen (exact), for the lists."""
    return f"CAST({expr} * 100 AS BIGINT)"


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def _fetch_frame(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> pl.DataFrame:
    """A list's rows as a polars frame (through Arrow: no Python object per cell)."""
    return con.sql(sql, params=list(params) or None).pl()


@dataclass(frozen=True)
class _Run:
    run_id: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    coverage_year: int | None
    region: str | None
    rows_read: int | None
    rows_accepted: int | None
    rows_rejected: int | None
    rows_skipped: int | None
    status: str | None
    fingerprint: str | None
    as_of_date: dt.date | None

    @property
    def created(self) -> dt.datetime:
        """The workbooks' creation time: the data date, so two runs on the same inputs and day give
        byte-identical workbooks (the run's exact times stay in DuckDB `runs`)."""
        if self.as_of_date is not None:
            return dt.datetime.combine(self.as_of_date, dt.time())
        if self.started_at is not None:
            return self.started_at.replace(microsecond=0, tzinfo=None)
        return dt.datetime(self.coverage_year or 2000, 1, 1)


def _read_run(con: duckdb.DuckDBPyConnection, run_id: str, coverage_year: int) -> _Run:
    rows = _fetch(con, """
        SELECT run_id, started_at, finished_at, coverage_year, region,
               rows_read, rows_accepted, rows_rejected, rows_skipped, status, fingerprint, as_of_date
        FROM runs WHERE run_id = ?""", [run_id])
    if not rows:
        raise ReportError(f"找不到运行记录 {run_id} / no run '{run_id}' in table runs; "
                          "run `medins run` first")
    run = _Run(*rows[0])
    if run.coverage_year is not None and run.coverage_year != coverage_year:
        raise ReportError(f"运行 {run_id} 属于{run.coverage_year}年度，不是{coverage_year}年度 / run "
                          f"'{run_id}' is for coverage year {run.coverage_year}, not {coverage_year}")
    for table in _REPORTED_TABLES:
        other = _fetch(con, f"SELECT count(*) FROM {table} WHERE coverage_year = ? "
                            "AND run_id IS DISTINCT FROM ?", [coverage_year, run_id])[0][0]
        if other:
            raise ReportError(
                f"{table} 中{coverage_year}年度有{other}行属于其他运行 / table {table} holds {other} "
                f"row(s) of another run for coverage year {coverage_year}, not of '{run_id}'; "
                f"rerun `medins run --coverage-year {coverage_year}`")
    return run


def _due_basis_sql(params: Params) -> tuple[str, list[str]]:
    """Where the person's amount due comes from, by tier (RULES.md §2)."""
    sql = "CASE r.tier WHEN 'full' THEN ? WHEN 'fixed' THEN ? ELSE ? END"
    return sql, [params.full_subsidy_yuan.cite, params.fixed_subsidy_yuan.cite,
                 params.individual_standard_yuan.cite]


def _person_list(con, coverage_year: int, status: str, params: Params) -> pl.DataFrame:
    basis_sql, basis_params = _due_basis_sql(params)
    return _fetch_frame(con, f"""
        SELECT r.name, r.id_number, r.county, r.township, r.village, r.tier,
               {_fen('r.individual_due')}, {_fen('r.net_paid')}, {_fen('r.amount_diff')},
               r.n_payments, {_excel_date('r.last_paid_on')}, COALESCE(r.refund_basis, {basis_sql})
        FROM reconciliation r
        WHERE r.coverage_year = ? AND r.status = ?
        ORDER BY r.county, r.township, r.village, r.name, r.id_number""",
        [*basis_params, coverage_year, status])


def _person_columns(diff_header: str) -> tuple[Column, ...]:
    return (
        Column("姓名", "text"), Column("证件号码", "id"), Column("县(市、区)", "text"),
        Column("乡镇(街道)", "text"), Column("村(社区)", "text"), Column("资助类别", "tier"),
        Column("应缴金额", "money"), Column("实缴金额", "money"), Column(diff_header, "money"),
        Column("缴费笔数", "count"), Column("最后缴费日期", "date"), Column("依据", "free"),
    )


UNMATCHED_COLUMNS = (
    Column("姓名", "text"), Column("证件号码", "id"), Column("缴费金额", "money"),
    Column("缴费日期", "date"), Column("电子税票号码", "text"), Column("原因", "free"),
    Column("文件", "text"), Column("工作表", "text"), Column("行号", "count"),
)
REJECTED_COLUMNS = (
    Column("数据来源", "kind"), Column("文件", "text"), Column("工作表", "text"),
    Column("行号", "count"), Column("列", "text"), Column("原始值", "free"),
    Column("原因", "free"), Column("证件号码", "id"),
)
STATUS_CHANGE_COLUMNS = (
    Column("姓名", "text"), Column("证件号码", "id"), Column("县(市、区)", "text"),
    Column("乡镇(街道)", "text"), Column("上次状态", "status_change"),
    Column("本次状态", "status_change"), Column("上次差额", "money"), Column("本次差额", "money"),
    Column("上次运行编号", "text"),
)


def _id_column_names() -> frozenset[str]:
    """Headers (and the field name) under which a rejected raw value is an ID number."""
    names = {"id_number", "证件号码", "公民身份号码", "身份证号码", "身份证号", "缴费人证件号码"}
    try:
        with (Path(schemas.__file__).parent / "headers.toml").open("rb") as f:
            data = tomllib.load(f)
        for kind in ("roster", "payments"):
            names.update(data[kind]["fields"]["id_number"]["aliases"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        pass  # the built-in spellings above still apply
    return frozenset(names)


def _rejected_rows(con, coverage_year: int, unmask: bool) -> pl.DataFrame:
    rows = _fetch_frame(con, """
        SELECT kind, source_file, sheet, row_number, "column", raw_value, reason, id_number
        FROM rejected_rows WHERE coverage_year = ?
        ORDER BY source_file, sheet, row_number, "column", raw_value""", [coverage_year])
    if unmask:
        return rows
    id_columns = _id_column_names()
    # A raw value under an ID header is masked whole (it may be a mangled ID the free-text pattern
    # would not recognise, such as 3.60222199001012E+17); the list then masks the other raw values
    # as free text, which leaves a masked ID as it is.
    headers = rows["column"].drop_nulls().unique().to_list()
    under_id = [h for h in headers if _is_id_column(h, id_columns)]
    return rows.with_columns(
        pl.when(pl.col("column").is_in(under_id)).then(mask_id_expr(pl.col("raw_value")))
        .otherwise(pl.col("raw_value")).alias("raw_value"))


def _is_id_column(column: str | None, id_columns: frozenset[str]) -> bool:
    """`证件号码`, `证件号码*` (a template's required marker), `公民身份号码 ` ... or `id_number`."""
    if not column:
        return False
    name = unicodedata.normalize("NFKC", column).strip().rstrip("*").strip()
    return name in id_columns or "证件号" in name or "身份证" in name or "身份号码" in name


def _status_change_rows(con, run_id: str) -> pl.DataFrame:
    rows = _fetch_frame(con, f"""
        SELECT name, id_number, county, township, previous_status, status,
               {_fen('previous_amount_diff')}, {_fen('amount_diff')}, previous_run_id
        FROM status_changes WHERE run_id = ?
        ORDER BY county, township, name, id_number""", [run_id])
    return rows.with_columns(
        pl.col(column).replace(STATUS_LABELS).fill_null(_STATUS_CHANGE_MISSING[which])
        for column, which in (("previous_status", "previous"), ("status", "current")))


# --- reconciliation workbook -------------------------------------------------------

@dataclass(frozen=True)
class _ListSpec:
    name: str
    columns: tuple[Column, ...]
    rows: Callable[[], pl.DataFrame]


# zlib level of the .xlsx zip. xlsxwriter always deflates at zlib's default (6); level 1 packs the
# same XML about 1.7 s faster for the 1M-row night's exception lists (138,000 rows), files ~26 % larger
# (benchmarks/README.md).
ZIP_LEVEL = 1


class _Workbook(Workbook):
    """xlsxwriter's Workbook, zipped at ZIP_LEVEL. `_store_workbook` opens its ZipFile through the
    module's `ZipFile` name; it is pointed at a ZipFile with that level for the call only."""

    def _store_workbook(self) -> None:
        module = sys.modules[Workbook.__module__]
        plain = module.ZipFile
        module.ZipFile = functools.partial(zipfile.ZipFile, compresslevel=ZIP_LEVEL)
        try:
            super()._store_workbook()
        finally:
            module.ZipFile = plain


def _open_workbook(path: Path, run: _Run, title: str, params: Params) -> tuple[Workbook, Any]:
    path.unlink(missing_ok=True)
    handle = open(path, "wb", opener=lambda p, flags: os.open(p, flags, 0o600))
    wb = _Workbook(handle, {
        "strings_to_formulas": False, "strings_to_urls": False,
        "strings_to_numbers": False, "constant_memory": False,
    })
    wb.set_properties({
        "title": title,
        "subject": f"{run.coverage_year}年度城乡居民基本医疗保险",
        "author": "medins",
        "company": REGION_LABELS.get(params.region, params.region),
        "comments": f"数据批次 fingerprint: {run.fingerprint}",
        "created": run.created,
    })
    return wb, handle


def _summary_figures(con, coverage_year: int) -> dict[str, Any]:
    roster, enrolled = _fetch(con, """
        SELECT count(*), count(*) FILTER (WHERE enrolled)
        FROM determinations WHERE coverage_year = ?""", [coverage_year])[0]
    by_status = dict(_fetch(con, """
        SELECT status, count(*) FROM reconciliation WHERE coverage_year = ? GROUP BY status""",
        [coverage_year]))
    due, collected, refund, outstanding = _fetch(con, f"""
        SELECT {_money('coalesce(sum(individual_due), 0)')},
               {_money('coalesce(sum(net_paid), 0)')},
               {_money("coalesce(sum(amount_diff) FILTER (WHERE status = 'overpaid'), 0)")},
               {_money("coalesce(sum(amount_diff) FILTER (WHERE status IN ('underpaid', 'unpaid')), 0)")}
        FROM reconciliation WHERE coverage_year = ?""", [coverage_year])[0]
    n_unmatched, unmatched_amount = _fetch(con, f"""
        SELECT count(*), {_money('coalesce(sum(amount), 0)')}
        FROM unmatched_payments WHERE coverage_year = ?""", [coverage_year])[0]
    return {
        "roster": roster, "enrolled": enrolled, "by_status": by_status, "due": due,
        "collected": collected, "refund": refund, "outstanding": outstanding,
        "n_unmatched": n_unmatched, "unmatched_amount": unmatched_amount,
    }


def _write_chart_data(wb: Workbook, fmts: _Formats, con, coverage_year: int,
                      figures: dict[str, Any]) -> tuple[dict[str, tuple[int, int]], int]:
    """The tables behind the charts, on their own sheet.

    Returns each table's first and last data row, and the column holding the
    township bars' labels.
    """
    ws = wb.add_worksheet("图表数据")
    townships = _fetch(con, """
        SELECT county, township, count(*), count(*) FILTER (WHERE enrolled)
        FROM determinations WHERE coverage_year = ?
        GROUP BY county, township ORDER BY county, township""", [coverage_year])
    counties = _fetch(con, f"""
        SELECT county, {_money('sum(individual_due)')}, {_money('sum(net_paid)')},
               {_money("coalesce(sum(amount_diff) FILTER (WHERE status = 'overpaid'), 0)")},
               {_money("coalesce(sum(amount_diff) FILTER (WHERE status IN ('underpaid', 'unpaid')), 0)")}
        FROM reconciliation WHERE coverage_year = ?
        GROUP BY county ORDER BY county""", [coverage_year])
    ranges: dict[str, tuple[int, int]] = {}
    widths = [0] * 6
    row = 0

    def table(key: str, title: str, headers: Sequence[str], kinds: Sequence[str],
              rows: Sequence[Sequence[Any]]) -> None:
        nonlocal row
        ws.write_string(row, 0, title, fmts.title)
        for c, h in enumerate(headers):
            ws.write_string(row + 1, c, h, fmts.header)
            widths[c] = max(widths[c], display_width(h) + 2)
        for r, values in enumerate(rows, row + 2):
            for c, (v, kind) in enumerate(zip(values, kinds)):
                if v is None:
                    continue
                if kind == "text":
                    ws.write_string(r, c, str(v))
                    widths[c] = max(widths[c], display_width(str(v)) + 2)
                else:
                    ws.write_number(r, c, v, fmts.number[kind])
                    widths[c] = max(widths[c], _content_width([v], kind) + 2)
        ranges[key] = (row + 2, row + 1 + len(rows))
        row += len(rows) + 4

    # With several counties the chart labels a bar "county township" (a two-level
    # axis prints the county names sideways and unreadable).
    several_counties = len({c for c, *_ in townships}) > 1
    table("township", "按乡镇(街道)参保情况",
          ("县(市、区)", "乡镇(街道)", "参保登记人数", "参保人数", "参保率")
          + (("图表标签",) if several_counties else ()),
          ("text", "text", "count", "count", "rate", "text"),
          [(c, t, n, e, e / n if n else None) + ((f"{c} {t}",) if several_counties else ())
           for c, t, n, e in townships])
    table("status", "按对账状态人数", ("对账状态", "人数"), ("text", "count"),
          [(STATUS_LABELS[s], figures["by_status"].get(s, 0)) for s in STATUS_ORDER])
    table("county", "按县(市、区)缴费情况(元)",
          ("县(市、区)", "个人应缴", "个人实缴", "应退费", "欠缴"),
          ("text", "money", "money", "money", "money"), counties)
    for c, w in enumerate(widths):
        ws.set_column(c, c, min(MAX_COLUMN_WIDTH, w))
    ws.set_paper(9)
    ws.fit_to_pages(1, 0)
    return ranges, 5 if several_counties else 1


def _add_charts(wb: Workbook, summary: Worksheet, ranges: dict[str, tuple[int, int]],
                township_label_col: int, township_row: int) -> None:
    """Status counts and money by county beside the key figures; the township
    rates below them, full width, as tall as the townships need (a county has
    dozens, and squeezing them beside the figures shrank the printed page)."""
    data = "'图表数据'"
    font = {"name": "宋体"}
    status_row, county_row = 2, 18

    first, last = ranges["township"]
    if last >= first:
        n = last - first + 1
        chart = wb.add_chart({"type": "bar"})
        categories = [data, first, township_label_col, last, township_label_col]
        chart.add_series({
            "name": "参保率", "categories": categories, "values": [data, first, 4, last, 4],
            "fill": {"color": "#4472C4"}, "gap": 50,
            "data_labels": {"value": True, "num_format": "0.0%", "position": "inside_end",
                            "font": {**font, "color": "#FFFFFF", "bold": True}},
        })
        chart.set_title({"name": "各乡镇(街道)参保率", "name_font": {**font, "size": 12}})
        chart.set_x_axis({"num_format": "0%", "min": 0, "max": 1, "num_font": font,
                          "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}}})
        chart.set_y_axis({"reverse": True, "crossing": "max", "num_font": font})
        chart.set_legend({"none": True})
        chart.set_size({"width": 1000, "height": max(300, 80 + 22 * n)})
        summary.insert_chart(township_row, 0, chart)

    first, last = ranges["status"]
    chart = wb.add_chart({"type": "column"})
    chart.add_series({
        "name": "人数", "categories": [data, first, 0, last, 0], "values": [data, first, 1, last, 1],
        "fill": {"color": "#ED7D31"}, "gap": 80, "data_labels": {"value": True, "font": font},
    })
    chart.set_title({"name": "对账状态人数", "name_font": {**font, "size": 12}})
    chart.set_x_axis({"num_font": font})
    chart.set_y_axis({"num_format": "#,##0", "num_font": font,
                      "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}}})
    chart.set_legend({"none": True})
    chart.set_size({"width": 560, "height": 300})
    summary.insert_chart(status_row, 4, chart)

    first, last = ranges["county"]
    if last >= first:
        chart = wb.add_chart({"type": "column"})
        for col, name, color in ((1, "个人应缴", "#A5A5A5"), (2, "个人实缴", "#70AD47")):
            chart.add_series({
                "name": name, "categories": [data, first, 0, last, 0],
                "values": [data, first, col, last, col], "fill": {"color": color}, "gap": 80,
                "data_labels": {"value": True, "num_format": "#,##0", "font": font},
            })
        chart.set_title({"name": "各县(市、区)个人缴费: 应缴与实缴(元)", "name_font": {**font, "size": 12}})
        chart.set_x_axis({"num_font": font})
        chart.set_y_axis({"num_format": "#,##0", "num_font": font, "min": 0,
                          "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}}})
        chart.set_legend({"position": "bottom", "font": font})
        chart.set_size({"width": 560, "height": 300})
        summary.insert_chart(county_row, 4, chart)


def _write_summary(summary: Worksheet, fmts: _Formats, run: _Run, coverage_year: int,
                   params: Params, figures: dict[str, Any], lists: list[tuple[str, list[str], int]],
                   stats: _Stats, unmask: bool) -> int:
    """Key figures and the list of lists; returns the first free row below them."""
    region = run.region or params.region
    roster, enrolled = figures["roster"], figures["enrolled"]
    items: list[tuple[str, Any, str, str]] = [
        ("数据批次", run.fingerprint, "text", "输入文件与政策参数的指纹，对应数据库 runs.fingerprint"),
        ("待遇年度", coverage_year, "year", ""),
        ("地区", f"{REGION_LABELS.get(region, region)} ({region})", "text", ""),
        ("数据日期", run.as_of_date, "date", "运行时间见数据库 runs 表"),
        ("运行状态", RUN_STATUS_LABELS.get(run.status, run.status), "text", ""),
        ("读取行数", run.rows_read, "count", "= 接收 + 校验未通过 + 跳过"),
        ("接收行数", run.rows_accepted, "count", ""),
        ("校验未通过行数", run.rows_rejected, "count", "明细见「校验未通过」"),
        ("跳过行数", run.rows_skipped, "count", "空行、合计/制表人等表尾行、完全重复行"),
        ("花名册人数", roster, "count", "参保登记花名册中校验通过的人数"),
        ("参保人数", enrolled, "count", ""),
        ("参保率", enrolled / roster if roster else None, "rate", "参保人数 ÷ 花名册人数"),
    ]
    for status in STATUS_ORDER:
        items.append((f"{STATUS_LABELS[status]}人数", figures["by_status"].get(status, 0), "count", ""))
    items += [
        ("个人应缴总额(元)", figures["due"], "money", ""),
        ("个人实缴总额(元)", figures["collected"], "money", "缴费减退费后的净额"),
        ("应退费总额(元)", figures["refund"], "money", "多缴应退费人员的应退金额合计"),
        ("欠缴总额(元)", figures["outstanding"], "money", "少缴与未缴人员的差额合计"),
        ("无登记缴费笔数", figures["n_unmatched"], "count", "证件号码不在花名册或花名册行未通过校验"),
        ("无登记缴费金额(元)", figures["unmatched_amount"], "money", ""),
        ("被截断的单元格数", stats.truncated_cells, "count",
         f"超过{EXCEL_CELL_MAX_CHARS:,}字符的单元格已截断，以「{TRUNCATION_MARKER}」结尾"),
        ("证件号码", "未脱敏(--unmask)" if unmask else "已脱敏", "text",
         "" if unmask else "仅显示前6位和后4位"),
    ]
    summary.write_string(0, 0, f"{coverage_year}年度城乡居民基本医疗保险缴费对账报告", fmts.title)
    for c, h in enumerate(("项目", "数值", "说明")):
        summary.write_string(2, c, h, fmts.header)
    row = 3
    for label, value, kind, note in items:
        summary.write_string(row, 0, label)
        if value is None:
            pass
        elif kind == "text":
            summary.write_string(row, 1, str(value), fmts.value_text)
        elif kind in ("datetime", "date"):
            summary.write_number(row, 1, excel_serial(value), fmts.number[kind])
        else:
            summary.write_number(row, 1, value, fmts.number[kind])
        if note:
            summary.write_string(row, 2, note, fmts.note)
        row += 1

    row += 1
    summary.write_string(row, 0, "清单", fmts.header)
    summary.write_string(row, 1, "行数", fmts.header)
    summary.write_string(row, 2, "工作表", fmts.header)
    for name, sheets, n in lists:
        row += 1
        summary.write_url(row, 0, f"internal:'{sheets[0]}'!A1", fmts.link, string=name)
        summary.write_number(row, 1, n, fmts.number["count"])
        summary.write_string(row, 2, "、".join(sheets), fmts.note)
    summary.set_column(0, 0, 22)
    value_width = max((display_width(str(v)) for _, v, kind, _ in items if kind == "text" and v), default=0)
    summary.set_column(1, 1, min(MAX_COLUMN_WIDTH, max(24, value_width + 3)))
    summary.set_column(2, 2, 44)
    summary.set_column(3, 3, 2)
    summary.set_landscape()
    summary.set_paper(9)
    summary.fit_to_pages(1, 0)
    return row + 2


def _write_reconciliation_workbook(path: Path, con, run: _Run, coverage_year: int, params: Params,
                                   unmask: bool, max_rows_per_sheet: int) -> None:
    wb, handle = _open_workbook(path, run, f"{coverage_year}年度城乡居民医保缴费对账报告", params)
    try:
        fmts = _make_formats(wb)
        stats = _Stats()
        summary = wb.add_worksheet("汇总")
        specs = (
            _ListSpec("少缴", _person_columns("差额"),
                      lambda: _person_list(con, coverage_year, "underpaid", params)),
            _ListSpec("未缴", _person_columns("差额"),
                      lambda: _person_list(con, coverage_year, "unpaid", params)),
            _ListSpec("多缴应退费", _person_columns("应退金额"),
                      lambda: _person_list(con, coverage_year, "overpaid", params)),
            _ListSpec("无登记缴费", UNMATCHED_COLUMNS, lambda: _fetch_frame(con, f"""
                SELECT name, id_number, {_fen('amount')}, {_excel_date('paid_on')}, ticket_no, reason,
                       source_file, sheet, row_number
                FROM unmatched_payments WHERE coverage_year = ?
                ORDER BY source_file, sheet, row_number, ticket_no""", [coverage_year])),
            _ListSpec("校验未通过", REJECTED_COLUMNS, lambda: _rejected_rows(con, coverage_year, unmask)),
            _ListSpec("较上次变化", STATUS_CHANGE_COLUMNS, lambda: _status_change_rows(con, run.run_id)),
        )
        lists = []
        for spec in specs:
            rows = spec.rows()
            sheets = write_list(wb, fmts, spec.name, spec.columns, rows, unmask=unmask,
                                max_rows_per_sheet=max_rows_per_sheet, stats=stats)
            lists.append((spec.name, sheets, rows.height))
            del rows
        figures = _summary_figures(con, coverage_year)
        ranges, township_label_col = _write_chart_data(wb, fmts, con, coverage_year, figures)
        free_row = _write_summary(summary, fmts, run, coverage_year, params, figures, lists, stats,
                                  unmask)
        _add_charts(wb, summary, ranges, township_label_col, max(free_row, 35))
        summary.activate()
        wb.close()
    finally:
        handle.close()


# --- fiscal-subsidy workbook -------------------------------------------------------

FISCAL_COLUMNS = (
    Column("县(市、区)", "text"), Column("乡镇(街道)", "text"), Column("资助类别", "tier"),
    Column("参保登记人数", "count"), Column("参保人数", "count"), Column("参保率", "rate"),
    Column("财政补助总额", "money"), Column("中央财政", "money"), Column("地方财政", "money"),
    Column("资助参保金额", "money"), Column("大病保险", "money"), Column("个人应缴", "money"),
    Column("个人实缴", "money"),
)
_CENTRAL_COLUMNS = (7, 8)
_CRITICAL_ILLNESS_COLUMN = 10


def _subsidy_rows(con, coverage_year: int) -> list[tuple]:
    tier_rank = " ".join(f"WHEN '{t}' THEN {i}" for i, t in enumerate(TIER_ORDER))
    return _fetch(con, f"""
        SELECT level, county, township, tier, roster_count, enrolled_count,
               coalesce(enrolment_rate, enrolled_count / nullif(roster_count, 0)),
               {_money('fiscal_per_capita_total')}, {_money('central_share_total')},
               {_money('local_share_total')}, {_money('participation_subsidy_total')},
               {_money('critical_illness_total')}, {_money('individual_due_total')},
               {_money('individual_collected_total')}
        FROM subsidy_totals WHERE coverage_year = ?
        ORDER BY CASE level WHEN 'total' THEN 1 ELSE 0 END, county,
                 CASE level WHEN 'township' THEN 0 ELSE 1 END, township,
                 CASE tier {tier_rank} ELSE 9 END, tier""", [coverage_year])


def _write_fiscal_sheet(wb: Workbook, fmts: _Formats, rows: list[tuple], params: Params,
                        run: _Run, stats: _Stats) -> None:
    ws = wb.add_worksheet("财政补助测算")
    central_given = params.central_share.value is not None
    critical_given = params.critical_illness_per_capita_yuan.value is not None
    not_given_columns = set()
    if not central_given:
        not_given_columns.update(_CENTRAL_COLUMNS)
    if not critical_given:
        not_given_columns.add(_CRITICAL_ILLNESS_COLUMN)

    widths = [display_width(c.header) + 4 for c in FISCAL_COLUMNS]
    for r, row in enumerate(rows, 1):
        level, values = row[0], row[1:]
        style = "township_all_tiers" if level == "township" and values[2] == "all" else level
        text_fmt, number_fmts, not_given_fmt = fmts.row_styles.get(style, fmts.row_styles["township"])
        for c, (col, v) in enumerate(zip(FISCAL_COLUMNS, values)):
            if c in not_given_columns:
                ws.write_string(r, c, NOT_GIVEN, not_given_fmt)
                continue
            if col.kind in _TEXT_KINDS:
                text = "" if v is None else (TIER_LABELS.get(v, v) if col.kind == "tier" else str(v))
                text, cut = fit_cell_text(text)
                stats.truncated_cells += cut
                if text:
                    ws.write_string(r, c, text, text_fmt)
                elif text_fmt is not None:
                    ws.write_blank(r, c, None, text_fmt)
                widths[c] = max(widths[c], display_width(text) + 2)
            elif v is None:
                if text_fmt is not None:
                    ws.write_blank(r, c, None, number_fmts[col.kind])
            else:
                ws.write_number(r, c, float(v), number_fmts[col.kind])
                widths[c] = max(widths[c], _content_width([float(v)], col.kind) + 2)
    _set_up_list_sheet(ws, FISCAL_COLUMNS, [min(MAX_COLUMN_WIDTH, w) for w in widths], len(rows), fmts)

    share = params.central_share
    critical = params.critical_illness_per_capita_yuan
    notes = [
        "金额单位：元。财政补助总额 = 参保人数 × 人均财政补助标准"
        f"（{params.fiscal_per_capita_yuan.value}元，{params.fiscal_per_capita_yuan.cite}）。",
        (f"中央财政补助比例：{float(share.value):.0%}（{share.cite}）；地方财政 = 财政补助总额 − 中央财政。"
         if central_given else f"中央财政补助比例：{NOT_GIVEN}（{share.cite}），本年度不拆分中央与地方。"),
        (f"大病保险人均筹资：{critical.value}元（{critical.cite}）。" if critical_given
         else f"大病保险人均筹资：{NOT_GIVEN}（{critical.cite}）。"),
        "小计行为该县(市、区)合计，合计行为全部县(市、区)合计；参保率 = 参保人数 ÷ 参保登记人数。",
        f"数据批次 {run.fingerprint}（数据日期 {run.created:%Y-%m-%d}），"
        f"参数文件 {'、'.join(params.sources)}。",
    ]
    for i, note in enumerate(notes, len(rows) + 2):
        ws.write_string(i, 0, note, fmts.note)


def _write_parameters_sheet(wb: Workbook, fmts: _Formats, params: Params, stats: _Stats) -> None:
    ws = wb.add_worksheet("参数及依据")
    columns = (Column("参数", "text"), Column("取值", "text"), Column("依据", "text"),
               Column("参数代码", "text"))
    rows = []
    for item in params.as_rows():
        key = item["parameter"]
        if key.startswith("special_event:"):
            label = f"特殊情形「{key.split(':', 1)[1]}」参保期限"
        else:
            label = PARAMETER_LABELS.get(key, key)
        value = _BOOL_LABELS.get(item["value"], item["value"])
        rows.append((label, value, item["citation"], key))
    prepared = [_prepare_text(values, "text", True, stats) for values in zip(*rows)] if rows else \
        [[] for _ in columns]
    widths = [column_width(c.header, _content_width(v, "text")) for c, v in zip(columns, prepared)]
    widths[2] = CITATION_COLUMN_WIDTH
    _set_up_list_sheet(ws, columns, widths, len(rows), fmts)
    for c, values in enumerate(prepared):
        for r, v in enumerate(values, 1):
            if v is not None:
                ws.write_string(r, c, v, fmts.wrap if c == 2 else fmts.top)
    # Neither Excel nor LibreOffice grows a row for wrapped text written by a
    # program, so the citation's lines are counted here (15 points a line).
    for r, citation in enumerate(prepared[2] if rows else [], 1):
        lines = -(-display_width(citation or "") // (CITATION_COLUMN_WIDTH - 2))
        if lines > 1:
            ws.set_row(r, 15 * lines)


def _write_fiscal_workbook(path: Path, con, run: _Run, coverage_year: int, params: Params) -> None:
    wb, handle = _open_workbook(path, run, f"{coverage_year}年度城乡居民医保财政补助资金测算表", params)
    try:
        fmts = _make_formats(wb)
        stats = _Stats()
        _write_fiscal_sheet(wb, fmts, _subsidy_rows(con, coverage_year), params, run, stats)
        _write_parameters_sheet(wb, fmts, params, stats)
        wb.close()
    finally:
        handle.close()


# --- entry point -------------------------------------------------------------------

def build_reports(con: duckdb.DuckDBPyConnection, run_id: str, coverage_year: int, out_dir: Path,
                  params: Params, *, unmask: bool = False,
                  max_rows_per_sheet: int = EXCEL_MAX_DATA_ROWS) -> list[tuple[Path, Path]]:
    """Write both workbooks to hidden `.{name}.tmp` files (mode 0600); return (temp, final) pairs.

    Nothing a person opens changes until `publish_reports`; the nightly run
    builds them inside its DuckDB transaction, from the rows about to be
    committed, and publishes right after the commit.
    """
    if not 1 <= max_rows_per_sheet <= EXCEL_MAX_DATA_ROWS:
        raise ValueError(f"max_rows_per_sheet must be 1..{EXCEL_MAX_DATA_ROWS}, got {max_rows_per_sheet}")
    run = _read_run(con, run_id, coverage_year)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    finals = [out_dir / RECONCILIATION_REPORT.format(year=coverage_year),
              out_dir / FISCAL_REPORT.format(year=coverage_year)]
    temps = [out_dir / f".{p.name}.tmp" for p in finals]
    try:
        _write_reconciliation_workbook(temps[0], con, run, coverage_year, params, unmask,
                                       max_rows_per_sheet)
        _write_fiscal_workbook(temps[1], con, run, coverage_year, params)
        for temp in temps:
            os.chmod(temp, 0o600)
    except BaseException:
        discard_reports(list(zip(temps, finals)))
        raise
    return list(zip(temps, finals))


def publish_reports(staged: list[tuple[Path, Path]]) -> list[Path]:
    """Move built workbooks onto their final names (an atomic rename each)."""
    for temp, final in staged:
        os.replace(temp, final)
    return [final for _, final in staged]


def discard_reports(staged: list[tuple[Path, Path]]) -> None:
    for temp, _ in staged:
        temp.unlink(missing_ok=True)


def write_reports(con: duckdb.DuckDBPyConnection, run_id: str, coverage_year: int, out_dir: Path,
                  params: Params, *, unmask: bool = False,
                  max_rows_per_sheet: int = EXCEL_MAX_DATA_ROWS) -> list[Path]:
    """Write 对账报告_{Y}.xlsx and 财政补助资金测算表_{Y}.xlsx into `out_dir`; return their paths.

    Both are built as temporary files first and moved into place only once
    both are complete, so a crash leaves the previous reports.
    """
    return publish_reports(build_reports(con, run_id, coverage_year, out_dir, params, unmask=unmask,
                                         max_rows_per_sheet=max_rows_per_sheet))
