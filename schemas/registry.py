"""The field registry: every table the night writes and every column in it, once, from schemas/tables.toml.

Per column the registry holds its DuckDB type, its comment (Chinese and
English) and, derived from the type, its polars dtype, its name in the
night's frames and its unit: money is `MONEY` (DECIMAL(14,2) yuan in DuckDB,
integer fen named `<column>_fen` in polars until the cell it is shown in),
dates are DATE. Per table it holds the key (what names one row), the column
naming the coverage year its rows belong to (`year`; tables without one keep
every run's rows), the columns the writer adds (`added_when_written`: the
run's id, ...) and the columns holding codes of schemas/vocabulary.toml
(`values`). Everything else is derived from it: the frames' column lists and
empty frames (pipeline/validate.py, reconcile.py, rules/), the DuckDB DDL and
comments (pipeline/io/store.py), the output schemas checked before rows are
written, and the tables of docs/INTERNALS.md (tests/test_registry.py).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import polars as pl

TABLES_PATH = Path(__file__).resolve().parent / "tables.toml"
VOCABULARY_PATH = Path(__file__).resolve().parent / "vocabulary.toml"
MONEY = "DECIMAL(14,2)"
_POLARS: dict[str, pl.DataType] = {
    "VARCHAR": pl.Utf8(),
    "INTEGER": pl.Int32(),
    "BIGINT": pl.Int64(),
    "BOOLEAN": pl.Boolean(),
    "DATE": pl.Date(),
    "DOUBLE": pl.Float64(),
    "TIMESTAMP": pl.Datetime("us"),
    "MONEY": pl.Int64(),
}


@dataclass(frozen=True)
class Column:
    name: str
    declared: str  # as tables.toml writes it: a DuckDB type, MONEY, maybe PRIMARY KEY
    comment: str

    @property
    def base_type(self) -> str:
        return self.declared.replace(" PRIMARY KEY", "")

    @property
    def type(self) -> str:
        """The DuckDB type."""
        return self.declared.replace("MONEY", MONEY)

    @property
    def is_money(self) -> bool:
        return self.base_type == "MONEY"

    @property
    def frame_name(self) -> str:
        """The column's name in the night's polars frames (money as integer fen)."""
        return f"{self.name}_fen" if self.is_money else self.name

    @property
    def dtype(self) -> pl.DataType:
        return _POLARS[self.base_type]

    @property
    def unit(self) -> str:
        return {"MONEY": "fen (yuan in DuckDB)", "DATE": "date"}.get(self.base_type, "")

    @property
    def definition(self) -> str:
        return f'"{self.name}" {self.type}'


@dataclass(frozen=True)
class Table:
    name: str
    comment: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    year: str | None = None
    added_when_written: tuple[str, ...] = ("run_id",)
    values: tuple[tuple[str, str], ...] = field(default=())  # column -> vocabulary section
    incremental: bool = False  # the year's rows kept where tonight's are the same (row_hash, key_hash)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def money_columns(self) -> set[str]:
        return {c.name for c in self.columns if c.is_money}

    def ddl(self, name: str | None = None) -> str:
        return f"CREATE TABLE IF NOT EXISTS {name or self.name} ({', '.join(c.definition for c in self.columns)})"

    @property
    def key_frame_columns(self) -> tuple[str, ...]:
        """The key's columns in the night's frame (those the writer adds are not among them)."""
        return tuple(c.frame_name for c in self.columns if c.name in self.key and c.name not in self.added_when_written)

    @property
    def frame_columns(self) -> tuple[str, ...]:
        """The columns of the night's frame of this table (those the writer adds left out)."""
        return tuple(c.frame_name for c in self.columns if c.name not in self.added_when_written)

    @property
    def frame_schema(self) -> dict[str, pl.DataType]:
        return {c.frame_name: c.dtype for c in self.columns if c.name not in self.added_when_written}


@dataclass(frozen=True)
class View:
    name: str
    comment: str
    sql: str


def _table(name: str, t: dict) -> Table:
    return Table(
        name,
        t["comment"],
        tuple(Column(c, typ, comment) for c, typ, comment in t["columns"]),
        key=tuple(t.get("key", ())),
        year=t.get("year"),
        added_when_written=tuple(t.get("added_when_written", ("run_id",))),
        values=tuple(t.get("values", {}).items()),
        incremental=bool(t.get("incremental", False)),
    )


@cache
def load() -> tuple[dict[str, Table], dict[str, View]]:
    with TABLES_PATH.open("rb") as f:
        data = tomllib.load(f)
    views = {name: View(name, v["comment"], v["sql"].strip()) for name, v in data.pop("views", {}).items()}
    return {name: _table(name, t) for name, t in data.items()}, views


@cache
def vocabulary(section: str) -> tuple[str, ...]:
    """The codes of a section of schemas/vocabulary.toml."""
    with VOCABULARY_PATH.open("rb") as f:
        return tuple(tomllib.load(f)[section])


TABLES, VIEWS = load()
# Tables whose rows belong to one coverage year and are replaced by its next run, with the column
# naming the year.
PER_YEAR_TABLES = {name: t.year for name, t in TABLES.items() if t.year}
