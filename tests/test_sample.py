"""The sample generator (tools/sample): same arguments same bytes, valid IDs, exactly the bad rows
it says, and files shaped like the real exports (.xlsx, .xls, GB18030 CSV, a two-row tax header).

Every file is re-read and checked by a small validator written independently of tools/sample
(tests/sample_reader.py), so a planted row the generator miscounts, or a "valid" row that is not,
fails.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections import Counter
from decimal import Decimal
from pathlib import Path

import fastexcel
import openpyxl
import pytest

from pipeline.params import load_params
from sample_reader import (
    FIXTURES,
    HEADERS,
    ROOT,
    WHATS,
    YEARS,
    XlsNumber,
    as_date,
    birth_of,
    classified,
    classify_payments,
    classify_roster,
    found,
    header_columns,
    header_key,
    id_is_valid,
    is_empty,
    norm,
    planted_places,
    sheets_of,
)
from tools.sample import DEFECTS, SampleArgumentError, generate_sample
from tools.sample.__main__ import main as sample_main


# ------------------------------------------------------------------ tests: determinism
def test_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    a = generate_sample(150, 11, 2026, tmp_path / "a")
    b = generate_sample(150, 11, 2026, tmp_path / "b")
    assert len(a["files"]) == 8
    for pa, pb in zip(a["files"], b["files"], strict=True):
        assert pa.name == pb.name
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_a_different_seed_writes_different_files(tmp_path: Path) -> None:
    a = generate_sample(150, 11, 2026, tmp_path / "a")
    b = generate_sample(150, 12, 2026, tmp_path / "b")
    for pa, pb in zip(a["files"], b["files"], strict=True):
        assert pa.read_bytes() != pb.read_bytes(), pa.name


# ------------------------------------------------------------------ tests: planted rows
@pytest.mark.parametrize("year", YEARS)
def test_planted_bad_rows_are_exactly_those_in_the_files(tmp_path: Path, year: int) -> None:
    result = generate_sample(300, year, year, tmp_path)
    counts, places = found(result, year)
    assert counts == result["bad_rows"]
    assert places == planted_places(result)
    # every kind of defects.toml (docs/RULES.md §6, §9) is planted at least once in a messy 300-row sample
    for what in WHATS:
        assert set(result["bad_rows"][what]) == set(DEFECTS[what]), what
    exp = result["expected"]
    assert exp["roster_accepted"] + exp["roster_rejected"] + exp["roster_skipped_duplicate"] == result["roster_rows"]
    assert exp["payments_accepted"] + exp["payments_rejected"] == result["payment_rows"]
    assert exp["subsidy_list_accepted"] + exp["subsidy_list_rejected"] == result["subsidy_list_rows"]
    assert result["bad_rows"]["roster"]["conflicting_duplicate"] % 2 == 0
    # the township .xls holds its own share of every roster kind
    assert {p["kind"] for p in result["planted"] if p["file"].endswith(".xls") and p["what"] == "roster"} == set(
        DEFECTS["roster"]
    )


def test_every_kind_names_a_reason_code_of_the_product() -> None:
    from schemas.models import REASONS

    for what, kinds in DEFECTS.items():
        for kind, d in kinds.items():
            assert (d.reason in REASONS) if d.outcome == "rejected" else d.reason is None, (what, kind)


def test_planted_rows_are_where_the_result_says(tmp_path: Path) -> None:
    result = generate_sample(300, 8, 2026, tmp_path)
    info = {(s["file"], s["sheet"]): s for s in result["sheets"]}
    books = {p.name: dict(sheets_of(p)) for p in result["files"]}
    section = {"roster": "roster", "payments": "payments", "subsidy_list": "subsidy_list"}
    assert {p["reason_code"] for p in result["planted"]} >= {"id_old_15", "date_partial", "list_end_before_start"}
    for p in result["planted"]:
        rows = books[p["file"]][p["sheet"]]
        sheet = info[(p["file"], p["sheet"])]
        head = list(rows[sheet["header_row"] - 1])
        if sheet["header_rows"] == 2:
            below = rows[sheet["header_row"]]
            head = [
                f"{next(h for h in head[j::-1] if h is not None)}{v}" if v is not None else h
                for j, (h, v) in enumerate(zip(head, below))
            ]
        col = [header_key(h) if h is not None else None for h in head].index(header_key(p["column"]))
        cell = rows[p["row"] - 1][col]
        assert header_columns(rows, section[p["what"]])[0] == sheet["header_row"] - 1
        if p["raw"] == "":
            assert is_empty(cell), p
        elif isinstance(cell, (int, float)) and not isinstance(cell, bool):
            assert float(cell) == pytest.approx(float(p["raw"]), rel=1e-12), p
        elif isinstance(cell, dt.datetime):
            assert cell.date().isoformat() == p["raw"], p
        else:  # an .xls date reads as "2025-12-30 00:00:00" through fastexcel
            assert cell == p["raw"] or cell == p["raw"] + " 00:00:00", p


@pytest.mark.parametrize("year", YEARS)
def test_every_accepted_id_passes_gb11643_with_a_plausible_birth_date(tmp_path: Path, year: int) -> None:
    result = generate_sample(300, year + 100, year, tmp_path)
    ys = dt.date(year, 1, 1)
    kinds: Counter[str] = Counter()
    rows = classified(result, year)
    for _, _, _, kind, rec in rows["roster"]:
        if kind is None:
            id18 = norm(rec["id_number"]).upper()
            assert id_is_valid(id18), id18
            birth = birth_of(id18)
            assert birth is not None and ys.replace(year=year - 96) < birth <= dt.date(year, 12, 31)
            kinds[id18[:2]] += 1
    for what in ("payments", "subsidy_list"):
        for _, _, _, kind, rec in rows[what]:
            if kind is None:
                assert id_is_valid(norm(rec["id_number"]).upper()), rec["id_number"]
    assert kinds["36"] > 0


def test_the_messy_forms_of_contract_inputs_all_occur(tmp_path: Path) -> None:
    result = generate_sample(600, 5, 2026, tmp_path)
    ids, dates, amounts = [], [], []
    rows = classified(result, 2026)
    for _, _, _, _, rec in rows["roster"]:
        ids.append(rec["id_number"])
        dates.append(rec["registered_on"])
    for _, _, _, _, rec in rows["payments"]:
        ids.append(rec["id_number"])
        dates.append(rec["paid_on"])
        amounts.append(rec["amount"])
    texts = [d for d in dates if isinstance(d, str)]
    assert any(isinstance(d, dt.datetime) for d in dates)
    for pattern in (
        r"\d{4}-\d\d-\d\d",
        r"\d{4}/\d\d/\d\d",
        r"\d{4}\.\d\d\.\d\d",
        r"\d{8}",
        r"\d{4}年\d\d月\d\d日",
        r"\d{4}/\d{1,2}/\d{1,2}",
    ):
        assert any(re.fullmatch(pattern, t) for t in texts), pattern
    assert any(isinstance(d, int) and 40000 < d < 50000 for d in dates)  # a bare Excel serial
    assert any(isinstance(i, str) and "０" <= i.strip()[0] <= "９" for i in ids if i)
    assert any(isinstance(i, str) and i != i.strip() for i in ids if i)
    assert any(isinstance(a, (int, float)) for a in amounts)
    assert any(isinstance(a, str) and a.endswith("元") for a in amounts)
    assert any(isinstance(a, str) and re.fullmatch(r"\d+\.\d\d", a) for a in amounts)  # the CSV's 400.00
    assert any((isinstance(a, str) and a.startswith("-")) or (isinstance(a, (int, float)) and a < 0) for a in amounts)


def test_amounts_come_from_the_year_parameters(tmp_path: Path) -> None:
    p = load_params(2024, "jingdezhen")
    standard = Decimal(p.individual_standard_yuan.value)
    fixed_due = standard - Decimal(p.fixed_subsidy_yuan.value)
    result = generate_sample(300, 3, 2024, tmp_path)
    paid: Counter[Decimal] = Counter()
    for _, _, _, kind, rec in classified(result, 2024)["payments"]:
        if kind is None:
            a = rec["amount"]
            paid[
                Decimal(str(a)) if isinstance(a, (int, float)) else Decimal(norm(a).removesuffix("元").replace(",", ""))
            ] += 1
    assert paid.most_common(1)[0][0] == standard
    assert paid[fixed_due] > 0


def test_numeric_id_rows_put_a_numeric_id_on_the_asked_rows(tmp_path: Path) -> None:
    result = generate_sample(1100, 1, 2026, tmp_path, sheets_per_file=1, numeric_id_rows=[1005], extra_formats=False)
    wb = openpyxl.load_workbook(result["roster_files"][0], read_only=True)
    ws = wb.worksheets[0]
    id_headers = [header_key(a) for a in HEADERS["roster"]["fields"]["id_number"]["aliases"]]
    header = next(
        r
        for r in ws.iter_rows(min_row=1, max_row=5, values_only=True)
        if any(header_key(c) in id_headers for c in r if c is not None)
    )
    col = [c is not None and header_key(c) in id_headers for c in header].index(True)
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
    assert [p.name for p in result["roster_files"] if p.suffix == ".xlsx"] == [
        "roster_fuliang.xlsx",
        "roster_leping.xlsx",
    ]
    assert result["planted"] == [] and result["expected"]["skipped_footer"] == 0
    wb = openpyxl.load_workbook(result["payment_files"][0], read_only=True)
    first = next(wb.worksheets[0].iter_rows(max_row=1, values_only=True))
    wb.close()
    assert list(first) == [
        HEADERS["payments"]["fields"][f]["aliases"][0]
        for f in ("name", "id_number", "coverage_year", "amount", "paid_on", "ticket_no", "channel")
    ]
    counts, _ = found(result, 2025)
    assert counts == {"roster": {}, "payments": {}, "subsidy_list": {}}


@pytest.mark.parametrize("payment_rows", [120, 450])
def test_payment_rows_is_met_exactly(tmp_path: Path, payment_rows: int) -> None:
    result = generate_sample(300, 4, 2026, tmp_path, payment_rows=payment_rows)
    assert result["payment_rows"] == payment_rows
    counts, places = found(result, 2026)
    assert counts == result["bad_rows"] and places == planted_places(result)


# ------------------------------------------------------------------ tests: the formats
def test_extra_formats_write_the_files_real_systems_export(tmp_path: Path) -> None:
    result = generate_sample(200, 21, 2026, tmp_path)
    names = [p.name for p in result["files"]]
    assert names[0] == "roster_jingdezhen.xlsx" and re.fullmatch(r"roster_.+\.xls", names[1])
    assert names[2:] == [
        "payments.xlsx",
        "payments_电子税务局.xlsx",
        "payments_税务大厅.csv",
        "subsidy_list_民政.xlsx",
        "subsidy_list_乡村振兴.xls",
        "subsidy_list_残联.csv",
    ]
    assert all(p.exists() and p.parent == tmp_path for p in result["files"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no .part left behind
    only = generate_sample(200, 21, 2026, tmp_path / "only", extra_formats=False)
    assert [p.name for p in only["files"]] == ["roster_jingdezhen.xlsx", "payments.xlsx"]
    assert only["expected"]["subsidy_list_accepted"] == 0


def test_csv_files_are_gb18030_not_utf8(tmp_path: Path) -> None:
    result = generate_sample(200, 22, 2026, tmp_path)
    csvs = [p for p in result["files"] if p.suffix == ".csv"]
    assert [p.name for p in csvs] == ["payments_税务大厅.csv", "subsidy_list_残联.csv"]
    for path in csvs:
        data = path.read_bytes()
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        text = data.decode("gb18030")
        assert "\r\n" in text and not data.startswith(b"\xef\xbb\xbf")
    lines = csvs[0].read_bytes().decode("gb18030").split("\r\n")
    assert "缴费明细" in lines[0] and lines[0].endswith(",,")  # a title line above the header
    rows = list(csv.reader(io.StringIO("\r\n".join(lines))))
    periods = {r[3] for r in rows[3:] if len(r) > 3 and r[0].isdigit()}
    assert periods <= {"202601-202612", "2026", "202512-202601"} and len(periods) >= 1
    assert any(
        p["raw"] == "3.60222E+17" or re.fullmatch(r"\d\.\d{5}E\+17", p["raw"])
        for p in result["planted"]
        if p["file"] == csvs[0].name and p["kind"] == "id_numeric"
    )


def test_the_tax_layout_has_a_merged_two_row_header(tmp_path: Path) -> None:
    result = generate_sample(200, 23, 2026, tmp_path)
    path = next(p for p in result["payment_files"] if p.name == "payments_电子税务局.xlsx")
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets:
        h = next(r for r in range(1, 6) if ws.cell(r, 2).value == "缴费人名称")
        merged = {str(m): m for m in ws.merged_cells.ranges}
        period = next(m for m in merged.values() if m.min_row == m.max_row == h and m.max_col == m.min_col + 1)
        assert ws.cell(h, period.min_col).value == "费款所属期"
        assert (ws.cell(h + 1, period.min_col).value, ws.cell(h + 1, period.max_col).value) == ("起", "止")
        for c in range(1, ws.max_column + 1):
            if period.min_col <= c <= period.max_col:
                continue
            down = any(m.min_row == h and m.max_row == h + 1 and m.min_col == c for m in merged.values())
            assert down or ws.cell(h + 1, c).value is None, (ws.title, c)
        assert "票证号码" in [ws.cell(h, c).value for c in range(1, ws.max_column + 1)]
    wb.close()


def test_the_xls_files_open_with_fastexcel_and_hold_the_planted_rows(tmp_path: Path) -> None:
    result = generate_sample(300, 24, 2026, tmp_path)
    for path in (p for p in result["files"] if p.suffix == ".xls"):
        assert path.read_bytes()[:8] == bytes.fromhex("d0cf11e0a1b11ae1")  # an OLE2 compound file
        reader = fastexcel.read_excel(path)
        planted = {(p["sheet"], p["row"]) for p in result["planted"] if p["file"] == path.name}
        assert planted and {s for s, _ in planted} <= set(reader.sheet_names)
        for name in reader.sheet_names:
            assert reader.load_sheet(name, header_row=None).height < 65_536
    township = result["roster_files"][1]
    kinds = {p["kind"] for p in result["planted"] if p["file"] == township.name}
    assert "id_numeric" in kinds
    values = [v for _, rows in sheets_of(township) for row in rows for v in row]
    assert any(isinstance(v, XlsNumber) and v > 1e17 for v in values)  # the numeric ID cell
    assert any(isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\d 00:00:00", v) for v in values)  # a date
    assert any(isinstance(v, str) and re.fullmatch(r"\d{4}/\d\d/\d\d|\d{8}|\d{4}-\d\d-\d\d", v) for v in values)


def test_payments_of_one_resident_spread_over_the_three_files(tmp_path: Path) -> None:
    result = generate_sample(600, 25, 2026, tmp_path)
    rows = classified(result, 2026)
    files_of: dict[str, set[str]] = {}
    for file, _, _, kind, rec in rows["payments"]:
        if kind is None:
            files_of.setdefault(norm(rec["id_number"]).upper(), set()).add(file)
    assert {f for fs in files_of.values() for f in fs} == {p.name for p in result["payment_files"]}
    assert any(len(fs) > 1 for fs in files_of.values())
    township_ids = {
        norm(rec["id_number"]).upper()
        for file, _, _, kind, rec in rows["roster"]
        if kind is None and file.endswith(".xls")
    }
    assert township_ids & set(files_of)


def test_subsidy_lists_name_every_case_of_rules_section_9(tmp_path: Path) -> None:
    year = 2026
    result = generate_sample(600, 26, year, tmp_path)
    rows = classified(result, year)
    cases = result["subsidy_list_cases"]
    for case in (
        "on_roster_with_label",
        "added_in_period",
        "added_after_collection_end",
        "not_on_roster",
        "roster_rejected",
        "not_enrolled",
        "not_in_force",
    ):
        assert cases.get(case, 0) > 0, case
    roster_ids = {norm(r["id_number"]).upper() for *_, kind, r in rows["roster"] if kind is None}
    listed = [(f, r) for f, _, _, kind, r in rows["subsidy_list"] if kind is None]
    ids = {norm(r["id_number"]).upper() for _, r in listed}
    assert ids & roster_ids and ids - roster_ids
    ended = [
        d
        for f, r in listed
        if f == "subsidy_list_乡村振兴.xls" and not is_empty(r.get("ended_on"))
        if (d := as_date(r["ended_on"], months=True)) is not None
    ]
    assert any(d < dt.date(year, 1, 1) for d in ended) and any(d >= dt.date(year, 1, 1) for d in ended)
    minzheng = [r for f, r in listed if f == "subsidy_list_民政.xlsx"]
    assert any(isinstance(r["identified_on"], str) and re.fullmatch(r"\d{6}", r["identified_on"]) for r in minzheng)
    assert {norm(r["department"]) for r in minzheng} == {"县民政局"}
    assert result["subsidy_list_rows"] < 0.1 * result["residents"]


def test_the_command_line_writes_a_sample_and_refuses_bad_arguments(tmp_path: Path, capsys) -> None:
    assert (
        sample_main(
            ["--rows", "30", "--seed", "1", "--coverage-year", "2026", "--out", str(tmp_path / "s"), "--xlsx-only"]
        )
        == 0
    )
    assert "sample written" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["payments.xlsx", "roster_jingdezhen.xlsx"]
    assert sample_main(["--rows", "0", "--seed", "1", "--coverage-year", "2026", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least 1" in err


# ------------------------------------------------------------------ tests: committed data, fixtures
def _cells(path: Path) -> list:
    """Every sheet's cells, merged ranges and date formats: what a generator change would alter."""
    wb = openpyxl.load_workbook(path)
    out = [
        (
            ws.title,
            sorted(map(str, ws.merged_cells.ranges)),
            [
                [(c.value, c.number_format if getattr(c, "is_date", False) else None) for c in row]
                for row in ws.iter_rows()
            ],
        )
        for ws in wb.worksheets
    ]
    wb.close()
    return out


@pytest.mark.parametrize("year", YEARS)
def test_committed_sample_data_is_what_the_generator_writes(tmp_path: Path, year: int) -> None:
    committed = ROOT / "sample_data" / str(year)
    result = generate_sample(rows=300, seed=year, coverage_year=year, out_dir=tmp_path)
    hint = f"sample_data/{year} differs from what tools/sample writes now: run `make sample` and commit the diff"
    have = sorted(p.name for p in committed.iterdir() if p.name.startswith(("roster", "payments", "subsidy_list")))
    assert have == sorted(p.name for p in result["files"]), hint
    for fresh in result["files"]:
        old = committed / fresh.name
        if old.read_bytes() != fresh.read_bytes():
            # Another xlsxwriter version may package the same cells differently.
            assert fresh.suffix == ".xlsx" and _cells(old) == _cells(fresh), f"{fresh.name}: {hint}"
        assert old.stat().st_size < 100_000
        if old.suffix == ".xlsx":
            with zipfile.ZipFile(old) as z:
                assert "xl/workbook.xml" in z.namelist()


# The LibreOffice-resaved fixtures (tests/fixtures/README.md says how they were made).
LIBREOFFICE_ROSTER_BAD = {
    "bad_date": 1,
    "conflicting_duplicate": 2,
    "exact_duplicate": 1,
    "id_birth_date": 1,
    "id_check_digit": 1,
    "id_numeric": 1,
    "required_empty": 1,
    "unknown_event": 1,
    "unknown_label": 1,
}
LIBREOFFICE_PAYMENTS_BAD = {
    "bad_amount": 1,
    "bad_date": 1,
    "id_birth_date": 1,
    "id_check_digit": 1,
    "id_numeric": 1,
    "required_empty": 1,
}


def test_libreoffice_fixtures_hold_the_rows_their_readme_lists() -> None:
    roster = classify_roster(FIXTURES / "libreoffice_roster.xlsx", 2026)
    payments = classify_payments(FIXTURES / "libreoffice_payments.xlsx")
    assert dict(Counter(k for *_, k, _ in roster if k)) == LIBREOFFICE_ROSTER_BAD
    assert dict(Counter(k for *_, k, _ in payments if k)) == LIBREOFFICE_PAYMENTS_BAD
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    assert f"{len(roster)} data rows" in readme and f"{len(payments)} data rows" in readme
