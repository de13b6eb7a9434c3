"""What the ingest tests share (test_ingest.py, test_ingest_cache.py): three people, a payment row,
a night on one roster and payments file, and its counts and rejected lines read back."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from builders import (
    PAYMENT_HEADER,
    make_id,
    run_night,
    write_workbook,
)

TODAY = dt.date(2026, 11, 23)
A = make_id("360222", dt.date(1990, 5, 1), 1)
B = make_id("360222", dt.date(1985, 7, 15), 2)
C = make_id("360281", dt.date(1960, 1, 1), 3)
TICKET = "3360000000000000{:04d}"


def pay_row(n, name, id_number, amount=400, paid_on="2025-11-01", year="2026", ticket=None):
    return [n, name, id_number, amount, paid_on, year, ticket or TICKET.format(n), "微信"]


def one_payment(tmp_path: Path) -> Path:
    return write_workbook(tmp_path / "payments.xlsx", {"Sheet1": [PAYMENT_HEADER, pay_row(1, "张三", A)]})


def run(
    tmp_path: Path,
    roster: Path,
    payments: Path | None = None,
    year: int = 2026,
    as_of: dt.date = TODAY,
    db: str = "m.duckdb",
    **settings,
):
    """A Jingdezhen night into tmp_path (its database `db`), no workbooks; one payment of 张三 unless
    `payments` are given; `settings`: more of RunSettings' fields."""
    payments = payments or one_payment(tmp_path)
    return run_night(
        year,
        "jingdezhen",
        [str(roster)],
        [str(payments)],
        tmp_path / db,
        tmp_path,
        as_of=as_of,
        write_workbooks=False,
        **settings,
    )


def sheet_counts(result, kind="roster") -> dict:
    row = result.sheets.filter(pl.col("kind") == kind).row(0, named=True)
    return {
        k: row[k]
        for k in (
            "header_row",
            "rows_read",
            "accepted",
            "rejected",
            "skipped_blank",
            "skipped_footer",
            "skipped_duplicate",
        )
    }


def reasons(result) -> list[tuple[int, str, str]]:
    return sorted((r["row_number"], r["column"], r["reason"]) for r in result.rejected.to_dicts())
