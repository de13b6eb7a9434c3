"""Cells: residents and payments as the clerks' and the tax bureau's files write them.

A cell is ("s", text), ("n", number) or ("d", date, style); None is an empty
cell. Each sheet has its habits (`sheet.style`): a usual date form per
column, an amount form, a 是/否 spelling; a messy sheet strays from them.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from tools.sample.context import Sample
from tools.sample.people import Person, village_names

if TYPE_CHECKING:
    from tools.sample.payments import Payment
    from tools.sample.workbook import Sheet

Cell = tuple[Any, ...] | None
SEQ = "seq"
DATE_STYLES = ("excel_iso", "excel_slash", "excel_cn", "iso", "slash", "dot", "compact", "cn")
EXCEL_DATE_FORMATS = {"excel_iso": "yyyy-mm-dd", "excel_slash": "yyyy/m/d", "excel_cn": 'yyyy"年"m"月"d"日"'}
EXCEL_EPOCH = dt.date(1899, 12, 30)
FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")


def text_date(d: dt.date, style: str) -> str:
    """A date as text in one of the forms of docs/CONTRACT.md ("slash_short": 2025/11/3)."""
    y, m, day = f"{d.year:04d}", f"{d.month:02d}", f"{d.day:02d}"
    forms = {
        "iso": f"{y}-{m}-{day}",
        "slash": f"{y}/{m}/{day}",
        "dot": f"{y}.{m}.{day}",
        "compact": f"{y}{m}{day}",
        "slash_short": f"{d.year}/{d.month}/{d.day}",
    }
    return forms.get(style, f"{y}年{m}月{day}日")


def money_text(fen: int) -> str:
    a = abs(fen)
    return f"{'-' if fen < 0 else ''}{a // 100:,}.{a % 100:02d}"


def cell_text(cell: Cell) -> str:
    """What a cell shows as text: the raw value of a planted row."""
    if cell is None:
        return ""
    if cell[0] == "d":
        return text_date(cell[1], "iso")
    return str(cell[1])


class Renderer:
    """Renders residents and payments into cells, from the `render` stream."""

    def __init__(self, s: Sample) -> None:
        self.s = s
        self.r = s.rrng

    # ------------------------------------------------------------ plain layouts
    def _header(self, kind: str, key: str) -> str:
        field = self.s.header_maps[kind].field(key)
        if not self.s.messy:
            return field.header
        r = self.r
        h = field.header if r.random() < 0.6 else r.choice(field.aliases)
        w = r.random()
        if w < 0.08 and field.required:
            h += "*"
        elif w < 0.16 and "(" in h:
            h = h.replace("(", "（").replace(")", "）")
        elif w < 0.24 and len(h) == 2:
            h = h[0] + " " + h[1]
        return h

    def plain_layout(self, kind: str, spec: dict[str, Any]) -> tuple[list[str], list[str]]:
        """A sheet's columns and headers: aliases drawn, columns shuffled, a 序号 and an extra column."""
        r, messy = self.r, self.s.messy
        keys = [f for f in spec["fields"] if not messy or r.random() < spec["optional"].get(f, 1.0)]
        if messy:
            r.shuffle(keys)
            keys.insert(r.randint(1, len(keys)), "extra:" + r.choice(spec["extras"]))
            keys.insert(0, SEQ)
        seq_headers = sorted(self.s.header_maps[kind].ignore)
        headers = [
            r.choice(seq_headers) if k == SEQ else k[6:] if k.startswith("extra:") else self._header(kind, k)
            for k in keys
        ]
        return keys, headers

    def plain_style(self, sh: Sheet) -> None:
        """The sheet's habits: its usual date form per column, amount form, 是/否 spelling."""
        r, messy = self.r, self.s.messy
        sh.style = {
            "date": {k: (r.choice(DATE_STYLES) if messy else "excel_iso") for k in sh.keys},
            "amount": r.choice(("number", "number", "text_yuan", "text")) if messy else "number",
            "amount_varies": True,
            "yes_no": r.choices(("是否", "YN", "10t", "10n"), cum_weights=(80, 88, 94, 100))[0] if messy else "是否",
            "coverage": r.choice(("number", "text", "nian", "range")) if messy else "number",
        }

    # ------------------------------------------------------------ cells
    def date_cell(self, sh: Sheet, key: str, d: dt.date | None) -> Cell:
        if d is None:
            return None
        style = sh.style["date"].get(key, "excel_iso")
        if self.s.messy:
            u = self.r.random()
            if u > 0.99 and sh.typed:
                return ("n", (d - EXCEL_EPOCH).days)  # a bare serial: the date format got lost
            if u > 0.85:
                style = self.r.choice(sh.style.get("date_choices", DATE_STYLES))
        if style == "yyyymm":  # a month (the lists' 纳入资助时间): its first day
            return ("s", f"{d.year}{d.month:02d}")
        if style.startswith("excel") and sh.typed:
            return ("d", d, style)
        return ("s", text_date(d, "iso" if style.startswith("excel") else style))

    def id_cell(self, id_number: str) -> Cell:
        if not self.s.messy:
            return ("s", id_number)
        r = self.r
        u = r.random()
        text = id_number
        if text.endswith("X") and r.random() < 0.5:
            text = text[:-1] + "x"
        if u < 0.03:
            text = text.translate(FULL_WIDTH)
        elif u < 0.06:
            text = r.choice((" ", "\u3000", "")) + text + r.choice((" ", "  ", "\u3000"))
        return ("s", text)

    def amount_cell(self, sh: Sheet, fen: int) -> Cell:
        style = sh.style["amount"]
        if self.s.messy and sh.style.get("amount_varies") and self.r.random() < 0.15:
            style = self.r.choice(("number", "text_yuan", "text"))
        if style == "number":
            return ("n", fen / 100)
        if style == "plain":  # 400.00, no thousands separator (a CSV export)
            return ("s", f"{fen / 100:.2f}")
        return ("s", money_text(fen) + ("元" if style == "text_yuan" else ""))

    def yes_no_cell(self, sh: Sheet, yes: bool) -> Cell:
        style = sh.style["yes_no"]
        if style == "10n":
            return ("n", 1 if yes else 0)
        pair = {"是否": ("是", "否"), "YN": ("Y", "N"), "10t": ("1", "0")}[style]
        return ("s", pair[0] if yes else pair[1])

    def coverage_cell(self, sh: Sheet, year: int) -> Cell:
        """费款所属期 in one column, in a form of docs/RULES.md §6."""
        style = sh.style["coverage"]
        if style == "number":
            return ("n", year)
        if style == "text":
            return ("s", str(year))
        if style == "nian":
            return ("s", f"{year}年")
        if style == "months":
            return ("s", f"{year}01-{year}12")
        ys, ye = self.s.YS.replace(year=year), self.s.YE.replace(year=year)
        return ("s", f"{ys.isoformat()}至{ye.isoformat()}")

    def period_cells(self, sh: Sheet, year: int) -> tuple[Cell, Cell]:
        """费款所属期起 / 止 in two columns: 2026-01-01 / 2026-12-31 or 202601 / 202612."""
        if sh.style["period"] == "months":
            return ("s", f"{year}01"), ("s", f"{year}12")
        return ("s", f"{year}-01-01"), ("s", f"{year}-12-31")

    def bad_date_text(self, d: dt.date) -> str:
        if self.r.random() < 0.5:
            return f"{d.year:04d}-13-{self.r.randint(32, 45)}"
        return f"{d.day:02d}/{d.month:02d}/{d.year:04d}"  # dd/mm/yyyy: ambiguous, rejected

    # ------------------------------------------------------------ rows
    def roster_cells(self, sh: Sheet, p: Person, township: str | None = None) -> dict[str, Cell]:
        messy, r = self.s.messy, self.r
        name = p.name + (" " if messy and r.random() < 0.01 else "")
        sep = r.choice(self.s.vocab["shares"]["label_separators"]) if messy else "、"
        village = p.village if township is None else village_names(self.s, p.county, township)[0]
        return {
            "name": ("s", name),
            "id_type": ("s", sh.style.get("id_type_codes", {}).get(p.id_type, p.id_type)),
            "id_number": self.id_cell(p.id_number),
            "birth_date": self.date_cell(sh, "birth_date", p.birth),
            "county": ("s", p.county.name),
            "township": ("s", township or p.township),
            "village": ("s", village),
            "residence_basis": ("s", p.residence_basis),
            "identity_labels": ("s", sep.join(p.labels_shown)) if p.labels_shown else None,
            "subsidy_identified_on": self.date_cell(sh, "subsidy_identified_on", p.subsidy_identified_on),
            "prev_year_insured": self.yes_no_cell(sh, p.prev_year_insured),
            "special_event": ("s", p.special_event) if p.special_event else None,
            "special_event_date": self.date_cell(sh, "special_event_date", p.special_event_date),
            "registered_on": self.date_cell(sh, "registered_on", p.registered_on),
            "extra:性别": ("s", "男" if p.male else "女"),
            "extra:联系电话": ("s", p.phone) if p.phone else None,
            "extra:备注信息": ("s", p.remark) if p.remark else None,
            "extra:与户主关系": ("s", p.relation),
        }

    def payment_cells(self, sh: Sheet, pay: Payment) -> dict[str, Cell]:
        """One payment in any of the payment layouts (each sheet keeps the columns it has)."""
        messy, r = self.s.messy, self.r
        cells: dict[str, Cell] = {
            "id_number": self.id_cell(pay.id_number),
            "name": ("s", pay.name + (" " if messy and r.random() < 0.01 else "")),
            "amount": self.amount_cell(sh, pay.amount_fen),
            "paid_on": self.date_cell(sh, "paid_on", pay.paid_on),
            "ticket_no": ("s", pay.ticket_no),
            "channel": ("s", pay.channel) if not messy or r.random() < 0.97 else None,
            "extra:征收机关": ("s", f"国家税务总局{pay.county.name}税务局"),
            "extra:税务机关": ("s", f"国家税务总局{pay.county.name}税务局"),
            "extra:备注信息": ("s", "退费") if pay.amount_fen < 0 else None,
        }
        if "coverage_year" in sh.col:
            cells["coverage_year"] = self.coverage_cell(sh, pay.coverage_year)
        else:
            cells["period_start"], cells["period_end"] = self.period_cells(sh, pay.coverage_year)
            posted = pay.paid_on + dt.timedelta(days=r.randint(0, 3))
            cells["extra:入库日期"] = self.date_cell(sh, "extra:入库日期", posted)
            cells["extra:征收项目"] = ("s", "城乡居民基本医疗保险费")
            cells["extra:征收品目"] = ("s", "城乡居民基本医疗保险(个人缴费)")
            cells["extra:票证号码"] = ("s", f"{pay.ticket_no[:5]}7{pay.ticket_no[-12:]}")
        return cells
