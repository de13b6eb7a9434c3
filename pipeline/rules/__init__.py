"""The determination engine: RULES.md §1-§4 as polars expressions.

`determine` lists the steps; each rule lives in its module with its clause.
"""

from __future__ import annotations

import polars as pl

from pipeline.params import Params
from pipeline.rules import amounts, enrolment, tier
from pipeline.rules.benefit_start import with_benefit_columns

DETERMINATION_COLUMNS = (
    "coverage_year", "id_number", "name", "county", "township", "village", "tier", "identity_labels",
    "age", "individual_due_fen", "subsidy_amount_fen", "net_paid_fen", "n_payments", "last_paid_on",
    "enrolled", "enrolled_on", "waiting_end", "benefit_start", "benefit_end", "rule_id", "rule_basis",
    "tier_basis", "birth_date", "subsidy_identified_on", "source_file", "sheet", "row_number",
)


def rule_basis(params: Params) -> pl.Expr:
    """The winning rule's document and clause (policy_params [rule_basis]), with what shaped it."""
    texts = dict(params.rule_basis)
    base = pl.col("rule_id").replace_strict(texts, default=None, return_dtype=pl.Utf8)
    windows = {
        ev.name: f"{ev.window_months}个月" if ev.window_months else f"{ev.window_days}天"
        for ev in params.special_events
    }
    window = pl.col("special_event").replace_strict(windows, default="", return_dtype=pl.Utf8)
    base = base.str.replace("{event}", pl.col("special_event").fill_null(""), literal=True) \
               .str.replace("{window}", window, literal=True)
    not_enrolled = pl.format(
        "未参保: {}年度实缴净额{}元低于个人应缴{}元 (RULES.md §3)",
        pl.col("coverage_year"),
        (pl.col("net_paid_fen") / 100).round(2),
        (pl.col("individual_due_fen") / 100).round(2),
    )
    text = pl.when(pl.col("rule_id") == "not_enrolled").then(not_enrolled).otherwise(base)
    text = pl.when(pl.col("starts_at_birth")).then(
        pl.concat_str([text, pl.lit("; 待遇不早于出生之日, 自出生之日起享受 (RULES.md §4)")])
    ).otherwise(text)
    text = pl.when(pl.col("no_benefit_in_year")).then(
        pl.concat_str([text, pl.lit("; 等待期满次日已在本年度之后, 本年度不享受待遇")])
    ).otherwise(text)
    return text.alias("rule_basis")


def determine(residents: pl.DataFrame, payments: pl.DataFrame, params: Params) -> pl.DataFrame:
    """Tier, amounts, enrolment and benefit dates for every accepted roster row of Y."""
    people = tier.with_label_tier(residents.lazy().with_columns(tier.age(params)), params).with_columns(
        tier.is_newborn(params),
    ).with_columns(
        tier.tier(),
    ).with_columns(
        tier.tier_basis(params),
        amounts.subsidy_amount_fen(params),
    ).with_columns(amounts.individual_due_fen(params))

    totals = enrolment.payment_totals(
        payments.lazy(), people.select("id_number", "individual_due_fen"), params
    )
    people = people.join(totals, on="id_number", how="left", maintain_order="left").with_columns(
        pl.col("net_paid_fen").fill_null(0),
        pl.col("n_payments").fill_null(0),
    ).with_columns(enrolment.is_enrolled()).with_columns(
        enrolment.enrolled_on(params)
    )
    people = with_benefit_columns(people, params).with_columns(
        rule_basis(params),
        pl.col("identity_labels").list.join("、").alias("identity_labels"),
    )
    return people.select(DETERMINATION_COLUMNS).collect()
