"""Residents: places, IDs, birth dates, identity labels, registration and events."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.errors import ParamsError
from tools.sample.context import County, Sample, counties, split_evenly
from tools.sample.independent_rules import (
    age_on_year_start,
    id_check_digit,
    individual_due_fen,
    is_full_newborn,
    label_tier,
)


@dataclass(slots=True)
class Person:
    name: str
    id_number: str
    birth: dt.date
    male: bool
    county: County
    township: str
    village: str
    residence_basis: str
    id_type: str
    labels: tuple[str, ...]  # canonical (for the tier)
    labels_shown: tuple[str, ...]  # as written (aliases, typos)
    label_tier: str  # tier from the labels alone
    due_fen: int
    subsidy_identified_on: dt.date | None
    prev_year_insured: bool
    special_event: str | None
    special_event_date: dt.date | None
    registered_on: dt.date | None
    phone: str
    relation: str
    remark: str


class People:
    """Makes residents one at a time from the `residents` stream, every ID unique."""

    def __init__(self, s: Sample) -> None:
        self.s = s
        v = s.vocab
        self.codes = v["codes"]
        self.shares = v["shares"]
        self.issued: set[int] = set()
        self.mix = [(tuple(m["labels"]), m["share"], m["band"]) for m in v["label_mix"]]
        for names, _, _ in self.mix:
            for n in names:
                if n not in s.labels:
                    raise ParamsError(f"labels.toml has no label '{n}' used by tools/sample/vocabulary.toml")
        self.mix_cum: list[float] = []
        acc = self.shares["newborn"]
        for _, share, _ in self.mix:
            acc += share
            self.mix_cum.append(acc)
        events = {name: aliases for name, aliases in s.p.event_types}
        self.events = [(ev.name, events.get(ev.name, ())) for ev in s.p.special_events]

    # ---------------------------------------------------------------- tiers
    def age(self, birth: dt.date) -> int:
        return age_on_year_start(birth, self.s.year)

    def tier_of(self, canonical: tuple[str, ...], birth: dt.date) -> str:
        return label_tier(self.s.labels, canonical, self.age(birth), self.s.p)

    def due_fen(self, tier: str, birth: dt.date) -> int:
        return individual_due_fen(tier, birth, self.s.year, self.s.p)

    def is_full_newborn(self, birth: dt.date) -> bool:
        return is_full_newborn(birth, self.s.year, self.s.p)

    # ---------------------------------------------------------------- births
    def birth_for_age(self, age: int, rng: random.Random | None = None) -> dt.date:
        """A birth date giving exactly `age` completed years on YS."""
        ys, y = self.s.YS, self.s.year
        return self.s.day(ys.replace(year=y - age - 1) + dt.timedelta(days=1), ys.replace(year=y - age), rng)

    def _birth(self, band: str) -> dt.date:
        r, p = self.s.rng, self.s.p
        bands = {
            "child": (0, p.adult_age - 1),
            "student": (p.adult_age, p.adult_age + 6),
            "adult": (p.adult_age, p.elderly_age + 10),
            "old": (p.elderly_age, 95),
        }
        if band in bands:
            return self.birth_for_age(r.randint(*bands[band]))
        if band in ("edge_elderly", "edge_both"):
            edge = p.adult_age if band == "edge_both" and r.random() < 0.5 else p.elderly_age
            u = r.random()
            if u < 0.4:  # 1 January: completes the age exactly on YS
                return self.s.YS.replace(year=self.s.year - edge)
            if u < 0.7:  # 2 January: one day short
                return self.s.YS.replace(year=self.s.year - edge) + dt.timedelta(days=1)
            return self.birth_for_age(r.randint(edge - 2, edge + 1))
        u = r.random()
        for upper, lo, hi in (
            (0.07, 0, 5),
            (0.22, 6, 17),
            (0.47, 18, 39),
            (0.77, 40, 59),
            (0.96, 60, 79),
            (1.0, 80, 95),
        ):
            if u < upper:
                return self.birth_for_age(r.randint(lo, hi))
        raise AssertionError("unreachable")

    def _newborn_birth(self) -> dt.date:
        s, full_from = self.s, self.s.p.newborn_full_from.value
        u = s.rng.random()
        if u < 0.06:
            return full_from
        if u < 0.12:
            return full_from - dt.timedelta(days=1)
        return s.day(dt.date(s.year - 2, 1, 1), s.YS + dt.timedelta(days=180))  # Y-2 .. mid-Y

    # ---------------------------------------------------------------- IDs
    def new_id(self, region: str, birth: dt.date, male: bool, rng: random.Random | None = None) -> str:
        """A valid, unused 18-character ID (GB 11643: region, birth, sequence, check)."""
        r = rng or self.s.rng
        ymd = f"{birth.year:04d}{birth.month:02d}{birth.day:02d}"
        regions = [region] + [c.code for c in counties() if c.code != region] + self.codes["mainland_migrant"]
        for code in regions:
            for _ in range(60):
                seq = r.randrange(0, 500) * 2 + (1 if male else 0)
                if seq and self._take(f"{code}{ymd}{seq:03d}"):
                    return f"{code}{ymd}{seq:03d}" + id_check_digit(f"{code}{ymd}{seq:03d}")
        # Millions of residents crowd the planted boundary birthdays (age limits, newborn cut-offs):
        # past the random tries, the first free sequence in order.
        for code in regions + [c for c in self.codes["overflow"] if c not in regions]:
            for half in range(500):
                seq = half * 2 + (1 if male else 0)
                if seq and self._take(f"{code}{ymd}{seq:03d}"):
                    return f"{code}{ymd}{seq:03d}" + id_check_digit(f"{code}{ymd}{seq:03d}")
        raise RuntimeError(f"no free ID sequence for birth date {birth}")

    def _take(self, body17: str) -> bool:
        key = int(body17)
        if key in self.issued:
            return False
        self.issued.add(key)
        return True

    @staticmethod
    def impossible_birth_id(id_number: str, rng: random.Random) -> str:
        """The ID with a birth date no calendar has (30 February, month 13, ...), check digit right."""
        year = id_number[6:10]
        bad = rng.choice((f"{year}0230", f"{year}1301", f"{year}0431", f"{year}0011", f"{year}0900"))
        body = f"{id_number[:6]}{bad}{id_number[14:17]}"
        return body + id_check_digit(body)

    @staticmethod
    def wrong_check(id_number: str, rng: random.Random) -> str:
        right = id_number[-1]
        return id_number[:-1] + rng.choice([c for c in "0123456789X" if c != right])

    # ---------------------------------------------------------------- people
    def make_person(self, county: County, township: str, village: str) -> Person:
        """The next resident of this village, drawn from the `residents` stream."""
        s, r = self.s, self.s.rng
        male = r.random() < 0.5
        canonical, birth, newborn = self._labels_and_birth()
        ltier = self.tier_of(canonical, birth)
        region, basis, id_type = self._origin(county, birth)
        id_number = self.new_id(region, birth, male)
        prev = r.random() < self.shares["prev_year_insured"] and birth < s.YS - dt.timedelta(days=365)
        registered = self._registered_on(newborn, birth)
        subsidy_on = self._subsidy_identified_on(canonical, ltier)
        event = None
        if r.random() < self.shares["special_event"] and self.events:
            name, aliases = r.choice(self.events)
            event = r.choice(aliases) if aliases and r.random() < 0.2 else name
            prev = r.random() < 0.3
        names = s.vocab["names"]
        phone = f"1{r.choice('3578')}{r.randrange(10**9):09d}" if r.random() < 0.8 else ""
        relation, remark = r.choice(names["relations"]), r.choice(names["remarks"])
        return Person(
            name=s.name(male),
            id_number=id_number,
            birth=birth,
            male=male,
            county=county,
            township=township,
            village=village,
            residence_basis=basis,
            id_type=id_type,
            labels=canonical,
            labels_shown=tuple(self.spelling(n) for n in canonical),
            label_tier=ltier,
            due_fen=self.due_fen(ltier, birth),
            subsidy_identified_on=subsidy_on,
            prev_year_insured=prev,
            special_event=event,
            special_event_date=None,
            registered_on=registered,
            phone=phone,
            relation=relation,
            remark=remark,
        )

    def _labels_and_birth(self) -> tuple[tuple[str, ...], dt.date, bool]:
        u = self.s.rng.random()
        if u < self.shares["newborn"]:
            return (), self._newborn_birth(), True
        for cum, (names, _, band) in zip(self.mix_cum, self.mix):
            if u < cum:
                return names, self._birth(band), False
        return (), self._birth("any"), False

    def _origin(self, county: County, birth: dt.date) -> tuple[str, str, str]:
        """(ID region code, 参保身份, 证件类型): local, a migrant with 居住证, or a 港澳台 permit."""
        r, sh, codes = self.s.rng, self.shares, self.codes
        v = r.random()
        if v < sh["permit"]:
            return r.choice(codes["permit"]), "居住证", "港澳台居民居住证"
        if v < sh["permit"] + sh["migrant"]:
            return r.choice(codes["mainland_migrant"]), "居住证", "居民身份证"
        if birth.year < codes["old_region_born_before"] and r.random() < sh["old_region_code"]:
            return codes["old_region"], "本地户籍", "居民身份证"
        return county.code, "本地户籍", "居民身份证"

    def _registered_on(self, newborn: bool, birth: dt.date) -> dt.date | None:
        s, r = self.s, self.s.rng
        if newborn and birth >= s.CS - dt.timedelta(days=120):
            gaps = [
                g for g in (0, 3, 10, 20, 35, 60, 89, 90, 91, 120, 200) if birth + dt.timedelta(days=g + 5) <= s.latest
            ]  # room for the parents' payment
            return max(s.CS, birth + dt.timedelta(days=r.choice(gaps)))
        w = r.random()
        return s.in_period() if w < 0.85 else None if w < 0.95 else s.late()

    def _subsidy_identified_on(self, canonical: tuple[str, ...], ltier: str) -> dt.date | None:
        """资助认定日期 of a subsidised resident: mostly before CE, some at CE, CE + 1 day and later."""
        s = self.s
        if ltier not in ("full", "fixed") or not any(s.labels[n].subsidized_object for n in canonical):
            return None
        w = s.rng.random()
        if w < 0.80:
            return s.day(s.CS - dt.timedelta(days=365), s.CE)
        if w < 0.85:
            return s.CE
        if w < 0.88:
            return s.CE + dt.timedelta(days=1)
        return s.late()

    def spelling(self, name: str, rng: random.Random | None = None) -> str:
        """A label as written: its canonical name, now and then one of its aliases."""
        r = rng or self.s.rng
        aliases = self.s.labels[name].aliases
        if aliases and r.random() < self.shares["label_alias"]:
            return r.choice(aliases)
        return name


def positions(s: Sample, county_list: list[County], n: int) -> Iterator[tuple[County, str, str]]:
    """(county, township, village) for n residents, sorted like a real roster."""
    r = random.Random(f"medins-sample:{s.seed}:places:{','.join(c.slug for c in county_list)}:{n}")
    for county, cn in zip(county_list, split_evenly(n, [c.weight for c in county_list])):
        tws = list(county.townships)
        for township, tn in zip(tws, split_evenly(cn, [r.uniform(0.5, 2.0) for _ in tws])):
            yield from township_positions(s, county, township, tn, r)


def township_positions(
    s: Sample, county: County, township: str, n: int, r: random.Random
) -> Iterator[tuple[County, str, str]]:
    villages = village_names(s, county, township)
    for village, vn in zip(villages, split_evenly(n, [r.uniform(0.5, 2.0) for _ in villages])):
        for _ in range(vn):
            yield county, township, village


def village_names(s: Sample, county: County, township: str) -> list[str]:
    """Plausible, stable village names of one township (X家村, X村委会, X社区)."""
    r = random.Random(f"villages:{county.code}:{township}")
    words, surnames = s.vocab["names"]["village_words"], s.vocab["names"]["surnames"]
    names: list[str] = []
    street = township.endswith("街道")
    wanted = r.randint(5, 10) + (3 if street else 0)
    while len(names) < wanted:
        w = r.random()
        if street:
            name = r.choice(words) + "社区"
        elif w < 0.45:
            name = r.choice(surnames[:60]) + "家村"
        elif w < 0.9:
            name = r.choice(words) + "村委会"
        else:
            name = township[:2] + r.choice(("社区", "居委会"))
        if name not in names:
            names.append(name)
    return names
