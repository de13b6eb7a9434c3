"""Labels from the other departments' lists, and the identification date, docs/RULES.md §9.

A person's labels for Y are the roster's 人员身份 together with those of the
list rows in force for Y with the same ID (lists only add labels). The
identification date (`subsidy_identified_on`, used by the refund rule of §5)
comes from the roster's 资助认定日期 and from every in-force list row whose
labels give the person full or fixed.
"""

from __future__ import annotations

import polars as pl

from pipeline.params import Params
from pipeline.rules.dates import date_lit
from pipeline.rules.tier import gives_tier

LIST_ROW_COLUMNS = ("id_number", "identity_labels", "identified_on", "ended_on", "source_file", "sheet", "row_number")


def in_force(params: Params) -> pl.Expr:
    """Identified on or before YE (or undated) and not ended before YS [interp-9.1 docs/RULES.md §9:
    赣州 letter 三(二)2 "致贫风险消除后不再享受资助参保政策"; a person still identified on 1 January keeps
    the subsidy for the year]."""
    return (
        (pl.col("identified_on").is_null() | (pl.col("identified_on") <= date_lit(params.year_end)))
        & (pl.col("ended_on").is_null() | (pl.col("ended_on") >= date_lit(params.year_start)))
    ).alias("in_force")


def no_list_rows() -> pl.DataFrame:
    """The in-force list rows of a night without lists."""
    return pl.DataFrame(
        schema={
            "id_number": pl.Utf8,
            "identity_labels": pl.List(pl.Utf8),
            "identified_on": pl.Date,
            "ended_on": pl.Date,
            "source_file": pl.Utf8,
            "sheet": pl.Utf8,
            "row_number": pl.Int32,
        }
    )


def list_labels(people: pl.LazyFrame, rows: pl.DataFrame, params: Params) -> pl.LazyFrame:
    """Per person of `people` (id_number, age) found on an in-force list row: `list_labels` (their
    distinct labels, in the order of the rows), `list_identified_on` (the earliest 纳入资助时间 of the
    rows whose labels give this person full or fixed) and `list_undated` (such a row has none)."""
    ordered = rows.lazy().sort("source_file", "sheet", "row_number")
    matched = ordered.join(people.select("id_number", "age"), on="id_number", how="inner").with_columns(
        gives_tier(pl.col("identity_labels"), params).alias("__gives")
    )
    return matched.group_by("id_number", maintain_order=True).agg(
        pl.col("identity_labels")
        .list.explode(keep_nulls=False, empty_as_null=False)
        .unique(maintain_order=True)
        .alias("list_labels"),
        pl.col("identified_on").filter(pl.col("__gives")).min().alias("list_identified_on"),
        (pl.col("__gives") & pl.col("identified_on").is_null()).any().alias("list_undated"),
    )


def with_list_labels(people: pl.LazyFrame, rows: pl.DataFrame, params: Params) -> pl.LazyFrame:
    """`identity_labels` merged with the in-force list rows' labels (the roster's first), the roster's
    own kept as `roster_labels`, and `subsidy_identified_on` as docs/RULES.md §9 defines it: empty
    (identified in time) when the roster labels give full or fixed with 资助认定日期 empty, or a
    qualifying list row is undated; else the earliest of the roster's date and the qualifying rows'
    dates (empty when there is none). Without lists it is the roster's 资助认定日期. Needs `age`."""
    found = list_labels(people, rows, params)
    roster_date = pl.col("subsidy_identified_on")
    roster_gives = gives_tier(pl.col("roster_labels"), params)
    in_time = (roster_gives & roster_date.is_null()) | pl.col("list_undated").fill_null(False)
    return (
        people.rename({"identity_labels": "roster_labels"})
        .join(found, on="id_number", how="left", maintain_order="left")
        .with_columns(
            pl.concat_list(pl.col("roster_labels"), pl.col("list_labels").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))))
            .list.unique(maintain_order=True)
            .alias("identity_labels"),
            pl.when(in_time)
            .then(pl.lit(None, dtype=pl.Date))
            .otherwise(pl.min_horizontal(roster_date, pl.col("list_identified_on")))
            .alias("subsidy_identified_on"),
        )
        .drop("list_identified_on", "list_undated")
    )
