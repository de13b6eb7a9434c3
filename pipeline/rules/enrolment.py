"""Enrolment and the enrolment date d, docs/RULES.md §3."""

from __future__ import annotations

import polars as pl

from pipeline.params import Params
from pipeline.rules.dates import date_lit

PAYMENT_ORDER = ("paid_on", "ticket_no")  # ticket_no is text: 20 digits with leading zeros, compared as text


def with_running_total(rows: pl.LazyFrame, person: str = "__p") -> pl.LazyFrame:
    """Each payment row of Y with `running_fen` and `settles` (docs/RULES.md §3).

    `rows` holds `person`, paid_on, ticket_no, amount_fen and individual_due_fen. The rows are
    sorted by (person, paid_on, ticket_no as text) and added up row by row per person
    (`running_fen`). The settling row is the one from which on the running total never again drops
    below the due: the row after the person's last row whose running total is below the due (or
    their first row if there is none), provided the net, the last running total, reaches the due.
    Paid, refunded, paid again: the second payment settles; paid twice, one refunded: the first.
    Shared by `payment_totals` and `medins explain`, so a clerk is shown the rows the night added.
    """
    due = pl.col("individual_due_fen")
    running = pl.col("running_fen")
    position = pl.col("__row")
    last_below = position.filter(running < due).max().over(person)
    return (
        rows.sort(person, *PAYMENT_ORDER)
        .with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("__row"),  # after the sort: cum_sum().over() follows row order
            pl.col("amount_fen").cum_sum().over(person).alias("running_fen"),
        )
        .with_columns(
            (
                (position == last_below.fill_null(position.min().over(person) - 1) + 1)
                & (pl.col("amount_fen").sum().over(person) >= due)
            ).alias("settles")
        )
        .drop("__row")
    )


def payment_totals(payments: pl.LazyFrame, dues: pl.LazyFrame, params: Params) -> pl.LazyFrame:
    """Per person: net paid for Y, positive payments, last payment day and `reached_on`, the day
    from which on the running total of their payments never again drops below the due (§3).

    `dues` holds `__p` (the person's row), id_number and individual_due_fen of the roster; the
    result is keyed by `__p`. The ID text is matched once; everything after works on the integer
    row. Most people pay once: `reached_on` is that payment's day if it covers the due, and only
    people with several rows go through `with_running_total`.
    """
    year = (
        payments.filter(pl.col("coverage_year") == params.coverage_year)
        .select("id_number", "amount_fen", "paid_on", "ticket_no")
        .join(dues, on="id_number", how="inner")
        .collect()  # read twice below
        .lazy()
    )
    positive = pl.col("amount_fen") > 0
    per_person = year.group_by("__p").agg(
        pl.len().alias("__n_rows"),
        pl.col("individual_due_fen").first(),
        pl.col("amount_fen").sum().alias("net_paid_fen"),
        positive.sum().cast(pl.Int32).alias("n_payments"),
        pl.col("paid_on").filter(positive).max().alias("last_paid_on"),
        pl.col("paid_on").first().alias("__first_on"),
    )
    several = (
        with_running_total(year.join(per_person.filter(pl.col("__n_rows") > 1).select("__p"), on="__p", how="semi"))
        .filter("settles")
        .select("__p", pl.col("paid_on").alias("__settled_on"))
    )
    once = pl.when((pl.col("__n_rows") == 1) & (pl.col("net_paid_fen") >= pl.col("individual_due_fen")))
    return per_person.join(several, on="__p", how="left").select(
        "__p",
        "net_paid_fen",
        "n_payments",
        pl.coalesce(once.then(pl.col("__first_on")), pl.col("__settled_on")).alias("reached_on"),
        "last_paid_on",
    )


def is_enrolled() -> pl.Expr:
    """Due 0: enrolled by registration. Due > 0: net paid for Y at least the due."""
    return (
        ((pl.col("individual_due_fen") == 0) | (pl.col("net_paid_fen") >= pl.col("individual_due_fen")))
        .fill_null(False)
        .alias("enrolled")
    )


def registration_day(params: Params) -> pl.Expr:
    """Due 0: 参保登记日期, or CS when the cell is empty, but never before birth:
    max(参保登记日期 or CS, birth date) (docs/RULES.md §3: nobody is enrolled before being born)."""
    registered = pl.coalesce(pl.col("registered_on"), date_lit(params.collection_start.value))
    return pl.max_horizontal(registered, pl.col("birth_date"))


def enrolled_on(params: Params) -> pl.Expr:
    """d (docs/RULES.md §3): for due 0 `registration_day`; else, when enrolled, the day from which on
    the running total of the payments never again drops below the due."""
    return (
        pl.when(pl.col("individual_due_fen") == 0)
        .then(registration_day(params))
        .when(pl.col("enrolled"))
        .then(pl.col("reached_on"))
        .otherwise(pl.lit(None, dtype=pl.Date))
        .alias("enrolled_on")
    )
