"""Properties of `pipeline.rules.determine` that hold for any roster and payments.

Where tests/cases/ pins single people at the boundaries, these draw whole
batches of random people and payments (coverage years 2024-2026, every
region) and check what docs/RULES.md §2-§4 promise for every row at once:

- benefit_start is within [YS, YE] or empty, and never before birth;
- a benefit start implies enrolment; not enrolled means no dates at all;
- benefit_end is YE exactly when there is a benefit_start;
- individual_due + subsidy_amount is the year's individual standard;
- a due-0 person is always enrolled, anyone else exactly when the payments for
  Y net at least the due (refunds included, other years' payments ignored);
- rules without a waiting period leave waiting_end empty; rules with one
  start the day after it (or, past 31 December, give no benefit);
- the order of the payment rows does not matter (each person has a twin
  whose payments come in reverse order);
- d is what §3 says, worked out here the plain way, person by person: for due 0
  max(参保登记日期 or CS, birth), else the day from which on the running total of
  the payments (by paid_on, ticket_no as text) never again drops below the due.

One frame per example: the engine is vectorised, so the whole batch goes in at once.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from case_frames import build_payments, build_residents, make_id_number
from test_rule_cases import RULE_IDS, TIERS, collect, params_for

YEARS = (2024, 2025, 2026)
REGIONS = ("jiangxi", "yichun", "jingdezhen")
NO_WAITING_RULES = (
    "in_collection_period",
    "subsidized_no_waiting",
    "continuous_before_year",
    "continuous_in_period",
    "special_status",
    "special_event",
    "newborn_from_birth",
    "newborn_next_day",
)
WAITING_RULES = ("late_waiting", "lapsed_before_year", "lapsed_in_year", "continuous_after_period")
# the dues of every year (380 / 400 / 60 / 80 yuan); amounts near them, one fen short, refunds
PAID_IN_FULL_FEN = (38000, 40000, 6000, 8000)
AMOUNTS_FEN = (
    38000,
    40000,
    6000,
    8000,
    20000,
    30000,
    50000,
    37999,
    39999,
    5999,
    7999,
    1,
    -40000,
    -38000,
    -8000,
    -6000,
    -20000,
)
DAY = dt.timedelta(days=1)


@st.composite
def batches(draw: st.DrawFn) -> tuple[int, str, list[dict], list[dict]]:
    year = draw(st.sampled_from(YEARS))
    region = draw(st.sampled_from(REGIONS))
    params = params_for(year, region)
    ys, ye = params.year_start, params.year_end
    cs, ce = params.collection_start.value, params.collection_end.value
    label_names = [lab.name for lab in params.labels]
    event_names = [name for name, _ in params.event_types]
    early, late = cs - 120 * DAY, ye
    any_day = st.dates(early, late)
    # dates cluster where the rules change: around CE, and inside Y
    rule_days = st.one_of(any_day, st.dates(ce - 10 * DAY, ce + 10 * DAY), st.dates(ys, ye))
    labels: st.SearchStrategy[list[str]] = st.one_of(
        st.just([]),
        st.lists(st.sampled_from(label_names), max_size=3, unique=True),
        st.lists(st.sampled_from(params.special_status_labels), min_size=1, max_size=1),
    )

    people: list[dict] = []
    payments: list[dict] = []
    for i in range(draw(st.integers(min_value=1, max_value=25))):
        # two thirds are born within three years before Y or in Y, so the newborn rules get exercised
        birth = draw(
            st.one_of(
                st.dates(dt.date(1930, 1, 1), ye),
                st.dates(ys.replace(year=ys.year - 3), ye),
                st.dates(ys.replace(year=ys.year - 3), ye),
            )
        )
        event = draw(st.none() | st.sampled_from(event_names))
        people.append(
            {
                "id_number": make_id_number(birth, i),
                "name": f"居民{i}",
                "birth_date": birth,
                "residence_basis": draw(st.sampled_from(("本地户籍", "居住证"))),
                "identity_labels": draw(labels),
                "prev_year_insured": draw(st.booleans() if year >= 2026 else st.none() | st.booleans()),
                "registered_on": draw(st.none() | rule_days),
                "special_event": event,
                "special_event_date": draw(st.one_of(rule_days, st.dates(early - 200 * DAY, late))) if event else None,
                "subsidy_identified_on": draw(st.none() | any_day),
            }
        )
        payments += _draw_payments(draw, people[-1], year, rule_days, len(payments) + 1)
    return year, region, people, payments


def _draw_payments(draw: st.DrawFn, person: dict, year: int, days: st.SearchStrategy, first_ticket: int) -> list[dict]:
    """0 to 3 payment rows of one person: mostly a due paid in full, else amounts near the dues,
    refunds and any amount; a quarter of them for last year."""
    full_payment = st.sampled_from(PAID_IN_FULL_FEN)
    rows = []
    for k in range(draw(st.integers(min_value=0, max_value=3))):
        paid_on = draw(days)
        rows.append(
            {
                "id_number": person["id_number"],
                "name": person["name"],
                "amount_fen": draw(
                    st.one_of(full_payment, full_payment, st.sampled_from(AMOUNTS_FEN), st.integers(-50000, 60000))
                ),
                "paid_on": paid_on,
                "coverage_year": draw(st.sampled_from((year, year, year, year - 1))),
                "ticket_no": f"{paid_on:%Y%m%d}{first_ticket + k:012d}",
            }
        )
    return rows


def _violations(frame: pl.DataFrame, broken: pl.Expr, what: str) -> list[str]:
    bad = frame.filter(broken.fill_null(True))
    if bad.is_empty():
        return []
    shown = bad.select(
        "id_number",
        "birth_date",
        "tier",
        "individual_due_fen",
        "net_paid_for_year_fen",
        "enrolled",
        "enrolled_on",
        "waiting_end",
        "benefit_start",
        "benefit_end",
        "rule_id",
    ).head(5)
    with pl.Config(tbl_cols=-1, tbl_width_chars=250, fmt_str_lengths=20):
        return [f"{what} ({bad.height} row(s)):\n{shown}"]


def expected_enrolled_on(person: dict, rows: list[dict], due_fen: int, params) -> dt.date | None:
    """docs/RULES.md §3 by hand: due 0 -> max(registered_on or CS, birth); else the first day of the
    last run of rows whose running total is at or above the due, if the net reaches it."""
    if due_fen == 0:
        return max(person["registered_on"] or params.collection_start.value, person["birth_date"])
    running, settled_on = 0, None
    for row in sorted(rows, key=lambda r: (r["paid_on"], r["ticket_no"])):
        running += row["amount_fen"]
        if running < due_fen:
            settled_on = None
        elif settled_on is None:
            settled_on = row["paid_on"]
    return settled_on if running >= due_fen else None


def _enrolment_dates_differ(out: pl.DataFrame, people: list[dict], payment_rows: list[dict], params) -> list[str]:
    got = {r["id_number"]: r for r in out.select("id_number", "individual_due_fen", "enrolled_on").to_dicts()}
    wrong = []
    for person in people:
        pid = person["id_number"]
        rows = [r for r in payment_rows if r["id_number"] == pid and r["coverage_year"] == params.coverage_year]
        want = expected_enrolled_on(person, rows, got[pid]["individual_due_fen"], params)
        if got[pid]["enrolled_on"] != want:
            wrong.append(f"{pid}: enrolled_on {got[pid]['enrolled_on']}, by hand {want}; payments {rows}")
    return ["enrolled_on differs from docs/RULES.md §3 worked by hand:\n" + "\n".join(wrong[:5])] if wrong else []


def _promises_broken(rows: pl.DataFrame, params) -> list[str]:
    """What docs/RULES.md §2-§4 promise for every row (rows: the determinations with birth_date and
    net_paid_for_year_fen)."""
    ys, ye = pl.lit(params.year_start, dtype=pl.Date), pl.lit(params.year_end, dtype=pl.Date)
    standard_fen = params.fen("individual_standard_yuan")
    start, end, waiting = pl.col("benefit_start"), pl.col("benefit_end"), pl.col("waiting_end")
    enrolled, rule = pl.col("enrolled"), pl.col("rule_id")
    due, subsidy = pl.col("individual_due_fen"), pl.col("subsidy_amount_fen")
    problems = _violations(rows, ~pl.col("tier").is_in(TIERS), "tier is not full / fixed / none")
    problems += _violations(rows, ~rule.is_in(RULE_IDS), "rule_id is not one of docs/INTERNALS.md")
    problems += _violations(rows, enrolled.is_null(), "enrolled is empty")
    problems += _violations(rows, start.is_not_null() & ((start < ys) | (start > ye)), "benefit_start outside [YS, YE]")
    problems += _violations(rows, start.is_not_null() & (start < pl.col("birth_date")), "benefit_start before birth")
    problems += _violations(rows, start.is_not_null() & ~enrolled, "benefit_start without enrolment")
    problems += _violations(
        rows, due + subsidy != standard_fen, f"individual_due + subsidy_amount != {standard_fen} fen"
    )
    problems += _violations(
        rows,
        ~enrolled
        & (
            pl.any_horizontal(c.is_not_null() for c in (pl.col("enrolled_on"), waiting, start, end))
            | (rule != "not_enrolled")
        ),
        "not enrolled but has dates or a rule other than not_enrolled",
    )
    problems += _violations(rows, enrolled & (rule == "not_enrolled"), "enrolled but rule_id not_enrolled")
    problems += _violations(rows, enrolled & pl.col("enrolled_on").is_null(), "enrolled without an enrolment date")
    problems += _violations(
        rows,
        ~((start.is_null() & end.is_null()) | (start.is_not_null() & (end == ye))),
        "benefit_end is not YE exactly when benefit_start is set",
    )
    problems += _violations(
        rows,
        enrolled != ((due == 0) | (pl.col("net_paid_for_year_fen") >= due)),
        "enrolled != (due == 0 or net paid for Y >= due)",
    )
    problems += _violations(
        rows, rule.is_in(NO_WAITING_RULES) & waiting.is_not_null(), "a rule without waiting period has a waiting_end"
    )
    problems += _violations(
        rows,
        rule.is_in(WAITING_RULES)
        & ~(
            (start.is_not_null() & (start == waiting + pl.duration(days=1)))
            | (start.is_not_null() & (start == pl.col("birth_date")) & waiting.is_null())
            | (start.is_null() & (waiting >= ye))
        ),
        "a waiting rule does not start the day after its waiting_end (or has no benefit past YE)",
    )
    return problems


def _twins_differ(out: pl.DataFrame, twin_of: dict[str, str]) -> list[str]:
    """§3 sorts the payments before adding them up: a twin whose rows came in reverse order gets the
    same determination."""
    key = ["enrolled", "enrolled_on", "waiting_end", "benefit_start", "benefit_end", "rule_id"]
    twins = pl.DataFrame({"id_number": list(twin_of), "twin": list(twin_of.values())})
    pairs = twins.join(out.select("id_number", *key), on="id_number").join(
        out.select(pl.col("id_number").alias("twin"), *key), on="twin", suffix="_twin"
    )
    differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_twin")) for c in key)
    if not (bad := pairs.filter(differs)).is_empty():
        with pl.Config(tbl_cols=-1, tbl_width_chars=250):
            return [f"payment rows in another order give another determination:\n{bad.head(5)}"]
    return []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batches())
def test_determinations_keep_the_promises_of_rules_md(batch: tuple[int, str, list[dict], list[dict]]) -> None:
    from pipeline.rules import determine

    year, region, people, payment_rows = batch
    params = params_for(year, region)
    # every person has a twin whose payment rows come in reverse order: §3 sorts them by
    # (paid_on, ticket_no) before the running sum, so twins must get the same determination
    twin_of = {p["id_number"]: make_id_number(p["birth_date"], 500 + i) for i, p in enumerate(people)}
    people = people + [{**p, "id_number": twin_of[p["id_number"]]} for p in people]
    payment_rows = payment_rows + [{**p, "id_number": twin_of[p["id_number"]]} for p in reversed(payment_rows)]
    residents = build_residents(people, year)
    payments = build_payments(payment_rows)
    out = collect(determine(residents, payments, params))

    assert out.height == residents.height, f"{residents.height} people in, {out.height} determinations out"
    assert sorted(out["id_number"]) == sorted(residents["id_number"])

    net = (
        payments.filter(pl.col("coverage_year") == year)
        .group_by("id_number")
        .agg(pl.col("amount_fen").sum().alias("net_paid_for_year_fen"))
    )
    rows = (
        out.drop("birth_date", strict=False)
        .join(residents.select("id_number", "birth_date"), on="id_number", how="left")
        .join(net, on="id_number", how="left")
        .with_columns(pl.col("net_paid_for_year_fen").fill_null(0))
    )
    problems = _promises_broken(rows, params)
    problems += _enrolment_dates_differ(out, people, payment_rows, params)

    problems += _twins_differ(out, twin_of)
    assert not problems, f"Y={year}, region={region}\n" + "\n".join(problems)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(YEARS), st.sampled_from(REGIONS), st.data())
def test_the_winning_label_is_the_first_held_label_in_rank_order_whose_age_condition_holds(year, region, data):
    """tier.with_label_tier packs the labels into bits; here the same choice is made the plain way,
    person by person: labels giving a tier, highest tier first, then labels.toml order (就高原则)."""
    from pipeline.params import TIER_RANK
    from pipeline.rules.tier import with_label_tier

    params = params_for(year, region)
    names = [lab.name for lab in params.labels] + ["不认识的标签"]
    people = data.draw(
        st.lists(st.tuples(st.lists(st.sampled_from(names), max_size=4), st.integers(0, 100)), min_size=1, max_size=40)
    )
    # and always each label with an age condition, at ages either side of it
    people += [([lab.name], age) for lab in params.labels if lab.age_rule for age in (17, 18, 59, 60)]
    frame = pl.DataFrame(
        {"identity_labels": [labels for labels, _ in people], "age": [a for _, a in people]},
        schema={"identity_labels": pl.List(pl.Utf8), "age": pl.Int32},
    )
    got = with_label_tier(frame.lazy(), params).collect()

    def age_ok(rule: str, age: int) -> bool:
        return {
            "elderly": age >= params.elderly_age,
            "minor_or_elderly": age < params.adult_age or age >= params.elderly_age,
        }.get(rule, True)

    ranked = sorted((lab for lab in params.labels if TIER_RANK[lab.tier] > 0), key=lambda lab: -TIER_RANK[lab.tier])
    for (labels, age), row in zip(people, got.iter_rows(named=True)):
        holds = [lab for lab in ranked if lab.name in labels and age_ok(lab.age_rule, age)]
        assert row["tier_label"] == (holds[0].name if holds else None), (labels, age)
        assert row["label_tier"] == (holds[0].tier if holds else "none")
        assert row["is_subsidized_object"] == any(lab.subsidized_object for lab in holds)


def test_more_labels_giving_a_tier_than_bits_is_refused_when_the_parameters_load(tmp_path):
    """with_label_tier tests the labels as bits of one Int64: a labels.toml with more of them than
    that is refused with a message, not computed wrong."""
    import shutil

    import pytest

    from pipeline.params import MAX_TIER_LABELS, PARAMS_DIR, ParamsError, load_params

    params_dir = tmp_path / "policy_params"
    shutil.copytree(PARAMS_DIR, params_dir)
    extra = "".join(
        f'\n[[label]]\nname = "测试标签{i}"\ntier = "fixed"\ncite = "测试"\n' for i in range(MAX_TIER_LABELS)
    )
    with (params_dir / "labels.toml").open("a", encoding="utf-8") as f:
        f.write(extra)
    with pytest.raises(ParamsError, match=f"at most {MAX_TIER_LABELS} labels may give a tier"):
        load_params(2026, "jingdezhen", params_dir=params_dir)
