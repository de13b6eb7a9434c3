"""The DuckDB tables of docs/CONTRACT.md ("Outputs"): the field registry (schemas/registry.py), and
what the writer needs besides.

Money is DECIMAL(14,2) yuan (exact); inside polars it is integer fen
(`<column>_fen`). Every result table carries run_id; a run replaces the rows
of its coverage year only (PER_YEAR_TABLES). Every table and column carries a
comment in Chinese and English (`COMMENT ON`, visible in duckdb_columns()).
"""

from __future__ import annotations

from schemas.registry import MONEY, PER_YEAR_TABLES, TABLES, VIEWS, Column, Table, View

__all__ = [
    "DDL",
    "LOW_CARDINALITY",
    "MONEY",
    "PER_YEAR_TABLES",
    "RETIRED_COLUMNS",
    "TABLES",
    "VIEWS",
    "Column",
    "Table",
    "View",
]

# column definitions per table, as SQL (tests build bare tables from them)
DDL = {name: ", ".join(c.definition for c in table.columns) for name, table in TABLES.items()}

# Text columns holding few distinct values (file and sheet names, places, categories, rule texts), by
# name wherever they occur. They are handed to DuckDB dictionary-encoded: at 1M rows the write takes
# about a third less. (tests/test_registry.py checks every name is a column of the registry.)
LOW_CARDINALITY = frozenset(
    {
        "source_file",
        "sheet",
        "kind",
        "county",
        "township",
        "village",
        "tier",
        "identity_labels",
        "rule_id",
        "rule_basis",
        "refund_basis",
        "status",
        "previous_status",
        "reason",
        "column",
        "channel",
        "id_type",
        "residence_basis",
        "special_event",
        "level",
        "department",
        "label",
    }
)

# Columns an earlier version kept for itself (a count of rows whose checks were reused), dropped from
# an older database on its next night.
RETIRED_COLUMNS = {"run_sheets": ("rows_reused",)}
