"""The determination engine: docs/RULES.md §1-§4 as polars expressions.

`determine` lists the steps; each rule lives in its module with its clause.
"""

from __future__ import annotations

import polars as pl

from pipeline.params import Params
from pipeline.rules import amounts, enrolment, tier
from pipeline.rules.benefit_start import with_benefit_columns
from pipeline.rules.lists import no_list_rows, with_list_labels
from schemas.registry import TABLES

# the table's columns, and what reconciliation and the lists read of each person besides
DETERMINATION_COLUMNS = (
    *TABLES["determinations"].frame_columns,
    "net_paid_fen",
    "n_payments",
    "last_paid_on",
    "tier_basis",
    "birth_date",
    "subsidy_identified_on",
    "is_subsidized_object",
    "roster_labels",
)


BASIS_KEYS = ("rule_id", "special_event", "starts_at_birth", "no_benefit_in_year")
NOT_ENROLLED_BASIS = "未参保: 本年度实缴净额低于个人应缴 (docs/RULES.md §3; 金额见对账结果)"
AT_BIRTH_SUFFIX = "; 待遇不早于出生之日, 自出生之日起享受 (docs/RULES.md §4)"
AFTER_YEAR_SUFFIX = "; 等待期满次日已在本年度之后, 本年度不享受待遇"


def rule_basis_text(params: Params, rule_id: str, event: str | None, at_birth: bool, after_year: bool) -> str:
    """The winning rule's document and clause (policy_params [rule_basis]), with what shaped it."""
    if rule_id == "not_enrolled":
        text = NOT_ENROLLED_BASIS
    else:
        window = next(
            (
                f"{ev.window_months}个月" if ev.window_months else f"{ev.window_days}天"
                for ev in params.special_events
                if ev.name == event
            ),
            "",
        )
        text = params.basis(rule_id).replace("{event}", event or "").replace("{window}", window)
    return text + (AT_BIRTH_SUFFIX if at_birth else "") + (AFTER_YEAR_SUFFIX if after_year else "")


def with_rule_basis(people: pl.LazyFrame, params: Params) -> pl.LazyFrame:
    """Adds rule_basis: the text is made once per distinct (rule, event, flags), not once per person.

    The four keys are packed into one exact integer (the dictionary codes of the two texts and the
    two flags), the few dozen distinct codes get their text, and every row looks its code up; the
    texts come out dictionary-encoded (Categorical), as DuckDB stores them.
    """
    rule, event = (pl.col(c).cast(pl.Categorical).to_physical().cast(pl.UInt64) for c in BASIS_KEYS[:2])
    code = (
        rule * (1 << 34)
        + event.fill_null((1 << 32) - 1) * 4
        + pl.col(BASIS_KEYS[2]).fill_null(False).cast(pl.UInt64) * 2
        + pl.col(BASIS_KEYS[3]).fill_null(False).cast(pl.UInt64)
    ).alias("__basis")
    coded = people.with_columns(code).collect()
    keys = coded.select("__basis", *BASIS_KEYS).unique(subset="__basis")  # a few dozen rows
    texts = [rule_basis_text(params, *combo) for combo in zip(*(keys[c] for c in BASIS_KEYS))]
    return (
        coded.lazy()
        .with_columns(
            pl.col("__basis")
            .replace_strict(keys["__basis"], pl.Series(texts, dtype=pl.Utf8), return_dtype=pl.Categorical)
            .alias("rule_basis"),
        )
        .drop("__basis")
    )


def with_enrolment(
    residents: pl.LazyFrame, payments: pl.LazyFrame, params: Params, list_rows: pl.DataFrame | None = None
) -> pl.LazyFrame:
    """Tier, amounts, payment totals, enrolment and d (docs/RULES.md §1-§3, §9): what the benefit
    rules need. `list_rows`: the in-force rows of the subsidy lists (their labels join the roster's).

    Shared by `determine` and `medins explain`, so a clerk is shown exactly what the run decided.
    """
    labelled = with_list_labels(
        residents.with_columns(tier.age(params)), no_list_rows() if list_rows is None else list_rows, params
    )
    people = (
        tier.with_label_tier(labelled, params)
        .with_columns(
            tier.is_newborn(params),
        )
        .with_columns(
            tier.tier(),
        )
        .with_columns(
            tier.tier_basis(params),
            amounts.subsidy_amount_fen(params),
        )
        .with_columns(amounts.individual_due_fen(params))
        .collect()
    )
    keys = people.select(pl.int_range(0, pl.len(), dtype=pl.UInt32).alias("__p"), "id_number", "individual_due_fen")
    totals = enrolment.payment_totals(payments, keys.lazy(), params).collect()
    # the totals set at their person's row (`__p`): a scatter, not a join; nobody paid: 0 / null
    at = totals["__p"]
    aligned = [
        (
            pl.zeros(people.height, dtype=totals[name].dtype, eager=True)
            if name in ("net_paid_fen", "n_payments")
            else pl.repeat(None, people.height, dtype=totals[name].dtype, eager=True)
        )
        .scatter(at, totals[name])
        .alias(name)
        for name in totals.columns
        if name != "__p"
    ]
    return (
        people.with_columns(aligned)
        .lazy()
        .with_columns(enrolment.is_enrolled())
        .with_columns(enrolment.enrolled_on(params))
    )


def determine(
    residents: pl.DataFrame, payments: pl.DataFrame, params: Params, list_rows: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Tier, amounts, enrolment and benefit dates for every accepted roster row of Y (`list_rows`:
    the in-force rows of the subsidy lists)."""
    # Each stage is collected before the next: with_rule_basis reads its input twice, and a lazy
    # plan would be run again for the second read.
    enrolled = with_enrolment(residents.lazy(), payments.lazy(), params, list_rows)
    people = with_benefit_columns(enrolled, params).collect()
    people = with_rule_basis(people.lazy(), params).with_columns(
        pl.col("identity_labels").list.join("、").alias("identity_labels"),
        pl.col("roster_labels").list.join("、").alias("roster_labels"),
    )
    return people.select(DETERMINATION_COLUMNS).collect()
