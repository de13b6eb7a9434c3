"""Exception lists as sheets a clerk can filter on screen and print for the phone or the door.

A list is a polars frame whose columns are given as `Column`s (money in
integer fen, dates as Excel serial days). Its cells are prepared in polars
(masking, labels, yuan) and written row by row through xlsxwriter's public
API in `constant_memory` mode; past `max_rows_per_sheet` rows it continues on
名称(2), (3)... Every list prints on A4 across, fit to the page width, with
the header row repeated, a title naming the list, year and data date on every
page, and a page break before each township where the list has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
from xlsxwriter import Workbook

from pipeline.io.excel_out.cells import (
    EXCEL_CELL_MAX_CHARS,
    EXCEL_MAX_PAGE_BREAKS,
    MAX_COLUMN_WIDTH,
    TEXT_KINDS,
    Column,
    Formats,
    Stats,
    column_width,
    content_width,
    display_width,
    fit_cell_text,
    looks_rich,
    page_title,
    write_text,
)
from pipeline.io.masking import mask_id_expr, mask_ids_in_text_expr
from pipeline.vocabulary import KIND_NAMES, NOT_ENROLLED_REASON_NAMES, STATUS_NAMES, TIER_NAMES

Worksheet = Any  # a worksheet made by Workbook.add_worksheet (its public methods only)

_LABELS = {"tier": TIER_NAMES, "status": STATUS_NAMES, "kind": KIND_NAMES, "reason": NOT_ENROLLED_REASON_NAMES}


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
    for i, (col, name) in enumerate(zip(columns, frame.columns)):
        value = pl.col(name)
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


def _page_breaks(part: pl.DataFrame, columns: Sequence[Column]) -> list[int]:
    """Rows (as the sheet numbers them) before which a new township starts, where the list has a
    township column: a clerk's printout starts each township on its own page."""
    townships = [i for i, col in enumerate(columns) if col.header.startswith("乡镇")]
    if not townships or part.height == 0:
        return []
    key = pl.col(f"c{townships[0]}")
    starts = part.with_row_index("r").filter(key.ne_missing(key.shift(1)) & (pl.col("r") > 0))["r"]
    return [int(r) + 1 for r in starts.head(EXCEL_MAX_PAGE_BREAKS)]


def set_up_list_sheet(
    ws: Worksheet, columns: Sequence[Column], widths: Sequence[int], n_rows: int, fmts: Formats, title: str
) -> None:
    """Header row, widths and number formats per column, filter, frozen header, print layout."""
    for c, (column, width) in enumerate(zip(columns, widths)):
        ws.set_column(c, c, width, fmts.number.get(column.kind))
    ws.write_row(0, 0, [c.header for c in columns], fmts.header)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, n_rows, len(columns) - 1)
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0)
    ws.set_header(page_title(title))
    ws.set_footer("&C第 &P 页 / 共 &N 页")


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
    `write_number`: xlsxwriter's typed calls, a quarter faster than `write_row`'s per-cell dispatch)."""
    texts = [i for i, col in enumerate(columns) if col.kind in TEXT_KINDS]
    writers = [ws.write_string if col.kind in TEXT_KINDS else ws.write_number for col in columns]
    rich = _rich_rows(part, texts)
    for r, values in enumerate(part.iter_rows(), 1):
        for c, (write, value) in enumerate(zip(writers, values)):
            if value is not None:
                write(r, c, value)
        if r - 1 in rich:
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
) -> list[str]:
    """Write one list (a frame whose columns are `columns`, in order); returns the sheet names used."""
    prepared = prepare_list(rows, columns, unmask, stats)
    widths = [column_width(col.header, _width(prepared[f"c{i}"], col)) for i, col in enumerate(columns)]
    names = []
    for part_no, start in enumerate(range(0, max(prepared.height, 1), max_rows_per_sheet)):
        name = base_name if part_no == 0 else f"{base_name}({part_no + 1})"
        part = prepared.slice(start, max_rows_per_sheet)
        ws = wb.add_worksheet(name)
        set_up_list_sheet(ws, columns, widths, part.height, fmts, title)
        breaks = _page_breaks(part, columns)
        if breaks:
            ws.set_h_pagebreaks(breaks)
        _write_rows(ws, part, columns, fmts)
        names.append(name)
    return names
