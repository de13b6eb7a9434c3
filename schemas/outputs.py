"""pandera (polars backend) schemas of what the night writes, derived from the field registry.

Before a partition's `residents`, `determinations` and `reconciliation` rows
are written (pipeline/io/store.py NightWriter.add), pandera checks them
against the registry (schemas/registry.py): every column of the table there,
with its dtype; the table's key present and unique; codes of
schemas/vocabulary.toml where the registry says a column holds them. A frame
may carry more columns than the table (the night's own, left out when
written). A failure is a bug of ours, not bad input: the night stops
(OutputSchemaError, exit code 4) before anything is published.
"""

from __future__ import annotations

from functools import cache

import pandera.polars as pa
import polars as pl

from pipeline.errors import OutputSchemaError
from schemas.registry import TABLES, vocabulary

CHECKED_TABLES = ("residents", "determinations", "reconciliation")


@cache
def output_schema(table: str) -> pa.DataFrameSchema:
    """The registry's table as a pandera schema of the night's frame of it."""
    t = TABLES[table]
    coded = dict(t.values)
    frame_key = [c.frame_name for c in t.columns if c.name in t.key]
    columns = {}
    for c in t.columns:
        if c.name in t.added_when_written:
            continue
        checks = [pa.Check.isin(list(vocabulary(coded[c.name])))] if c.name in coded else []
        columns[c.frame_name] = pa.Column(c.dtype, nullable=c.name not in t.key, checks=checks)
    return pa.DataFrameSchema(columns, unique=frame_key or None, strict=False, name=table)


def check_output(table: str, frame: pl.DataFrame) -> None:
    """Raise OutputSchemaError naming what does not fit (the first few failure cases)."""
    if table not in CHECKED_TABLES:
        return
    try:  # text may travel dictionary-encoded (Categorical): the same VARCHAR once written
        output_schema(table).validate(frame.with_columns(pl.col(pl.Categorical).cast(pl.Utf8)), lazy=True)
    except pa.errors.SchemaErrors as e:
        cases = pl.DataFrame(e.failure_cases).select("column", "check", "failure_case").head(5)
        raise OutputSchemaError(
            f"{table} 的数据不符合字段登记（schemas/tables.toml），本次结果未写入 / the night's {table} rows do not "
            f"fit the field registry, nothing was published: {cases.to_dicts()}"
        ) from None
