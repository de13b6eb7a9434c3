"""Enrolment and the enrolment date d, RULES.md §3."""

from __future__ import annotations

import polars as pl

from pipeline.params import Params
from pipeline.rules.dates import date_lit


def payment_totals(payments: pl.LazyFrame, dues: pl.LazyFrame, params: Params) -> pl.LazyFrame:
    """Per person: net paid for Y, positive payments, and the day the running sum reached the due.

    Payments are sorted by (paid_on, ticket_no as text); d is the first
    paid_on at which the running sum reaches or exceeds individual_due.
    `dues` holds id_number and individual_due_fen of the roster.
    """
    year = payments.filter(pl.col("coverage_year") == params.coverage_year).join(dues, on="id_number", how="inner")
    counted = year.with_columns(pl.len().over("id_number").alias("__n_rows"))
    # Most people pay once: d is that payment's day if it covers the due. Only people with
    # several rows need the running sum, so only they are sorted.
    single = counted.filter(pl.col("__n_rows") == 1).select(
        "id_number",
        pl.col("amount_fen").alias("net_paid_fen"),
        (pl.col("amount_fen") > 0).cast(pl.Int32).alias("n_payments"),
        pl.when(pl.col("amount_fen") >= pl.col("individual_due_fen")).then(pl.col("paid_on")).alias("reached_on"),
        pl.when(pl.col("amount_fen") > 0).then(pl.col("paid_on")).alias("last_paid_on"),
    )
    several = (
        counted.filter(pl.col("__n_rows") > 1)
        .sort("id_number", "paid_on", "ticket_no")
        .with_columns(pl.col("amount_fen").cum_sum().over("id_number").alias("__running"))
        .group_by("id_number")
        .agg(
            pl.col("amount_fen").sum().alias("net_paid_fen"),
            (pl.col("amount_fen") > 0).sum().cast(pl.Int32).alias("n_payments"),
            pl.col("paid_on").filter(pl.col("__running") >= pl.col("individual_due_fen")).min().alias("reached_on"),
            pl.col("paid_on").filter(pl.col("amount_fen") > 0).max().alias("last_paid_on"),
        )
    )
    return pl.concat([single, several])


def is_enrolled() -> pl.Expr:
    """Due 0: enrolled by registration. Due > 0: net paid for Y at least the due."""
    return (
        (pl.col("individual_due_fen") == 0) | (pl.col("net_paid_fen") >= pl.col("individual_due_fen"))
    ).fill_null(False).alias("enrolled")


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
