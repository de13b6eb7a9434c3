"""The sample generator: same seed same bytes, valid IDs, and exactly the bad rows it says.

The workbooks are re-read here with openpyxl and checked by a small validator
written independently of pipeline/sample.py (header aliases and footer
prefixes from schemas/headers.toml, ISO 7064 MOD 11-2 as powers of two), so
a planted row the generator miscounts, or a "valid" row that is not, fails.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
import unicodedata
import zipfile
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from pipeline.params import load_params
from pipeline.sample import SampleArgumentError, generate_sample

ROOT = Path(__file__).resolve().parent.parent
HEADERS = tomllib.loads((ROOT / "schemas" / "headers.toml").read_text(encoding="utf-8"))
FIXTURES = ROOT / "tests" / "fixtures"
YEARS = (2024, 2025, 2026)
TEXT_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日")
LABEL_SPLIT = re.compile(r"[、,，;；|/\s]+")


# ------------------------------------------------------------------ validator
def norm(value: Any) -> str:
    """Trim (also U+3000), full-width -> half-width, as RULES.md §6 normalises."""
    return unicodedata.normalize("NFKC", str(value)).strip()


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and norm(value) == "")


def id_is_valid(id18: str) -> bool:
    """ISO 7064 MOD 11-2: sum of a_i * 2^(17-i) over all 18 characters (X = 10) is 1 mod 11."""
    digits = [10 if c == "X" else int(c) for c in id18]
    return sum(a * pow(2, 17 - i, 11) for i, a in enumerate(digits)) % 11 == 1


def birth_of(id18: str) -> dt.date | None:
    try:
        return dt.date(int(id18[6:10]), int(id18[10:12]), int(id18[12:14]))
    except ValueError:
        return None


def parses_as_date(value: Any) -> bool:
    if isinstance(value, (dt.date, dt.datetime, int, float)) and not isinstance(value, bool):
        return True
    text = norm(value)
    for fmt in TEXT_DATE_FORMATS:
        try:
            dt.datetime.strptime(text, fmt)
            return True
        except ValueError:
            pass
    return False


def parses_as_amount(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    try:
        Decimal(norm(value).removesuffix("元").replace(",", ""))
        return True
    except InvalidOperation:
        return False


def header_key(cell: Any) -> str:
    return re.sub(r"\s+", "", norm(cell)).rstrip("*")


def read_rows(path: Path, section: str):
    """Yield (sheet, excel_row, {field: raw value}) for every data row; count the skipped ones."""
    fields = HEADERS[section]["fields"]
    alias = {a: f for f, spec in fields.items() for a in spec["aliases"]}
    footers = tuple(HEADERS["footer"]["prefixes"])
    wb = openpyxl.load_workbook(path, read_only=True)
    for ws in wb.worksheets:
        rows = list(ws.iter_rows(values_only=True))
        header_at = next(i for i, row in enumerate(rows[:30])
                         if sum(header_key(c) in alias for c in row if c is not None) >= 3)
        columns = {j: alias[header_key(c)] for j, c in enumerate(rows[header_at])
                   if c is not None and header_key(c) in alias}
        for i, row in enumerate(rows[header_at + 1:], start=header_at + 2):
            filled = [c for c in row if not is_empty(c)]
            if not filled or norm(filled[0]).startswith(footers):
                continue
            yield ws.title, i, {f: row[j] if j < len(row) else None for j, f in columns.items()}
    wb.close()


def id_fault(raw: Any) -> str | None:
    if isinstance(raw, (int, float)):
        return "id_numeric"
    text = norm(raw).upper() if raw is not None else ""
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
        if kind is None and any(not is_empty(rec.get(f)) and not parses_as_date(rec[f]) for f in
                                ("birth_date", "subsidy_identified_on", "special_event_date", "registered_on")):
            kind = "bad_date"
        if kind is None and not is_empty(rec.get("identity_labels")):
            if any(x and x not in labels for x in LABEL_SPLIT.split(norm(rec["identity_labels"]))):
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
    return [(s, r, k, rec) for s, r, k, rec in out]


def classify_payments(path: Path) -> list[tuple[str, int, str | None, dict]]:
    out = []
    for sheet, row, rec in read_rows(path, "payments"):
        kind = id_fault(rec.get("id_number"))
        if kind is None and any(is_empty(rec.get(f)) for f in
                                ("name", "amount", "paid_on", "coverage_year", "ticket_no")):
            kind = "required_empty"
        if kind is None and not parses_as_date(rec["paid_on"]):
            kind = "bad_date"
        if kind is None and not parses_as_amount(rec["amount"]):
            kind = "bad_amount"
        out.append((sheet, row, kind, rec))
    return out


def found(result: dict, year: int) -> tuple[dict, set]:
    """Bad-row counts and places as the validator finds them in the written workbooks."""
    counts: dict[str, Counter] = {"roster": Counter(), "payments": Counter()}
    places = set()
    for path in result["roster_files"]:
        for sheet, row, kind, _ in classify_roster(path, year):
            if kind:
                counts["roster"][kind] += 1
                places.add(("roster", path.name, sheet, row, kind))
    for path in result["payment_files"]:
        for sheet, row, kind, _ in classify_payments(path):
            if kind:
                counts["payments"][kind] += 1
                places.add(("payments", path.name, sheet, row, kind))
    return {k: dict(v) for k, v in counts.items()}, places


def planted_places(result: dict) -> set:
    return {(p["what"], p["file"], p["sheet"], p["row"], p["kind"]) for p in result["planted"]}


# ------------------------------------------------------------------ tests
def test_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    a = generate_sample(150, 11, 2026, tmp_path / "a")
    b = generate_sample(150, 11, 2026, tmp_path / "b")
    for pa, pb in zip(a["files"], b["files"], strict=True):
        assert pa.name == pb.name
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_a_different_seed_writes_different_files(tmp_path: Path) -> None:
    a = generate_sample(150, 11, 2026, tmp_path / "a")
    b = generate_sample(150, 12, 2026, tmp_path / "b")
    for pa, pb in zip(a["files"], b["files"], strict=True):
        assert pa.read_bytes() != pb.read_bytes(), pa.name


@pytest.mark.parametrize("year", YEARS)
def test_planted_bad_rows_are_exactly_those_in_the_workbooks(tmp_path: Path, year: int) -> None:
    result = generate_sample(300, year, year, tmp_path)
    counts, places = found(result, year)
    assert counts == result["bad_rows"]
    assert places == planted_places(result)
    # every kind of RULES.md §6 is planted at least once in a messy 300-row sample
    assert set(result["bad_rows"]["roster"]) == {
        "id_numeric", "id_check_digit", "id_birth_date", "required_empty", "bad_date",
        "unknown_label", "unknown_event", "exact_duplicate", "conflicting_duplicate"}
    assert set(result["bad_rows"]["payments"]) == {
        "id_numeric", "id_check_digit", "id_birth_date", "required_empty", "bad_date", "bad_amount"}
    exp = result["expected"]
    assert exp["roster_accepted"] + exp["roster_rejected"] + exp["roster_skipped_duplicate"] \
        == result["roster_rows"]
    assert result["bad_rows"]["roster"]["conflicting_duplicate"] % 2 == 0


@pytest.mark.parametrize("year", YEARS)
def test_every_accepted_id_passes_gb11643_with_a_plausible_birth_date(tmp_path: Path, year: int) -> None:
    result = generate_sample(300, year + 100, year, tmp_path)
    ys = dt.date(year, 1, 1)
    kinds = Counter()
    for path in result["roster_files"]:
        for _, _, kind, rec in classify_roster(path, year):
            if kind is None:
                id18 = norm(rec["id_number"]).upper()
                assert id_is_valid(id18), id18
                birth = birth_of(id18)
                assert birth is not None and ys.replace(year=year - 96) < birth <= dt.date(year, 12, 31)
                kinds[id18[:2]] += 1
    for path in result["payment_files"]:
        for _, _, kind, rec in classify_payments(path):
            if kind is None:
                assert id_is_valid(norm(rec["id_number"]).upper()), rec["id_number"]
    assert kinds["36"] > 0


def test_the_messy_forms_of_contract_inputs_all_occur(tmp_path: Path) -> None:
    result = generate_sample(600, 5, 2026, tmp_path)
    ids, dates, amounts = [], [], []
    for path in result["roster_files"]:
        for _, _, _, rec in classify_roster(path, 2026):
            ids.append(rec["id_number"])
            dates.append(rec["registered_on"])
    for path in result["payment_files"]:
        for _, _, _, rec in classify_payments(path):
            ids.append(rec["id_number"])
            dates.append(rec["paid_on"])
            amounts.append(rec["amount"])
    texts = [d for d in dates if isinstance(d, str)]
    assert any(isinstance(d, dt.datetime) for d in dates)
    for pattern in (r"\d{4}-\d\d-\d\d", r"\d{4}/\d\d/\d\d", r"\d{4}\.\d\d\.\d\d", r"\d{8}",
                    r"\d{4}年\d\d月\d\d日"):
        assert any(re.fullmatch(pattern, t) for t in texts), pattern
    assert any(isinstance(d, int) and 40000 < d < 50000 for d in dates)  # a bare Excel serial
    assert any(isinstance(i, str) and "０" <= i.strip()[0] <= "９" for i in ids if i)
    assert any(isinstance(i, str) and i != i.strip() for i in ids if i)
    assert any(isinstance(a, (int, float)) for a in amounts)
    assert any(isinstance(a, str) and a.endswith("元") for a in amounts)
    assert any(isinstance(a, str) and a.startswith("-") or isinstance(a, (int, float)) and a < 0
               for a in amounts)


def test_amounts_come_from_the_year_parameters(tmp_path: Path) -> None:
    p = load_params(2024, "jingdezhen")
    standard = Decimal(p.individual_standard_yuan.value)
    fixed_due = standard - Decimal(p.fixed_subsidy_yuan.value)
    result = generate_sample(300, 3, 2024, tmp_path)
    paid = Counter()
    for path in result["payment_files"]:
        for _, _, kind, rec in classify_payments(path):
            if kind is None:
                a = rec["amount"]
                paid[Decimal(str(a)) if isinstance(a, (int, float))
                     else Decimal(norm(a).removesuffix("元").replace(",", ""))] += 1
    assert paid.most_common(1)[0][0] == standard
    assert paid[fixed_due] > 0


def test_numeric_id_rows_put_a_numeric_id_on_the_asked_rows(tmp_path: Path) -> None:
    result = generate_sample(1100, 1, 2026, tmp_path, sheets_per_file=1, numeric_id_rows=[1005])
    wb = openpyxl.load_workbook(result["roster_files"][0], read_only=True)
    ws = wb.worksheets[0]
    header = next(r for r in ws.iter_rows(min_row=1, max_row=5, values_only=True)
                  if any(header_key(c) in ("证件号码", "公民身份号码", "身份证号码", "身份证号", "社会保障号码")
                         for c in r if c is not None))
    col = [header_key(c) in ("证件号码", "公民身份号码", "身份证号码", "身份证号", "社会保障号码")
           for c in header].index(True)
    value = next(ws.iter_rows(min_row=1005, max_row=1005, values_only=True))[col]
    wb.close()
    assert isinstance(value, (int, float)) and value >= 10**17
    assert any(p["row"] == 1005 and p["kind"] == "id_numeric" for p in result["planted"])
    with pytest.raises(SampleArgumentError, match="outside the data rows"):
        generate_sample(50, 1, 2026, tmp_path / "x", numeric_id_rows=[2])
    with pytest.raises(SampleArgumentError, match="at least 1"):
        generate_sample(0, 1, 2026, tmp_path / "y")


def test_clean_files_have_canonical_headers_and_no_bad_rows(tmp_path: Path) -> None:
    result = generate_sample(200, 9, 2025, tmp_path, messy=False, roster_files=2, sheets_per_file=1)
    assert [p.name for p in result["roster_files"]] == ["roster_fuliang.xlsx", "roster_leping.xlsx"]
    assert result["planted"] == [] and result["expected"]["skipped_footer"] == 0
    wb = openpyxl.load_workbook(result["payment_files"][0], read_only=True)
    first = next(wb.worksheets[0].iter_rows(max_row=1, values_only=True))
    wb.close()
    assert list(first) == [HEADERS["payments"]["fields"][f]["aliases"][0] for f in
                           ("name", "id_number", "coverage_year", "amount", "paid_on", "ticket_no", "channel")]
    counts, _ = found(result, 2025)
    assert counts == {"roster": {}, "payments": {}}


@pytest.mark.parametrize("payment_rows", [120, 450])
def test_payment_rows_is_met_exactly(tmp_path: Path, payment_rows: int) -> None:
    result = generate_sample(300, 4, 2026, tmp_path, payment_rows=payment_rows)
    assert result["payment_rows"] == payment_rows
    counts, places = found(result, 2026)
    assert counts == result["bad_rows"] and places == planted_places(result)


def _cells(path: Path) -> list:
    """Every sheet's cells, merged ranges and date formats: what a generator change would alter."""
    wb = openpyxl.load_workbook(path)
    out = [(ws.title, sorted(map(str, ws.merged_cells.ranges)),
            [[(c.value, c.number_format if c.is_date else None) for c in row] for row in ws.iter_rows()])
           for ws in wb.worksheets]
    wb.close()
    return out


@pytest.mark.parametrize("year", YEARS)
def test_committed_sample_data_is_what_the_generator_writes(tmp_path: Path, year: int) -> None:
    committed = ROOT / "sample_data" / str(year)
    result = generate_sample(rows=300, seed=year, coverage_year=year, out_dir=tmp_path)
    hint = f"sample_data/{year} differs from what pipeline/sample.py writes now: run `make sample` " \
           "and commit the diff"
    assert sorted(p.name for p in committed.glob("*.xlsx")) == sorted(p.name for p in result["files"]), hint
    for fresh in result["files"]:
        old = committed / fresh.name
        if old.read_bytes() != fresh.read_bytes():
            # Another xlsxwriter version may package the same cells differently.
            assert _cells(old) == _cells(fresh), f"{fresh.name}: {hint}"
        assert old.stat().st_size < 100_000
        with zipfile.ZipFile(old) as z:
            assert "xl/workbook.xml" in z.namelist()


# The LibreOffice-resaved fixtures (tests/fixtures/README.md says how they were made).
LIBREOFFICE_ROSTER_BAD = {
    "bad_date": 1, "conflicting_duplicate": 2, "exact_duplicate": 1, "id_birth_date": 1,
    "id_check_digit": 1, "id_numeric": 1, "required_empty": 1, "unknown_event": 1, "unknown_label": 1,
}
LIBREOFFICE_PAYMENTS_BAD = {
    "bad_amount": 1, "bad_date": 1, "id_birth_date": 1, "id_check_digit": 1, "id_numeric": 1,
    "required_empty": 1,
}


def test_libreoffice_fixtures_hold_the_rows_their_readme_lists() -> None:
    roster = classify_roster(FIXTURES / "libreoffice_roster.xlsx", 2026)
    payments = classify_payments(FIXTURES / "libreoffice_payments.xlsx")
    assert dict(Counter(k for *_, k, _ in roster if k)) == LIBREOFFICE_ROSTER_BAD
    assert dict(Counter(k for *_, k, _ in payments if k)) == LIBREOFFICE_PAYMENTS_BAD
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    assert f"{len(roster)} data rows" in readme and f"{len(payments)} data rows" in readme
