"""The rule cases of tests/cases/*.toml, run through `pipeline.rules.determine`.

Each `[[case]]` is one person of docs/RULES.md §1-§4 with the payments they made and
what the bureau expects: tier, amounts, enrolment date, waiting period, benefit
dates and the winning rule. The expected values are worked out by hand from
docs/RULES.md and policy_params/, with the arithmetic in a comment above each case;
this file only turns a case into the `residents` and `payments` frames of
docs/INTERNALS.md (the cases of one year and region go through `determine`
together, as one batch) and compares, field by field.

Case format (see any file in tests/cases/):
    name      a sentence, like the notices; also the pytest id
    year      coverage year Y
    region    optional, default "jiangxi"
    person    optional table: labels (canonical names or aliases of labels.toml),
              birth_date (default 1980-06-15), prev_year_insured, registered_on,
              special_event, special_event_date, subsidy_identified_on,
              residence_basis (default 本地户籍), name, id_number (default: a valid
              18-character ID made from the birth date)
    payments  optional list of {amount (yuan, negative = refund), paid_on,
              ticket_no (default: 20 digits, in the order listed), coverage_year
              (default: the case year), channel}
    lists     optional list of {labels (canonical names or aliases), identified_on,
              ended_on (a date or "", default ""), department}: the person's rows on
              other departments' subsidy lists (docs/RULES.md §9). They become list rows
              as the night reads them; the product's own `in_force(params)` keeps
              the rows in force for Y, and those go to `determine` with the roster.
    expect    any of tier, individual_due, subsidy_amount (yuan), enrolled,
              enrolled_on, waiting_end, benefit_start, benefit_end, rule_id, rule_basis
              (the exact text), age, subsidy_identified_on (docs/RULES.md §9), and of the
              reconciliation (docs/RULES.md §5): status, net_paid, amount_diff,
              subsidy_applied (yuan), n_payments; a date expected to be empty is written "".
    cites     optional list of the markings of docs/RULES.md the case shows, e.g.
              ["ex-3.3", "interp-4.1"] (tests/test_rules_doc.py: every worked example
              and every [interp-N.M] reading is cited by a case, every citation exists).
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from builders import check_digit
from case_frames import (
    AREA_CODE,
    DEFAULT_NAME,
    DEFAULT_RESIDENCE_BASIS,
    FIRST_ROW,
    LIST_ROWS_SCHEMA,
    PAYMENTS_SCHEMA,
    RESIDENTS_SCHEMA,
    SHEET,
    build_list_rows,
    build_payments,
    build_residents,
    make_id_number,
)
from pipeline.params import Params, load_params

CASES_DIR = Path(__file__).resolve().parent / "cases"
CASE_FILES = (
    "tier.toml",
    "amounts.toml",
    "enrolment.toml",
    "benefit_2024.toml",
    "benefit_2025.toml",
    "benefit_2026.toml",
    "special_groups.toml",
    "newborns.toml",
    "reconciliation.toml",
    "subsidy_lists.toml",
)

DEFAULT_REGION = "jiangxi"
DEFAULT_BIRTH_DATE = dt.date(1980, 6, 15)
LIST_FILE = "资助名单_{department}.xlsx"  # one list file per department, as the departments send them
LIST_NO_DEPARTMENT = "未注明部门"

TIERS = ("full", "fixed", "none")
RULE_IDS = (
    "not_enrolled",
    "in_collection_period",
    "late_waiting",
    "subsidized_no_waiting",
    "continuous_before_year",
    "continuous_in_period",
    "lapsed_before_year",
    "lapsed_in_year",
    "continuous_after_period",
    "special_status",
    "special_event",
    "newborn_from_birth",
    "newborn_next_day",
)

PERSON_KEYS = {
    "labels",
    "birth_date",
    "prev_year_insured",
    "registered_on",
    "special_event",
    "special_event_date",
    "subsidy_identified_on",
    "residence_basis",
    "name",
    "id_number",
}
PERSON_DATE_KEYS = {"birth_date", "registered_on", "special_event_date", "subsidy_identified_on"}
PAYMENT_KEYS = {"amount", "paid_on", "ticket_no", "coverage_year", "channel"}
LIST_KEYS = {"labels", "identified_on", "ended_on", "department"}
LIST_DATE_KEYS = ("identified_on", "ended_on")
EXPECT_MONEY = {
    "individual_due": "individual_due_fen",
    "subsidy_amount": "subsidy_amount_fen",
    "net_paid": "net_paid_fen",
    "amount_diff": "amount_diff_fen",
    "subsidy_applied": "subsidy_applied_fen",
}
STATUSES = ("subsidized", "unpaid", "underpaid", "overpaid", "paid_in_full")
EXPECT_DATES = ("enrolled_on", "waiting_end", "benefit_start", "benefit_end", "subsidy_identified_on")
EXPECT_KEYS = {"tier", "enrolled", "rule_id", "rule_basis", "age", "status", "n_payments", *EXPECT_MONEY, *EXPECT_DATES}
MARKING = re.compile(r"(?:ex|interp)-\d+\.\d+")  # a marking of docs/RULES.md: [ex-3.3], [interp-4.1]


class CaseFileError(Exception):
    """A case file says something the runner cannot read: fix the case, not the engine."""


@dataclass(frozen=True)
class Case:
    file: str
    line: int
    sequence: int  # position among all cases: makes the generated ID number unique
    name: str
    year: int
    region: str
    person: dict[str, Any]
    payments: tuple[dict[str, Any], ...]
    expect: dict[str, Any] = field(default_factory=dict)
    lists: tuple[dict[str, Any], ...] = ()
    cites: tuple[str, ...] = ()

    def where(self) -> str:
        return f"tests/cases/{self.file}:{self.line}"


# --------------------------------------------------------------------------- helpers


@cache
def params_for(year: int, region: str = DEFAULT_REGION) -> Params:
    return load_params(year, region)


def to_fen(yuan: int | float | str | Decimal) -> int:
    """Yuan as written in a case (400, 399.99) -> integer fen, exactly."""
    fen = Decimal(str(yuan)) * 100
    if fen != fen.to_integral_value():
        raise CaseFileError(f"amount {yuan!r} has more than two decimals")
    return int(fen)


def in_force_rows(list_rows: pl.DataFrame, params: Params) -> pl.DataFrame:
    """The rows in force for Y, chosen by the product's own expression, as the night does."""
    from pipeline.rules.lists import in_force

    return list_rows.filter(in_force(params))


def _date_or_none(case_name: str, key: str, value: Any) -> dt.date | None:
    if value == "":
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    raise CaseFileError(f'case {case_name!r}: {key} must be a TOML date or "", got {value!r}')


# --------------------------------------------------------------------------- loading


def _case_lines(text: str) -> list[int]:
    return [i + 1 for i, line in enumerate(text.splitlines()) if line.strip() == "[[case]]"]


def _check_case(file: str, raw: dict[str, Any]) -> None:
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CaseFileError(f"{file}: a case has no name")
    unknown = set(raw) - {"name", "year", "region", "person", "payments", "lists", "expect", "cites"}
    if unknown:
        raise CaseFileError(f"{file}: case {name!r} has unknown key(s) {sorted(unknown)}")
    if not isinstance(raw.get("year"), int):
        raise CaseFileError(f"{file}: case {name!r} needs an integer year")
    person = raw.get("person", {})
    if not isinstance(person, dict) or set(person) - PERSON_KEYS:
        raise CaseFileError(f"{file}: case {name!r}: unknown person field(s) {sorted(set(person) - PERSON_KEYS)}")
    for key in PERSON_DATE_KEYS & set(person):
        _date_or_none(name, f"person.{key}", person[key])
    if "prev_year_insured" in person and not isinstance(person["prev_year_insured"], bool):
        raise CaseFileError(f"{file}: case {name!r}: prev_year_insured must be true or false")
    payments = raw.get("payments", [])
    if not isinstance(payments, list):
        raise CaseFileError(f"{file}: case {name!r}: payments must be a list of tables")
    for p in payments:
        if not isinstance(p, dict) or set(p) - PAYMENT_KEYS or not {"amount", "paid_on"} <= set(p):
            raise CaseFileError(
                f"{file}: case {name!r}: a payment needs amount and paid_on, and only {sorted(PAYMENT_KEYS)}"
            )
        _date_or_none(name, "paid_on", p["paid_on"])
        to_fen(p["amount"])
    lists = raw.get("lists", [])
    if not isinstance(lists, list):
        raise CaseFileError(f"{file}: case {name!r}: lists must be a list of tables")
    for row in lists:
        if not isinstance(row, dict) or set(row) - LIST_KEYS or not row.get("labels"):
            raise CaseFileError(f"{file}: case {name!r}: a list row needs labels, and only {sorted(LIST_KEYS)}")
        if not isinstance(row["labels"], list) or not all(isinstance(lab, str) for lab in row["labels"]):
            raise CaseFileError(f"{file}: case {name!r}: a list row's labels must be a list of texts")
        for key in LIST_DATE_KEYS:
            if key in row:
                _date_or_none(name, f"lists.{key}", row[key])
    cites = raw.get("cites", [])
    if not isinstance(cites, list) or not all(isinstance(c, str) and MARKING.fullmatch(c) for c in cites):
        raise CaseFileError(f'{file}: case {name!r}: cites must be a list of markings like "ex-3.3" or "interp-4.1"')
    expect = raw.get("expect")
    if not isinstance(expect, dict) or not expect:
        raise CaseFileError(f"{file}: case {name!r} expects nothing")
    if set(expect) - EXPECT_KEYS:
        raise CaseFileError(f"{file}: case {name!r}: unknown expect field(s) {sorted(set(expect) - EXPECT_KEYS)}")
    if "tier" in expect and expect["tier"] not in TIERS:
        raise CaseFileError(f"{file}: case {name!r}: tier must be one of {TIERS}")
    if "rule_id" in expect and expect["rule_id"] not in RULE_IDS:
        raise CaseFileError(f"{file}: case {name!r}: unknown rule_id {expect['rule_id']!r}")
    if "status" in expect and expect["status"] not in STATUSES:
        raise CaseFileError(f"{file}: case {name!r}: status must be one of {STATUSES}")
    if "enrolled" in expect and not isinstance(expect["enrolled"], bool):
        raise CaseFileError(f"{file}: case {name!r}: enrolled must be true or false")
    for key in EXPECT_DATES:
        if key in expect:
            _date_or_none(name, f"expect.{key}", expect[key])
    for key in EXPECT_MONEY:
        if key in expect:
            to_fen(expect[key])


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    cases: list[Case] = []
    for path in sorted(directory.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise CaseFileError(f"tests/cases/{path.name}: not valid TOML: {e}") from None
        if set(data) - {"case"}:
            raise CaseFileError(f"tests/cases/{path.name}: only [[case]] tables are allowed")
        lines = _case_lines(text)
        for i, raw in enumerate(data.get("case", [])):
            _check_case(path.name, raw)
            cases.append(
                Case(
                    file=path.name,
                    line=lines[i] if i < len(lines) else 0,
                    sequence=len(cases),
                    name=raw["name"].strip(),
                    year=raw["year"],
                    region=raw.get("region", DEFAULT_REGION),
                    person=dict(raw.get("person", {})),
                    payments=tuple(dict(p) for p in raw.get("payments", [])),
                    expect=dict(raw["expect"]),
                    lists=tuple(dict(r) for r in raw.get("lists", [])),
                    cites=tuple(raw.get("cites", [])),
                )
            )
    return cases


CASES = load_cases()


# --------------------------------------------------------------------------- one case -> frames


def case_id_number(case: Case) -> str:
    if case.person.get("id_number"):
        return str(case.person["id_number"])
    birth = case.person.get("birth_date") or DEFAULT_BIRTH_DATE
    return make_id_number(birth, case.sequence)


def canonical_labels(case: Case, labels: list[str], params: Params) -> list[str]:
    """Labels as written in a case -> their canonical names (labels.toml), as the readers settle them."""
    aliases = params.label_aliases()
    unknown = [label for label in labels if label not in aliases]
    if unknown:
        raise CaseFileError(f"case {case.name!r}: unknown label(s) {unknown} (see policy_params/labels.toml)")
    return [aliases[label] for label in labels]


def case_list_rows(case: Case, params: Params) -> list[dict[str, Any]]:
    """The case's list rows as accepted rows of the lists (one file per department, rows in order)."""
    rows = []
    for i, row in enumerate(case.lists):
        department = row.get("department") or None
        rows.append(
            {
                "id_number": case_id_number(case),
                "identity_labels": canonical_labels(case, row["labels"], params),
                "identified_on": _date_or_none(case.name, "lists.identified_on", row.get("identified_on", "")),
                "ended_on": _date_or_none(case.name, "lists.ended_on", row.get("ended_on", "")),
                "source_file": LIST_FILE.format(department=department or LIST_NO_DEPARTMENT),
                "sheet": SHEET,
                "row_number": FIRST_ROW + i,
                "department": department,
            }
        )
    return rows


def case_rows(case: Case, params: Params) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The case's person and payments as rows of the validated frames `determine` takes."""
    person = case.person
    labels = canonical_labels(case, person.get("labels", []), params)
    event = person.get("special_event")
    if event is not None:
        events = params.event_aliases()
        if event not in events:
            raise CaseFileError(f"case {case.name!r}: unknown special_event {event!r}")
        event = events[event]
    if case.year >= 2026 and "prev_year_insured" not in person:
        raise CaseFileError(f"case {case.name!r}: 上年度参保 (prev_year_insured) is required for {case.year}")
    id_number = case_id_number(case)
    name = person.get("name", DEFAULT_NAME)
    resident = {
        "name": name,
        "id_number": id_number,
        "birth_date": _date_or_none(case.name, "birth_date", person.get("birth_date", DEFAULT_BIRTH_DATE)),
        "residence_basis": person.get("residence_basis", DEFAULT_RESIDENCE_BASIS),
        "identity_labels": labels,
        "subsidy_identified_on": _date_or_none(
            case.name, "subsidy_identified_on", person.get("subsidy_identified_on", "")
        ),
        "prev_year_insured": person.get("prev_year_insured"),
        "special_event": event,
        "special_event_date": _date_or_none(case.name, "special_event_date", person.get("special_event_date", "")),
        "registered_on": _date_or_none(case.name, "registered_on", person.get("registered_on", "")),
    }
    payments = []
    for i, p in enumerate(case.payments):
        paid_on = _date_or_none(case.name, "paid_on", p["paid_on"])
        payments.append(
            {
                "id_number": id_number,
                "name": name,
                "amount_fen": to_fen(p["amount"]),
                "paid_on": paid_on,
                "coverage_year": p.get("coverage_year", case.year),
                "ticket_no": str(p.get("ticket_no", f"{paid_on:%Y%m%d}{i + 1:012d}")),
                "channel": p.get("channel"),
            }
        )
    return resident, payments


def case_frames(case: Case, params: Params) -> tuple[pl.DataFrame, pl.DataFrame]:
    resident, payments = case_rows(case, params)
    return build_residents([resident], case.year), build_payments(payments)


@cache
def determinations(year: int, region: str) -> pl.DataFrame:
    """All cases of one year and region through `determine` in one batch (the engine is vectorised)."""
    from pipeline.rules import determine  # the engine; imported here so the file checks below run without it

    params = params_for(year, region)
    residents, payments, list_rows = [], [], []
    for case in CASES:
        if (case.year, case.region) == (year, region):
            resident, paid = case_rows(case, params)
            residents.append(resident)
            payments.extend(paid)
            list_rows.extend(case_list_rows(case, params))
    from pipeline.reconcile import reconcile  # docs/RULES.md §5, on the same determinations

    in_force = in_force_rows(build_list_rows(list_rows), params)
    determined = collect(determine(build_residents(residents, year), build_payments(payments), params, in_force))
    status = reconcile(determined, params).select("id_number", "status", "amount_diff_fen", "subsidy_applied_fen")
    return determined.join(status, on="id_number", how="left")


def collect(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    return frame.collect() if isinstance(frame, pl.LazyFrame) else frame


def _shown(value: Any) -> str:
    return '"" (empty)' if value is None else repr(value) if isinstance(value, str) else str(value)


def mismatches(case: Case, row: dict[str, Any]) -> list[str]:
    """Every expected field the determination gets wrong, as 'field: expected X, got Y'."""
    found = []
    for key, expected in case.expect.items():
        if key in EXPECT_MONEY:
            column = EXPECT_MONEY[key]
            want_fen, got_fen = to_fen(expected), row.get(column)
            if got_fen != want_fen:
                found.append(f"{key}: expected {expected} yuan ({want_fen} fen), got {_shown(got_fen)} fen")
            continue
        want = _date_or_none(case.name, key, expected) if key in EXPECT_DATES else expected
        got = row.get(key)
        if isinstance(got, dt.datetime):
            got = got.date()
        if got != want or type(got) is not type(want):
            found.append(f"{key}: expected {_shown(want)}, got {_shown(got)}")
    return found


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule_case(case: Case) -> None:
    id_number = case_id_number(case)
    rows = determinations(case.year, case.region).filter(pl.col("id_number") == id_number)
    assert rows.height == 1, (
        f"case {case.name!r} ({case.where()}): expected one determination for {id_number}, got {rows.height}"
    )
    row = rows.row(0, named=True)
    wrong = mismatches(case, row)
    if wrong:
        pytest.fail(
            f"case {case.name!r} ({case.where()}), Y={case.year}, region={case.region}\n  "
            + "\n  ".join(wrong)
            + f"\n  rule_id: {row.get('rule_id')!r}\n  rule_basis: {row.get('rule_basis')!r}",
            pytrace=False,
        )


def test_every_case_file_is_there_and_has_cases() -> None:
    have = {c.file for c in CASES}
    missing = [f for f in CASE_FILES if f not in have]
    assert not missing, f"case files missing or empty in tests/cases/: {missing}"


def test_case_names_are_unique() -> None:
    seen: dict[str, str] = {}
    twice = []
    for c in CASES:
        if c.name in seen:
            twice.append(f"{c.name!r} ({seen[c.name]} and {c.where()})")
        seen[c.name] = c.where()
    assert not twice, "case names must be unique (they are the test ids): " + "; ".join(twice)


def test_every_case_builds_valid_frames() -> None:
    """Labels, events, years and regions exist; frames have exactly the docs/INTERNALS.md dtypes."""
    from pipeline.rules.lists import LIST_ROW_COLUMNS

    problems = []
    for c in CASES:
        try:
            residents, payments = case_frames(c, params_for(c.year, c.region))
        except Exception as e:  # report every broken case at once
            problems.append(f"{c.where()} {c.name!r}: {e}")
            continue
        assert dict(residents.schema) == RESIDENTS_SCHEMA
        assert dict(payments.schema) == PAYMENTS_SCHEMA
        try:
            list_rows = build_list_rows(case_list_rows(c, params_for(c.year, c.region)))
        except Exception as e:
            problems.append(f"{c.where()} {c.name!r}: {e}")
            continue
        assert dict(list_rows.schema) == LIST_ROWS_SCHEMA
        assert set(LIST_ROW_COLUMNS) <= set(list_rows.columns), "the list rows lack a column the rules read"
        id_number = residents["id_number"][0]
        assert re.fullmatch(r"\d{17}[\dX]", id_number), id_number
        assert payments["ticket_no"].n_unique() == payments.height, f"{c.name!r}: duplicate ticket_no"
    ids = [case_id_number(c) for c in CASES]
    assert len(set(ids)) == len(ids), "two cases share an ID number; give one an explicit person.id_number"
    assert not problems, "\n".join(problems)


def test_every_case_shows_its_arithmetic() -> None:
    """House style: the arithmetic sits in a comment right above each [[case]]."""
    bare = []
    for path in sorted(CASES_DIR.glob("*.toml")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line.strip() == "[[case]]" and (i == 0 or not lines[i - 1].lstrip().startswith("#")):
                bare.append(f"tests/cases/{path.name}:{i + 1}")
    assert not bare, "cases without an arithmetic comment above them: " + ", ".join(bare)


def test_every_rule_id_is_expected_somewhere() -> None:
    expected = {c.expect["rule_id"] for c in CASES if "rule_id" in c.expect}
    assert set(RULE_IDS) <= expected, f"rule_ids no case expects: {sorted(set(RULE_IDS) - expected)}"


def test_generated_id_numbers_are_valid() -> None:
    # 11010519491231002X is the worked example of GB 11643-1999.
    assert check_digit("11010519491231002") == "X"
    made = make_id_number(dt.date(2008, 2, 29), 7)
    assert made[:17] == f"{AREA_CODE}20080229007" and made[17] == check_digit(made[:17])
