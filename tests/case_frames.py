"""The validated frames `determine` takes (docs/INTERNALS.md), built from plain rows for the rule
cases of tests/cases/ and the property tests: one roster row per person, the tax bureau's payments,
the accepted rows of the subsidy lists."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from builders import make_id

DEFAULT_NAME = "张三"
DEFAULT_RESIDENCE_BASIS = "本地户籍"
ID_TYPE = "居民身份证"
AREA_CODE = "360222"  # 景德镇市浮梁县
COUNTY = "浮梁县"
TOWNSHIP = "浮梁镇"
SOURCE_FILE = "case.xlsx"
SHEET = "S"
FIRST_ROW = 2  # Excel row under the header

RESIDENTS_SCHEMA: dict[str, pl.DataType] = {
    "coverage_year": pl.Int32(),
    "source_file": pl.Utf8(),
    "sheet": pl.Utf8(),
    "row_number": pl.Int32(),
    "name": pl.Utf8(),
    "id_number": pl.Utf8(),
    "id_type": pl.Utf8(),
    "birth_date": pl.Date(),
    "county": pl.Utf8(),
    "township": pl.Utf8(),
    "village": pl.Utf8(),
    "residence_basis": pl.Utf8(),
    "identity_labels": pl.List(pl.Utf8),
    "subsidy_identified_on": pl.Date(),
    "prev_year_insured": pl.Boolean(),
    "special_event": pl.Utf8(),
    "special_event_date": pl.Date(),
    "registered_on": pl.Date(),
    "extra_columns": pl.Utf8(),
}
PAYMENTS_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.Utf8(),
    "sheet": pl.Utf8(),
    "row_number": pl.Int32(),
    "id_number": pl.Utf8(),
    "name": pl.Utf8(),
    "amount_fen": pl.Int64(),
    "paid_on": pl.Date(),
    "coverage_year": pl.Int32(),
    "ticket_no": pl.Utf8(),
    "channel": pl.Utf8(),
}
# the accepted list rows the rules read (pipeline.rules.lists.LIST_ROW_COLUMNS) and the department
LIST_ROWS_SCHEMA: dict[str, pl.DataType] = {
    "id_number": pl.Utf8(),
    "identity_labels": pl.List(pl.Utf8),
    "identified_on": pl.Date(),
    "ended_on": pl.Date(),
    "source_file": pl.Utf8(),
    "sheet": pl.Utf8(),
    "row_number": pl.Int32(),
    "department": pl.Utf8(),
}


def make_id_number(birth_date: dt.date, sequence: int) -> str:
    """A valid 18-character 居民身份证 number for this birth date."""
    return make_id(AREA_CODE, birth_date, sequence % 1000)


def build_residents(rows: list[dict[str, Any]], coverage_year: int) -> pl.DataFrame:
    """The validated roster of docs/INTERNALS.md from person dicts (keys as the frame's columns)."""
    records = []
    for i, row in enumerate(rows):
        records.append(
            {
                "coverage_year": coverage_year,
                "source_file": SOURCE_FILE,
                "sheet": SHEET,
                "row_number": FIRST_ROW + i,
                "name": row.get("name", DEFAULT_NAME),
                "id_number": row["id_number"],
                "id_type": ID_TYPE,
                "birth_date": row["birth_date"],
                "county": COUNTY,
                "township": TOWNSHIP,
                "village": None,
                "residence_basis": row.get("residence_basis", DEFAULT_RESIDENCE_BASIS),
                "identity_labels": list(row.get("identity_labels", [])),
                "subsidy_identified_on": row.get("subsidy_identified_on"),
                "prev_year_insured": row.get("prev_year_insured"),
                "special_event": row.get("special_event"),
                "special_event_date": row.get("special_event_date"),
                "registered_on": row.get("registered_on"),
                "extra_columns": "{}",
            }
        )
    return (
        pl.DataFrame(records, schema=RESIDENTS_SCHEMA, orient="row")
        if records
        else pl.DataFrame(schema=RESIDENTS_SCHEMA)
    )


def build_payments(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The validated tax-bureau payments of docs/INTERNALS.md (amount_fen, coverage_year, ticket_no given)."""
    records = []
    for i, row in enumerate(rows):
        records.append(
            {
                "source_file": SOURCE_FILE,
                "sheet": SHEET,
                "row_number": FIRST_ROW + i,
                "id_number": row["id_number"],
                "name": row.get("name", DEFAULT_NAME),
                "amount_fen": row["amount_fen"],
                "paid_on": row["paid_on"],
                "coverage_year": row["coverage_year"],
                "ticket_no": row["ticket_no"],
                "channel": row.get("channel"),
            }
        )
    return (
        pl.DataFrame(records, schema=PAYMENTS_SCHEMA, orient="row") if records else pl.DataFrame(schema=PAYMENTS_SCHEMA)
    )


def build_list_rows(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Accepted subsidy-list rows (docs/RULES.md §9), all of them, in force or not."""
    return pl.DataFrame(rows, schema=LIST_ROWS_SCHEMA, orient="row") if rows else pl.DataFrame(schema=LIST_ROWS_SCHEMA)
