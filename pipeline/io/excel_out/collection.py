"""征缴进度 and 上年参保未续保 (docs/RULES.md §10): the night's snapshot township by township against
last year, with the year's enrolment curve beside last year's; and the list of last year's insured
who have not renewed, printable like the other lists.

Read from the snapshots in `collection_progress` and the rows of `not_renewed`: the chart's series
point at the cells where the snapshot rows are written on the sheet, below the table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl
from xlsxwriter import Workbook

from pipeline.io.excel_out.cells import (
    Column,
    Formats,
    column_width,
    content_width,
    display_width,
    excel_serial,
    page_title,
    write_text,
)
from pipeline.io.excel_out.queries import fetch, fetch_frame
from pipeline.io.excel_out.summary import FONT, GRIDLINES
from pipeline.params import Params, load_params
from pipeline.vocabulary import NOT_RENEWED_REASON_NAMES

SHEET = "征缴进度"
LIST_SHEET = "上年参保未续保"
CHANGE_DAYS = 7  # 较7天前: against the latest snapshot dated on or before D - 7 days (docs/RULES.md §10)
COLUMNS = (
    Column("县(市、区)", "text"),
    Column("乡镇(街道)", "text"),
    Column("上年参保人数", "count"),
    Column("本年已参保", "count"),
    Column("续保人数", "count"),
    Column("续保率", "rate"),
    Column("新增参保", "count"),
    Column(f"较{CHANGE_DAYS}天前增加", "count"),
    Column("排名", "count"),
)
CHART_ROWS = 18  # rows of 20 pixels the chart covers
CURVE_HEADERS = ("数据日期", "距征缴期开始天数", "已参保人数")
LAST_YEAR_HEADERS = ("上年数据日期", "距征缴期开始天数", "对应本年日期", "上年已参保人数")
LAST_YEAR_COLUMN = len(CURVE_HEADERS) + 1


@dataclass(frozen=True)
class Snapshot:
    """One night's snapshot as the sheet shows it: its rows, the date of the snapshot a week earlier
    compared with (None: none), and the Y-1 run compared with (None: no Y-1 run)."""

    coverage_year: int
    data_date: dt.date
    rows: pl.DataFrame
    week_before: dt.date | None
    prev_run_id: str | None


def read_snapshot(con: duckdb.DuckDBPyConnection, coverage_year: int, data_date: dt.date) -> Snapshot:
    """The snapshot of (Y, D): per place last year's insured, enrolled, renewed, rate, new, the change
    against the latest snapshot dated on or before D - 7 (empty where none, or where it has no row for
    the place) and the rank of a township in its county by renewal rate (1, 1, 3)."""
    week = fetch(
        con,
        "SELECT max(data_date) FROM collection_progress WHERE coverage_year = ? AND data_date <= ?",
        [coverage_year, data_date - dt.timedelta(days=CHANGE_DAYS)],
    )[0][0]
    rows = con.sql(
        """
        WITH s AS (SELECT * FROM collection_progress WHERE coverage_year = $year AND data_date = $date),
             w AS (SELECT * FROM collection_progress WHERE coverage_year = $year AND data_date = $week)
        SELECT s.level, coalesce(s.county, '合计') AS county,
               coalesce(s.township, CASE s.level WHEN 'county' THEN '小计' ELSE '合计' END) AS township,
               s.prev_enrolled_count, s.enrolled_count, s.renewed_count, s.renewal_rate, s.new_enrolled_count,
               s.enrolled_count - w.enrolled_count AS change,
               CASE WHEN s.level = 'township' AND s.renewal_rate IS NOT NULL
                    THEN rank() OVER (PARTITION BY s.level, s.county, s.renewal_rate IS NULL
                                      ORDER BY s.renewal_rate DESC) END AS rank,
               s.prev_run_id
        FROM s LEFT JOIN w ON w.level = s.level AND w.county IS NOT DISTINCT FROM s.county
                          AND w.township IS NOT DISTINCT FROM s.township
        ORDER BY CASE s.level WHEN 'total' THEN 1 ELSE 0 END, s.county,
                 CASE s.level WHEN 'township' THEN 0 ELSE 1 END, s.township""",
        params={"year": coverage_year, "date": data_date, "week": week},
    ).pl()
    prev = rows["prev_run_id"].drop_nulls()
    return Snapshot(coverage_year, data_date, rows.drop("prev_run_id"), week, prev[0] if prev.len() else None)


def enrolment_curve(con: duckdb.DuckDBPyConnection, coverage_year: int) -> list[tuple[dt.date, int]]:
    """The year's enrolled count (total level) by data date, every snapshot."""
    return [
        (d, int(n))
        for d, n in fetch(
            con,
            """
            SELECT data_date, enrolled_count FROM collection_progress
            WHERE coverage_year = ? AND level = 'total' ORDER BY data_date""",
            [coverage_year],
        )
    ]


def not_renewed_rows(con: duckdb.DuckDBPyConnection, coverage_year: int) -> pl.DataFrame:
    """Last year's insured not enrolled tonight, by last year's township and village, reasons in words."""
    rows = fetch_frame(
        con,
        """
        SELECT name, id_number, phone, county, township, village, reason
        FROM not_renewed WHERE coverage_year = ?
        ORDER BY county, township, village, reason, name, id_number""",
        [coverage_year],
    )
    return rows.with_columns(pl.col("reason").replace(NOT_RENEWED_REASON_NAMES))


def write_collection_progress(
    wb: Workbook, fmts: Formats, con: duckdb.DuckDBPyConnection, snapshot: Snapshot, params: Params, title: str
) -> None:
    """The sheet 征缴进度: the table, its notes, the curves' data below them and the chart beside it.
    Rows are written top to bottom (the workbook streams them: constant_memory). No snapshot of the
    data date (a database no night of this version wrote): no sheet."""
    rows = snapshot.rows
    if rows.height == 0:
        return
    ws = wb.add_worksheet(SHEET)
    widths = [column_width(c.header, content_width(rows[:, i + 1].to_list(), c.kind)) for i, c in enumerate(COLUMNS)]
    widths[0] = max(widths[0], 14)  # the data block's dates below (数据日期 and 上年数据日期)
    for c, (column, width) in enumerate(zip(COLUMNS, widths)):
        ws.set_column(c, c, width, fmts.number.get(column.kind))
    ws.write_row(0, 0, [c.header for c in COLUMNS], fmts.header)
    for r, values in enumerate(rows.iter_rows(), 1):
        _write_place_row(ws, r, values, fmts)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, rows.height, len(COLUMNS) - 1)
    ws.set_landscape()
    ws.set_paper(9)
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0)
    ws.set_header(page_title(title))
    ws.set_footer("&C第 &P 页 / 共 &N 页")
    notes = _notes(snapshot)
    for r, note in enumerate(notes, rows.height + 2):  # each wrapped across the table's width
        ws.set_row(r, 15 * -(-display_width(note) // max(sum(widths) - 4, 1)))
        ws.merge_range(r, 0, r, len(COLUMNS) - 1, note, fmts.wrap_note)
    # the chart below the notes, as wide as the table; the snapshot rows it draws below the chart
    at_row = rows.height + len(notes) + 3
    curves = read_curves(con, snapshot.coverage_year, params)
    if curves.this_year:
        chart = _chart(wb, snapshot, curves, at_row + CHART_ROWS + 1)
        chart.set_size({"width": max(480, 7 * sum(widths)), "height": 20 * CHART_ROWS})
        ws.insert_chart(at_row, 0, chart)
    _write_curves(ws, fmts, at_row + CHART_ROWS + 1, curves)


def _write_place_row(ws: Any, r: int, values: tuple, fmts: Formats) -> None:
    """One place: text, counts and the rate in its level's style; an empty figure left empty."""
    level, county, township, *figures = values
    text_fmt, numbers, _ = fmts.row_styles["township" if level == "township" else level]
    write_text(ws, r, 0, county, fmts, text_fmt)
    write_text(ws, r, 1, township, fmts, text_fmt)
    for c, (column, value) in enumerate(zip(COLUMNS[2:], figures), 2):
        if value is not None:
            ws.write_number(r, c, value, numbers[column.kind])
        elif text_fmt is not None:  # a subtotal's empty figure keeps the row's shading
            ws.write_blank(r, c, None, text_fmt)


def _notes(snapshot: Snapshot) -> list[str]:
    y, d = snapshot.coverage_year, snapshot.data_date
    if snapshot.prev_run_id is None:
        last = f"数据库中没有{y - 1}年度的运行结果：上年参保人数、续保人数、续保率、新增参保和排名为空。"
    else:
        last = (
            f"上年参保人数：{y - 1}年度最近一次运行（{snapshot.prev_run_id}）判定已参保的人，按其{y - 1}年度的县、乡镇计；"
            f"续保人数：其中{y}年度已参保的人，同样按上年的乡镇计；续保率 = 续保人数 ÷ 上年参保人数；"
            f"排名：同一县内各乡镇按续保率从高到低，续保率相同名次相同。"
        )
    week = (
        f"较{CHANGE_DAYS}天前增加：与{snapshot.week_before}的快照（{d - dt.timedelta(days=CHANGE_DAYS)}"
        f"或之前最近的一次）相比，本年已参保人数的增加。"
        if snapshot.week_before
        else f"较{CHANGE_DAYS}天前增加：没有{d - dt.timedelta(days=CHANGE_DAYS)}或之前的快照，暂为空。"
    )
    return [
        f"本年已参保：数据日期{d}为止{y}年度已参保的人，按本年花名册的县、乡镇计。" + last,
        "新增参保：本年已参保而上年未参保的人（新生儿、外地迁入、断保后重新参保），按本年的乡镇计。"
        "跨乡镇迁移的人在原乡镇计为续保、不计新增，所以各乡镇的已参保不一定等于续保加新增，合计行相等。" + week,
    ]


@dataclass(frozen=True)
class Curves:
    """The chart's points: this year's snapshots (date, days since this year's collection start,
    enrolled) and last year's (date, days since last year's start, the date as many days after this
    year's start, enrolled), those of them no later in their period than `horizon_days`: the end of
    this year's collection period or its latest snapshot, whichever is later."""

    start: dt.date
    horizon_days: int
    this_year: list[tuple[dt.date, int, int]]
    last_year: list[tuple[dt.date, int, dt.date, int]]


def read_curves(con: duckdb.DuckDBPyConnection, coverage_year: int, params: Params) -> Curves:
    """Total enrolled by data date for Y, and for Y-1 aligned by days since each year's collection start."""
    start = params.collection_start.value
    this_year = [(d, (d - start).days, n) for d, n in enrolment_curve(con, coverage_year)]
    horizon = max([(params.collection_end.value - start).days, *(days for _, days, _ in this_year)])
    last = enrolment_curve(con, coverage_year - 1)
    last_year = []
    if last:
        last_start = load_params(coverage_year - 1, params.region).collection_start.value
        last_year = [
            (d, (d - last_start).days, start + (d - last_start), n) for d, n in last if (d - last_start).days <= horizon
        ]
    return Curves(start, horizon, this_year, last_year)


def _write_curves(
    ws: Any,
    fmts: Formats,
    header_row: int,
    curves: Curves,
) -> None:
    """The snapshots the chart draws: this year's in columns A-C, last year's in E-H, row by row."""
    this_year, last_year = curves.this_year, curves.last_year
    ws.set_row(header_row, 30)
    ws.write_row(header_row, 0, CURVE_HEADERS, fmts.header)
    if last_year:
        ws.write_row(header_row, LAST_YEAR_COLUMN, LAST_YEAR_HEADERS, fmts.header)
    date, count = fmts.number["date"], fmts.number["count"]
    for i in range(max(len(this_year), len(last_year))):
        r = header_row + 1 + i
        if i < len(this_year):
            d, days, n = this_year[i]
            ws.write_number(r, 0, excel_serial(d), date)
            ws.write_number(r, 1, days, count)
            ws.write_number(r, 2, n, count)
        if i < len(last_year):
            d, days, aligned, n = last_year[i]
            ws.write_number(r, LAST_YEAR_COLUMN, excel_serial(d), date)
            ws.write_number(r, LAST_YEAR_COLUMN + 1, days, count)
            ws.write_number(r, LAST_YEAR_COLUMN + 2, excel_serial(aligned), date)
            ws.write_number(r, LAST_YEAR_COLUMN + 3, n, count)


def _chart(
    wb: Workbook,
    snapshot: Snapshot,
    curves: Curves,
    header_row: int,
) -> Any:
    """Enrolled by data date, this year's line and last year's beside it (its dates moved to as many
    days after this year's collection start), from this year's collection start on."""
    y, first = snapshot.coverage_year, header_row + 1
    this_year, last_year = curves.this_year, curves.last_year
    chart = wb.add_chart({"type": "scatter", "subtype": "straight_with_markers"})
    chart.add_series(
        {
            "name": f"{y}年度",
            "categories": [SHEET, first, 0, first + len(this_year) - 1, 0],
            "values": [SHEET, first, 2, first + len(this_year) - 1, 2],
            "line": {"color": "#C00000", "width": 2.25},
            "marker": {"type": "circle", "size": 5, "fill": {"color": "#C00000"}, "border": {"color": "#C00000"}},
        }
    )
    if last_year:
        last = first + len(last_year) - 1
        chart.add_series(
            {
                "name": f"{y - 1}年度（按距征缴期开始天数对齐）",
                "categories": [SHEET, first, LAST_YEAR_COLUMN + 2, last, LAST_YEAR_COLUMN + 2],
                "values": [SHEET, first, LAST_YEAR_COLUMN + 3, last, LAST_YEAR_COLUMN + 3],
                "line": {"color": "#7F7F7F", "width": 1.5, "dash_type": "dash"},
                "marker": {"type": "none"},
            }
        )
    chart.set_title({"name": f"{y}年度已参保人数（合计）与上年同期", "name_font": {**FONT, "size": 12}})
    chart.set_x_axis(
        {
            "name": "数据日期",
            "name_font": {**FONT, "size": 9},
            "num_format": "m月d日",
            "num_font": FONT,
            "major_gridlines": GRIDLINES,
            "min": excel_serial(curves.start) + min([0, *(t[1] for t in this_year), *(t[1] for t in last_year)]),
            "max": excel_serial(curves.start) + curves.horizon_days,
            # about ten labels: a week, a fortnight or a month apart
            "major_unit": next((days for days in (7, 14) if curves.horizon_days <= 10 * days), 30),
        }
    )
    chart.set_y_axis(
        {
            "name": "已参保人数",
            "name_font": {**FONT, "size": 9},
            "min": 0,
            "num_format": "#,##0",
            "num_font": FONT,
            "major_gridlines": GRIDLINES,
        }
    )
    chart.set_legend({"position": "bottom", "font": FONT})
    return chart


def has_previous_year(con: duckdb.DuckDBPyConnection, coverage_year: int, data_date: dt.date) -> bool:
    """Tonight's snapshot was taken against a run for Y-1 (docs/RULES.md §10): the list exists."""
    return bool(
        fetch(
            con,
            "SELECT EXISTS (SELECT 1 FROM collection_progress WHERE coverage_year = ? AND data_date = ?"
            " AND prev_run_id IS NOT NULL)",
            [coverage_year, data_date],
        )[0][0]
    )


def not_renewed_size(con: duckdb.DuckDBPyConnection, coverage_year: int) -> tuple[int, int]:
    """How many persons, in how many townships (as `not_renewed_rows` groups them)."""
    n, places = fetch(
        con,
        "SELECT coalesce(sum(n), 0), count(*) FROM (SELECT count(*) AS n FROM not_renewed WHERE coverage_year = ?"
        " GROUP BY county, township)",
        [coverage_year],
    )[0]
    return int(n), int(places)
