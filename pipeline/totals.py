"""Fiscal-subsidy totals, docs/RULES.md §8, by county, township and tier, in integer fen.

Counts and fiscal sums are over enrolled persons; roster_count,
individual_due_total and individual_collected_total are over every accepted
roster person, enrolled or not (docs/RULES.md §8: what the township has to
collect and what it did collect, partial payments included).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import polars as pl

from pipeline.params import Params

GROUP_KEYS = ("county", "township", "tier")
SUM_COLUMNS = (
    "roster_count",
    "enrolled_count",
    "fiscal_per_capita_total_fen",
    "central_share_total_fen",
    "local_share_total_fen",
    "participation_subsidy_total_fen",
    "critical_illness_total_fen",
    "individual_due_total_fen",
    "individual_collected_total_fen",
)
TOTAL_LABEL = "合计"
SUBTOTAL_LABEL = "小计"
ALL_TIERS = "all"


def _per_head_fen(params: Params) -> tuple[int, int | None, int | None]:
    """Fiscal, central and critical-illness amounts per enrolled person, in fen (None: not given)."""
    fiscal = params.fen("fiscal_per_capita_yuan")
    assert fiscal is not None  # a required parameter (pipeline/params.py)
    share = params.central_share.value
    central = None if share is None else int((Decimal(fiscal) * share).quantize(Decimal(1), ROUND_HALF_UP))
    return fiscal, central, params.fen("critical_illness_per_capita_yuan")


def _aggregate(frame: pl.LazyFrame, keys: list[str], params: Params) -> pl.LazyFrame:
    fiscal, central, critical = _per_head_fen(params)
    enrolled = pl.col("enrolled")
    n_enrolled = enrolled.sum().cast(pl.Int64)

    def per_head(amount: int | None) -> pl.Expr:
        return pl.lit(None, dtype=pl.Int64) if amount is None else n_enrolled * amount

    return frame.group_by(keys).agg(
        pl.len().cast(pl.Int64).alias("roster_count"),
        n_enrolled.alias("enrolled_count"),
        per_head(fiscal).alias("fiscal_per_capita_total_fen"),
        per_head(central).alias("central_share_total_fen"),
        (per_head(fiscal) - per_head(central)).alias("local_share_total_fen")
        if central is not None
        else pl.lit(None, dtype=pl.Int64).alias("local_share_total_fen"),
        pl.col("subsidy_applied_fen").filter(enrolled).sum().alias("participation_subsidy_total_fen"),
        per_head(critical).alias("critical_illness_total_fen"),
        pl.col("individual_due_fen").sum().alias("individual_due_total_fen"),
        pl.col("net_paid_fen").sum().alias("individual_collected_total_fen"),
    )


def township_sums(reconciliation: pl.DataFrame, params: Params) -> pl.DataFrame:
    """The sums of SUM_COLUMNS by county, township and tier (and for all tiers): the township rows of
    the totals, from the reconciliation rows (enrolled, subsidy_applied_fen, dues, net paid). Every
    column is a sum over persons, so sums of parts of the roster (the partitions of a big night) add
    up to the sums of the whole."""
    base = reconciliation.lazy().select(
        *GROUP_KEYS, "enrolled", "subsidy_applied_fen", "individual_due_fen", "net_paid_fen"
    )
    both = pl.concat([base, base.with_columns(pl.lit(ALL_TIERS).alias("tier"))])
    return _aggregate(both, list(GROUP_KEYS), params).select(*GROUP_KEYS, *SUM_COLUMNS).collect()


def _sum_keeping_null(column: str) -> pl.Expr:
    """A column's sum; null (a figure the notices do not give) when every value is null."""
    return pl.when(pl.col(column).is_null().all()).then(None).otherwise(pl.col(column).sum()).alias(column)


def totals_from_township_sums(parts: list[pl.DataFrame], params: Params) -> pl.DataFrame:
    """`subsidy_totals` from the township sums of one or more parts of the roster."""
    sums = [_sum_keeping_null(c) for c in SUM_COLUMNS]
    township = (
        pl.concat(parts).lazy().group_by(list(GROUP_KEYS)).agg(sums).with_columns(pl.lit("township").alias("level"))
    )
    county = (
        township.group_by("county", "tier")
        .agg(sums)
        .with_columns(pl.lit("county").alias("level"), pl.lit(SUBTOTAL_LABEL).alias("township"))
    )
    total = (
        township.group_by("tier")
        .agg(sums)
        .with_columns(
            pl.lit("total").alias("level"), pl.lit(TOTAL_LABEL).alias("county"), pl.lit(TOTAL_LABEL).alias("township")
        )
    )
    cols = ["level", *GROUP_KEYS, *SUM_COLUMNS]
    out = (
        pl.concat([township.select(cols), county.select(cols), total.select(cols)])
        .with_columns(
            pl.lit(params.coverage_year, dtype=pl.Int32).alias("coverage_year"),
            (pl.col("enrolled_count") / pl.col("roster_count")).alias("enrolment_rate"),
        )
        .collect()
    )
    level_order = {"township": 0, "county": 1, "total": 2}
    out = out.sort(
        pl.col("county") == TOTAL_LABEL,
        "county",
        pl.col("level").replace_strict(level_order, return_dtype=pl.Int8),
        "township",
        "tier",
    )
    return out
