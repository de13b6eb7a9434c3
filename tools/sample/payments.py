"""Payments: who paid what when (the cases of docs/RULES.md §3 and §5), and tax ticket numbers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tools.sample.context import County, Sample, counties
from tools.sample.independent_rules import add_months
from tools.sample.people import People, Person


@dataclass(slots=True)
class Payment:
    paid_on: dt.date
    ticket_no: str
    id_number: str
    name: str
    amount_fen: int
    coverage_year: int
    channel: str
    county: County
    birth: dt.date | None = None  # of the payer, when known (a resident)
    defect: str | None = None


class Payments:
    """Plans each resident's payments from the `payments` stream; numbers the tickets."""

    def __init__(self, s: Sample, people: People) -> None:
        self.s, self.people = s, people
        self.ticket_counter = s.prng.randrange(10**11, 10**12)
        channels = s.vocab["channels"]
        self.channels = list(channels)
        self.channel_cum = [sum(list(channels.values())[: i + 1]) for i in range(len(channels))]
        self.event_windows = {ev.name: ev for ev in s.p.special_events}

    def channel(self) -> str:
        return self.s.prng.choices(self.channels, cum_weights=self.channel_cum)[0]

    def ticket(self, county: County, paid_on: dt.date) -> str:
        """20 digits, kept as text: county tax prefix, year, running number."""
        self.ticket_counter += self.s.prng.randint(1, 40)
        return f"{county.tax_prefix}{paid_on.year % 100:02d}{self.ticket_counter:015d}"

    def pay(self, person: Person, paid_on: dt.date, fen: int, year: int | None = None) -> Payment:
        """One payment row; never dated before the payer's birth (docs/RULES.md §6 would reject it)."""
        paid_on = max(paid_on, person.birth)
        return Payment(
            paid_on,
            self.ticket(person.county, paid_on),
            person.id_number,
            person.name,
            fen,
            year or self.s.year,
            self.channel(),
            person.county,
            person.birth,
        )

    def plan(self, person: Person) -> list[Payment]:
        """The person's payments for Y, with the registration date adjusted to them."""
        s, r, due = self.s, self.s.prng, person.due_fen
        out: list[Payment] = []
        if person.special_event is not None:
            paid = s.late(r) if r.random() < 0.7 else s.in_period(r)
            if due > 0:
                out.append(self.pay(person, paid, due))
                s.cases["special_event_payer"] += 1
            else:
                person.registered_on = paid
            person.special_event_date = self._event_date(person.special_event, paid)
            return out
        if person.subsidy_identified_on is not None and r.random() < 0.12:
            # paid the whole standard before the subsidy was identified: a refund case (docs/RULES.md §5)
            paid = s.in_period(r)
            out.append(self.pay(person, paid, s.standard_fen))
            person.subsidy_identified_on = self._identified_after(paid)
            s.cases["subsidised_paid_standard"] += 1
        elif due > 0:
            out = self._owed(person)
        if out:
            first = min(p.paid_on for p in out)
            if person.registered_on is not None and person.registered_on > first:
                person.registered_on = max(person.birth, first - dt.timedelta(days=r.randint(0, 10)))
        return out

    def _owed(self, person: Person) -> list[Payment]:
        s, r, due, mix = self.s, self.s.prng, person.due_fen, self.s.args.mix
        u = r.random()
        if u < mix.unpaid:
            s.cases["unpaid"] += 1
            return []
        if u < mix.underpaid:
            part = max(1, due * r.randint(2, 9) // 10 // 1000) * 1000
            s.cases["underpaid"] += 1
            return [self.pay(person, s.in_period(r), min(part, due - 100))]
        if u < mix.instalments:
            first = max(1000, due * r.randint(3, 7) // 10 // 1000 * 1000)
            d1 = s.in_period(r)
            d2 = max(d1, min(d1 + dt.timedelta(days=r.randint(1, 90)), s.CE + dt.timedelta(days=60)))
            s.cases["instalments"] += 1
            return [self.pay(person, d1, first), self.pay(person, d2, due - first)]
        if u < mix.paid_twice:
            return self._paid_twice(person)
        if u < mix.overpaid:
            d1 = s.in_period(r)
            s.cases["overpaid"] += 1
            return [self.pay(person, d1, due), self.pay(person, d1 + dt.timedelta(days=r.randint(0, 3)), due)]
        w = r.random()
        paid = self._boundary() if w < 0.03 else s.late(r) if w < 0.11 else s.in_period(r)
        if person.registered_on is not None and person.birth >= s.CS - dt.timedelta(days=120):
            paid = person.registered_on + dt.timedelta(days=r.randint(0, 5))  # a newborn's parents
        s.cases["paid_in_full"] += 1
        return [self.pay(person, paid, due)]

    def _paid_twice(self, person: Person) -> list[Payment]:
        """Paid twice with one refunded, or typed three times the amount with the excess refunded."""
        s, r, due = self.s, self.s.prng, person.due_fen
        d1 = s.in_period(r)
        s.cases["duplicate_refund"] += 1
        if r.random() < 0.5:
            d2 = d1 + dt.timedelta(days=r.randint(0, 3))
            return [
                self.pay(person, d1, due),
                self.pay(person, d2, due),
                self.pay(person, d2 + dt.timedelta(days=r.randint(10, 60)), -due),
            ]
        return [self.pay(person, d1, 3 * due), self.pay(person, d1 + dt.timedelta(days=r.randint(10, 60)), -2 * due)]

    def _boundary(self) -> dt.date:
        s, one = self.s, dt.timedelta(days=1)
        return s.prng.choice((s.CS, s.CE, s.CE + one, s.YS - one, s.YS))

    def _identified_after(self, paid: dt.date) -> dt.date:
        """A subsidy identified after the payment, half the time after the collection end."""
        s = self.s
        after = max(s.CE + dt.timedelta(days=1), paid) if s.prng.random() < 0.5 else paid
        return after + dt.timedelta(days=s.prng.randint(0, 40))

    def _event_date(self, event_shown: str, anchor: dt.date) -> dt.date:
        """An event date around the payment: inside, at and past its window (docs/RULES.md §4)."""
        r = self.s.prng
        ev = self.event_windows.get(self.s.event_alias_of.get(event_shown, ""))
        if ev is None:
            return anchor - dt.timedelta(days=r.randint(0, 120))
        if ev.window_months:
            k = ev.window_months
            return r.choice(
                (
                    add_months(anchor, -k),
                    add_months(anchor, -k) - dt.timedelta(days=1),
                    anchor - dt.timedelta(days=r.randint(0, 60)),
                    anchor,
                    anchor + dt.timedelta(days=r.randint(1, 20)),
                    add_months(anchor, -k - 1),
                )
            )
        n = ev.window_days or 0
        return anchor - dt.timedelta(days=r.choice((0, 1, 30, n - 1, n, n + 1, n + 30, -5)))

    def stranger(self, county: County) -> Payment:
        """A payment by someone on no roster (a relative registered elsewhere, a typo)."""
        s, r = self.s, self.s.prng
        male = r.random() < 0.5
        birth = s.day(s.YS.replace(year=s.year - 70), s.YS.replace(year=s.year - 18), r)
        paid = s.in_period(r)
        s.cases["not_on_roster_payments"] += 1
        return Payment(
            paid,
            self.ticket(county, paid),
            self.people.new_id(county.code, birth, male, r),
            s.name(male, r),
            s.standard_fen,
            s.year,
            self.channel(),
            county,
            birth,
        )

    def extra(self, person: Person) -> list[Payment]:
        """Rows the tax export holds beside this person's: strangers, other coverage years."""
        s, r, out = self.s, self.s.prng, []
        if r.random() < 0.01:
            out.append(self.stranger(person.county))
        if r.random() < 0.005:  # the wrong 费款所属期 picked at the counter or in the app
            year = s.year + r.choice((-1, 1))
            out.append(self.pay(person, s.in_period(r), s.other_year_standard[year], year))
            s.cases["other_year_payments"] += 1
        return out

    def split_for_target(self, whole: Payment, k: int) -> list[Payment]:
        """One payment as k instalments three days apart (to reach an exact payment_rows)."""
        step = whole.amount_fen // k // 100 * 100
        if step <= 0:
            return [whole]
        out = []
        for i, amount in enumerate([step] * (k - 1) + [whole.amount_fen - step * (k - 1)]):
            day = min(whole.paid_on + dt.timedelta(days=3 * i), self.s.latest)
            out.append(
                Payment(
                    day,
                    self.ticket(whole.county, day),
                    whole.id_number,
                    whole.name,
                    amount,
                    whole.coverage_year,
                    whole.channel,
                    whole.county,
                    whole.birth,
                )
            )
        self.s.cases["split_for_target"] += 1
        return out


def fit_to_target(s: Sample, payments: Payments, g: int, pays: list[Payment], pending_defects: int) -> list[Payment]:
    """Keep the running payment count on course for payment_rows: drop or split payments.

    Rows carrying a planted defect are always kept (slots are reserved for them).
    """
    target = s.payment_target or 0
    expected = target * (g + 1) / s.residents_total
    have = s.pay_count + len(pays)
    room = target - s.pay_count - pending_defects
    if have > expected + 3 or len(pays) > room:
        kept = [p for p in pays if p.defect]
        s.cases["dropped_for_target"] += len(pays) - len(kept)
        return kept
    whole = pays[0] if len(pays) == 1 else None
    k = min(12, int(expected - have) + 1, room)
    if whole is None or whole.defect or whole.amount_fen <= 0 or k < 2:
        return pays
    return payments.split_for_target(whole, k)


def county_for_topup(n: int) -> County:
    return counties()[n % len(counties())]
