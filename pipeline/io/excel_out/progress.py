"""资助对象参保进展: the subsidy lists' enrolment progress by township and label (docs/RULES.md §9),
the rate of the group 农村低收入人口和脱贫人口 against its target, with a chart."""

from __future__ import annotations

import polars as pl
from xlsxwriter import Workbook

from pipeline.io.excel_out.cells import (
    NOT_GIVEN,
    Column,
    Formats,
    column_width,
    content_width,
    display_width,
    set_print_layout,
    write_text,
)
from pipeline.io.excel_out.summary import FONT, GRIDLINES
from pipeline.params import Params

SHEET = "资助对象参保进展"
COLUMNS = (
    Column("县(市、区)", "text"),
    Column("乡镇(街道)", "text"),
    Column("身份类别", "text"),
    Column("名单人数", "count"),
    Column("在花名册", "count"),
    Column("已参保", "count"),
    Column("参保率", "rate"),
    Column("目标参保率", "rate"),
)


def write_progress(wb: Workbook, fmts: Formats, rows: pl.DataFrame, params: Params, title: str) -> None:
    """One row per place and label, township by township (the group first), a rate below its target
    highlighted; notes; a chart of the group's rate by township."""
    ws = wb.add_worksheet(SHEET)
    group = params.groups[0].name if params.groups else ""
    widths = [column_width(c.header, content_width(rows[:, i + 1].to_list(), c.kind)) for i, c in enumerate(COLUMNS)]
    for c, (column, width) in enumerate(zip(COLUMNS, widths)):
        ws.set_column(c, c, width, fmts.number.get(column.kind))
    ws.write_row(0, 0, [c.header for c in COLUMNS], fmts.header)
    chart_rows: list[tuple[str, float]] = []
    several = rows.filter(pl.col("level") == "county").height > 1
    for r, (level, county, township, label, listed, on_roster, enrolled, rate, target) in enumerate(
        rows.iter_rows(), 1
    ):
        style = fmts.row_styles["township" if level == "township" else level]
        text_fmt, numbers = style[0], style[1]
        for c, text in enumerate((county, township, label)):
            write_text(ws, r, c, text, fmts, text_fmt)
        ws.write_row(r, 3, (listed, on_roster, enrolled), numbers["count"])
        below = target is not None and rate < target
        ws.write_number(r, 6, rate, fmts.warn if below else numbers["rate"])
        if label == group:
            ws.write(
                r, 7, target if target is not None else NOT_GIVEN, numbers["rate"] if target is not None else style[2]
            )
            if level == "township":
                chart_rows.append((f"{county} {township}" if several else township, rate))
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, rows.height, len(COLUMNS) - 1)
    set_print_layout(ws, title)
    target = params.low_income_enrolment_target
    notes = [
        f"名单人数：有效名单行中使有关人员享受全额或定额资助（或属于医疗救助对象）的人数；在花名册：花名册中有通过校验的行；"
        f"已参保：{params.coverage_year}年度已参保。参保率 = 已参保 ÷ 名单人数。",
        f"“{group}”：持有 {'、'.join(params.groups[0].labels) if params.groups else ''} 之一的名单人员，每人计一次"
        f"（{params.groups[0].cite if params.groups else ''}）。",
        (
            f"目标参保率 {float(target.value):.0%}（{target.cite}），低于目标的参保率以红色标出。"
            if target.value is not None
            else f"目标参保率：{NOT_GIVEN}（{target.cite}）。"
        ),
    ]
    _write_notes(ws, fmts, notes, rows.height + 2, sum(widths))
    if chart_rows:
        _chart(wb, ws, chart_rows, rows.height + len(notes) + 3, fmts, sum(widths[3:]))


def _write_notes(ws, fmts: Formats, notes: list[str], first_row: int, width_chars: int) -> None:
    """Each note wrapped across the table's width (so it prints on the page, not beyond it)."""
    for r, note in enumerate(notes, first_row):
        lines = -(-display_width(note) // max(width_chars - 2, 1))
        ws.set_row(r, 15 * lines)
        ws.merge_range(r, 0, r, len(COLUMNS) - 1, note, fmts.wrap_note)


def _chart(wb: Workbook, ws, chart_rows: list[tuple[str, float]], at_row: int, fmts: Formats, width_chars: int) -> None:
    """The group's enrolment rate by township: its data below the notes, the chart beside it, as wide
    as the columns it covers (about 7 pixels a character)."""
    ws.write_row(at_row, 0, ("乡镇(街道)", "参保率"), fmts.header)
    for r, (place, rate) in enumerate(chart_rows, at_row + 1):
        write_text(ws, r, 0, place, fmts)
        ws.write_number(r, 1, rate, fmts.number["rate"])
    first, last = at_row + 1, at_row + len(chart_rows)
    chart = wb.add_chart({"type": "bar"})
    chart.add_series(
        {
            "name": "参保率",
            "categories": [SHEET, first, 0, last, 0],
            "values": [SHEET, first, 1, last, 1],
            "fill": {"color": "#4472C4"},
            "gap": 50,
            "data_labels": {
                "value": True,
                "num_format": "0.0%",
                "font": {**FONT, "color": "#FFFFFF", "bold": True},
                "position": "inside_end",
            },
        }
    )
    chart.set_title({"name": "农村低收入人口和脱贫人口参保率(按乡镇)", "name_font": {**FONT, "size": 12}})
    chart.set_x_axis({"num_format": "0%", "min": 0, "max": 1, "num_font": FONT, "major_gridlines": GRIDLINES})
    chart.set_y_axis({"reverse": True, "crossing": "max", "num_font": FONT})
    chart.set_legend({"none": True})
    chart.set_size({"width": max(360, 7 * width_chars), "height": max(260, 80 + 22 * len(chart_rows))})
    ws.insert_chart(at_row, 3, chart)
