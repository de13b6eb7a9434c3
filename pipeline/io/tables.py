"""The DuckDB tables of docs/CONTRACT.md ("Outputs"), from schemas/tables.toml.

Money is DECIMAL(14,2) yuan (exact); inside polars it is integer fen
(`<column>_fen`). Every result table carries run_id and coverage_year; a run
replaces the rows of its coverage year only. Every table and column carries
a comment in Chinese and English (`COMMENT ON`, visible in duckdb_columns()).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import schemas

MONEY = "DECIMAL(14,2)"
TABLES_PATH = Path(schemas.__file__).resolve().parent / "tables.toml"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str

    @property
    def definition(self) -> str:
        return f'"{self.name}" {self.type}'


@dataclass(frozen=True)
class Table:
    name: str
    comment: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def money_columns(self) -> set[str]:
        return {c.name for c in self.columns if c.type == MONEY}

    def ddl(self, name: str | None = None) -> str:
        return f"CREATE TABLE IF NOT EXISTS {name or self.name} ({', '.join(c.definition for c in self.columns)})"


@dataclass(frozen=True)
class View:
    name: str
    comment: str
    sql: str


def _load() -> tuple[dict[str, Table], dict[str, View]]:
    with TABLES_PATH.open("rb") as f:
        data = tomllib.load(f)
    views = {name: View(name, v["comment"], v["sql"].strip()) for name, v in data.pop("views", {}).items()}
    tables = {
        name: Table(
            name,
            t["comment"],
            tuple(Column(c, typ.replace("MONEY", MONEY), comment) for c, typ, comment in t["columns"]),
        )
        for name, t in data.items()
    }
    return tables, views


TABLES, VIEWS = _load()
# column definitions per table, as SQL (tests build bare tables from them)
DDL = {name: ", ".join(c.definition for c in table.columns) for name, table in TABLES.items()}

# Text columns holding few distinct values (file and sheet names, places, categories, rule texts).
# They are handed to DuckDB dictionary-encoded: at 1M rows the write takes about a third less.
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

# Tables whose rows belong to one coverage year and are replaced by its next run, each with the
# column naming the coverage year its rows belong to.
PER_YEAR_TABLES = {
    "run_sheets": "coverage_year",
    "residents": "coverage_year",
    "payments": "run_coverage_year",
    "rejected_rows": "coverage_year",
    "determinations": "coverage_year",
    "reconciliation": "coverage_year",
    "unmatched_payments": "coverage_year",
    "subsidy_totals": "coverage_year",
    "subsidy_list_rows": "coverage_year",
    "subsidy_not_enrolled": "coverage_year",
    "subsidy_progress": "coverage_year",
}
# Columns an earlier version kept for itself (the hashes of its incremental write), dropped from an
# older database on its next night.
RETIRED_COLUMNS = {
    **{table: ("row_hash", "key_hash") for table in ("residents", "payments", "determinations", "reconciliation")},
    "run_sheets": ("rows_reused",),
}
