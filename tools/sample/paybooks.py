"""The payment files: the plain payments.xlsx, and with the extra formats the tax bureau's own
export (two-row header) and a tax office's CSV. Each payment row goes to one of them, so one
person's instalments may sit in different files; within a sheet rows are date-ordered in chunks.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path

from tools.sample.context import Sample, cn_date, read_toml
from tools.sample.defects import Spoiler
from tools.sample.formats import CsvBook, fixed_layout, fixed_style
from tools.sample.payments import Payment, Payments, county_for_topup, fit_to_target
from tools.sample.people import Person
from tools.sample.render import Renderer
from tools.sample.workbook import Sheet, XlsxBook, sheet_name, titles, write_footers

# Payments are sorted by date within chunks of this many rows per sheet: the
# tax export is date-ordered, and a bounded buffer keeps memory flat.
PAYMENT_CHUNK_ROWS = 5_000
# Share of payment rows per file: payments.xlsx, payments_电子税务局.xlsx, payments_税务大厅.csv.
ROUTE_WEIGHTS = (0.60, 0.25, 0.15)
CSV_FILE = 2


@dataclass
class PaymentFile:
    book: XlsxBook | CsvBook
    sheets: list[Sheet]
    share: float
    buffers: list[list[Payment]] = field(default_factory=list)


class PaymentFiles:
    def __init__(
        self, s: Sample, payments: Payments, renderer: Renderer, spoiler: Spoiler, plan: dict[int, str]
    ) -> None:
        self.s, self.payments, self.renderer, self.spoiler, self.plan = s, payments, renderer, spoiler, plan
        self.pending_defects = len(plan)
        self.files = [self._plain()]
        if s.args.extra_formats:
            self.files += [self._tax(), self._csv()]
        for f, share in zip(self.files, ROUTE_WEIGHTS if len(self.files) > 1 else (1.0,)):
            f.share, f.buffers = share, [[] for _ in f.sheets]
        self.route_rng = random.Random(f"medins-sample:{s.seed}:route")
        self.defects_routed = 0
        self.numeric_in_csv = False
        self._place_blank_rows()

    # ------------------------------------------------------------ files
    def _plain(self) -> PaymentFile:
        s, city = self.s, self.s.vocab["city"]
        book = XlsxBook(s, s.args.out_dir / "payments.xlsx", f"{city}{s.year}年度城乡居民医保缴费明细")
        sheets: list[Sheet] = []
        for j in range(s.args.sheets_per_file):
            keys, headers = self.renderer.plain_layout("payments", read_toml("layouts.toml")["plain_payments"])
            exported = cn_date(s.CE + dt.timedelta(days=20))
            rows_above = titles(
                s,
                f"{city}{s.year}年度城乡居民基本医疗保险费缴费明细（税务）",
                f"数据来源：国家税务总局{city}税务局　导出日期：{exported}",
            )
            sh = book.add_sheet(sheet_name("缴费明细", j, s.args.sheets_per_file), "payments", keys, headers)
            self.renderer.plain_style(sh)
            sh.start(rows_above)
            sheets.append(sh)
        return PaymentFile(book, sheets, 1.0)

    def _tax(self) -> PaymentFile:
        s, city = self.s, self.s.vocab["city"]
        lay = fixed_layout(s, "tax_payments")
        book = XlsxBook(s, s.args.out_dir / "payments_电子税务局.xlsx", "缴费信息查询")
        sheets: list[Sheet] = []
        for j in range(s.args.sheets_per_file):
            sh = book.add_sheet(
                sheet_name("缴费信息查询", j, s.args.sheets_per_file), "payments", lay.keys, lay.headers, lay.groups
            )
            sh.style = fixed_style(s, lay)
            # constant_memory writes row by row: no cell merged down into the next row there
            vertical = not s.big and s.rrng.random() < 0.5
            sh.start(
                titles(
                    s,
                    f"国家税务总局{city}税务局 城乡居民基本医疗保险费缴费信息",
                    f"查询条件：缴款日期 {s.CS.isoformat()} 至 {(s.CE + dt.timedelta(days=150)).isoformat()}",
                ),
                vertical,
            )
            sheets.append(sh)
        return PaymentFile(book, sheets, 1.0)

    def _csv(self) -> PaymentFile:
        s = self.s
        lay = fixed_layout(s, "tax_payments_csv")
        book = CsvBook(s, s.args.out_dir / "payments_税务大厅.csv")
        sh = book.add_sheet("payments", lay.keys, lay.headers)
        sh.style = fixed_style(s, lay)
        sh.start(
            titles(
                s,
                f"城乡居民基本医疗保险费缴费明细（{s.vocab['city']}办税服务厅导出）",
                f"导出日期：{cn_date(s.CE + dt.timedelta(days=20))}",
            )
        )
        return PaymentFile(book, [sh], 1.0)

    def _place_blank_rows(self) -> None:
        s = self.s
        expected = (s.residents_total if s.payment_target is None else s.payment_target) * 0.9
        for f in self.files:
            per_sheet = int(expected * f.share / len(f.sheets))
            if s.messy and per_sheet >= 10:
                for sh in f.sheets:
                    sh.blank_at = set(s.rrng.sample(range(1, per_sheet), max(1, round(per_sheet * 0.003))))

    # ------------------------------------------------------------ rows
    def add(self, g: int, person: Person, pays: list[Payment]) -> None:
        """Queue resident g's payment rows; a planted defect goes on the first of them."""
        s = self.s
        kind = self.plan.get(g)
        if kind is not None:
            self.pending_defects -= 1
            if not pays:
                pays = [self.payments.pay(person, s.in_period(s.prng), s.standard_fen)]
                s.cases["paid_while_not_due"] += 1
            pays[0].defect = kind
        if s.payment_target is not None:
            pays = fit_to_target(s, self.payments, g, pays, self.pending_defects)
        s.pay_count += len(pays)
        for pay in pays:
            self._queue(self._route(pay), g, pay)

    def _route(self, pay: Payment) -> int:
        """Which file: by share; planted rows in turn over the files, the first numeric ID to the CSV."""
        if len(self.files) == 1:
            return 0
        if pay.defect == "id_numeric" and not self.numeric_in_csv:
            self.numeric_in_csv = True  # as Excel writes a number into a CSV: 3.60222E+17
            return CSV_FILE
        if pay.defect:
            self.defects_routed += 1
            return (self.defects_routed - 1) % len(self.files)
        return self.route_rng.choices(range(len(self.files)), weights=ROUTE_WEIGHTS)[0]

    def _queue(self, k: int, g: int, pay: Payment) -> None:
        f = self.files[k]
        j = min(len(f.sheets) - 1, g * len(f.sheets) // self.s.residents_total)
        f.buffers[j].append(pay)
        if len(f.buffers[j]) >= PAYMENT_CHUNK_ROWS:
            self._flush(f, j)

    def _flush(self, f: PaymentFile, j: int) -> None:
        buf, sh = f.buffers[j], f.sheets[j]
        buf.sort(key=lambda x: (x.paid_on, x.ticket_no))
        for pay in buf:
            if sh.data_rows in sh.blank_at:
                sh.blank()
            cells = self.renderer.payment_cells(sh, pay)
            sh.emit(cells, self.spoiler.payment(pay, cells, sh) if pay.defect else None)
        buf.clear()

    def close(self) -> tuple[list[Path], list[Sheet]]:
        """Top up to payment_rows with strangers' payments, write the rest and the footers."""
        s = self.s
        if s.payment_target is not None:
            while s.pay_count < s.payment_target:
                self.files[0].buffers[-1].append(self.payments.stranger(county_for_topup(s.pay_count)))
                s.pay_count += 1
        for k in range(round(s.args.mix.strangers * s.residents_total)):
            self.files[0].buffers[-1].append(self.payments.stranger(county_for_topup(k)))
            s.pay_count += 1
        for f in self.files:
            for j, sh in enumerate(f.sheets):
                self._flush(f, j)
                write_footers(s, sh, "笔")
        return [f.book.close() for f in self.files], [sh for f in self.files for sh in f.sheets]
