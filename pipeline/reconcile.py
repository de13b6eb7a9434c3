"""Reconciliation of the roster against the tax bureau's payments, docs/RULES.md §5."""

from __future__ import annotations

import polars as pl

from pipeline.params import Params
from pipeline.rules.dates import date_lit
from pipeline.rules.tier import is_subsidized_object
from schemas.registry import TABLES

# what the night hands on of each person besides the table's columns: the totals read them (pipeline/totals.py)
RECONCILIATION_COLUMNS = (*TABLES["reconciliation"].frame_columns, "enrolled", "subsidy_amount_fen")
UNMATCHED_COLUMNS = TABLES["unmatched_payments"].frame_columns


def identified_after_period(params: Params) -> pl.Expr:
    """A 资助参保对象 (labels giving full or fixed, 在校大学生 aside; not a newborn's tier alone)
    identified after CE (CE itself is within the period)."""
    return (
        is_subsidized_object() & (pl.col("subsidy_identified_on") > date_lit(params.collection_end.value))
    ).fill_null(False)


def refund_limited(params: Params) -> pl.Expr:
    """Identified after CE and already enrolled as an ordinary resident (net paid at least the full
    standard): nothing of the standard is refunded (赣医保发〔2023〕9号 二(二) "已参保且进入待遇享受期的，
    按规定不再办理退费手续"; "已参保" read as net paid >= standard, 已进入待遇享受期 not checked
    [interp-5.1 docs/RULES.md §5])."""
    standard = pl.lit(params.fen("individual_standard_yuan"), dtype=pl.Int64)
    return identified_after_period(params) & (pl.col("net_paid_fen") >= standard)


def refundable_fen(params: Params) -> pl.Expr:
    """net_paid - due; where the refund is limited, only what exceeds the full standard."""
    standard = pl.lit(params.fen("individual_standard_yuan"), dtype=pl.Int64)
    late = pl.max_horizontal(pl.col("net_paid_fen") - standard, pl.lit(0, dtype=pl.Int64))
    return (
        pl.when(refund_limited(params))
        .then(late)
        .otherwise(pl.col("net_paid_fen") - pl.col("individual_due_fen"))
        .alias("refundable_fen")
    )


def subsidy_applied_fen(params: Params) -> pl.Expr:
    """What the participation subsidy really pays for this person: nothing where the refund is
    limited (the person paid the standard themselves), else the tier's subsidy [interp-5.3
    docs/RULES.md §5: what the person keeps paid plus what the subsidy pays is never more than the
    standard]."""
    return (
        pl.when(refund_limited(params))
        .then(pl.lit(0, dtype=pl.Int64))
        .otherwise(pl.col("subsidy_amount_fen"))
        .alias("subsidy_applied_fen")
    )


def status() -> pl.Expr:
    """First that holds: subsidized, unpaid, underpaid, overpaid, paid_in_full (needs refundable_fen)."""
    due, net = pl.col("individual_due_fen"), pl.col("net_paid_fen")
    return (
        pl.when((due == 0) & (net <= 0))
        .then(pl.lit("subsidized"))
        .when((due > 0) & (net <= 0))
        .then(pl.lit("unpaid"))
        .when((net > 0) & (net < due))
        .then(pl.lit("underpaid"))
        .when(pl.col("refundable_fen") > 0)
        .then(pl.lit("overpaid"))
        .otherwise(pl.lit("paid_in_full"))
        .alias("status")
    )


def amount_diff_fen() -> pl.Expr:
    """unpaid: due; underpaid: due - net; overpaid: the refund; else 0."""
    due, net = pl.col("individual_due_fen"), pl.col("net_paid_fen")
    s = pl.col("status")
    return (
        pl.when(s == "unpaid")
        .then(due)
        .when(s == "underpaid")
        .then(due - net)
        .when(s == "overpaid")
        .then(pl.col("refundable_fen"))
        .otherwise(pl.lit(0, dtype=pl.Int64))
        .alias("amount_diff_fen")
    )


def refund_basis(params: Params) -> pl.Expr:
    """Why a refund is what it is, as a code of schemas/vocabulary.toml [refund_bases] (its clause is
    the year's rule_basis of the same key): limited (identified after CE, paid the standard), a
    资助参保对象's excess over the reduced due, or an ordinary overpayment."""
    s = pl.col("status")
    limited = refund_limited(params) & (pl.col("net_paid_fen") > pl.col("individual_due_fen"))
    return (
        pl.when(((s == "overpaid") | (s == "paid_in_full")) & limited)
        .then(pl.lit("refund_identified_after_period"))
        .when((s == "overpaid") & is_subsidized_object() & ~identified_after_period(params))
        .then(pl.lit("refund_identified_in_period"))
        .when(s == "overpaid")
        .then(pl.lit("refund_overpaid"))
        .otherwise(pl.lit(None, dtype=pl.Utf8))
        .alias("refund_basis")
    )


def reconcile(determinations: pl.DataFrame, params: Params) -> pl.DataFrame:
    """One row per roster person of Y with status, amount_diff and subsidy_applied (from determinations' payment
    totals); `enrolled` and `subsidy_amount_fen` are carried for the totals (docs/RULES.md §8)."""
    return (
        determinations.lazy()
        .with_columns(refundable_fen(params))
        .with_columns(status())
        .with_columns(amount_diff_fen(), refund_basis(params), subsidy_applied_fen(params))
        .select(RECONCILIATION_COLUMNS)
        .collect()
    )


def unmatched_payments(
    payments: pl.DataFrame, residents: pl.DataFrame, rejected: pl.DataFrame, params: Params
) -> pl.DataFrame:
    """Payments for Y whose ID matches no accepted roster row, with the reason as a code of
    schemas/vocabulary.toml [unmatched_reasons]: roster_rejected (the person's roster row failed a
    check) or not_on_roster.

    Payments for other coverage years are kept in `payments` but not
    reconciled here (docs/RULES.md §5).
    """
    rejected_ids = rejected.filter(pl.col("kind") == "roster").select("id_number").drop_nulls().unique()
    year = payments.lazy().filter(pl.col("coverage_year") == params.coverage_year)
    return (
        year.join(residents.lazy().select("id_number"), on="id_number", how="anti")
        .join(rejected_ids.lazy().with_columns(pl.lit(True).alias("__roster_rejected")), on="id_number", how="left")
        .with_columns(
            pl.when(pl.col("__roster_rejected").fill_null(False))
            .then(pl.lit("roster_rejected"))
            .otherwise(pl.lit("not_on_roster"))
            .alias("reason")
        )
        .select(UNMATCHED_COLUMNS)
        .sort("source_file", "sheet", "row_number")
        .collect()
    )
