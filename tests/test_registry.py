"""One registry of fields (schemas/tables.toml, schemas/registry.py): the database, the night's frames,
the output checks and docs/INTERNALS.md all follow it, and a column declared anywhere else fails here."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import polars as pl
import pytest

from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, roster_row, run_night, write_workbook
from pipeline.errors import OutputSchemaError
from pipeline.io.tables import LOW_CARDINALITY
from pipeline.reconcile import RECONCILIATION_COLUMNS, UNMATCHED_COLUMNS
from pipeline.rules import DETERMINATION_COLUMNS
from pipeline.validate import LIST_OUT, PAYMENT_OUT, REJECTED_SCHEMA, ROSTER_OUT
from schemas.outputs import check_output
from schemas.registry import TABLES
from tools import registry_doc

PEOPLE = [make_id("360222", dt.date(1980, 2, 1 + i), i) for i in range(3)]


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("registry")
    roster = write_workbook(
        tmp / "r.xlsx", {"S": [ROSTER_HEADER] + [roster_row(i, f"人{i}", p) for i, p in enumerate(PEOPLE)]}
    )
    payments = write_workbook(
        tmp / "p.xlsx", {"S": [PAYMENT_HEADER, [1, "人0", PEOPLE[0], 400, "2025-11-01", "2026", "3" * 20, "微信"]]}
    )
    run_night(2026, "jingdezhen", [str(roster)], [str(payments)], tmp / "m.duckdb", tmp, write_workbooks=False)
    return tmp / "m.duckdb"


def test_every_table_in_the_database_has_exactly_the_registrys_columns_in_order(database):
    con = duckdb.connect(str(database), read_only=True)
    try:
        for name, table in TABLES.items():
            got = [r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()]
            assert got == table.column_names, name
            types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {name}").fetchall()}
            assert all(types[c.name] == c.base_type.replace("MONEY", "DECIMAL(14,2)") for c in table.columns), name
    finally:
        con.close()


def test_the_frames_column_lists_are_the_registrys():
    assert ROSTER_OUT == TABLES["residents"].frame_columns
    assert PAYMENT_OUT == TABLES["payments"].frame_columns
    assert LIST_OUT == TABLES["subsidy_list_rows"].frame_columns
    assert UNMATCHED_COLUMNS == TABLES["unmatched_payments"].frame_columns
    assert REJECTED_SCHEMA == TABLES["rejected_rows"].frame_schema
    # the night's own columns come after the table's, and are not written
    assert (
        RECONCILIATION_COLUMNS[: len(TABLES["reconciliation"].frame_columns)] == TABLES["reconciliation"].frame_columns
    )
    assert (
        DETERMINATION_COLUMNS[: len(TABLES["determinations"].frame_columns)] == TABLES["determinations"].frame_columns
    )


def test_the_dictionary_encoded_names_are_columns_of_the_registry():
    columns = {c.name for t in TABLES.values() for c in t.columns}
    assert LOW_CARDINALITY <= columns


def test_docs_internals_shows_the_registrys_tables():
    text = registry_doc.DOC.read_text(encoding="utf-8")
    assert registry_doc.rewritten(text) == text, "run `python -m tools.registry_doc` and commit docs/INTERNALS.md"


def _determination(**change) -> pl.DataFrame:
    row: dict[str, Any] = {c: None for c in TABLES["determinations"].frame_columns}
    row |= {"coverage_year": 2026, "id_number": PEOPLE[0], "tier": "none", "rule_id": "not_enrolled"}
    schema = {**TABLES["determinations"].frame_schema}
    return pl.DataFrame([row | change], schema=schema)


def test_the_output_check_passes_a_row_that_fits():
    check_output("determinations", _determination())


@pytest.mark.parametrize(
    "frame, named",
    [
        (pl.concat([_determination(), _determination()]), "unique"),  # one person twice
        (_determination(tier="gold"), "isin"),  # a tier code the vocabulary does not have
        (_determination(id_number=None), "not_nullable"),  # a key left empty
        (_determination().with_columns(pl.col("age").cast(pl.Utf8)), "dtype"),  # a column of the wrong type
    ],
)
def test_the_output_check_stops_rows_that_do_not_fit_the_registry(frame, named):
    with pytest.raises(OutputSchemaError, match=named) as stopped:
        check_output("determinations", frame)
    assert stopped.value.exit_code == 4
