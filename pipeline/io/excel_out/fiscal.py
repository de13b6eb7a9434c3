"""财政补助资金测算表: the totals of docs/RULES.md §8, the grand total first (finance's figure, with
the central and local shares), then each county's subtotal over its townships and tiers; and the
parameters with their citations, their values in words."""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl
from xlsxwriter import Workbook

from pipeline.io.excel_out import queries
from pipeline.io.excel_out.cells import (
    CITATION_COLUMN_WIDTH,
    EXCEL_MAX_DATA_ROWS,
    MAX_COLUMN_WIDTH,
    NOT_GIVEN,
    ROW_HEIGHT_PT,
    TEXT_KINDS,
    Column,
    Formats,
    Stats,
    content_width,
    display_width,
    fit_cell_text,
    write_text,
)
from pipeline.io.excel_out.lists import set_up_list_sheet, write_list
from pipeline.io.excel_out.queries import Run
from pipeline.params import Params
from pipeline.vocabulary import MODEL_NAMES, PARAMETER_NAMES, TIER_NAMES

TIER_ORDER = ("all", "full", "fixed", "none")  # a place's 全部 row first, then its tiers
FISCAL_COLUMNS = (
    Column("县(市、区)", "text"),
    Column("乡镇(街道)", "text"),
    Column("资助类别", "tier"),
    Column("参保登记人数", "count"),
    Column("参保人数", "count"),
    Column("参保率", "rate"),
    Column("财政补助总额", "money"),
    Column("中央财政", "money"),
    Column("地方财政", "money"),
    Column("资助参保金额", "money"),
    Column("大病保险", "money"),
    Column("个人应缴", "money"),
    Column("个人实缴", "money"),
)
_CENTRAL_COLUMNS = (7, 8)
_CRITICAL_ILLNESS_COLUMN = 10
_BOOL_NAMES = {"True": "是", "False": "否"}
_SHARES = frozenset({"central_share", "low_income_enrolment_target"})  # shown as a percentage
PARAMETER_COLUMNS = (
    Column("参数", "text", "label", 30),
    Column("取值", "text", "value", 30),
    Column("依据", "text", "citation", CITATION_COLUMN_WIDTH),
    Column("参数代码", "text", "code", 30),
)


def _cells(rows: list[tuple], params: Params, stats: Stats) -> list[tuple[str, list[Any]]]:
    """Per row its style and its values as written (tier names, cut text, 未规定 where not given)."""
    not_given: set[int] = set()
    if params.central_share.value is None:
        not_given.update(_CENTRAL_COLUMNS)
    if params.critical_illness_per_capita_yuan.value is None:
        not_given.add(_CRITICAL_ILLNESS_COLUMN)
    out = []
    for level, *values in rows:
        style = "township_all_tiers" if level == "township" and values[2] == "all" else level
        shown: list[Any] = []
        for c, (col, v) in enumerate(zip(FISCAL_COLUMNS, values)):
            if c in not_given:
                shown.append(NOT_GIVEN)
            elif col.kind in TEXT_KINDS:
                text, cut = fit_cell_text("" if v is None else TIER_NAMES.get(v, v) if col.kind == "tier" else str(v))
                stats.truncated_cells += cut
                shown.append(text or None)
            else:
                shown.append(None if v is None else float(v))
        out.append((style, shown))
    return out


def _header_width(header: str) -> int:
    """The header row is two lines tall: a header of six characters or more wraps after its first
    half (参保登记 | 人数), so a column is as wide as its amounts and the 13 columns print larger."""
    width = display_width(header)
    return (width + 1) // 2 + 3 if width >= 12 else width + 2


def _write_fiscal_sheet(
    wb: Workbook, fmts: Formats, rows: list[tuple], params: Params, run: Run, stats: Stats, title: str
) -> None:
    ws = wb.add_worksheet("财政补助测算")
    cells = _cells(rows, params, stats)
    widths = [
        min(
            MAX_COLUMN_WIDTH,
            max(
                [_header_width(col.header)]
                + [
                    content_width([v], "text" if isinstance(v, str) else col.kind) + 2
                    for _, shown in cells
                    if (v := shown[c]) is not None
                ]
            ),
        )
        for c, col in enumerate(FISCAL_COLUMNS)
    ]
    ws.set_row(0, 2 * ROW_HEIGHT_PT)
    set_up_list_sheet(ws, FISCAL_COLUMNS, widths, len(rows), fmts, title)
    for r, (style, shown) in enumerate(cells, 1):
        text_fmt, number_fmts, not_given_fmt = fmts.row_styles.get(style, fmts.row_styles["township"])
        for c, (col, v) in enumerate(zip(FISCAL_COLUMNS, shown)):
            if v == NOT_GIVEN and col.kind not in TEXT_KINDS:
                ws.write_string(r, c, v, not_given_fmt)
            elif isinstance(v, str):
                write_text(ws, r, c, v, fmts, text_fmt)
            elif v is not None:
                ws.write_number(r, c, v, number_fmts[col.kind])
            elif text_fmt is not None:
                ws.write_blank(r, c, None, number_fmts[col.kind] if col.kind not in TEXT_KINDS else text_fmt)
    for i, note in enumerate(_notes(params, run), len(rows) + 2):
        ws.write_string(i, 0, note, fmts.note)


def _notes(params: Params, run: Run) -> list[str]:
    share, critical = params.central_share, params.critical_illness_per_capita_yuan
    return [
        "金额单位：元。财政补助总额 = 参保人数 × 人均财政补助标准"
        f"（{params.fiscal_per_capita_yuan.value}元，{params.fiscal_per_capita_yuan.cite}）。",
        (
            f"中央财政补助比例：{float(share.value):.0%}（{share.cite}）；地方财政 = 财政补助总额 − 中央财政。"
            if share.value is not None
            else f"中央财政补助比例：{NOT_GIVEN}（{share.cite}），本年度不拆分中央与地方。"
        ),
        (
            f"大病保险人均筹资：{critical.value}元（{critical.cite}）。"
            if critical.value is not None
            else f"大病保险人均筹资：{NOT_GIVEN}（{critical.cite}）。"
        ),
        "资助参保金额为实际支付的资助（征缴期结束后认定、已自缴全额的人员不再计入）。",
        "第一行「合计」为全部县(市、区)合计；各县(市、区)的「小计」行在其乡镇(街道)之前；参保率 = 参保人数 ÷ 参保登记人数。",
        f"数据批次 {run.fingerprint}（数据日期 {run.created:%Y-%m-%d}），参数文件 {'、'.join(params.sources)}。",
    ]


def _value_in_words(key: str, value: str) -> str:
    """A parameter's value as the bureau says it: a model in words, 是/否, a share as a percentage."""
    if key in MODEL_NAMES:
        return MODEL_NAMES[key].get(value, value)
    if key in _SHARES and value != NOT_GIVEN:
        return f"{float(value) * 100:g}%"
    return _BOOL_NAMES.get(value, value)


def _write_parameters_sheet(wb: Workbook, fmts: Formats, params: Params, stats: Stats, title: str) -> None:
    rows = [
        {
            "label": (
                f"特殊情形「{key.split(':', 1)[1]}」参保期限"
                if (key := item["parameter"]).startswith("special_event:")
                else PARAMETER_NAMES.get(key, key)
            ),
            "value": _value_in_words(key, item["value"]),
            "citation": item["citation"],
            "code": key,
        }
        for item in params.as_rows()
    ]
    frame = pl.DataFrame(rows, schema=dict.fromkeys(("label", "value", "citation", "code"), pl.Utf8))
    write_list(
        wb,
        fmts,
        "参数及依据",
        PARAMETER_COLUMNS,
        frame,
        unmask=True,
        max_rows_per_sheet=EXCEL_MAX_DATA_ROWS,
        stats=stats,
        title=title,
    )


def write_fiscal_workbook(
    wb: Workbook,
    fmts: Formats,
    con: duckdb.DuckDBPyConnection,
    run: Run,
    coverage_year: int,
    params: Params,
    place: str,
) -> None:
    stats = Stats()
    rows = queries.subsidy_rows(con, coverage_year, TIER_ORDER)
    date = f"{run.as_of_date}" if run.as_of_date else ""
    _write_fiscal_sheet(
        wb, fmts, rows, params, run, stats, f"{place}{coverage_year}年度财政补助资金测算 数据日期{date}"
    )
    _write_parameters_sheet(wb, fmts, params, stats, f"{coverage_year}年度政策参数及依据")
