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


BASIS_KEYS = ("rule_id", "special_event", "starts_at_birth", "no_benefit_in_year")
NOT_ENROLLED_BASIS = "未参保: 本年度实缴净额低于个人应缴 (RULES.md §3; 金额见对账结果)"
AT_BIRTH_SUFFIX = "; 待遇不早于出生之日, 自出生之日起享受 (RULES.md §4)"
AFTER_YEAR_SUFFIX = "; 等待期满次日已在本年度之后, 本年度不享受待遇"


def rule_basis_text(params: Params, rule_id: str, event: str | None, at_birth: bool, after_year: bool) -> str:
    """The winning rule's document and clause (policy_params [rule_basis]), with what shaped it."""
    if rule_id == "not_enrolled":
        text = NOT_ENROLLED_BASIS
    else:
        window = next((f"{ev.window_months}个月" if ev.window_months else f"{ev.window_days}天"
                       for ev in params.special_events if ev.name == event), "")
        text = params.basis(rule_id).replace("{event}", event or "").replace("{window}", window)
    return text + (AT_BIRTH_SUFFIX if at_birth else "") + (AFTER_YEAR_SUFFIX if after_year else "")


def with_rule_basis(people: pl.LazyFrame, params: Params) -> pl.LazyFrame:
    """Adds rule_basis: the text is made once per distinct (rule, event, flags), not once per person."""
    keys = people.select(BASIS_KEYS).unique().collect()
    combos = zip(*(keys[c] for c in BASIS_KEYS))  # a few dozen distinct combinations, not one per person
    texts = [rule_basis_text(params, *combo) for combo in combos]
    table = keys.with_columns(pl.Series("rule_basis", texts, dtype=pl.Utf8)).lazy()
    return people.join(table, on=list(BASIS_KEYS), how="left", nulls_equal=True, maintain_order="left")


def with_enrolment(residents: pl.LazyFrame, payments: pl.LazyFrame, params: Params) -> pl.LazyFrame:
    """Tier, amounts, payment totals, enrolment and d (RULES.md §1-§3): what the benefit rules need.

    Shared by `determine` and `medins explain`, so a clerk is shown exactly what the run decided.
    """
    people = tier.with_label_tier(residents.with_columns(tier.age(params)), params).with_columns(
        tier.is_newborn(params),
    ).with_columns(
        tier.tier(),
    ).with_columns(
        tier.tier_basis(params),
        amounts.subsidy_amount_fen(params),
    ).with_columns(amounts.individual_due_fen(params)).collect()
    keys = people.select(pl.int_range(0, pl.len(), dtype=pl.UInt32).alias("__p"), "id_number", "individual_due_fen")
    totals = enrolment.payment_totals(payments, keys.lazy(), params)
    # the totals lined up with the people (a join of the narrow key column only), then set beside them
    aligned = keys.lazy().select("__p").join(totals, on="__p", how="left", maintain_order="left").drop("__p")
    return pl.concat([people.lazy(), aligned], how="horizontal").with_columns(
        pl.col("net_paid_fen").fill_null(0),
        pl.col("n_payments").fill_null(0),
    ).with_columns(enrolment.is_enrolled()).with_columns(
        enrolment.enrolled_on(params)
    )


def determine(residents: pl.DataFrame, payments: pl.DataFrame, params: Params) -> pl.DataFrame:
    """Tier, amounts, enrolment and benefit dates for every accepted roster row of Y."""
    # Each stage is collected before the next: with_rule_basis reads its input twice, and a lazy
    # plan would be run again for the second read.
    people = with_benefit_columns(with_enrolment(residents.lazy(), payments.lazy(), params), params).collect()
    people = with_rule_basis(people.lazy(), params).with_columns(
        pl.col("identity_labels").list.join("、").alias("identity_labels"),
    )
    return people.select(DETERMINATION_COLUMNS).collect()
