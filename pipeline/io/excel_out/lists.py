"""Exception lists as sheets a clerk can filter on screen and print for the phone or the door.

A list is a polars frame of named fields shown as `Column`s (money in integer
fen, dates as Excel serial days). Its cells are prepared in polars (masking,
labels, yuan, line counts) and written row by row through xlsxwriter's public
API in `constant_memory` mode; past `max_rows_per_sheet` rows it continues on
名称(2), (3)...

On paper (README "The workbooks"): every list prints on A4 across, fit to the
page width, its header row on every page and a title naming the list, year and
data date. Text wider than its column wraps inside it, so the columns' widths
alone set the scale, and each list's columns are chosen to print its body at
9 pt or more. A list of persons by township (`grouped`) has a heading row
(county, township, how many) above each township's rows; a township of
NEW_PAGE_LINES printed lines or more has pages of its own, smaller ones follow
one another on a page and start a new page only when they would not fit on
what is left of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
from xlsxwriter import Workbook

from pipeline.io.excel_out.cells import (
    EXCEL_CELL_MAX_CHARS,
    EXCEL_MAX_PAGE_BREAKS,
    EXCEL_UNIT_PT,
    HEADING_HEIGHT_PT,
    MAX_COLUMN_WIDTH,
    PRINTABLE_PT,
    ROW_HEIGHT_PT,
    TEXT_KINDS,
    Column,
    Formats,
    Stats,
    column_width,
    content_width,
    display_width,
    fit_cell_text,
    looks_rich,
    print_scale,
    set_print_layout,
    write_text,
)
from pipeline.io.masking import mask_id_expr, mask_ids_in_text_expr
from pipeline.vocabulary import KIND_NAMES, NOT_ENROLLED_REASON_NAMES, STATUS_NAMES, TIER_NAMES

Worksheet = Any  # a worksheet made by Workbook.add_worksheet (its public methods only)

_LABELS = {"tier": TIER_NAMES, "status": STATUS_NAMES, "kind": KIND_NAMES, "reason": NOT_ENROLLED_REASON_NAMES}
GROUP_FIELDS = ("county", "township")  # a grouped list's rows come sorted by these
NEW_PAGE_LINES = 15  # a township printing this many lines (about half a page) or more has pages of its own


def _shown_text(expr: pl.Expr, kind: str, unmask: bool) -> pl.Expr:
    """What a text column of a list shows: masked, labelled, empty text as no value."""
    if kind == "id" and not unmask:
        expr = mask_id_expr(expr)
    elif kind == "free" and not unmask:
        expr = mask_ids_in_text_expr(expr)
    elif kind in _LABELS:
        expr = expr.replace(_LABELS[kind])
    return pl.when(expr == "").then(None).otherwise(expr)


def prepare_list(frame: pl.DataFrame, columns: Sequence[Column], unmask: bool, stats: Stats) -> pl.DataFrame:
    """Column c_i: the text of a text column (as shown), or the number of a numeric one (money in
    yuan, dates as serial days); a text longer than a cell holds is cut and counted."""
    exprs = []
    for i, col in enumerate(columns):
        value = pl.col(col.field)
        if col.kind in TEXT_KINDS:
            exprs.append(_shown_text(value.cast(pl.Utf8), col.kind, unmask).alias(f"c{i}"))
        elif col.kind == "money":
            exprs.append((value.cast(pl.Int64) / 100).alias(f"c{i}"))
        else:
            exprs.append(value.alias(f"c{i}"))
    out = frame.select(exprs)
    for i, col in enumerate(columns):  # rare: Python per distinct over-long text
        if col.kind in TEXT_KINDS:
            long = out.filter(pl.col(f"c{i}").str.len_chars() * 2 > EXCEL_CELL_MAX_CHARS)[f"c{i}"]
            cut = {v: text for v in long.unique().to_list() for text, was_cut in [fit_cell_text(v)] if was_cut}
            if cut:
                stats.truncated_cells += int(long.is_in(list(cut)).sum())
                out = out.with_columns(pl.col(f"c{i}").replace(cut))
    return out


def _width(values: pl.Series, col: Column) -> int:
    """The widest value of a prepared column: display_width runs only on the texts that could be widest."""
    present = values.drop_nulls()
    if present.len() == 0:
        return 0
    if col.kind not in TEXT_KINDS:
        return content_width([present.min(), present.max()], col.kind)
    distinct = present.unique().to_frame("v").with_columns(pl.col("v").str.len_chars().alias("n"))
    best = 0
    for text, n in distinct.sort("n", descending=True).head(200).iter_rows():
        if 2 * n <= best or best >= MAX_COLUMN_WIDTH:
            break
        best = max(best, display_width(text))
    return best


def list_widths(prepared: pl.DataFrame, columns: Sequence[Column]) -> list[int]:
    """Each column as wide as its header and widest value, a printed text column at most its `width`
    (longer text wraps); a column shown on screen only at most MAX_COLUMN_WIDTH."""
    return [
        column_width(
            col.header,
            _width(prepared[f"c{i}"], col),
            col.width if col.printed and col.kind in TEXT_KINDS else MAX_COLUMN_WIDTH,
        )
        for i, col in enumerate(columns)
    ]


def _text_lines(text: pl.Expr, width: int) -> pl.Expr:
    """The lines a text takes in a column of `width`, estimated from its UTF-8 bytes and characters:
    one when it fits (an East Asian character, 3 bytes, counts 2, an ASCII one 1, as the column's
    width counts them); else an ASCII character counts 1¼ (Latin text wraps at word ends and loses
    room), so a row is rather too tall than too short for its text."""
    room = max(width - 2, 1)
    shown = (text.str.len_chars() + text.str.len_bytes()) / 2
    wrapped = 0.875 * text.str.len_chars() + 0.375 * text.str.len_bytes()
    return pl.when(shown <= room).then(1).otherwise((wrapped / room).ceil())


def _lines(columns: Sequence[Column], widths: Sequence[int]) -> pl.Expr:
    """The lines a row takes on paper: its longest wrapped text (a column shown on screen only does
    not wrap)."""
    counts = [
        _text_lines(pl.col(f"c{i}"), width)
        for i, (col, width) in enumerate(zip(columns, widths))
        if col.printed and col.kind in TEXT_KINDS
    ]
    if not counts:
        return pl.lit(1, dtype=pl.Int64)
    return pl.max_horizontal(counts).fill_null(1).cast(pl.Int64)


def _with_headings(prepared: pl.DataFrame, rows: pl.DataFrame, grouped: bool) -> pl.DataFrame:
    """The prepared list with `_start` (a row that starts a township of a grouped list: the rows come
    sorted by county, township) and `_text` (the heading above it: county, township, how many)."""
    if not grouped or rows.height == 0:
        return prepared.with_columns(pl.lit(False).alias("_start"), pl.lit(None, dtype=pl.Utf8).alias("_text"))
    changed = pl.any_horizontal(pl.col(f).ne_missing(pl.col(f).shift(1)) for f in GROUP_FIELDS)
    places = rows.select(*GROUP_FIELDS, ((pl.int_range(pl.len()) == 0) | changed).alias("_start")).with_columns(
        pl.col("_start").cum_sum().alias("_block")
    )
    text = pl.concat_str(
        pl.col("county").fill_null("(县未填写)"),
        pl.lit(" "),
        pl.col("township").fill_null("(乡镇未填写)"),
        pl.lit("（"),
        pl.len().over("_block").cast(pl.Utf8),
        pl.lit("人）"),
    )
    return pl.concat([prepared, places.select("_start", text.alias("_text"))], how="horizontal")


def sheet_parts(n_rows: int, n_blocks: int, max_rows_per_sheet: int) -> list[tuple[int, int]]:
    """(first row, rows) of each sheet of a list of `n_rows` rows in `n_blocks` townships (0: not
    grouped). A sheet's heading rows count among its rows: a sheet heads each township it holds, and
    the one it opens on, so it holds at most max(M - townships, M // 2) of the list's rows (M =
    max_rows_per_sheet). The summary names the phone lists' sheets by this rule."""
    per_sheet = max(max_rows_per_sheet - n_blocks, max_rows_per_sheet // 2) if n_blocks else max_rows_per_sheet
    return [(start, min(per_sheet, n_rows - start)) for start in range(0, max(n_rows, 1), per_sheet)]


def sheet_names(base_name: str, n_parts: int) -> list[str]:
    return [base_name if k == 0 else f"{base_name}({k + 1})" for k in range(n_parts)]


def _layout(part: pl.DataFrame, grouped: bool) -> pl.DataFrame:
    """The part's rows with `_row` (the sheet row each goes to, below the header and the heading
    rows), `_heading` (the heading row's text above it, where a township starts or the sheet opens)
    and `_height` (the row's height where its text wraps to more than one line)."""
    opens = pl.col("_start") | ((pl.int_range(pl.len()) == 0) & grouped)
    return part.with_columns(
        (pl.int_range(1, pl.len() + 1) + opens.cast(pl.Int64).cum_sum()).alias("_row"),
        pl.when(opens).then(pl.col("_text")).otherwise(None).alias("_heading"),
        pl.when(pl.col("_lines") > 1).then(pl.col("_lines") * ROW_HEIGHT_PT).otherwise(None).alias("_height"),
    )


def _blocks(part: pl.DataFrame) -> list[tuple[int, float]]:
    """Each township of a laid-out part: its heading row and the points it prints (heading included)."""
    return (
        part.with_columns(pl.col("_heading").is_not_null().cum_sum().alias("_block"))
        .group_by("_block", maintain_order=True)
        .agg(
            (pl.col("_row").first() - 1).alias("row"),
            (pl.col("_lines").sum() * ROW_HEIGHT_PT + HEADING_HEIGHT_PT).alias("points"),
        )
        .select("row", "points")
        .rows()
    )


def page_breaks(blocks: Sequence[tuple[int, float]], widths: Sequence[float]) -> list[int]:
    """The rows (as the sheet numbers them) before which a township's heading starts a new page:
    `blocks` holds each township's heading row and printed height (heading included), in order. A
    township of NEW_PAGE_LINES lines or more has pages of its own; a smaller one starts a new page
    only when it would not fit on what is left of the page, so it is never split over two. A page
    holds the printable height at the largest scale a program prints the columns at (Excel's), less
    the repeated header row and a row to spare."""
    page = PRINTABLE_PT[1] / print_scale(widths, EXCEL_UNIT_PT) - 2 * ROW_HEIGHT_PT
    breaks: list[int] = []
    used, own_pages = 0.0, False
    for row, points in blocks:
        big = points >= NEW_PAGE_LINES * ROW_HEIGHT_PT
        if used and (big or own_pages or used + points > page):
            breaks.append(row)
            used = 0.0
        used, own_pages = used + points, big
    return breaks[:EXCEL_MAX_PAGE_BREAKS]


def set_up_list_sheet(
    ws: Worksheet, columns: Sequence[Column], widths: Sequence[int], n_rows: int, fmts: Formats, title: str
) -> None:
    """Header row, widths and formats per column (a printed text column wraps; one shown on screen
    only does not, and stands outside the print area), filter, frozen header, print layout."""
    for c, (column, width) in enumerate(zip(columns, widths)):
        if column.kind in TEXT_KINDS:
            ws.set_column(c, c, width, fmts.wrap if column.printed else fmts.middle)
        else:
            ws.set_column(c, c, width, fmts.number.get(column.kind))
    ws.write_row(0, 0, [c.header for c in columns], fmts.header)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, n_rows, len(columns) - 1)
    printed = sum(c.printed for c in columns)
    set_print_layout(ws, title, (n_rows, printed) if printed < len(columns) else None)


def _rich_rows(part: pl.DataFrame, texts: list[int]) -> set[int]:
    """Rows holding a text xlsxwriter would take for rich-text XML (`looks_rich`): rare."""
    if not texts:
        return set()
    looks = pl.any_horizontal(
        pl.col(f"c{i}").str.starts_with("<r>") & pl.col(f"c{i}").str.ends_with("</r>") for i in texts
    )
    return set(part.with_row_index("__r").filter(looks.fill_null(False))["__r"].to_list())


def _write_rows(ws: Worksheet, part: pl.DataFrame, columns: Sequence[Column], fmts: Formats) -> None:
    """The list's rows below the header, each cell through the writer of its kind (`write_string`,
    `write_number`: xlsxwriter's typed calls, a quarter faster than `write_row`'s per-cell dispatch),
    a township's heading row above its first row, a wrapped row as tall as its lines."""
    texts = [i for i, col in enumerate(columns) if col.kind in TEXT_KINDS]
    writers = [ws.write_string if col.kind in TEXT_KINDS else ws.write_number for col in columns]
    printed = sum(c.printed for c in columns)
    rich = _rich_rows(part, texts)
    cells = part.select(*(f"c{i}" for i in range(len(columns))), "_row", "_heading", "_height")
    for i, (*values, r, heading, height) in enumerate(cells.iter_rows()):
        if heading is not None:
            ws.set_row(r - 1, HEADING_HEIGHT_PT)
            write_text(ws, r - 1, 0, heading, fmts, fmts.heading)
            for c in range(1, printed):
                ws.write_blank(r - 1, c, None, fmts.heading)
        if height is not None:
            ws.set_row(r, height)
        for c, (write, value) in enumerate(zip(writers, values)):
            if value is not None:
                write(r, c, value)
        if i in rich:
            for c in texts:
                if looks_rich(values[c]):
                    write_text(ws, r, c, values[c], fmts)


def write_list(
    wb: Workbook,
    fmts: Formats,
    base_name: str,
    columns: Sequence[Column],
    rows: pl.DataFrame,
    *,
    unmask: bool,
    max_rows_per_sheet: int,
    stats: Stats,
    title: str,
    grouped: bool = False,
) -> list[str]:
    """Write one list (a frame holding the columns' fields; a grouped list also county and township,
    sorted by them); returns the sheet names used."""
    prepared = prepare_list(rows, columns, unmask, stats)
    widths = list_widths(prepared, columns)
    printed_widths = [w for w, col in zip(widths, columns) if col.printed]
    prepared = _with_headings(prepared.with_columns(_lines(columns, widths).alias("_lines")), rows, grouped)
    n_blocks = int(prepared["_start"].sum())
    parts = sheet_parts(prepared.height, n_blocks, max_rows_per_sheet)
    names = sheet_names(base_name, len(parts))
    for name, (start, length) in zip(names, parts):
        part = _layout(prepared.slice(start, length), grouped)
        ws = wb.add_worksheet(name)
        n_sheet_rows = int(part["_row"][-1]) if part.height else 0
        set_up_list_sheet(ws, columns, widths, n_sheet_rows, fmts, title)
        if grouped and part.height:
            breaks = page_breaks(_blocks(part), printed_widths)
            if breaks:
                ws.set_h_pagebreaks(breaks)
        _write_rows(ws, part, columns, fmts)
    return names
