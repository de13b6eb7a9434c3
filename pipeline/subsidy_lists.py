"""The other departments' subsidy lists (资助参保对象名单), docs/RULES.md §9.

The lists' rows are settled once (they are small); their in-force rows give
labels to the roster's persons in every partition (pipeline/rules/lists.py).
After the partitions, the listed persons' outcomes give who among them is not
enrolled (`subsidy_not_enrolled`) and the progress by township and label
(`subsidy_progress`), with the group 农村低收入人口和脱贫人口 against its target.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import polars as pl

from pipeline.conservation import conservation
from pipeline.io.excel_in import SheetRead
from pipeline.night import Night, NightPlan, check_sheets
from pipeline.params import Params
from pipeline.rules import tier
from pipeline.rules.lists import in_force
from pipeline.validate import LIST_OUT, Checked, settle_subsidy_list

UNKNOWN_PLACE = "未知"
PLACE = ("county", "township", "village")


@dataclass
class ListFacts:
    """The night's accepted list rows (`rows`, with `in_force`), the in-force ones as the rules take
    them, and what the lists add to run_sheets and rejected_rows."""

    rows: pl.DataFrame
    sheets: pl.DataFrame
    rejected: pl.DataFrame
    duplicates: pl.DataFrame

    @property
    def in_force(self) -> pl.DataFrame:
        return self.rows.filter("in_force")


def list_facts(sheets: list[SheetRead], plan: NightPlan) -> ListFacts:
    """Check and settle the list rows (an exact copy in the same sheet is skipped; rows never reject
    each other), assert conservation per file and sheet, mark the rows in force for Y."""
    params = plan.params
    checked = check_sheets(sheets, "subsidy_list", dataclasses.replace(plan, n_parts=1))
    settled = settle_subsidy_list([Checked(parsed=r.load(), rejected=checked.rejected.clear()) for r in checked.rows])
    rows, duplicates, lines = settled.accepted.select(LIST_OUT), settled.duplicates, checked.rejected
    accepted = rows.group_by("source_file", "sheet").agg(pl.len().alias("accepted"))
    counts = conservation(sheets, accepted, lines, duplicates)
    return ListFacts(
        rows=rows.with_columns(in_force(params)),
        sheets=counts,
        rejected=lines.with_columns(pl.lit(params.coverage_year, dtype=pl.Int32).alias("coverage_year")),
        duplicates=duplicates,
    )


def _listing_labels(lists: ListFacts, outcomes: pl.DataFrame, params: Params) -> pl.DataFrame:
    """One row per (in-force list row, label), with the person's place and whether the label makes
    them listed: it gives them full or fixed at their age (roster birth date, else the ID's), or it
    is a 医疗救助对象 label (docs/RULES.md §1, §9)."""
    assistance = [lab.name for lab in params.labels if lab.medical_assistance]
    first_row = (
        lists.in_force.sort("source_file", "sheet", "row_number")
        .group_by("id_number", maintain_order=True)
        .agg(
            *[pl.col(c).first().fill_null(UNKNOWN_PLACE).alias(f"list_{c}") for c in PLACE],
            pl.col("name").first().alias("list_name"),
        )
    )
    people = (
        first_row.join(outcomes.unique("id_number"), on="id_number", how="left")
        .with_columns(
            pl.coalesce(
                pl.col("birth_date"), pl.col("id_number").str.slice(6, 8).str.to_date("%Y%m%d", strict=False)
            ).alias("birth_date"),
            pl.col("enrolled").is_not_null().alias("on_roster"),
            pl.col("enrolled").fill_null(False),
            *[
                pl.when(pl.col("enrolled").is_not_null()).then(pl.col(c)).otherwise(pl.col(f"list_{c}")).alias(c)
                for c in PLACE
            ],
            pl.coalesce(pl.col("name"), pl.col("list_name")).alias("name"),
        )
        .with_columns(tier.age(params))
    )
    exploded = (
        lists.in_force.select("id_number", "identity_labels", "department", "source_file", "sheet", "row_number")
        .explode("identity_labels")
        .rename({"identity_labels": "label"})
    )
    return exploded.join(people, on="id_number", how="left").with_columns(
        (tier.gives_tier(pl.concat_list(pl.col("label")), params) | pl.col("label").is_in(assistance)).alias(
            "makes_listed"
        )
    )


def not_enrolled(labels: pl.DataFrame, rejected_ids: pl.Series, params: Params) -> pl.DataFrame:
    """One row per listed person not enrolled for Y, with the labels and departments of their
    in-force list rows and why (`not_on_roster`, `roster_rejected`, `not_enrolled`)."""
    listed = labels.group_by("id_number").agg(pl.col("makes_listed").any()).filter("makes_listed")
    rows = labels.join(listed.select("id_number"), on="id_number", how="semi").sort(
        "source_file", "sheet", "row_number"
    )
    per_person = rows.group_by("id_number", maintain_order=True).agg(
        pl.col("name", "county", "township", "village", "on_roster", "enrolled").first(),
        pl.col("label").unique(maintain_order=True).str.join("、").alias("identity_labels"),
        pl.col("department").drop_nulls().unique(maintain_order=True).str.join("、").alias("department"),
    )
    return (
        per_person.filter(~pl.col("enrolled"))
        .with_columns(
            pl.when(pl.col("on_roster"))
            .then(pl.lit("not_enrolled"))
            .when(pl.col("id_number").is_in(rejected_ids.implode()))
            .then(pl.lit("roster_rejected"))
            .otherwise(pl.lit("not_on_roster"))
            .alias("reason"),
            pl.when(pl.col("department") == "").then(None).otherwise(pl.col("department")).alias("department"),
            pl.lit(params.coverage_year, dtype=pl.Int32).alias("coverage_year"),
        )
        .select(
            "coverage_year",
            "id_number",
            "name",
            "county",
            "township",
            "village",
            "identity_labels",
            "department",
            "reason",
        )
        .sort("county", "township", "village", "name", "id_number")
    )


def _levels(per_key: pl.DataFrame, key: str) -> pl.DataFrame:
    """Counts per township, county and in total of (person, key) rows."""
    sums = [
        pl.len().alias("listed"),
        pl.col("on_roster").sum().alias("on_roster"),
        pl.col("enrolled").sum().alias("enrolled"),
    ]
    township = per_key.group_by("county", "township", key).agg(sums).with_columns(pl.lit("township").alias("level"))
    county = (
        per_key.group_by("county", key)
        .agg(sums)
        .with_columns(pl.lit("county").alias("level"), pl.lit(None, dtype=pl.Utf8).alias("township"))
    )
    total = (
        per_key.group_by(key)
        .agg(sums)
        .with_columns(
            pl.lit("total").alias("level"),
            pl.lit(None, dtype=pl.Utf8).alias("county"),
            pl.lit(None, dtype=pl.Utf8).alias("township"),
        )
    )
    cols = ["level", "county", "township", key, "listed", "on_roster", "enrolled"]
    return pl.concat([township.select(cols), county.select(cols), total.select(cols)])


def progress(labels: pl.DataFrame, params: Params) -> pl.DataFrame:
    """Per level and label: listed, on roster, enrolled, rate; and the groups with their target."""
    person = ["id_number", "county", "township", "on_roster", "enrolled"]
    by_label = labels.filter("makes_listed").select(*person, "label").unique()
    parts = [_levels(by_label, "label").with_columns(pl.lit(None, dtype=pl.Float64).alias("target_rate"))]
    target = params.low_income_enrolment_target.value
    for group in params.groups:
        members = (
            labels.filter(pl.col("label").is_in(list(group.labels)) & pl.col("makes_listed"))
            .select(person)
            .unique()
            .with_columns(pl.lit(group.name).alias("label"))
        )
        parts.append(
            _levels(members, "label").with_columns(
                pl.lit(None if target is None else float(target), dtype=pl.Float64).alias("target_rate")
            )
        )
    out = pl.concat(parts).filter(pl.col("listed") > 0)
    return out.with_columns(
        pl.lit(params.coverage_year, dtype=pl.Int32).alias("coverage_year"),
        (pl.col("enrolled") / pl.col("listed")).alias("enrolment_rate"),
    ).select(
        "coverage_year",
        "level",
        "county",
        "township",
        "label",
        "listed",
        "on_roster",
        "enrolled",
        "enrolment_rate",
        "target_rate",
    )


def list_tables(lists: ListFacts, night: Night, params: Params) -> dict[str, pl.DataFrame]:
    """subsidy_list_rows, subsidy_not_enrolled and subsidy_progress of the night."""
    outcomes = night.listed
    rejected_ids = night.rejected.filter(pl.col("kind") == "roster")["id_number"].drop_nulls().unique()
    labels = _listing_labels(lists, outcomes, params)
    rows = lists.rows.with_columns(
        pl.col("identity_labels").list.join("、"), pl.lit(params.coverage_year, dtype=pl.Int32).alias("coverage_year")
    )
    return {
        "subsidy_list_rows": rows,
        "subsidy_not_enrolled": not_enrolled(labels, rejected_ids, params),
        "subsidy_progress": progress(labels, params),
    }
