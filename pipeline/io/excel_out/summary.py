"""The reconciliation report's first sheet: key figures, the list of lists, and three charts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
from xlsxwriter import Workbook

from pipeline.io.excel_out import queries
from pipeline.io.excel_out.cells import (
    EXCEL_CELL_MAX_CHARS,
    MAX_COLUMN_WIDTH,
    TRUNCATION_MARKER,
    Formats,
    Stats,
    content_width,
    display_width,
    excel_serial,
    write_text,
)
from pipeline.io.excel_out.queries import Run
from pipeline.params import Params
from pipeline.vocabulary import RUN_STATUS_NAMES, STATUS_NAMES, STATUSES, region_name

Worksheet = Any  # a worksheet made by Workbook.add_worksheet (its public methods only)
FONT = {"name": "宋体"}
GRIDLINES = {"visible": True, "line": {"color": "#D9D9D9"}}


@dataclass(frozen=True)
class ListEntry:
    """A list in the summary's list of lists: its sheets, rows, and the workbook holding it when that
    is another one (the phone lists', in the same folder)."""

    name: str
    sheets: list[str]
    rows: int
    workbook: str = ""


def _items(
    run: Run, coverage_year: int, params: Params, figures: dict[str, Any], stats: Stats, unmask: bool
) -> list[tuple[str, Any, str, str]]:
    region = run.region or params.region
    roster, enrolled = figures["roster"], figures["enrolled"]
    items: list[tuple[str, Any, str, str]] = [
        ("数据批次", run.fingerprint, "text", "输入文件与政策参数的指纹，对应数据库 runs.fingerprint"),
        ("待遇年度", coverage_year, "year", ""),
        ("地区", f"{region_name(region)} ({region})", "text", ""),
        ("数据日期", run.as_of_date, "date", "运行时间见数据库 runs 表"),
        ("运行状态", RUN_STATUS_NAMES.get(run.status or "", run.status), "text", ""),
        ("读取行数", run.rows_read, "count", "= 接收 + 校验未通过 + 跳过"),
        ("接收行数", run.rows_accepted, "count", ""),
        ("校验未通过行数", run.rows_rejected, "count", "明细见「校验未通过」"),
        ("跳过行数", run.rows_skipped, "count", "空行、合计/制表人等表尾行、完全重复行"),
        ("花名册人数", roster, "count", "参保登记花名册中校验通过的人数"),
        ("参保人数", enrolled, "count", ""),
        ("参保率", enrolled / roster if roster else None, "rate", "参保人数 ÷ 花名册人数"),
    ]
    items += [(f"{STATUS_NAMES[s]}人数", figures["by_status"].get(s, 0), "count", "") for s in STATUSES]
    items += [
        ("个人应缴总额(元)", figures["due"], "money", ""),
        ("个人实缴总额(元)", figures["collected"], "money", "缴费减退费后的净额"),
        ("应退费总额(元)", figures["refund"], "money", "多缴应退费人员的应退金额合计"),
        ("欠缴总额(元)", figures["outstanding"], "money", "少缴与未缴人员的差额合计"),
        ("无登记缴费笔数", figures["n_unmatched"], "count", "证件号码不在花名册或花名册行未通过校验"),
        ("无登记缴费金额(元)", figures["unmatched_amount"], "money", ""),
        (
            "被截断的单元格数",
            stats.truncated_cells,
            "count",
            f"超过{EXCEL_CELL_MAX_CHARS:,}字符的单元格已截断，以「{TRUNCATION_MARKER}」结尾",
        ),
        ("证件号码", "未脱敏(--unmask)" if unmask else "已脱敏", "text", "" if unmask else "仅显示前6位和后4位"),
    ]
    return items


def write_summary(
    summary: Worksheet,
    fmts: Formats,
    run: Run,
    coverage_year: int,
    params: Params,
    figures: dict[str, Any],
    lists: list[ListEntry],
    stats: Stats,
    unmask: bool,
) -> int:
    """Key figures and the list of lists (each linked to its first sheet, in this workbook or the one
    named beside it), in row order; returns the first free row below them."""
    items = _items(run, coverage_year, params, figures, stats, unmask)
    summary.write_string(0, 0, f"{coverage_year}年度城乡居民基本医疗保险缴费对账报告", fmts.title)
    summary.write_row(2, 0, ("项目", "数值", "说明"), fmts.header)
    row = 3
    for label, value, kind, note in items:
        summary.write_string(row, 0, label)
        if value is not None and kind == "text":
            summary.write_string(row, 1, str(value), fmts.value_text)
        elif value is not None:
            shown = excel_serial(value) if kind in ("datetime", "date") else value
            summary.write_number(row, 1, shown, fmts.number[kind])
        if note:
            summary.write_string(row, 2, note, fmts.note)
        row += 1
    row += 1
    summary.write_row(row, 0, ("清单", "行数", "工作表"), fmts.header)
    for entry in lists:
        row += 1
        where = f"external:{entry.workbook}#" if entry.workbook else "internal:"
        summary.write_url(row, 0, f"{where}'{entry.sheets[0]}'!A1", fmts.link, string=entry.name)
        summary.write_number(row, 1, entry.rows, fmts.number["count"])
        sheets = "、".join(entry.sheets)
        summary.write_string(row, 2, f"{entry.workbook}：{sheets}" if entry.workbook else sheets, fmts.note)
    summary.set_column(0, 0, 22)
    value_width = max((display_width(str(v)) for _, v, kind, _ in items if kind == "text" and v), default=0)
    summary.set_column(1, 1, min(MAX_COLUMN_WIDTH, max(24, value_width + 3)))
    summary.set_column(2, 2, 44)
    summary.set_column(3, 3, 2)
    summary.set_landscape()
    summary.set_paper(9)
    summary.fit_to_pages(1, 0)
    return row + 2


class _ChartData:
    """The tables behind the charts, one under the other on their own sheet."""

    def __init__(self, ws: Worksheet, fmts: Formats) -> None:
        self.ws, self.fmts, self.row = ws, fmts, 0
        self.widths = [0] * 6
        self.ranges: dict[str, tuple[int, int]] = {}

    def table(
        self, key: str, title: str, headers: Sequence[str], kinds: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        ws, fmts = self.ws, self.fmts
        ws.write_string(self.row, 0, title, fmts.title)
        ws.write_row(self.row + 1, 0, headers, fmts.header)
        self.widths = [max(w, display_width(h) + 2) for w, h in zip(self.widths, [*headers, *[""] * 6])]
        for r, values in enumerate(rows, self.row + 2):
            for c, (v, kind) in enumerate(zip(values, kinds)):
                if v is None:
                    continue
                if kind == "text":
                    write_text(ws, r, c, str(v), fmts)
                else:
                    ws.write_number(r, c, v, fmts.number[kind])
                self.widths[c] = max(self.widths[c], content_width([v], kind) + 2)
        self.ranges[key] = (self.row + 2, self.row + 1 + len(rows))
        self.row += len(rows) + 4


def write_chart_data(
    wb: Workbook, fmts: Formats, con: duckdb.DuckDBPyConnection, coverage_year: int, figures: dict[str, Any]
) -> tuple[dict[str, tuple[int, int]], int]:
    """The chart tables; returns each table's first and last data row, and the column holding the
    township bars' labels."""
    data = _ChartData(wb.add_worksheet("图表数据"), fmts)
    townships = queries.township_enrolment(con, coverage_year)
    # With several counties the chart labels a bar "county township" (a two-level axis prints the
    # county names sideways and unreadable).
    several = len({c for c, *_ in townships}) > 1
    data.table(
        "township",
        "按乡镇(街道)参保情况",
        ("县(市、区)", "乡镇(街道)", "参保登记人数", "参保人数", "参保率") + (("图表标签",) if several else ()),
        ("text", "text", "count", "count", "rate", "text"),
        [(c, t, n, e, e / n if n else None) + ((f"{c} {t}",) if several else ()) for c, t, n, e in townships],
    )
    data.table(
        "status",
        "按对账状态人数",
        ("对账状态", "人数"),
        ("text", "count"),
        [(STATUS_NAMES[s], figures["by_status"].get(s, 0)) for s in STATUSES],
    )
    data.table(
        "county",
        "按县(市、区)缴费情况(元)",
        ("县(市、区)", "个人应缴", "个人实缴", "应退费", "欠缴"),
        ("text", "money", "money", "money", "money"),
        queries.county_money(con, coverage_year),
    )
    for c, w in enumerate(data.widths):
        data.ws.set_column(c, c, min(MAX_COLUMN_WIDTH, w))
    data.ws.set_paper(9)
    data.ws.fit_to_pages(1, 0)
    return data.ranges, 5 if several else 1


def _column_chart(wb: Workbook, title: str, series: list[dict], legend: dict) -> Any:
    chart = wb.add_chart({"type": "column"})
    for s in series:
        chart.add_series(s)
    chart.set_title({"name": title, "name_font": {**FONT, "size": 12}})
    chart.set_x_axis({"num_font": FONT})
    chart.set_y_axis({"num_format": "#,##0", "num_font": FONT, "min": 0, "major_gridlines": GRIDLINES})
    chart.set_legend(legend)
    chart.set_size({"width": 560, "height": 300})
    return chart


def _township_chart(wb: Workbook, first: int, last: int, label_col: int) -> Any:
    """Each township's enrolment rate, a bar each, as tall as the townships need."""
    data = "'图表数据'"
    chart = wb.add_chart({"type": "bar"})
    chart.add_series(
        {
            "name": "参保率",
            "categories": [data, first, label_col, last, label_col],
            "values": [data, first, 4, last, 4],
            "fill": {"color": "#4472C4"},
            "gap": 50,
            "data_labels": {
                "value": True,
                "num_format": "0.0%",
                "position": "inside_end",
                "font": {**FONT, "color": "#FFFFFF", "bold": True},
            },
        }
    )
    chart.set_title({"name": "各乡镇(街道)参保率", "name_font": {**FONT, "size": 12}})
    chart.set_x_axis({"num_format": "0%", "min": 0, "max": 1, "num_font": FONT, "major_gridlines": GRIDLINES})
    chart.set_y_axis({"reverse": True, "crossing": "max", "num_font": FONT})
    chart.set_legend({"none": True})
    chart.set_size({"width": 1000, "height": max(300, 80 + 22 * (last - first + 1))})
    return chart


def add_charts(
    wb: Workbook, summary: Worksheet, ranges: dict[str, tuple[int, int]], label_col: int, township_row: int
) -> None:
    """Status counts and money by county beside the key figures; the township rates below them, full
    width, as tall as the townships need."""
    data = "'图表数据'"
    first, last = ranges["township"]
    if last >= first:
        summary.insert_chart(township_row, 0, _township_chart(wb, first, last, label_col))
    first, last = ranges["status"]
    status = {
        "name": "人数",
        "categories": [data, first, 0, last, 0],
        "values": [data, first, 1, last, 1],
        "fill": {"color": "#ED7D31"},
        "gap": 80,
        "data_labels": {"value": True, "font": FONT},
    }
    summary.insert_chart(2, 4, _column_chart(wb, "对账状态人数", [status], {"none": True}))
    first, last = ranges["county"]
    if last >= first:
        series = [
            {
                "name": name,
                "categories": [data, first, 0, last, 0],
                "values": [data, first, col, last, col],
                "fill": {"color": color},
                "gap": 80,
                "data_labels": {"value": True, "num_format": "#,##0", "font": FONT},
            }
            for col, name, color in ((1, "个人应缴", "#A5A5A5"), (2, "个人实缴", "#70AD47"))
        ]
        summary.insert_chart(
            18,
            4,
            _column_chart(wb, "各县(市、区)个人缴费: 应缴与实缴(元)", series, {"position": "bottom", "font": FONT}),
        )
