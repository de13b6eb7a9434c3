"""What one sample run shares: arguments, parameters, vocabulary, random streams, running counts."""

from __future__ import annotations

import datetime as dt
import random
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import MedinsError, ParamsError
from pipeline.params import load_params
from schemas.headers import load_header_map

if TYPE_CHECKING:  # type hints only
    from schemas.headers import HeaderMap

HERE = Path(__file__).resolve().parent


class SampleArgumentError(MedinsError, ValueError):
    """Arguments that cannot make a sample; `python -m tools.sample` shows the message as one line."""

    exit_code = 2


@cache
def read_toml(name: str) -> dict[str, Any]:
    """One of this package's data files (vocabulary, layouts, defects)."""
    with (HERE / name).open("rb") as f:
        return tomllib.load(f)


@dataclass(frozen=True)
class County:
    name: str
    code: str  # GB/T 2260 region code, the first six digits of a local ID
    slug: str  # ASCII file-name part
    weight: int  # relative share of residents in a city-wide roster
    tax_prefix: str  # first three digits of this county's ticket numbers
    townships: tuple[str, ...]


@cache
def counties() -> tuple[County, ...]:
    return tuple(
        County(c["name"], c["code"], c["slug"], c["weight"], c["tax_prefix"], tuple(c["townships"]))
        for c in read_toml("vocabulary.toml")["county"]
    )


@dataclass(frozen=True)
class PaymentMix:
    """How residents who owe something pay: the shares of each case, as cumulative thresholds of one
    draw (unpaid below `unpaid`, underpaid below `underpaid`, ...), and payments by strangers (on no
    roster) per resident. The defaults are the sample_data/ mix; the benchmark asks for others
    (benchmarks/inputs.py), e.g. 9 % unpaid, 4 % underpaid, 3 % overpaid, 1.5 % unmatched."""

    unpaid: float = 0.06
    underpaid: float = 0.09
    instalments: float = 0.11
    paid_twice: float = 0.12
    overpaid: float = 0.12  # paid the due twice, not (yet) refunded
    strangers: float = 0.0

    def __post_init__(self) -> None:
        steps = (self.unpaid, self.underpaid, self.instalments, self.paid_twice, self.overpaid)
        if not all(0 <= a <= b <= 1 for a, b in zip((0.0, *steps), steps)) or not 0 <= self.strangers <= 1:
            raise SampleArgumentError(f"payment mix thresholds must rise within 0..1: {self}")


@dataclass
class Args:
    """The arguments of generate_sample, checked."""

    rows: int
    seed: int
    year: int
    out_dir: Path
    payment_rows: int | None
    roster_files: int
    messy: bool
    sheets_per_file: int
    numeric_id_rows: list[int]
    extra_formats: bool
    mix: PaymentMix = field(default_factory=PaymentMix)


@dataclass
class Sample:
    """One run of the generator: everything the writers read, and what they report back."""

    args: Args
    residents_total: int  # xlsx roster residents + the township .xls roster's
    big: bool  # stream workbooks to disk (xlsxwriter constant_memory)
    planted: list[dict[str, Any]] = field(default_factory=list)
    cases: Counter[str] = field(default_factory=Counter)
    pay_count: int = 0

    def __post_init__(self) -> None:
        a = self.args
        self.year, self.messy, self.seed = a.year, a.messy, a.seed
        self.vocab = read_toml("vocabulary.toml")
        self.p = load_params(a.year, self.vocab["region"])
        self.header_maps: dict[str, HeaderMap] = {
            kind: load_header_map(kind) for kind in ("roster", "payments", "subsidy_list")
        }
        # Separate streams: a change in how payments look leaves the roster alone.
        self.rng = random.Random(f"medins-sample:{a.seed}:residents")
        self.rrng = random.Random(f"medins-sample:{a.seed}:render")
        self.prng = random.Random(f"medins-sample:{a.seed}:payments")
        p = self.p
        self.YS, self.YE = p.year_start, p.year_end
        self.CS, self.CE = p.collection_start.value, p.collection_end.value
        # No date of the sample lies after this day, so a run from November of Y on finds none in the
        # future (docs/RULES.md §6) except the planted ones.
        self.latest = dt.date(a.year, 10, 31)
        self.standard_fen = p.fen("individual_standard_yuan") or 0
        self.labels = {lab.name: lab for lab in p.labels}
        self.label_alias_of = p.label_aliases()
        self.event_alias_of = p.event_aliases()
        self.other_year_standard = {y: self._standard_of(y) for y in (a.year - 1, a.year + 1)}
        footer_prefixes = self.header_maps["roster"].footer_prefixes
        for text in ("合计", "制表人", "备注"):
            if not text.startswith(footer_prefixes):
                raise ParamsError(f"schemas/headers.toml footer prefixes lack '{text}'")

    def _standard_of(self, year: int) -> int:
        try:
            return load_params(year, self.vocab["region"]).fen("individual_standard_yuan") or 0
        except ParamsError:  # no parameters for that year: this year's standard
            return self.standard_fen

    @property
    def payment_target(self) -> int | None:
        return self.args.payment_rows

    def day(self, lo: dt.date, hi: dt.date, rng: random.Random | None = None) -> dt.date:
        """A random day in [lo, hi]."""
        return dt.date.fromordinal((rng or self.rng).randint(lo.toordinal(), hi.toordinal()))

    def in_period(self, rng: random.Random | None = None) -> dt.date:
        """A day of the collection period [CS, CE]."""
        return self.day(self.CS, self.CE, rng)

    def late(self, rng: random.Random | None = None) -> dt.date:
        """A day within 150 days after the collection end."""
        return self.day(self.CE + dt.timedelta(days=1), self.CE + dt.timedelta(days=150), rng)

    def name(self, male: bool, rng: random.Random | None = None) -> str:
        """A plausible Chinese name: weighted surname, one or two given characters."""
        r, names = rng or self.rng, self.vocab["names"]
        pool = names["given_male"] if male else names["given_female"]
        given = r.choice(pool) + (r.choice(pool) if r.random() < 0.7 else "")
        return r.choices(names["surnames"], cum_weights=surname_cum_weights(len(names["surnames"])))[0] + given


@cache
def surname_cum_weights(n: int) -> tuple[int, ...]:
    """Heavier weight for the first (most common) surnames."""
    return tuple(sum(max(1, 30 - i) for i in range(k + 1)) for k in range(n))


def cn_date(d: dt.date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def split_evenly(total: int, weights: list[float]) -> list[int]:
    """Integer shares of total proportional to weights (largest remainder)."""
    s = sum(weights)
    raw = [total * w / s for w in weights]
    base = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: (base[i] - raw[i], i))
    for i in order[: total - sum(base)]:
        base[i] += 1
    return base
