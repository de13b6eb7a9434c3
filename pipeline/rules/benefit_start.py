"""Benefit start (待遇享受期起始), docs/RULES.md §4 — only for enrolled persons.

Each rule gives a candidate (rule_id, start, waiting_end) or a null start
where it does not apply. The earliest start wins (each special rule only
ever helps) [interp-4.1 docs/RULES.md §4]; on a tie the rule without a waiting period
wins. The year's models are chosen once, in `candidates`, from the
parameters (benefit_model, newborn_model, subsidized_no_waiting).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipeline.params import Params
from pipeline.rules.dates import NULL_DATE, add_days, add_months, date_lit, days_between, next_day
from pipeline.rules.tier import is_subsidized_object

D = pl.col("enrolled_on")
BIRTH = pl.col("birth_date")


@dataclass(frozen=True)
class Candidate:
    rule_id: pl.Expr  # Utf8
    start: pl.Expr  # Date, null where the rule does not apply
    waiting_end: pl.Expr  # Date, null where the rule has no waiting period


def _lit(rule_id: str) -> pl.Expr:
    return pl.lit(rule_id, dtype=pl.Utf8)


# --- ordinary residents, one model per year -------------------------------


def _in_period_or_waiting(params: Params, waiting: pl.Expr) -> Candidate:
    """d <= CE -> YS with no waiting; else the given waiting end, benefits from the day after."""
    ys, ce = date_lit(params.year_start), date_lit(params.collection_end.value)
    in_period = D <= ce
    return Candidate(
        rule_id=pl.when(in_period).then(_lit("in_collection_period")).otherwise(_lit("late_waiting")),
        start=pl.when(in_period).then(ys).otherwise(next_day(waiting)),
        waiting_end=pl.when(in_period).then(NULL_DATE).otherwise(waiting),
    )


def ordinary_wait_days(params: Params) -> Candidate:
    """赣医保发〔2023〕9号 三(一): d <= CE -> YS; else a waiting period of N days from d."""
    return _in_period_or_waiting(params, add_days(D, params.need("waiting_days")))


def ordinary_wait_months(params: Params) -> Candidate:
    """赣医保发〔2024〕7号 (四): d <= CE -> YS; else a waiting period of N months from d."""
    return _in_period_or_waiting(params, add_months(D, params.need("waiting_months")))


def ordinary_continuity(params: Params) -> Candidate:
    """赣医保发〔2025〕12号 (八) 1-4 by 上年度参保, and case 5 [interp-4.3 docs/RULES.md §4].

    1 continuous, d < YS -> YS; 2 continuous, YS <= d <= CE -> d + 1 day;
    3 lapsed, d < YS -> waiting to the day before lapsed_early_benefit_start;
    4 lapsed, d >= YS -> waiting ends add_months(d, N), start the day after;
    5 continuous, d > CE -> as case 4.
    """
    ys, ce = date_lit(params.year_start), date_lit(params.collection_end.value)
    lapsed_start = date_lit(params.need("lapsed_early_benefit_start"))
    waiting = add_months(D, params.need("waiting_months"))
    continuous = pl.col("prev_year_insured").fill_null(False)
    before_year = D < ys
    return Candidate(
        rule_id=pl.when(continuous & before_year)
        .then(_lit("continuous_before_year"))
        .when(continuous & (D <= ce))
        .then(_lit("continuous_in_period"))
        .when(continuous)
        .then(_lit("continuous_after_period"))
        .when(before_year)
        .then(_lit("lapsed_before_year"))
        .otherwise(_lit("lapsed_in_year")),
        start=pl.when(continuous & before_year)
        .then(ys)
        .when(continuous & (D <= ce))
        .then(next_day(D))
        .when(~continuous & before_year)
        .then(lapsed_start)
        .otherwise(next_day(waiting)),
        waiting_end=pl.when(continuous & (D <= ce))
        .then(NULL_DATE)
        .when(before_year)
        .then(add_days(lapsed_start, -1))
        .otherwise(waiting),
    )


ORDINARY_MODELS = {
    "wait_days": ordinary_wait_days,
    "wait_months": ordinary_wait_months,
    "continuity": ordinary_continuity,
}


# --- subsidised persons, special groups -----------------------------------


def subsidized_no_waiting(params: Params) -> Candidate:
    """赣医保发〔2023〕9号 三(二): 资助参保对象 start YS whatever d (2024 switch)."""
    return Candidate(
        rule_id=_lit("subsidized_no_waiting"),
        start=pl.when(is_subsidized_object()).then(date_lit(params.year_start)).otherwise(NULL_DATE),
        waiting_end=NULL_DATE,
    )


def special_status(params: Params) -> Candidate:
    """医疗救助对象 / 宗教教职人员 (no time limit): start max(YS, d + 1 day), no waiting.

    A 医疗救助对象 is a person holding that label or any label whose subsidy is medical assistance's
    分类资助参保 (labels.toml `medical_assistance`) [interp-1.1 docs/RULES.md §1], whatever its tier,
    age condition or identification date (docs/RULES.md §4, §9).
    """
    names = list(
        dict.fromkeys([*params.special_status_labels, *(lab.name for lab in params.labels if lab.medical_assistance)])
    )
    holds = pl.col("identity_labels").list.eval(pl.element().is_in(names)).list.any() if names else pl.lit(False)
    return Candidate(
        rule_id=_lit("special_status"),
        start=pl.when(holds.fill_null(False))
        .then(pl.max_horizontal(date_lit(params.year_start), next_day(D)))
        .otherwise(NULL_DATE),
        waiting_end=NULL_DATE,
    )


def special_event_window_end(params: Params) -> pl.Expr:
    """Last day of the event's window: add_months(date, N) or date + N days; null: no window in Y."""
    event_date = pl.col("special_event_date")
    ends = [
        pl.when(pl.col("special_event") == ev.name).then(
            add_months(event_date, ev.window_months) if ev.window_months else add_days(event_date, ev.window_days or 0)
        )
        for ev in params.special_events
    ]
    return pl.coalesce(*ends, NULL_DATE)


def special_event(params: Params) -> Candidate:
    """特殊情形 within its window (event date <= d <= window end): max(YS, d + 1 day), no waiting."""
    window_end = special_event_window_end(params)
    applies = ((D >= pl.col("special_event_date")) & (D <= window_end)).fill_null(False)
    return Candidate(
        rule_id=_lit("special_event"),
        start=pl.when(applies).then(pl.max_horizontal(date_lit(params.year_start), next_day(D))).otherwise(NULL_DATE),
        waiting_end=NULL_DATE,
    )


# --- newborns, one model per year ------------------------------------------


def _registration() -> pl.Expr:
    """r = 参保登记日期, or d when empty."""
    return pl.coalesce(pl.col("registered_on"), D)


def _within(gap_days: pl.Expr, window: int) -> pl.Expr:
    """A negative gap (registered before birth) counts as within the window."""
    return (gap_days <= window).fill_null(False)


def newborn_of_year(params: Params) -> pl.Expr:
    """The 2024 newborn rule is for this year's child: born in Y, or born in Y-1 and registered on or
    after CS (赣医保发〔2023〕9号 三(四) "如已到新生儿出生次年居民医保征缴期的，监护人也可选择只缴纳出生次年居民医保费").
    A child born in Y-1 and registered before CS was enrolled for its year of birth; born earlier, it
    is an ordinary resident (docs/RULES.md §4)."""
    ys, ye = date_lit(params.year_start), date_lit(params.year_end)
    year_before = date_lit(params.year_start.replace(year=params.coverage_year - 1))
    born_in_year = (BIRTH >= ys) & (BIRTH <= ye)
    born_year_before = (BIRTH >= year_before) & (BIRTH < ys)
    registered_in_period = _registration() >= date_lit(params.collection_start.value)
    return (born_in_year | (born_year_before & registered_in_period)).fill_null(False)


def newborn_registration_only(params: Params) -> Candidate:
    """赣医保发〔2023〕9号 三(四): a child of `newborn_of_year` registered within 90 days of birth
    (r - birth <= 90 days) -> from max(birth, YS); otherwise the ordinary and special rules."""
    ys = date_lit(params.year_start)
    within = _within(days_between(_registration(), BIRTH), params.newborn_window_days.value)
    return Candidate(
        rule_id=_lit("newborn_from_birth"),
        start=pl.when(within & newborn_of_year(params)).then(pl.max_horizontal(BIRTH, ys)).otherwise(NULL_DATE),
        waiting_end=NULL_DATE,
    )


def newborn_payment(params: Params) -> Candidate:
    """赣医保发〔2024〕7号 (六): d - birth <= 90 days -> max(birth, YS);
    else d <= add_months(birth, 12) -> max(YS, d + 1 day)."""
    ys = date_lit(params.year_start)
    within = _within(days_between(D, BIRTH), params.newborn_window_days.value)
    within_grace = (D <= add_months(BIRTH, params.need("newborn_grace_months"))).fill_null(False)
    return Candidate(
        rule_id=pl.when(within).then(_lit("newborn_from_birth")).otherwise(_lit("newborn_next_day")),
        start=pl.when(within)
        .then(pl.max_horizontal(BIRTH, ys))
        .when(within_grace)
        .then(pl.max_horizontal(ys, next_day(D)))
        .otherwise(NULL_DATE),
        waiting_end=NULL_DATE,
    )


def newborn_registration(params: Params) -> Candidate:
    """赣医保发〔2025〕12号 (九): a newborn (§1 test) registered within 90 days -> max(birth, YS);
    registered later within the 3 calendar years -> max(YS, r + 1 day)."""
    ys = date_lit(params.year_start)
    r = _registration()
    newborn = pl.col("is_newborn")
    within = _within(days_between(r, BIRTH), params.newborn_window_days.value)
    return Candidate(
        rule_id=pl.when(within).then(_lit("newborn_from_birth")).otherwise(_lit("newborn_next_day")),
        start=pl.when(newborn & within)
        .then(pl.max_horizontal(BIRTH, ys))
        .when(newborn)
        .then(pl.max_horizontal(ys, next_day(r)))
        .otherwise(NULL_DATE),
        waiting_end=NULL_DATE,
    )


NEWBORN_MODELS = {
    "registration_only": newborn_registration_only,
    "payment": newborn_payment,
    "registration": newborn_registration,
}


def candidates(params: Params) -> list[Candidate]:
    """The rules that can apply in Y, in tie-break order: ordinary, the 2024 switch, newborn, status,
    event [interp-4.4 docs/RULES.md §4] (the one place years differ)."""
    out = [ORDINARY_MODELS[params.benefit_model.value](params)]
    if params.subsidized_no_waiting.value:
        out.append(subsidized_no_waiting(params))
    out.append(NEWBORN_MODELS[params.newborn_model.value](params))
    out.append(special_status(params))
    out.append(special_event(params))
    return out


def benefit_columns(params: Params) -> list[list[pl.Expr]]:
    """rule_id, benefit_start, waiting_end, benefit_end (needs enrolled, enrolled_on and the tier columns).

    Earliest start wins; on equal starts a rule without waiting wins, then
    the order of `candidates` [interp-4.4 docs/RULES.md §4]. Benefits never start before birth: an earlier
    winner starts on the birth date with no waiting. A start after YE means no
    benefit in Y (waiting_end still shown).

    Returned as stages to apply one after the other (`with_columns` each):
    every candidate is computed once into a column before the winner is
    chosen, instead of being re-evaluated inside every comparison.
    """
    cands = candidates(params)
    n = len(cands)
    starts = [pl.col(f"__start_{i}") for i in range(n)]
    waits = [pl.col(f"__wait_{i}") for i in range(n)]
    rules = [pl.col(f"__rule_{i}") for i in range(n)]
    stage_candidates = [
        e
        for i, c in enumerate(cands)
        for e in (c.rule_id.alias(f"__rule_{i}"), c.start.alias(f"__start_{i}"), c.waiting_end.alias(f"__wait_{i}"))
    ]
    best = pl.col("__best")
    winner = pl.coalesce(
        *[pl.when((starts[i] == best) & waits[i].is_null()).then(pl.lit(i)) for i in range(n)],
        *[pl.when(starts[i] == best).then(pl.lit(i)) for i in range(n)],
    )
    win = pl.col("__winner")
    rule_id = pl.coalesce(*[pl.when(win == i).then(rules[i]) for i in range(n)])
    waiting = pl.coalesce(*[pl.when(win == i).then(waits[i]) for i in range(n)], NULL_DATE)
    before_birth = (best < BIRTH).fill_null(False)
    start = pl.when(before_birth).then(BIRTH).otherwise(best)
    waiting = pl.when(before_birth).then(NULL_DATE).otherwise(waiting)
    enrolled = pl.col("enrolled")
    in_year = start <= date_lit(params.year_end)
    return [
        stage_candidates,
        [pl.min_horizontal(*starts).alias("__best")],
        [winner.alias("__winner")],
        [
            pl.when(enrolled).then(rule_id).otherwise(_lit("not_enrolled")).alias("rule_id"),
            pl.when(enrolled & in_year).then(start).otherwise(NULL_DATE).alias("benefit_start"),
            pl.when(enrolled).then(waiting).otherwise(NULL_DATE).alias("waiting_end"),
            pl.when(enrolled & in_year).then(date_lit(params.year_end)).otherwise(NULL_DATE).alias("benefit_end"),
            (enrolled & before_birth).alias("starts_at_birth"),
            (enrolled & ~in_year.fill_null(False)).alias("no_benefit_in_year"),
        ],
    ]


def with_benefit_columns(frame, params: Params):
    """Apply `benefit_columns` to a (Lazy)Frame and drop the scratch columns."""
    for stage in benefit_columns(params):
        frame = frame.with_columns(stage)
    return frame.drop(pl.selectors.starts_with("__"))
