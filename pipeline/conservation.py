"""Nothing is lost: per file and sheet, rows read = accepted + rejected + skipped (docs/RULES.md §6)."""

from __future__ import annotations

import polars as pl

from pipeline.errors import ConservationError
from pipeline.io.excel_in import SheetRead
from pipeline.validate import REJECTED_SCHEMA

NO_LINES = pl.DataFrame(schema=REJECTED_SCHEMA)


def sheet_table(sheets: list[SheetRead], kind: str | None = None) -> pl.DataFrame:
    """Per file and sheet as read: what run_sheets says besides the counts of validation."""
    return pl.DataFrame(
        [
            {
                "kind": kind or s.kind,
                "source_file": s.source_file,
                "sha256": s.sha256,
                "sheet": s.sheet,
                "header_row": s.header_row,
                "rows_read": s.rows_read,
                "skipped_blank": s.skipped_blank,
                "skipped_footer": s.skipped_footer,
                "note": s.note,
                "reused": s.reused,
                "checks_reused": s.checks_reused,
            }
            for s in sheets
        ],
        schema={
            "kind": pl.Utf8,
            "source_file": pl.Utf8,
            "sha256": pl.Utf8,
            "sheet": pl.Utf8,
            "header_row": pl.Int32,
            "rows_read": pl.Int64,
            "skipped_blank": pl.Int64,
            "skipped_footer": pl.Int64,
            "note": pl.Utf8,
            "reused": pl.Boolean,
            "checks_reused": pl.Boolean,
        },
    )


def conservation(
    sheets: list[SheetRead], accepted: pl.DataFrame, rejected: pl.DataFrame, duplicates: pl.DataFrame
) -> pl.DataFrame:
    """Per file and sheet: rows read = accepted + rejected + skipped. Fails loudly if not.
    `accepted`: per (source_file, sheet) the accepted rows; `rejected`: the rejected lines (one or
    more per rejected row); `duplicates`: one row per exact duplicate skipped."""
    keys = ["source_file", "sheet"]
    rejected_rows = rejected.select(*keys, "row_number").unique().group_by(keys).agg(pl.len().alias("rejected"))
    skipped = duplicates.group_by(keys).agg(pl.len().alias("skipped_duplicate"))
    table = (
        sheet_table(sheets)
        .join(accepted.select(*keys, "accepted"), on=keys, how="left")
        .join(rejected_rows, on=keys, how="left")
        .join(skipped, on=keys, how="left")
        .with_columns(pl.col("accepted", "rejected", "skipped_duplicate").fill_null(0).cast(pl.Int64))
    )
    broken = table.filter(
        pl.col("rows_read")
        != pl.col("accepted")
        + pl.col("rejected")
        + pl.col("skipped_duplicate")
        + pl.col("skipped_blank")
        + pl.col("skipped_footer")
    )
    if broken.height:
        first = broken.row(0, named=True)
        raise ConservationError(
            f"行数不守恒 / rows lost: {first['source_file']} [{first['sheet']}] read {first['rows_read']}, "
            f"accepted {first['accepted']} + rejected {first['rejected']} + skipped "
            f"{first['skipped_duplicate'] + first['skipped_blank'] + first['skipped_footer']}"
        )
    return table
