"""Subsidy tier (资助类别), RULES.md §1."""

from __future__ import annotations

import polars as pl

from pipeline.params import TIER_RANK, Params
from pipeline.rules.dates import date_lit

TIER_NAMES = {"full": "全额资助", "fixed": "定额资助", "none": "普通"}


def age(params: Params) -> pl.Expr:
    """Whole years completed on 1 January of Y [interp RULES.md §0].

    Born on 1 January: the year is completed that day (born 1 January 1966 is
    60 on 1 January 2026); anyone else completes it later in the year. A person born
    during Y is 0.
    """
    birth = pl.col("birth_date")
    born_jan_1 = (birth.dt.month().cast(pl.Int32) == 1) & (birth.dt.day().cast(pl.Int32) == 1)
    years = pl.lit(params.coverage_year, dtype=pl.Int32) - birth.dt.year().cast(pl.Int32)
    return pl.max_horizontal(years - pl.when(born_jan_1).then(0).otherwise(1), pl.lit(0)).alias("age")


def _label_table(params: Params) -> pl.LazyFrame:
    """policy_params/labels.toml as a frame: name, rank, age rule, table order, 资助参保对象."""
    return pl.LazyFrame(
        {
            "__label": [lab.name for lab in params.labels],
            "__rank": [TIER_RANK[lab.tier] for lab in params.labels],
            "__age_rule": [lab.age_rule for lab in params.labels],
            "__order": list(range(len(params.labels))),
            "__object": [lab.subsidized_object for lab in params.labels],
        },
        schema={"__label": pl.Utf8, "__rank": pl.Int8, "__age_rule": pl.Utf8, "__order": pl.Int32,
                "__object": pl.Boolean},
    )


def _age_ok(params: Params) -> pl.Expr:
    """The label's age condition: 年满60周岁 (elderly), 未成年人和60周岁以上 (minor_or_elderly)."""
    a, rule = pl.col("age"), pl.col("__age_rule")
    return (
        (rule == "")
        | ((rule == "elderly") & (a >= params.elderly_age))
        | ((rule == "minor_or_elderly") & ((a < params.adult_age) | (a >= params.elderly_age)))
    )


def with_label_tier(people: pl.LazyFrame, params: Params) -> pl.LazyFrame:
    """Adds tier_label, label_tier and is_subsidized_object (needs identity_labels and age).

    tier_label: the label that gives the person's tier, highest tier first and
    then the order of labels.toml (就高原则, 赣医保发〔2023〕9号 二(一)); null: none
    does. is_subsidized_object: 资助参保对象 of 赣医保发〔2023〕9号 三(二), i.e. a
    label giving full or fixed — not a newborn's tier alone and not 在校大学生.
    Only the people who hold labels are looked at (most hold none).
    """
    qualified = (
        people.select(pl.int_range(0, pl.len(), dtype=pl.UInt32).alias("__i"), "age", "identity_labels")
        .filter(pl.col("identity_labels").list.len() > 0)
        .explode("identity_labels")
        .join(_label_table(params), left_on="identity_labels", right_on="__label", how="inner")
        .filter(_age_ok(params) & (pl.col("__rank") > 0))
        .group_by("__i")
        .agg(
            pl.col("identity_labels").sort_by(["__rank", "__order"], descending=[True, False]).first()
            .alias("tier_label"),
            pl.col("__object").any().alias("is_subsidized_object"),
        )
    )
    tiers = {lab.name: lab.tier for lab in params.labels}
    return (
        people.with_columns(pl.int_range(0, pl.len(), dtype=pl.UInt32).alias("__i"))
        .join(qualified, on="__i", how="left", maintain_order="left")
        .drop("__i")
        .with_columns(
            pl.col("is_subsidized_object").fill_null(False),
            pl.col("tier_label").replace_strict(tiers, default="none", return_dtype=pl.Utf8).alias("label_tier"),
        )
    )


def is_newborn(params: Params) -> pl.Expr:
    """Born on or after newborn_full_from and within the newborn's first N coverage years.

    Ganzhou letter 三(三), 赣医保发〔2025〕12号 (九): Y - birth_year <= N - 1.
    """
    birth = pl.col("birth_date")
    years_since_birth = pl.lit(params.coverage_year, dtype=pl.Int32) - birth.dt.year().cast(pl.Int32)
    return (
        (birth >= date_lit(params.newborn_full_from.value))
        & (years_since_birth <= params.newborn_full_years.value - 1)
        & (birth <= date_lit(params.year_end))
    ).fill_null(False).alias("is_newborn")


def tier() -> pl.Expr:
    """The highest of the labels' tier and the newborn tier (needs label_tier, is_newborn)."""
    return (
        pl.when(pl.col("is_newborn") | (pl.col("label_tier") == "full")).then(pl.lit("full"))
        .otherwise(pl.col("label_tier"))
        .alias("tier")
    )


def tier_basis(params: Params) -> pl.Expr:
    """Why the tier is what it is, for rule_basis and `medins explain`."""
    cites = {lab.name: lab.cite for lab in params.labels}
    label_part = pl.format(
        "{}: {}", pl.col("tier_label"),
        pl.col("tier_label").replace_strict(cites, default="", return_dtype=pl.Utf8),
    )
    newborn = pl.lit(f"新生儿(出生{params.newborn_full_years.value}个自然年度内)全额资助: {params.newborn_full_years.cite}")
    return (
        pl.when(pl.col("is_newborn") & (pl.col("label_tier") != "full")).then(newborn)
        .when(pl.col("tier_label").is_not_null()).then(label_part)
        .otherwise(pl.lit("无资助类别, 按普通居民缴费"))
        .alias("tier_basis")
    )
