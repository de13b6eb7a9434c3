"""The rosters (参保登记花名册): the city's or counties' .xlsx workbooks and a township's .xls.

Residents are written in roster order and forgotten: each one's payments go to
the payment files and, now and then, a line to the subsidy lists on the way.
Planted duplicate copies wait in a small heap per sheet until their row comes.
"""

from __future__ import annotations

import heapq
import random
from pathlib import Path

from tools.sample.context import County, Sample, SampleArgumentError, cn_date, counties, read_toml, split_evenly
from tools.sample.defects import Spoiler, misspellings
from tools.sample.formats import XlsBook, fixed_layout, fixed_style
from tools.sample.lists import SubsidyLists
from tools.sample.paybooks import PaymentFiles
from tools.sample.payments import Payments
from tools.sample.people import People, positions, township_positions
from tools.sample.render import Renderer, cell_text
from tools.sample.workbook import Sheet, XlsxBook, sheet_name, titles, write_footers

TOWNSHIP_SHARE = 0.10  # residents of the township .xls roster, beside those of the .xlsx rosters
TOWNSHIP_MAX = 60_000  # an .xls sheet holds 65,536 rows


def township_residents(rows: int) -> int:
    return max(1, min(TOWNSHIP_MAX, round(rows * TOWNSHIP_SHARE)))


def roster_file_plan(s: Sample) -> list[tuple[str, str, list[County], int]]:
    """(file slug, place, counties, residents): one city-wide file, or one per county."""
    rows, n = s.args.rows, s.args.roster_files
    if n == 1:
        return [(s.vocab["city_slug"], s.vocab["city"], list(counties()), rows)]
    files = []
    for k, size in enumerate(split_evenly(rows, [1.0] * n)):
        county = counties()[k % len(counties())]
        part = k // len(counties())
        files.append((county.slug + (f"_{part + 1}" if part else ""), county.name, [county], size))
    return files


class Rosters:
    def __init__(
        self,
        s: Sample,
        people: People,
        payments: Payments,
        renderer: Renderer,
        spoiler: Spoiler,
        paybook: PaymentFiles,
        lists: SubsidyLists | None,
    ) -> None:
        self.s, self.people, self.payments, self.renderer = s, people, payments, renderer
        self.spoiler, self.paybook, self.lists = spoiler, paybook, lists
        self.label_typos = misspellings("roster", "unknown_label", s.label_alias_of)
        self.event_typos = misspellings("roster", "unknown_event", s.event_alias_of)
        self.sheets: list[Sheet] = []

    def write_xlsx(
        self,
        slug: str,
        place: str,
        county_list: list[County],
        n_file: int,
        g: int,
        plan: dict[int, str],
        first_file: bool,
    ) -> tuple[Path, int]:
        """One roster workbook; residents g, g+1, ... with their payments queued on the way."""
        s, n_sheets = self.s, self.s.args.sheets_per_file
        title = f"{place}{s.year}年度城乡居民医保参保登记花名册"
        book = XlsxBook(s, s.args.out_dir / f"roster_{slug}.xlsx", title)
        sheets: list[Sheet] = []
        for j in range(n_sheets):
            keys, headers = self.renderer.plain_layout("roster", read_toml("layouts.toml")["plain_roster"])
            rows_above = titles(s, title, f"填报单位：{place}医疗保障局（盖章）　　统计截至：{cn_date(s.CE)}")
            sh = book.add_sheet(sheet_name("参保登记", j, n_sheets), "roster", keys, headers)
            self.renderer.plain_style(sh)
            sh.start(rows_above)
            sheets.append(sh)
        sizes = split_evenly(n_file, [1.0] * n_sheets)
        self._place_blank_rows(sheets, sizes)
        if first_file and s.args.numeric_id_rows:
            self._place_numeric_rows(sheets[0], sizes[0])
        g = self._fill(sheets, sizes, positions(s, county_list, n_file), g, plan)
        return book.close(), g

    def write_township_xls(self, n: int, g: int, plan: dict[int, str]) -> tuple[Path, int]:
        """A township's own roster (.xls, one or two sheets): other residents of one township."""
        s = self.s
        r = random.Random(f"medins-sample:{s.seed}:township")
        county = r.choice(counties())
        township = r.choice(county.townships)
        lay = fixed_layout(s, "township_roster")
        book = XlsBook(s, s.args.out_dir / f"roster_{township}.xls")
        n_sheets = min(2, s.args.sheets_per_file, n)
        title = f"{county.name}{township}{s.year}年度城乡居民基本医疗保险参保人员花名册"
        sheets: list[Sheet] = []
        for j in range(n_sheets):
            sh = book.add_sheet(sheet_name("参保人员", j, n_sheets), "roster", lay.keys, lay.headers)
            sh.style = fixed_style(s, lay)
            sh.start(titles(s, title, f"填报单位：{township}人民政府（盖章）  填报日期：{cn_date(s.CE)}"))
            sheets.append(sh)
        sizes = split_evenly(n, [1.0] * n_sheets)
        self._place_blank_rows(sheets, sizes)
        g = self._fill(sheets, sizes, township_positions(s, county, township, n, r), g, plan)
        return book.close(), g

    def _place_blank_rows(self, sheets: list[Sheet], sizes: list[int]) -> None:
        for sh, size in zip(sheets, sizes):
            if self.s.messy and size >= 10:
                sh.blank_at = set(self.s.rrng.sample(range(1, size), max(1, round(size * 0.003))))

    def _place_numeric_rows(self, sheet: Sheet, size: int) -> None:
        rows = self.s.args.numeric_id_rows
        first, last = sheet.excel_row, sheet.excel_row + size - 1
        outside = [x for x in rows if not first <= x <= last]
        if outside:
            raise SampleArgumentError(
                f"numeric_id_rows {outside} 不在第一张花名册表的数据行 / are outside the data rows "
                f"{first}..{last} of the first roster sheet"
            )
        sheet.numeric_rows = set(rows)

    def _fill(self, sheets: list[Sheet], sizes: list[int], places, g: int, plan: dict[int, str]) -> int:
        for j, size in enumerate(sizes):
            sh = sheets[j]
            for local in range(size):
                county, township, village = next(places)
                self._emit_due_copies(sh, local)
                if local in sh.blank_at and sh.excel_row not in sh.numeric_rows:
                    sh.blank()
                kind = "id_numeric" if sh.excel_row in sh.numeric_rows else plan.get(g)
                self._resident(sheets, sizes, j, local, g, kind, county, township, village)
                g += 1
        for sh in sheets:
            self._emit_due_copies(sh, None)
            write_footers(self.s, sh, "人")
        self.sheets += sheets
        return g

    def _resident(
        self,
        sheets: list[Sheet],
        sizes: list[int],
        j: int,
        local: int,
        g: int,
        kind: str | None,
        county: County,
        township: str,
        village: str,
    ) -> None:
        """One resident's roster row (spoilt as `kind` says), payments and list lines."""
        s, sh, person = self.s, sheets[j], self.people.make_person(county, township, village)
        typo = None
        if kind == "unknown_label":
            typo, meant = s.rng.choice(self.label_typos)
            person.labels, person.labels_shown = (meant,), (typo,)
            person.label_tier = self.people.tier_of(person.labels, person.birth)
            person.due_fen = self.people.due_fen(person.label_tier, person.birth)
        elif kind == "unknown_event":
            typo, meant = s.rng.choice(self.event_typos)
            person.special_event = meant
        pays = self.payments.plan(person)
        if kind == "unknown_event":
            person.special_event = typo
        cells = self.renderer.roster_cells(sh, person)
        if kind == "exact_duplicate":
            sh.emit(cells)
            heapq.heappush(sh.copies, (local + s.rrng.randint(1, 15), g, "copy", cells))
        elif kind == "conflicting_duplicate":
            sh.emit(cells, (kind, "id_number", cell_text(cells["id_number"])))
            t = (j + 1) % len(sheets) if sizes[(j + 1) % len(sheets)] else j
            due = s.rrng.randint(0, sizes[t] - 1) if t != j else local + s.rrng.randint(1, 15)
            heapq.heappush(sheets[t].copies, (due, g, "conflict", person))
        else:
            sh.emit(cells, self.spoiler.roster(kind, person, cells, sh) if kind else None)
        self.paybook.add(g, person, pays + self.payments.extra(person))
        if self.lists is not None:
            net = sum(p.amount_fen for p in pays if p.coverage_year == s.year)
            self.lists.consider(person, kind, net)

    def _emit_due_copies(self, sh: Sheet, local: int | None) -> None:
        """Write the duplicate copies whose turn has come (all that are left when local is None)."""
        while sh.copies and (local is None or sh.copies[0][0] <= local) and sh.excel_row not in sh.numeric_rows:
            _, _, what, payload = heapq.heappop(sh.copies)
            if what == "copy":  # the same cells again: merged by the reader, counted as skipped
                sh.emit(payload, ("exact_duplicate", "id_number", cell_text(payload["id_number"])))
            else:  # the same person under another township: both rows rejected
                others = [t for t in payload.county.townships if t != payload.township]
                cells = self.renderer.roster_cells(sh, payload, township=self.s.rrng.choice(others))
                sh.emit(cells, ("conflicting_duplicate", "id_number", cell_text(cells["id_number"])))
