"""Subsidy lists from other departments (资助参保对象名单, docs/RULES.md §9): who is on them, and the files.

While the rosters are written, each resident may be put on a department's
list (a few per cent of residents): mostly people whose roster row already
carries the label; some whose roster row has none (the list adds it), among
them people identified after the collection end who had paid the whole
standard; some whose roster row is planted bad; some who did not pay enough.
At the end come people on no roster, and the planted bad list rows (extra
copies of good rows, spoilt). Every such case occurs at least once in a
sample that has a candidate for it.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from tools.sample.context import Sample, counties, read_toml
from tools.sample.defects import MIN_ROWS_FOR_BAD, Spoiler, load_defects
from tools.sample.formats import CsvBook, Layout, XlsBook, fixed_layout, fixed_style
from tools.sample.people import People, Person, village_names
from tools.sample.render import Cell, Renderer
from tools.sample.workbook import Sheet, XlsxBook, titles, write_footers

# Chance that a resident of each case is put on a list.
PICK = {
    "on_roster_with_label": 0.35,
    "not_enrolled": 0.9,
    "roster_rejected": 0.5,
    "roster_id_spoilt": 0.3,
    "added_in_period": 0.003,
    "added_after_collection_end": 0.003,
}
ROSTER_REJECTING = {"required_empty", "bad_date", "unknown_label", "unknown_event", "conflicting_duplicate"}
STRANGER_SHARE = 0.003  # people on a list and on no roster, per resident
ENDED_SHARE = {"民政": 0.05, "乡村振兴": 0.15}  # rows with an 退出时间, by department
SPOILS = {"list_end_before_start": "ended_on", "unknown_label": "identity_labels", "required_empty": "name"}


@dataclass(slots=True)
class Entry:
    """One list row: one person and one label."""

    dept: str
    id_number: str
    name: str
    label: str  # canonical
    shown: str  # as written
    identified_on: dt.date
    ended_on: dt.date | None
    township: str
    village: str
    relation: str
    case: str
    defect: str | None = None


class SubsidyLists:
    def __init__(self, s: Sample, people: People, renderer: Renderer, spoiler: Spoiler) -> None:
        self.s, self.people, self.renderer, self.spoiler = s, people, renderer, spoiler
        self.rng = random.Random(f"medins-sample:{s.seed}:lists")
        self.layouts: dict[str, Layout] = {
            dept: fixed_layout(s, f"lists.{dept}") for dept in read_toml("layouts.toml")["lists"]
        }
        self.dept_of = {label: dept for dept, lay in self.layouts.items() for label in lay.spec["labels"]}
        self.entries: list[Entry] = []
        self.cases: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()  # candidates per case
        self.fallback: dict[str, tuple[Person, tuple[str, ...]]] = {}  # case -> one candidate, uniformly
        self.sheets: list[Sheet] = []

    # ------------------------------------------------------------ who
    def consider(self, person: Person, roster_defect: str | None, net_paid_fen: int) -> None:
        """Maybe put this roster resident on lists; remember a candidate for every case."""
        case, labels = self._case(person, roster_defect, net_paid_fen)
        if case is None:
            return
        if self.rng.random() < PICK[case]:
            self._add(person, labels, case)
            return
        self.seen[case] += 1
        if self.rng.randrange(self.seen[case]) == 0:  # a reservoir of one
            self.fallback[case] = (person, labels)

    def _case(self, p: Person, roster_defect: str | None, net: int) -> tuple[str | None, tuple[str, ...]]:
        own = tuple(label for label in p.labels if label in self.dept_of)
        if roster_defect in ROSTER_REJECTING or roster_defect in (
            "id_numeric",
            "id_check_digit",
            "id_birth_date",
            "id_15_digits",
        ):
            case = "roster_rejected" if roster_defect in ROSTER_REJECTING else "roster_id_spoilt"
            return case, own or (self._added_label(p),)
        if own:
            return ("not_enrolled" if net < p.due_fen else "on_roster_with_label"), own
        if p.labels or self.people.is_full_newborn(p.birth):
            return None, ()
        # identified after the collection end only when they had paid the whole standard (§5's limited refund)
        late = net >= self.s.standard_fen and self.rng.random() < 0.5
        return ("added_after_collection_end" if late else "added_in_period"), (self._added_label(p),)

    def _added_label(self, p: Person) -> str:
        age = self.people.age(p.birth)
        band = "child" if age < self.s.p.adult_age else "old" if age >= self.s.p.elderly_age else "adult"
        return self.rng.choice(self.s.vocab["list_additions"][band])

    def _add(self, p: Person, labels: tuple[str, ...], case: str) -> None:
        s = self.s
        for label in labels:
            if case == "added_after_collection_end":  # e.g. 2026-04 .. 2026-05 for 2026
                identified = s.CE + dt.timedelta(days=self.rng.randint(30, 90))
            elif case == "added_in_period":
                identified = s.day(s.CS, s.CE, self.rng)
            else:
                identified = p.subsidy_identified_on or s.day(s.CS - dt.timedelta(days=365), s.CE, self.rng)
            dept = self.dept_of[label]
            self.entries.append(
                Entry(
                    dept,
                    p.id_number,
                    p.name,
                    label,
                    self.people.spelling(label, self.rng),
                    identified,
                    self._ended(dept, identified),
                    p.township,
                    p.village,
                    p.relation,
                    case,
                )
            )
        self.cases[case] += 1

    def _ended(self, dept: str, identified: dt.date) -> dt.date | None:
        """退出时间: mostly empty; else before 1 January of Y (not in force) or within Y."""
        s, r = self.s, self.rng
        if r.random() >= ENDED_SHARE.get(dept, 0.0):
            return None
        if r.random() < 0.5 and identified < s.YS - dt.timedelta(days=60):
            return s.day(identified + dt.timedelta(days=30), s.YS - dt.timedelta(days=1), r)
        return min(s.YE, max(identified, s.YS) + dt.timedelta(days=r.randint(30, 200)))

    def _stranger(self, dept: str) -> None:
        """Someone a department lists who is on no roster at all."""
        s, r = self.s, self.rng
        label = r.choice(self.layouts[dept].spec["labels"])
        ages = s.vocab["list_stranger_ages"]
        county = r.choice(counties())
        township = r.choice(county.townships)
        male = r.random() < 0.5
        birth = self.people.birth_for_age(r.randint(*ages.get(label, ages["other"])), r)
        identified = s.day(s.CS - dt.timedelta(days=365), s.CE, r)
        self.entries.insert(
            r.randint(0, len(self.entries)),
            Entry(
                dept,
                self.people.new_id(county.code, birth, male, r),
                s.name(male, r),
                label,
                self.people.spelling(label, r),
                identified,
                self._ended(dept, identified),
                township,
                r.choice(village_names(s, county, township)),
                r.choice(s.vocab["names"]["relations"]),
                "not_on_roster",
            ),
        )
        self.cases["not_on_roster"] += 1

    # ------------------------------------------------------------ finish
    def finish(self) -> list[Path]:
        """Fallback cases, strangers, the in-force mix, the planted bad rows; then the three files."""
        for case in ("not_enrolled", "roster_rejected", "added_in_period", "added_after_collection_end"):
            if not self.cases[case] and case in self.fallback:
                person, labels = self.fallback[case]
                self._add(person, labels, case)
        depts = list(self.layouts)
        n_strangers = max(len(depts), round(STRANGER_SHARE * self.s.residents_total))
        for k in range(n_strangers):
            self._stranger(depts[k % len(depts)])
        self._ensure_endings("乡村振兴")
        self._plant()
        self.cases["not_in_force"] = sum(not self.in_force(e) for e in self.entries if not e.defect)
        return [self._write(dept) for dept in depts]

    def in_force(self, e: Entry) -> bool:
        """docs/RULES.md §9: identified by the end of Y, and not ended before its start."""
        return e.identified_on <= self.s.YE and (e.ended_on is None or e.ended_on >= self.s.YS)

    def _ensure_endings(self, dept: str) -> None:
        """At least one row ended before 1 January of Y and one ended within Y (消除监测时间)."""
        s, rows = self.s, [e for e in self.entries if e.dept == dept]
        if len(rows) < 2:
            return
        if not any(e.ended_on and e.ended_on < s.YS for e in rows):
            e = self.rng.choice([e for e in rows if e.case == "on_roster_with_label"] or rows)
            e.identified_on = min(e.identified_on, s.YS - dt.timedelta(days=400))
            e.ended_on = s.YS - dt.timedelta(days=self.rng.randint(1, 120))
        if not any(e.ended_on and e.ended_on >= s.YS for e in rows):
            e = self.rng.choice([e for e in rows if e.ended_on is None] or rows)
            e.ended_on = min(s.YE, max(e.identified_on, s.YS) + dt.timedelta(days=self.rng.randint(30, 200)))

    def _plant(self) -> None:
        """Bad list rows: copies of distinct good rows, spoilt, each beside its original; only in
        lists that have the column the kind spoils (no 退出时间 in the 残联 list)."""
        if not self.s.messy or self.s.residents_total < MIN_ROWS_FOR_BAD or not self.entries:
            return
        chosen: dict[int, str] = {}
        for kind, d in load_defects()["subsidy_list"].items():
            column = SPOILS.get(kind, "id_number")
            pool = [i for i, e in enumerate(self.entries) if i not in chosen and column in self.layouts[e.dept].keys]
            for i in self.rng.sample(pool, min(len(pool), max(1, round(d.rate * len(self.entries))))):
                chosen[i] = kind
        for idx, kind in sorted(chosen.items(), reverse=True):
            self.entries.insert(idx + 1, replace(self.entries[idx], defect=kind))

    # ------------------------------------------------------------ files
    def _write(self, dept: str) -> Path:
        s, lay = self.s, self.layouts[dept]
        path = s.args.out_dir / lay.spec["file"]
        title = lay.spec["title"].format(city=s.vocab["city"], year=s.year)
        book = (
            CsvBook(s, path)
            if path.suffix == ".csv"
            else XlsBook(s, path)
            if path.suffix == ".xls"
            else XlsxBook(s, path, title or lay.spec["file"])
        )
        sh = (
            book.add_sheet(lay.kind, lay.keys, lay.headers)
            if isinstance(book, CsvBook)
            else book.add_sheet("名单", lay.kind, lay.keys, lay.headers)
        )
        sh.style = fixed_style(s, lay)
        sh.start(titles(s, title, f"认定部门：{lay.spec['department']}") if title else [])
        rows = [e for e in self.entries if e.dept == dept]
        blank_at = self.rng.randrange(1, len(rows)) if s.messy and len(rows) >= 10 else -1
        for i, e in enumerate(rows):
            if i == blank_at:
                sh.blank()
            cells = self._cells(sh, lay, e)
            defect = None
            if e.defect:
                defect = self.spoiler.list_row(
                    e.defect,
                    cells,
                    e.id_number,
                    (e.label,),
                    e.identified_on,
                    lambda key, d: self.renderer.date_cell(sh, key, d),
                )
            sh.emit(cells, defect)
        if not isinstance(book, CsvBook):
            write_footers(s, sh, "人", f"备注：名单以{lay.spec['department']}认定信息为准。")
        self.sheets.append(sh)
        return book.close()

    def _cells(self, sh: Sheet, lay: Layout, e: Entry) -> dict[str, Cell]:
        dis = self.s.vocab["disability"]
        seq = int(e.id_number[14:17])  # the person's own: a spoilt copy differs only where it is spoilt
        return {
            "id_number": self.renderer.id_cell(e.id_number),
            "name": ("s", e.name),
            "identity_labels": ("s", e.shown),
            "identified_on": self.renderer.date_cell(sh, "identified_on", e.identified_on),
            "ended_on": self.renderer.date_cell(sh, "ended_on", e.ended_on),
            "department": ("s", lay.spec["department"]),
            "township": ("s", e.township),
            "village": ("s", e.village),
            "extra:与户主关系": ("s", e.relation),
            "extra:残疾类别": ("s", dis["kinds"][seq % len(dis["kinds"])]),
            "extra:残疾等级": ("s", dis["grades"][seq // 7 % len(dis["grades"])]),
        }
