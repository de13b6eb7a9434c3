"""The planted bad rows: the kinds of defects.toml, where they go, and how each spoils its row."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from pipeline.errors import ParamsError
from tools.sample.context import HERE, Sample, read_toml
from tools.sample.independent_rules import add_months, first_generation_id
from tools.sample.people import People, Person
from tools.sample.render import Cell, Renderer, cell_text, text_date

if TYPE_CHECKING:
    from tools.sample.payments import Payment
    from tools.sample.workbook import Sheet

WHATS = ("roster", "payments", "subsidy_list")
# Planted bad rows need a few residents to hide among.
MIN_ROWS_FOR_BAD = 20
CN_DIGITS = "零一二三四五六七八九"


@dataclass(frozen=True)
class Defect:
    what: str  # roster / payments / subsidy_list
    kind: str
    rate: float
    reason: str | None  # the product's reason code; None when the row is skipped, not rejected
    outcome: str  # rejected / skipped
    description: str
    values: tuple[tuple[str, str], ...]  # (wrong spelling, what was meant)


@cache
def load_defects() -> dict[str, dict[str, Defect]]:
    """defects.toml, checked: unknown keys refused, a reason for every rejected kind."""
    path, data = HERE / "defects.toml", read_toml("defects.toml")
    out: dict[str, dict[str, Defect]] = {}
    for what in WHATS:
        out[what] = {}
        for kind, raw in data.get(what, {}).items():
            unknown = set(raw) - {"rate", "reason", "outcome", "description", "values"}
            outcome = raw.get("outcome", "rejected")
            if unknown or outcome not in ("rejected", "skipped") or ("reason" in raw) != (outcome == "rejected"):
                raise ParamsError(
                    f"{path}: [{what}.{kind}] needs rate, description and a reason exactly when "
                    f"rejected (unknown keys: {sorted(unknown)})"
                )
            out[what][kind] = Defect(
                what,
                kind,
                float(raw["rate"]),
                raw.get("reason"),
                outcome,
                raw["description"],
                tuple((a, b) for a, b in raw.get("values", ())),
            )
    return out


def reason_of(what: str, kind: str) -> str | None:
    return load_defects()[what][kind].reason


def bad_row_reasons() -> dict[str, str]:
    """Kind -> description, over rosters, payments and lists (where a kind is in several, the first)."""
    out: dict[str, str] = {}
    for what in WHATS:
        for kind, d in load_defects()[what].items():
            out.setdefault(kind, d.description)
    return out


def planted_indices(rng: random.Random, n: int, what: str, messy: bool, population: int) -> dict[int, str]:
    """Which of `population` indices carry which planted defect: exact counts, seeded.

    At least one of each kind once n reaches MIN_ROWS_FOR_BAD; none in a clean sample.
    """
    if not messy or n < MIN_ROWS_FOR_BAD:
        return {}
    counts = {k: max(1, round(d.rate * n)) for k, d in load_defects()[what].items()}
    chosen = iter(rng.sample(range(population), min(sum(counts.values()), population)))
    out: dict[int, str] = {}
    for kind, c in counts.items():
        for idx in [next(chosen, None) for _ in range(c)]:
            if idx is not None:
                out[idx] = kind
    return out


def misspellings(what: str, kind: str, accepted: dict[str, str]) -> list[tuple[str, str]]:
    """The wrong spellings of defects.toml the product does not accept (it may learn some)."""
    left = [(typo, meant) for typo, meant in load_defects()[what][kind].values if typo not in accepted]
    if not left:
        raise ParamsError(
            f"policy_params/labels.toml now accepts every spelling of [{what}.{kind}] in "
            "tools/sample/defects.toml; add new ones there"
        )
    return left


def chinese_yuan(fen: int) -> str:
    """Amount in Chinese numerals ('三百八十元'): what a clerk types and no parser takes."""
    n = abs(fen) // 100
    if n >= 10_000:
        raise ValueError(f"amount {n} yuan is beyond the sample's range")
    out, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = n // value % 10
        if digit == 0:
            zero = bool(out)
            continue
        out += ("零" if zero else "") + CN_DIGITS[digit] + unit
        zero = False
    return ("负" if fen < 0 else "") + (out or "零") + "元"


def swapped_year(d: dt.date) -> dt.date:
    """The year's last two digits typed the other way round (2025 -> 2052), at least ten years on."""
    y = f"{d.year:04d}"
    year = int(y[:2] + y[3] + y[2])
    year = max(year, d.year + 10)
    return d.replace(year=year, day=min(d.day, 28))


def text_style(sh: Sheet, key: str) -> str:
    """The sheet's text form for a date column (ISO where it writes real dates)."""
    style = sh.style.get("date", {}).get(key, "iso")
    return "iso" if style.startswith("excel") else style


class Spoiler:
    """Spoils one cell of a row the way its kind says; returns (kind, field, raw value) for the record."""

    def __init__(self, s: Sample, people: People, renderer: Renderer) -> None:
        self.s, self.people, self.r = s, people, s.rrng
        self.renderer = renderer

    def _id(self, kind: str, id_number: str, cells: dict[str, Cell], sh: Sheet) -> str | None:
        """The ways an ID arrives broken (docs/RULES.md §6); None for other kinds."""
        if kind == "id_numeric":
            value = int(id_number[:15]) * 1000  # what Excel keeps of an 18-digit number
            cells["id_number"] = ("n", value) if sh.typed else ("s", f"{value:.5E}")
            return cell_text(cells["id_number"])
        if kind == "id_check_digit":
            text = self.people.wrong_check(id_number, self.r)
        elif kind == "id_birth_date":
            text = self.people.impossible_birth_id(id_number, self.r)
            cells["birth_date"] = None
        elif kind == "id_15_digits":
            text = first_generation_id(id_number)
        else:
            return None
        cells["id_number"] = ("s", text)
        return text

    def roster(self, kind: str, p: Person, cells: dict[str, Cell], sh: Sheet) -> tuple[str, str, str]:
        raw = self._id(kind, p.id_number, cells, sh)
        if raw is not None:
            return (kind, "id_number", raw)
        if kind == "required_empty":
            key = self.r.choice(("township", "township", "name", "county"))
            cells[key] = None
            return (kind, key, "")
        if kind == "bad_date":
            text = self.renderer.bad_date_text(p.registered_on or self.s.CS)
            cells["registered_on"] = ("s", text)
            return (kind, "registered_on", text)
        if kind == "unknown_label":  # the typo is already in the person's labels
            return (kind, "identity_labels", p.labels_shown[0])
        if kind == "unknown_event":
            return (kind, "special_event", p.special_event or "")
        raise ValueError(f"unknown roster defect {kind!r}")

    def payment(self, pay: Payment, cells: dict[str, Cell], sh: Sheet) -> tuple[str, str, str]:
        kind = pay.defect or ""
        raw = self._id(kind, pay.id_number, cells, sh)
        if raw is not None:
            return (kind, "id_number", raw)
        if kind == "required_empty":
            key = self.r.choice(("ticket_no", "name"))
            cells[key] = None
            return (kind, key, "")
        if kind == "bad_amount":
            text = chinese_yuan(pay.amount_fen)
            cells["amount"] = ("s", text)
            return (kind, "amount", text)
        if kind == "period_cross_year":
            return self._cross_year(pay.coverage_year, cells)
        if kind == "paid_before_birth":
            return self._before_birth(pay, cells, sh)
        if kind == "paid_too_early":
            return self._too_early(pay, cells, sh)
        text = self._paid_on_text(kind, pay, sh)
        cells["paid_on"] = ("s", text)
        return (kind, "paid_on", text)

    def _paid_on_text(self, kind: str, pay: Payment, sh: Sheet) -> str:
        """缴费日期 as the kind spoils it (docs/RULES.md §6: what a date may not be)."""
        d = pay.paid_on
        if kind == "bad_date":
            return self.renderer.bad_date_text(d)
        if kind == "paid_on_year_only":
            return f"{d.year}"
        if kind == "paid_on_year_month":
            return f"{d.year}{d.month:02d}"
        if kind == "paid_on_future":
            return text_date(swapped_year(d), text_style(sh, "paid_on"))
        raise ValueError(f"unknown payment defect {kind!r}")

    def _too_early(self, pay: Payment, cells: dict[str, Cell], sh: Sheet) -> tuple[str, str, str]:
        """缴费日期 in the year before 1 January of (费款所属期 year - 2). A payer born after that day
        would make it a payment before birth too: such a row carries a grown-up relative's ID."""
        early = pay.paid_on.replace(year=pay.coverage_year - 3, day=min(pay.paid_on.day, 28))
        if pay.birth is None or pay.birth > early:
            born = early - dt.timedelta(days=self.r.randint(25 * 365, 50 * 365))
            cells["id_number"] = ("s", self.people.new_id(pay.county.code, born, self.r.random() < 0.5, self.r))
        text = text_date(early, text_style(sh, "paid_on"))
        cells["paid_on"] = ("s", text)
        return ("paid_too_early", "paid_on", text)

    def _cross_year(self, year: int, cells: dict[str, Cell]) -> tuple[str, str, str]:
        """费款所属期 from December of Y-1 to January of Y: one column, or 起 and 止."""
        if "coverage_year" in cells:
            text = f"{year - 1}12-{year}01"
            cells["coverage_year"] = ("s", text)
            return ("period_cross_year", "coverage_year", text)
        months = len(cell_text(cells["period_start"])) == 6
        text = f"{year - 1}12" if months else f"{year - 1}-12-01"
        cells["period_start"] = ("s", text)
        cells["period_end"] = ("s", f"{year}01" if months else f"{year}-01-31")
        return ("period_cross_year", "period_start", text)

    def _before_birth(self, pay: Payment, cells: dict[str, Cell], sh: Sheet) -> tuple[str, str, str]:
        """A child's ID on a parent's payment dated 20-80 days before the child was born."""
        paid = min(pay.paid_on, self.s.CE)
        birth = paid + dt.timedelta(days=self.r.randint(20, 80))
        cells["id_number"] = ("s", self.people.new_id(pay.county.code, birth, self.r.random() < 0.5, self.r))
        text = text_date(paid, text_style(sh, "paid_on"))
        cells["paid_on"] = ("s", text)
        return ("paid_before_birth", "paid_on", text)

    def list_row(
        self,
        kind: str,
        cells: dict[str, Cell],
        id_number: str,
        labels: tuple[str, ...],
        identified: dt.date,
        date_cell: Callable[[str, dt.date], Cell],
    ) -> tuple[str, str, str]:
        """A subsidy-list row spoilt (docs/RULES.md §9): check digit, label, dates, name."""
        if kind == "id_check_digit":
            text = self.people.wrong_check(id_number, self.r)
            cells["id_number"] = ("s", text)
            return (kind, "id_number", text)
        if kind == "unknown_label":
            typos = misspellings("subsidy_list", kind, self.s.label_alias_of)
            fitting = [t for t, meant in typos if meant in labels] or [t for t, _ in typos]
            text = self.r.choice(fitting)
            cells["identity_labels"] = ("s", text)
            return (kind, "identity_labels", text)
        if kind == "list_end_before_start":
            ended = add_months(identified, -self.r.randint(1, 6))
            cells["ended_on"] = date_cell("ended_on", ended)
            return (kind, "ended_on", cell_text(cells["ended_on"]))
        if kind == "required_empty":
            cells["name"] = None
            return (kind, "name", "")
        raise ValueError(f"unknown subsidy-list defect {kind!r}")
