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
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import duckdb
import xlsxwriter
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from pipeline.errors import MedinsError
from pipeline.io.masking import mask_id, mask_ids_in_text
from pipeline.params import Params

EXCEL_MAX_DATA_ROWS = 1_048_575  # 1,048,576 rows less the header row
EXCEL_CELL_MAX_CHARS = 32_767  # counted in UTF-16 units, as Excel does
TRUNCATION_MARKER = "…[截断]"
MAX_COLUMN_WIDTH = 50
NOT_GIVEN = "未规定"

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


class ReportError(MedinsError):
    """The reports cannot be written for the run asked for."""

    exit_code = 6


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
    cut = text[:room]
    while _utf16_len(cut) > room:  # astral characters take two UTF-16 units
        cut = cut[:-1]
    return cut + TRUNCATION_MARKER, True


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
_STATUS_CHANGE_MISSING = {"previous": "(上次无此人)", "current": "(已不在花名册)"}


@dataclass
class _Formats:
    header: Any
    title: Any
    note: Any
    wrap: Any
    link: Any
    plain: Any
    number: dict[str, Any]
    subtotal_text: Any
    subtotal_number: dict[str, Any]
    total_text: Any
    total_number: dict[str, Any]


def _make_formats(wb: Workbook) -> _Formats:
    def numbers(extra: dict) -> dict[str, Any]:
        return {k: wb.add_format({"num_format": f, **extra}) for k, f in _NUMBER_FORMATS.items()}

    subtotal = {"bold": True, "bg_color": "#EDEDED"}
    total = {"bold": True, "bg_color": "#FFF2CC", "top": 1}
    return _Formats(
        header=wb.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1,
                              "align": "center", "valign": "vcenter", "text_wrap": True}),
        title=wb.add_format({"bold": True, "font_size": 14}),
        note=wb.add_format({"font_color": "#595959"}),
        wrap=wb.add_format({"text_wrap": True, "valign": "top"}),
        link=wb.add_format({"font_color": "#0563C1", "underline": 1}),
        plain=wb.add_format({}),
        number=numbers({}),
        subtotal_text=wb.add_format(subtotal),
        subtotal_number=numbers(subtotal),
        total_text=wb.add_format(total),
        total_number=numbers(total),
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
    out: list[str | None] = []
    append = out.append
    limit = EXCEL_CELL_MAX_CHARS // 2
    for v in values:
        if v is None or v == "":
            append(None)
            continue
        v = str(v)
        if len(v) > limit:
            v, cut = fit_cell_text(v)
            stats.truncated_cells += cut
        append(v)
    return out


def _prepare_number(values: Sequence[Any], kind: str) -> list[float | None]:
    if kind in ("date", "datetime"):
        return [None if v is None else excel_serial(v) for v in values]
    return [None if v is None else float(v) for v in values]


def _content_width(values: Sequence[Any], kind: str) -> int:
    present = [v for v in values if v is not None]
    if not present:
        return 0
    if kind in _TEXT_KINDS:
        return max(map(display_width, set(present)))
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


def _is_rich_string_lookalike(text: str) -> bool:
    # xlsxwriter stores a text that starts with <r> and ends with </r> as raw
    # rich-text XML; write such text as two plain fragments instead.
    return text.startswith("<r>") and text.endswith("</r>")


def _write_column(ws: Worksheet, col: int, values: Sequence[Any], kind: str,
                  fmts: _Formats, first_row: int = 1) -> None:
    if kind in _TEXT_KINDS:
        write = ws.write_string
        for r, v in enumerate(values, first_row):
            if v is not None:
                if v[0] == "<" and _is_rich_string_lookalike(v):
                    ws.write_rich_string(r, col, fmts.plain, v[:3], fmts.plain, v[3:])
                else:
                    write(r, col, v)
    else:
        write = ws.write_number
        fmt = fmts.number[kind]
        for r, v in enumerate(values, first_row):
            if v is not None:
                write(r, col, v, fmt)


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
               rows: Sequence[tuple], *, unmask: bool, max_rows_per_sheet: int,
               stats: _Stats) -> list[str]:
    """Write one exception list; past `max_rows_per_sheet` rows it continues on 名称(2), (3)...

    Returns the sheet names used. Work is linear in the cells: one pass per column.
    """
    raw_columns = list(zip(*rows)) if rows else [() for _ in columns]
    prepared = [
        _prepare_text(values, col.kind, unmask, stats) if col.kind in _TEXT_KINDS
        else _prepare_number(values, col.kind)
        for col, values in zip(columns, raw_columns)
    ]
    widths = [column_width(col.header, _content_width(values, col.kind))
              for col, values in zip(columns, prepared)]
    n = len(rows)
    names = []
    for part, start in enumerate(range(0, max(n, 1), max_rows_per_sheet)):
        name = base_name if part == 0 else f"{base_name}({part + 1})"
        end = min(n, start + max_rows_per_sheet)
        ws = wb.add_worksheet(name)
        _set_up_list_sheet(ws, columns, widths, end - start, fmts)
        for c, (col, values) in enumerate(zip(columns, prepared)):
            _write_column(ws, c, values[start:end], col.kind, fmts)
        names.append(name)
    return names


# --- reading ---------------------------------------------------------------------

def _money(expr: str) -> str:
    return f"CAST({expr} AS DOUBLE)"


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


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

    @property
    def created(self) -> dt.datetime:
        """The workbooks' creation time: the run's start, so reruns give identical bytes."""
        if self.started_at is not None:
            return self.started_at.replace(microsecond=0, tzinfo=None)
        return dt.datetime(self.coverage_year or 2000, 1, 1)


def _read_run(con: duckdb.DuckDBPyConnection, run_id: str, coverage_year: int) -> _Run:
    rows = _fetch(con, """
        SELECT run_id, started_at, finished_at, coverage_year, region,
               rows_read, rows_accepted, rows_rejected, rows_skipped, status
        FROM runs WHERE run_id = ?""", [run_id])
    if not rows:
        raise ReportError(f"找不到运行记录 {run_id} / no run '{run_id}' in table runs; "
                          "run `medins run` first")
    run = _Run(*rows[0])
    if run.coverage_year is not None and run.coverage_year != coverage_year:
        raise ReportError(f"运行 {run_id} 属于{run.coverage_year}年度,不是{coverage_year}年度 / run "
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


def _person_list(con, coverage_year: int, status: str, params: Params) -> list[tuple]:
    basis_sql, basis_params = _due_basis_sql(params)
    return _fetch(con, f"""
        SELECT r.name, r.id_number, r.county, r.township, r.village, r.tier,
               {_money('r.individual_due')}, {_money('r.net_paid')}, {_money('r.amount_diff')},
               r.n_payments, r.last_paid_on, COALESCE(r.refund_basis, {basis_sql})
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
    import tomllib

    path = Path(__file__).resolve().parents[2] / "schemas" / "headers.toml"
    names = {"id_number"}
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
        for kind in ("roster", "payments"):
            names.update(data[kind]["fields"]["id_number"]["aliases"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        names.update({"证件号码", "公民身份号码", "身份证号码", "身份证号", "缴费人证件号码"})
    return frozenset(names)


def _rejected_rows(con, coverage_year: int, unmask: bool) -> list[tuple]:
    rows = _fetch(con, """
        SELECT kind, source_file, sheet, row_number, "column", raw_value, reason, id_number
        FROM rejected_rows WHERE coverage_year = ?
        ORDER BY source_file, sheet, row_number, "column", raw_value""", [coverage_year])
    if unmask:
        return rows
    id_columns = _id_column_names()
    # A raw value under an ID header is masked whole (it may be a mangled ID the
    # free-text pattern would not recognise, such as 3.60222199001012E+17).
    return [r[:5] + (mask_id(r[5]),) + r[6:] if r[4] in id_columns and r[5] is not None else r
            for r in rows]


def _status_change_rows(con, run_id: str) -> list[tuple]:
    rows = _fetch(con, f"""
        SELECT name, id_number, county, township, previous_status, status,
               {_money('previous_amount_diff')}, {_money('amount_diff')}, previous_run_id
        FROM status_changes WHERE run_id = ?
        ORDER BY county, township, name, id_number""", [run_id])
    return [
        r[:4]
        + (STATUS_LABELS.get(r[4], r[4]) if r[4] is not None else _STATUS_CHANGE_MISSING["previous"],
           STATUS_LABELS.get(r[5], r[5]) if r[5] is not None else _STATUS_CHANGE_MISSING["current"])
        + r[6:]
        for r in rows
    ]


# --- reconciliation workbook -------------------------------------------------------

@dataclass(frozen=True)
class _ListSpec:
    name: str
    columns: tuple[Column, ...]
    rows: Callable[[], list[tuple]]


def _open_workbook(path: Path, run: _Run, title: str, params: Params) -> tuple[Workbook, Any]:
    path.unlink(missing_ok=True)
    handle = open(path, "wb", opener=lambda p, flags: os.open(p, flags, 0o600))
    wb = xlsxwriter.Workbook(handle, {
        "strings_to_formulas": False, "strings_to_urls": False,
        "strings_to_numbers": False, "constant_memory": False,
    })
    wb.set_properties({
        "title": title,
        "subject": f"{run.coverage_year}年度城乡居民基本医疗保险",
        "author": "medins",
        "company": REGION_LABELS.get(params.region, params.region),
        "comments": f"运行编号 run_id: {run.run_id}",
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
                      figures: dict[str, Any]) -> tuple[Worksheet, dict[str, tuple[int, int]]]:
    """The tables behind the charts, on their own sheet; returns each table's first/last data row."""
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
    widths = [0] * 5
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

    table("township", "按乡镇(街道)参保情况",
          ("县(市、区)", "乡镇(街道)", "参保登记人数", "参保人数", "参保率"),
          ("text", "text", "count", "count", "rate"),
          [(c, t, n, e, e / n if n else None) for c, t, n, e in townships])
    table("status", "按对账状态人数", ("对账状态", "人数"), ("text", "count"),
          [(STATUS_LABELS[s], figures["by_status"].get(s, 0)) for s in STATUS_ORDER])
    table("county", "按县(市、区)缴费情况(元)",
          ("县(市、区)", "个人应缴", "个人实缴", "应退费", "欠缴"),
          ("text", "money", "money", "money", "money"), counties)
    for c, w in enumerate(widths):
        ws.set_column(c, c, min(MAX_COLUMN_WIDTH, w))
    ws.set_paper(9)
    ws.fit_to_pages(1, 0)
    return ws, ranges


def _add_charts(wb: Workbook, summary: Worksheet, ranges: dict[str, tuple[int, int]],
                n_counties: int) -> None:
    data = "'图表数据'"
    font = {"name": "宋体"}

    first, last = ranges["township"]
    if last >= first:
        n = last - first + 1
        chart = wb.add_chart({"type": "bar"})
        categories = ([data, first, 0, last, 1] if n_counties > 1 else [data, first, 1, last, 1])
        chart.add_series({
            "name": "参保率", "categories": categories, "values": [data, first, 4, last, 4],
            "fill": {"color": "#4472C4"}, "gap": 60,
            "data_labels": {"value": True, "num_format": "0.0%", "font": font},
        })
        chart.set_title({"name": "各乡镇(街道)参保率", "name_font": {**font, "size": 12}})
        chart.set_x_axis({"num_format": "0%", "min": 0, "max": 1, "num_font": font,
                          "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}}})
        chart.set_y_axis({"reverse": True, "num_font": font})
        chart.set_legend({"none": True})
        chart.set_size({"width": 560, "height": max(300, 70 + 26 * n)})
        summary.insert_chart(2, 4, chart)
        status_row = 2 + max(300, 70 + 26 * n) // 20 + 2
    else:
        status_row = 2

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
        summary.insert_chart(status_row + 17, 4, chart)


def _write_summary(summary: Worksheet, fmts: _Formats, run: _Run, coverage_year: int,
                   params: Params, figures: dict[str, Any], lists: list[tuple[str, list[str], int]],
                   stats: _Stats, unmask: bool) -> None:
    region = run.region or params.region
    roster, enrolled = figures["roster"], figures["enrolled"]
    items: list[tuple[str, Any, str, str]] = [
        ("运行编号", run.run_id, "text", ""),
        ("待遇年度", coverage_year, "year", ""),
        ("地区", f"{REGION_LABELS.get(region, region)} ({region})", "text", ""),
        ("运行开始时间", run.started_at, "datetime", ""),
        ("运行结束时间", run.finished_at, "datetime", ""),
        ("运行状态", run.status, "text", ""),
        ("读取行数", run.rows_read, "count", "接收 + 校验未通过 + 跳过"),
        ("接收行数", run.rows_accepted, "count", ""),
        ("校验未通过行数", run.rows_rejected, "count", "明细见「校验未通过」"),
        ("跳过行数", run.rows_skipped, "count", "空行、合计/制表人等表尾行、完全重复行"),
        ("花名册人数", roster, "count", "参保登记花名册中校验通过的人数"),
        ("参保人数", enrolled, "count", ""),
        ("参保率", enrolled / roster if roster else None, "rate", "参保人数 / 花名册人数"),
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
         f"超过{EXCEL_CELL_MAX_CHARS:,}字符的单元格已截断,以「{TRUNCATION_MARKER}」结尾"),
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
            summary.write_string(row, 1, str(value))
        elif kind == "datetime":
            summary.write_number(row, 1, excel_serial(value), fmts.number["datetime"])
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
        summary.write_string(row, 2, "、".join(sheets))
    summary.set_column(0, 0, 22)
    summary.set_column(1, 1, 24)
    summary.set_column(2, 2, 44)
    summary.set_column(3, 3, 2)
    summary.set_landscape()
    summary.set_paper(9)
    summary.fit_to_pages(1, 1)


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
            _ListSpec("无登记缴费", UNMATCHED_COLUMNS, lambda: _fetch(con, f"""
                SELECT name, id_number, {_money('amount')}, paid_on, ticket_no, reason,
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
            lists.append((spec.name, sheets, len(rows)))
            del rows
        figures = _summary_figures(con, coverage_year)
        _, ranges = _write_chart_data(wb, fmts, con, coverage_year, figures)
        n_counties = _fetch(con, "SELECT count(DISTINCT county) FROM determinations "
                                 "WHERE coverage_year = ?", [coverage_year])[0][0]
        _write_summary(summary, fmts, run, coverage_year, params, figures, lists, stats, unmask)
        _add_charts(wb, summary, ranges, n_counties)
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
        if level == "total":
            text_fmt, number_fmts = fmts.total_text, fmts.total_number
        elif level == "county":
            text_fmt, number_fmts = fmts.subtotal_text, fmts.subtotal_number
        else:
            text_fmt, number_fmts = None, fmts.number
        for c, (col, v) in enumerate(zip(FISCAL_COLUMNS, values)):
            if c in not_given_columns:
                ws.write_string(r, c, NOT_GIVEN, text_fmt)
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
        "金额单位:元。财政补助总额 = 参保人数 × 人均财政补助标准"
        f"({params.fiscal_per_capita_yuan.value}元,{params.fiscal_per_capita_yuan.cite})。",
        (f"中央财政补助比例:{float(share.value):.0%}({share.cite});地方财政 = 财政补助总额 − 中央财政。"
         if central_given else f"中央财政补助比例:{NOT_GIVEN}({share.cite}),本年度不拆分中央与地方。"),
        (f"大病保险人均筹资:{critical.value}元({critical.cite})。" if critical_given
         else f"大病保险人均筹资:{NOT_GIVEN}({critical.cite})。"),
        "小计行为各县(市、区)合计,合计行为全部县(市、区)合计;参保率 = 参保人数 / 参保登记人数。",
        f"数据来自运行 {run.run_id}(开始于 {run.created:%Y-%m-%d %H:%M:%S}),"
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
        rows.append((label, item["value"], item["citation"], key))
    prepared = [_prepare_text(values, "text", True, stats) for values in zip(*rows)] if rows else \
        [[] for _ in columns]
    widths = [column_width(c.header, _content_width(v, "text")) for c, v in zip(columns, prepared)]
    widths[2] = max(widths[2], 60)
    _set_up_list_sheet(ws, columns, widths, len(rows), fmts)
    for c, values in enumerate(prepared):
        for r, v in enumerate(values, 1):
            if v is not None:
                ws.write_string(r, c, v, fmts.wrap if c == 2 else None)


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

def write_reports(con: duckdb.DuckDBPyConnection, run_id: str, coverage_year: int, out_dir: Path,
                  params: Params, *, unmask: bool = False,
                  max_rows_per_sheet: int = EXCEL_MAX_DATA_ROWS) -> list[Path]:
    """Write 对账报告_{Y}.xlsx and 财政补助资金测算表_{Y}.xlsx into `out_dir`; return their paths.

    Both are written to hidden `.{name}.tmp` files (mode 0600) and moved into
    place only once both are complete, so a crash leaves the previous reports.
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
        for temp, final in zip(temps, finals):
            os.chmod(temp, 0o600)
            os.replace(temp, final)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    return finals
