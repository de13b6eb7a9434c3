"""Enrolment and the enrolment date d, docs/RULES.md §3."""

from __future__ import annotations

import polars as pl

from pipeline.params import Params
from pipeline.rules.dates import date_lit


def payment_totals(payments: pl.LazyFrame, dues: pl.LazyFrame, params: Params) -> pl.LazyFrame:
    """Per person: net paid for Y, positive payments, and the day the running sum reached the due.

    Payments are sorted by (paid_on, ticket_no as text); d is the first
    paid_on at which the running sum reaches or exceeds individual_due.
    `dues` holds `__p` (the person's row), id_number and individual_due_fen
    of the roster; the result is keyed by `__p`. The ID text is matched once;
    everything after works on the integer row.
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
    # Most people pay once: d is that payment's day if it covers the due. Only people with
    # several rows need the running sum, so only their rows are sorted.
    several = (
        year.join(per_person.filter(pl.col("__n_rows") > 1).select("__p"), on="__p", how="semi")
        .sort("__p", "paid_on", "ticket_no")
        .with_columns(pl.col("amount_fen").cum_sum().over("__p").alias("__running"))
        .group_by("__p")
        .agg(
            pl.col("paid_on")
            .filter(pl.col("__running") >= pl.col("individual_due_fen"))
            .min()
            .alias("__reached_several")
        )
    )
    once = pl.when((pl.col("__n_rows") == 1) & (pl.col("net_paid_fen") >= pl.col("individual_due_fen")))
    return per_person.join(several, on="__p", how="left").select(
        "__p",
        "net_paid_fen",
        "n_payments",
        pl.coalesce(once.then(pl.col("__first_on")), pl.col("__reached_several")).alias("reached_on"),
        "last_paid_on",
    )


def is_enrolled() -> pl.Expr:
    """Due 0: enrolled by registration. Due > 0: net paid for Y at least the due."""
    return (
        ((pl.col("individual_due_fen") == 0) | (pl.col("net_paid_fen") >= pl.col("individual_due_fen")))
        .fill_null(False)
        .alias("enrolled")
    )


def enrolled_on(params: Params) -> pl.Expr:
    """d: 参保登记日期 (or CS when empty) for due 0; else the day the running sum reached the due."""
    return (
        pl.when(pl.col("individual_due_fen") == 0)
        .then(pl.coalesce(pl.col("registered_on"), date_lit(params.collection_start.value)))
        .when(pl.col("enrolled"))
        .then(pl.col("reached_on"))
        .otherwise(pl.lit(None, dtype=pl.Date))
        .alias("enrolled_on")
    )
