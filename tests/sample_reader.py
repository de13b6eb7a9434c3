"""A reader and validator of the sample's files written independently of tools/sample, for
test_sample.py: every file re-read (openpyxl, fastexcel, the csv module), header aliases and footer
prefixes read from schemas/headers.toml, the ID check digit of tests/builders.py, docs/RULES.md §6
and §9 read again; each data row classified as valid or as the kind of bad row it is."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import tomllib
import unicodedata
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import fastexcel
import openpyxl

from builders import check_digit
from pipeline.params import load_params

ROOT = Path(__file__).resolve().parent.parent
HEADERS = tomllib.loads((ROOT / "schemas" / "headers.toml").read_text(encoding="utf-8"))
FIXTURES = ROOT / "tests" / "fixtures"
YEARS = (2024, 2025, 2026)
TODAY = dt.date.today()
TEXT_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日", "%Y-%m-%d %H:%M:%S")
LABEL_SPLIT = re.compile(r"[、,，;；|/\s]+")
WHATS = ("roster", "payments", "subsidy_list")


# ------------------------------------------------------------------ reading any format
def norm(value: Any) -> str:
    """Trim (also U+3000), full-width -> half-width, as docs/RULES.md §6 normalises."""
    return unicodedata.normalize("NFKC", str(value)).strip()


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and norm(value) == "")


def header_key(cell: Any) -> str:
    return re.sub(r"\s+", "", norm(cell)).strip("*")


class XlsNumber(float):
    """A number cell of an .xls, as fastexcel shows it (a float)."""


def sheets_of(path: Path) -> list[tuple[str, list[list[Any]]]]:
    """(sheet name, rows of cell values) for .xlsx (typed), .xls (text, numbers as XlsNumber), .csv."""
    if path.suffix == ".csv":
        decoded = path.read_bytes().decode("gb18030")
        return [(path.stem, [[c if c != "" else None for c in row] for row in csv.reader(io.StringIO(decoded))])]
    if path.suffix == ".xls":
        reader, out = fastexcel.read_excel(path), []
        for name in reader.sheet_names:
            text = reader.load_sheet(name, header_row=None, skip_rows=0, dtypes="string").to_polars()
            # A "boolean" column reads a number cell as true/false and a text or date cell as null:
            # the one way to tell, through fastexcel, a numeric ID cell from its text.
            numeric = reader.load_sheet(name, header_row=None, skip_rows=0, dtypes="boolean").to_polars()
            out.append(
                (
                    name,
                    [
                        [
                            XlsNumber(v) if v is not None and b is not None and not isinstance(b, str) else v
                            for v, b in zip(row, nrow)
                        ]
                        for row, nrow in zip(text.rows(), numeric.rows())
                    ],
                )
            )
        return out
    wb = openpyxl.load_workbook(path, read_only=True)
    out = [(ws.title, [list(r) for r in ws.iter_rows(values_only=True)]) for ws in wb.worksheets]
    wb.close()
    return out


def alias_of(section: str) -> dict[str, tuple[str, int]]:
    """Header text -> (field, position of the alias in its list: the first listed wins)."""
    return {
        header_key(a): (f, i) for f, spec in HEADERS[section]["fields"].items() for i, a in enumerate(spec["aliases"])
    }


def field_of(aliases: dict, cell: Any) -> tuple[str, int] | None:
    key = header_key(cell)
    return aliases.get(key) or aliases.get(re.sub(r"\([^()]*\)$", "", key))


def header_columns(rows: list[list[Any]], section: str) -> tuple[int, int, dict[int, str]]:
    """(index of the header row, header rows, {column: field}) with a two-row header joined."""
    aliases = alias_of(section)
    at = next(
        i for i, row in enumerate(rows[:30]) if sum(field_of(aliases, c) is not None for c in row if c is not None) >= 3
    )
    head = list(rows[at])
    below = rows[at + 1] if at + 1 < len(rows) else []
    parent = [next((head[k] for k in range(j, -1, -1) if head[k] is not None), None) for j in range(len(head))]
    sub = {j: f"{parent[j]}{v}" for j, v in enumerate(below) if v is not None and j < len(head)}
    two = bool(sub) and all(field_of(aliases, name) for name in sub.values())
    if two:
        head = [sub.get(j, h) for j, h in enumerate(head)]
    best: dict[str, tuple[int, int]] = {}
    for j, cell in enumerate(head):
        hit = field_of(aliases, cell) if cell is not None else None
        if hit and (hit[0] not in best or hit[1] < best[hit[0]][1]):
            best[hit[0]] = (j, hit[1])
    return at, 2 if two else 1, {j: f for f, (j, _) in best.items()}


def read_rows(path: Path, section: str):
    """Yield (sheet, excel_row, {field: raw value}) for every data row; skip blank and footer rows."""
    footers = tuple(HEADERS["footer"]["prefixes"])
    for title, rows in sheets_of(path):
        at, n_head, columns = header_columns(rows, section)
        for i, row in enumerate(rows[at + n_head :], start=at + n_head + 1):
            filled = [c for c in row if not is_empty(c)]
            if not filled or norm(filled[0]).startswith(footers):
                continue
            yield title, i, {f: row[j] if j < len(row) else None for j, f in columns.items()}


# ------------------------------------------------------------------ the independent validator
def id_is_valid(id18: str) -> bool:
    """17 digits and their GB 11643 check character."""
    return re.fullmatch(r"\d{17}[\dX]", id18) is not None and check_digit(id18[:17]) == id18[17]


def birth_of(id18: str) -> dt.date | None:
    try:
        return dt.date(int(id18[6:10]), int(id18[10:12]), int(id18[12:14]))
    except ValueError:
        return None


def as_date(value: Any, months: bool = False) -> dt.date | None:
    """A date cell or text (docs/RULES.md §6); with months, yyyymm is the month's first day."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.date(1899, 12, 30) + dt.timedelta(days=int(value)) if 10000 <= value < 100000 else None
    text = norm(value)
    if months and re.fullmatch(r"\d{6}", text):
        return dt.date(int(text[:4]), int(text[4:]), 1)
    if re.fullmatch(r"\d{4}|\d{6}", text):  # a year or a year-month is never a date
        return None
    for fmt in TEXT_DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    return None


def parses_as_date(value: Any) -> bool:
    return as_date(value) is not None or isinstance(value, (int, float))


def parses_as_amount(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    try:
        Decimal(norm(value).removesuffix("元").replace(",", ""))
        return True
    except InvalidOperation:
        return False


def years_in(value: Any) -> set[int]:
    """The years a 费款所属期 cell names (2026, 2026年, 202601-202612, 2026-01-01至2026-12-31)."""
    if isinstance(value, (int, float)):
        return {int(value)}
    return {int(y) for y in re.findall(r"(?<!\d)((?:19|20)\d\d)(?:\d\d){0,2}(?!\d)", norm(value))}


def id_fault(raw: Any) -> str | None:
    if isinstance(raw, (int, float)):
        return "id_numeric"
    text = norm(raw).upper() if raw is not None else ""
    if re.fullmatch(r"\d(\.\d+)?E\+\d+", text):
        return "id_numeric"
    if re.fullmatch(r"\d{15}", text):
        return "id_15_digits"
    if not re.fullmatch(r"\d{17}[\dX]", text):
        return "id_format"
    if birth_of(text) is None:
        return "id_birth_date"
    if not id_is_valid(text):
        return "id_check_digit"
    return None


def classify_roster(path: Path, year: int) -> list[tuple[str, int, str | None, dict]]:
    p = load_params(year, "jingdezhen")
    labels, events = p.label_aliases(), p.event_aliases()
    required = ["name", "id_number", "county", "township"] + (["prev_year_insured"] if year >= 2026 else [])
    out = []
    for sheet, row, rec in read_rows(path, "roster"):
        kind = id_fault(rec.get("id_number"))
        if kind is None and any(is_empty(rec.get(f)) for f in required):
            kind = "required_empty"
        dates = [rec.get(f) for f in ("birth_date", "subsidy_identified_on", "special_event_date", "registered_on")]
        if kind is None and any(not is_empty(d) and not parses_as_date(d) for d in dates):
            kind = "bad_date"
        if kind is None and any(not is_empty(d) and (as_date(d) or dt.date.min) > TODAY for d in dates):
            kind = "date_future"  # never planted in a roster: a generated date the run would refuse
        if (
            kind is None
            and not is_empty(rec.get("identity_labels"))
            and any(x and x not in labels for x in LABEL_SPLIT.split(norm(rec["identity_labels"])))
        ):
            kind = "unknown_label"
        if kind is None and not is_empty(rec.get("special_event")) and norm(rec["special_event"]) not in events:
            kind = "unknown_event"
        out.append((sheet, row, kind, rec))
    by_id: dict[str, list[int]] = {}
    for k, (_, _, kind, rec) in enumerate(out):
        if kind is None:
            by_id.setdefault(norm(rec["id_number"]).upper(), []).append(k)
    for ks in by_id.values():
        if len(ks) == 2:
            a, b = (out[k][3] for k in ks)
            if a == b:
                out[ks[1]] = (*out[ks[1]][:2], "exact_duplicate", out[ks[1]][3])
            else:
                for k in ks:
                    out[k] = (*out[k][:2], "conflicting_duplicate", out[k][3])
        assert len(ks) <= 2, f"ID {out[ks[0]][3]['id_number']} appears {len(ks)} times"
    return out


def payment_date_fault(rec: dict) -> str | None:
    """docs/RULES.md §6 on 缴费日期 and 费款所属期. A planted row has one fault: several come back joined."""
    raw = rec["paid_on"]
    text = "" if isinstance(raw, (dt.datetime, int, float)) else norm(raw)
    if re.fullmatch(r"\d{4}", text):
        return "paid_on_year_only"
    if re.fullmatch(r"\d{6}", text):
        return "paid_on_year_month"
    paid = as_date(raw)
    if paid is None:
        return "bad_date"
    years = (
        years_in(rec["coverage_year"])
        if "coverage_year" in rec
        else years_in(rec["period_start"]) | years_in(rec["period_end"])
    )
    faults = (
        ["period_cross_year"] if len(years) != 1 else ["paid_too_early"] if paid < dt.date(min(years) - 2, 1, 1) else []
    )
    if paid > TODAY:
        faults.append("paid_on_future")
    born = birth_of(norm(rec["id_number"]).upper())
    if born is not None and paid < born:
        faults.append("paid_before_birth")
    return "+".join(faults) or None


def classify_payments(path: Path) -> list[tuple[str, int, str | None, dict]]:
    out = []
    for sheet, row, rec in read_rows(path, "payments"):
        period = ("coverage_year",) if "coverage_year" in rec else ("period_start", "period_end")
        kind = id_fault(rec.get("id_number"))
        if kind is None and any(is_empty(rec.get(f)) for f in ("name", "amount", "paid_on", "ticket_no", *period)):
            kind = "required_empty"
        if kind is None:
            kind = payment_date_fault(rec)
        if kind is None and not parses_as_amount(rec["amount"]):
            kind = "bad_amount"
        out.append((sheet, row, kind, rec))
    return out


def classify_list(path: Path, year: int) -> list[tuple[str, int, str | None, dict]]:
    labels = load_params(year, "jingdezhen").label_aliases()
    out = []
    for sheet, row, rec in read_rows(path, "subsidy_list"):
        kind = id_fault(rec.get("id_number"))
        if kind is None and (is_empty(rec.get("name")) or is_empty(rec.get("identity_labels"))):
            kind = "required_empty"
        if kind is None and any(x and x not in labels for x in LABEL_SPLIT.split(norm(rec["identity_labels"]))):
            kind = "unknown_label"
        start, end = (
            as_date(rec.get(f), months=True) if not is_empty(rec.get(f)) else None
            for f in ("identified_on", "ended_on")
        )
        if kind is None and start is not None and end is not None and end < start:
            kind = "list_end_before_start"
        if kind is None and start is not None and start > TODAY:
            kind = "bad_date"
        out.append((sheet, row, kind, rec))
    seen: set[tuple] = set()
    for k, (sheet, row, _kind, rec) in enumerate(out):  # an exact copy in the same sheet is skipped
        key = (sheet, tuple(sorted((f, str(v)) for f, v in rec.items())))
        if key in seen:
            out[k] = (sheet, row, "exact_duplicate", rec)
        seen.add(key)
    return out


def classified(result: dict, year: int) -> dict[str, list[tuple[str, str, int, str | None, dict]]]:
    """Every data row of every file: (file, sheet, row, kind or None, record), per what."""
    out: dict[str, list] = {w: [] for w in WHATS}
    for what, key, classify in (
        ("roster", "roster_files", lambda p: classify_roster(p, year)),
        ("payments", "payment_files", classify_payments),
        ("subsidy_list", "subsidy_list_files", lambda p: classify_list(p, year)),
    ):
        for path in result[key]:
            out[what] += [(path.name, *row) for row in classify(path)]
    return out


def found(result: dict, year: int) -> tuple[dict, set]:
    """Bad-row counts and places as the validator finds them in the written files."""
    counts: dict[str, Counter] = {w: Counter() for w in WHATS}
    places = set()
    for what, rows in classified(result, year).items():
        for file, sheet, row, kind, _ in rows:
            if kind:
                counts[what][kind] += 1
                places.add((what, file, sheet, row, kind))
    return {k: dict(v) for k, v in counts.items()}, places


def planted_places(result: dict) -> set:
    return {(p["what"], p["file"], p["sheet"], p["row"], p["kind"]) for p in result["planted"]}
