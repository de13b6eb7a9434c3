"""Subsidy tier (资助类别), docs/RULES.md §1."""

from __future__ import annotations

import polars as pl

from pipeline.params import TIER_RANK, Params
from pipeline.rules.dates import date_lit


def age(params: Params) -> pl.Expr:
    """Whole years completed on 1 January of Y [interp-0.1 docs/RULES.md §0].

    Born on 1 January: the year is completed that day (born 1 January 1966 is
    60 on 1 January 2026); anyone else completes it later in the year. A person born
    during Y is 0.
    """
    birth = pl.col("birth_date")
    born_jan_1 = (birth.dt.month().cast(pl.Int32) == 1) & (birth.dt.day().cast(pl.Int32) == 1)
    years = pl.lit(params.coverage_year, dtype=pl.Int32) - birth.dt.year().cast(pl.Int32)
    return pl.max_horizontal(years - pl.when(born_jan_1).then(0).otherwise(1), pl.lit(0)).alias("age")


def _age_ok(rule: str, params: Params) -> pl.Expr:
    """A label's age condition: 年满60周岁 (elderly), 未成年人和60周岁以上 (minor_or_elderly)."""
    a = pl.col("age")
    if rule == "elderly":
        return a >= params.elderly_age
    if rule == "minor_or_elderly":
        return (a < params.adult_age) | (a >= params.elderly_age)
    return pl.lit(True)


def _ranked(params: Params) -> list:
    """The labels that give a tier, highest tier first, then the order of labels.toml (就高原则)."""
    return sorted((lab for lab in params.labels if TIER_RANK[lab.tier] > 0), key=lambda lab: -TIER_RANK[lab.tier])


def _bits(labels, bit: dict[str, int]) -> int:
    return sum(bit[lab.name] for lab in labels)


def held_bits(labels: pl.Expr, params: Params) -> pl.Expr:
    """A list of labels as one integer: one bit per label that gives a tier, in rank order
    (params.MAX_TIER_LABELS of them at most, checked when the labels are loaded)."""
    bit = {lab.name: 1 << i for i, lab in enumerate(_ranked(params))}
    return (
        labels.list.unique()
        .list.eval(pl.element().replace_strict(bit, default=0, return_dtype=pl.Int64))
        .list.sum()
        .fill_null(0)
    )


def allowed_bits(params: Params) -> pl.Expr:
    """The labels whose age condition the person meets (needs `age`), as bits like `held_bits`."""
    ranked = _ranked(params)
    bit = {lab.name: 1 << i for i, lab in enumerate(ranked)}
    if not ranked:
        return pl.lit(0, dtype=pl.Int64)
    return pl.sum_horizontal(
        pl.when(_age_ok(rule, params))
        .then(pl.lit(_bits((lab for lab in ranked if lab.age_rule == rule), bit)))
        .otherwise(pl.lit(0))
        .cast(pl.Int64)
        for rule in sorted({lab.age_rule for lab in ranked})
    )


def gives_tier(labels: pl.Expr, params: Params) -> pl.Expr:
    """Some label of the list gives full or fixed at the person's age (needs `age`)."""
    return (held_bits(labels, params) & allowed_bits(params)) != 0


def with_label_tier(people: pl.LazyFrame, params: Params) -> pl.LazyFrame:
    """Adds tier_label, label_tier and is_subsidized_object (needs identity_labels and age).

    tier_label: the label that gives the person's tier, highest tier first and
    then the order of labels.toml (就高原则, 赣医保发〔2023〕9号 二(一)); null: none
    does. is_subsidized_object: 资助参保对象 of 赣医保发〔2023〕9号 三(二) and
    docs/RULES.md §4-§5, i.e. a label giving full or fixed — not a newborn's
    tier alone and not 在校大学生.

    Each label that gives a tier is one bit, in rank order: a person's labels
    become one integer (`held_bits`), the labels whose age condition the person
    meets another (`allowed_bits`), and the winning label is the lowest bit set
    in both.
    """
    ranked = _ranked(params)
    bit = {lab.name: 1 << i for i, lab in enumerate(ranked)}
    meets = pl.col("__meets")
    first = pl.when(meets != 0).then(meets.bitwise_trailing_zeros())
    tier_label = first.replace_strict({i: lab.name for i, lab in enumerate(ranked)}, default=None, return_dtype=pl.Utf8)
    objects = _bits((lab for lab in ranked if lab.subsidized_object), bit)
    tiers = {lab.name: lab.tier for lab in params.labels}
    return (
        people.with_columns((held_bits(pl.col("identity_labels"), params) & allowed_bits(params)).alias("__meets"))
        .with_columns(
            tier_label.alias("tier_label"),
            ((meets & objects) != 0).alias("is_subsidized_object"),
        )
        .with_columns(
            pl.col("tier_label").replace_strict(tiers, default="none", return_dtype=pl.Utf8).alias("label_tier"),
        )
        .drop("__meets")
    )


def is_subsidized_object() -> pl.Expr:
    """资助参保对象 (docs/RULES.md §4): a label of the person's labels for Y (roster and in-force
    lists, §9) gives full or fixed at their age, 在校大学生 aside; a newborn's tier alone does not
    count. The one definition read by the 2024 switch (赣医保发〔2023〕9号 三(二),
    benefit_start.subsidized_no_waiting) and by the limited refund of §5 (reconcile.refund_limited);
    set by `with_label_tier` from labels.toml's `subsidized_object`."""
    return pl.col("is_subsidized_object").fill_null(False)


def is_newborn(params: Params) -> pl.Expr:
    """Born on or after newborn_full_from and within the newborn's first N coverage years.

    Ganzhou letter 三(三), 赣医保发〔2025〕12号 (九): Y - birth_year <= N - 1.
    """
    birth = pl.col("birth_date")
    years_since_birth = pl.lit(params.coverage_year, dtype=pl.Int32) - birth.dt.year().cast(pl.Int32)
    return (
        (
            (birth >= date_lit(params.newborn_full_from.value))
            & (years_since_birth <= params.newborn_full_years.value - 1)
            & (birth <= date_lit(params.year_end))
        )
        .fill_null(False)
        .alias("is_newborn")
    )


def tier() -> pl.Expr:
    """The highest of the labels' tier and the newborn tier (needs label_tier, is_newborn)."""
    return (
        pl.when(pl.col("is_newborn") | (pl.col("label_tier") == "full"))
        .then(pl.lit("full"))
        .otherwise(pl.col("label_tier"))
        .alias("tier")
    )


def tier_basis(params: Params) -> pl.Expr:
    """Why the tier is what it is, for rule_basis and `medins explain`."""
    # one text per label, looked up (not formatted per person)
    label_part = pl.col("tier_label").replace_strict(
        {lab.name: f"{lab.name}: {params.label_cite(lab.name)}" for lab in params.labels},
        default=None,
        return_dtype=pl.Utf8,
    )
    newborn = pl.lit(
        f"新生儿(出生{params.newborn_full_years.value}个自然年度内)全额资助: {params.newborn_full_years.cite}"
    )
    return (
        pl.when(pl.col("is_newborn") & (pl.col("label_tier") != "full"))
        .then(newborn)
        .when(pl.col("tier_label").is_not_null())
        .then(label_part)
        .otherwise(pl.lit("无资助类别, 按普通居民缴费"))
        .alias("tier_basis")
    )
