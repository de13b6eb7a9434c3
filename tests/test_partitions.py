"""A night run in partitions of residents (pipeline/partition.py) gives what one piece gives:
every DuckDB table, the summary figures and the workbooks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import openpyxl
import polars as pl
import pytest

from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, run_night, with_wrong_check_digit, write_workbook
from pipeline.io.tables import DDL

TODAY = dt.date(2026, 11, 23)
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "2026"


def _night(tmp_path: Path, name: str, roster: list[str], payments: list[str], partition_rows: int, **kw):
    out = tmp_path / name
    return run_night(
        2026,
        "jingdezhen",
        roster,
        payments,
        out / "medins.duckdb",
        out,
        as_of=TODAY,
        partition_rows=partition_rows,
        **kw,
    )


def _tables(db: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for table in DDL:
            if table == "runs":
                continue
            columns = [
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                    [table],
                ).fetchall()
                if r[0] not in ("run_id", "previous_run_id")
            ]
            rows = con.execute(f"SELECT {', '.join(chr(34) + c + chr(34) for c in columns)} FROM {table}").fetchall()
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


def _cells(path: Path) -> dict[str, list[tuple]]:
    wb = openpyxl.load_workbook(path)
    return {ws.title: [tuple(c.value for c in row) for row in ws.iter_rows()] for ws in wb.worksheets}


@pytest.fixture(scope="module")
def sample_nights(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("partitions")
    roster, payments = [str(p) for p in sorted(SAMPLE.glob("roster*.xlsx"))], [str(SAMPLE / "payments.xlsx")]
    whole = _night(tmp, "whole", roster, payments, partition_rows=10_000_000)
    parts = _night(tmp, "parts", roster, payments, partition_rows=80)
    _night(tmp, "uncached", roster, payments, partition_rows=80, use_cache=False)  # rows in the scratch dir
    return tmp, whole, parts


def test_the_sample_night_in_four_partitions_equals_the_night_in_one_piece(sample_nights):
    tmp, whole, parts = sample_nights
    assert (whole.partitions, parts.partitions) == (1, 4)
    mine, theirs = _tables(tmp / "parts" / "medins.duckdb"), _tables(tmp / "whole" / "medins.duckdb")
    assert {t: len(r) for t, r in mine.items()} == {t: len(r) for t, r in theirs.items()}
    for table in theirs:
        assert mine[table] == theirs[table], table
    assert _tables(tmp / "uncached" / "medins.duckdb") == theirs
    assert not list((tmp / "uncached").glob(".medins-tmp-*"))  # the scratch directory is gone
    assert parts.sheets.equals(whole.sheets)
    assert parts.totals.equals(whole.totals) and parts.figures == whole.figures
    assert parts.other_year_payments == whole.other_year_payments
    assert sorted(parts.warnings) == sorted(whole.warnings)
    for name in ("催缴名单_2026.xlsx", "对账报告_2026.xlsx", "财政补助资金测算表_2026.xlsx"):
        assert _cells(tmp / "parts" / name) == _cells(tmp / "whole" / name)


def _roster_row(n, name, id_number, township="浮梁镇", labels=None):
    return [n, name, id_number, "浮梁县", township, "新平村", labels, "是", None, None, "2025-10-20", None]


def _pay_row(n, name, id_number, amount=400, ticket=None, year="2026", paid_on="2025-11-01"):
    return [n, name, id_number, amount, paid_on, year, ticket or f"3360000000000000{n:04d}", "微信"]


def _part_of(id_number: str, n_parts: int) -> int:
    from pipeline.partition import roster_partition

    return pl.DataFrame({"id_number": [id_number]}).select(roster_partition(n_parts))[0, 0]


def _cross_row_inputs(tmp_path: Path, a: str, b: str, others: list[str]) -> tuple[Path, Path]:
    """The roster and payments of the test below: `a` and `b` share a ticket number."""
    roster = write_workbook(
        tmp_path / "roster.xlsx",
        {
            "一": [
                ROSTER_HEADER,
                _roster_row(1, "甲", a),
                _roster_row(2, "乙", b),
                *[
                    _roster_row(3 + i, f"人{i}", p, labels="特困人员" if i % 4 == 0 else None)
                    for i, p in enumerate(others[:6])
                ],
            ],
            "二": [
                ROSTER_HEADER,
                _roster_row(1, "人0", others[0], labels="特困人员"),  # an exact duplicate of sheet 一
                _roster_row(2, "人1改", others[1], township="鹅湖镇"),  # a conflict: same ID, other content
                *[_roster_row(3 + i, f"人{6 + i}", p) for i, p in enumerate(others[6:9])],
                _roster_row(9, "错号", with_wrong_check_digit(others[9])),
            ],  # bad check digit
        },
    )
    payments = write_workbook(
        tmp_path / "payments.xlsx",
        {
            "一": [
                PAYMENT_HEADER,
                _pay_row(1, "甲", a, ticket="33600000000000009999"),  # one ticket under two IDs: both rejected
                _pay_row(2, "乙", b, ticket="33600000000000009999"),
                _pay_row(3, "乙", b, amount=250),
                *[_pay_row(10 + i, f"人{i}", p, amount=400 - 50 * (i % 3)) for i, p in enumerate(others[:8])],
            ],
            "二": [
                PAYMENT_HEADER,
                _pay_row(10, "人0", others[0]),  # an exact duplicate of sheet 一
                _pay_row(40, "人1", others[1], amount=800),  # paid twice
                _pay_row(41, "无名", make_id("360281", dt.date(1980, 1, 1), 99)),  # nobody's
                _pay_row(42, "人9", others[9]),  # the person's roster row was rejected
                _pay_row(43, "人2", others[2], year="2025"),
            ],  # another year
        },
    )
    return roster, payments


def test_every_cross_row_rule_holds_when_each_person_is_nearly_alone_in_a_partition(tmp_path):
    """Duplicates and conflicts across sheets, a ticket number shared by two people who fall in
    different partitions, payments of a rejected roster row, of nobody and of another year."""
    people = [make_id("360222", dt.date(1950 + i, 1 + i % 12, 1 + i % 28), i) for i in range(1, 13)]
    n_parts = 8  # partition_count of the roster below (16 rows with the headers) at 2 rows a partition
    a, b = next((x, y) for x in people for y in people if _part_of(x, n_parts) != _part_of(y, n_parts))
    others = [p for p in people if p not in (a, b)]
    roster, payments = _cross_row_inputs(tmp_path, a, b, others)
    whole = _night(tmp_path, "whole", [str(roster)], [str(payments)], partition_rows=10_000_000)
    parts = _night(tmp_path, "parts", [str(roster)], [str(payments)], partition_rows=2)
    assert (whole.partitions, parts.partitions) == (1, n_parts)
    for table, rows in _tables(tmp_path / "whole" / "medins.duckdb").items():
        assert _tables(tmp_path / "parts" / "medins.duckdb")[table] == rows, table
    reasons = sorted(whole.rejected.filter(pl.col("column") == "电子税票号码")["id_number"].to_list())
    assert reasons == sorted([a, b])
    assert sorted(parts.rejected.rows()) == sorted(whole.rejected.rows())
    assert sorted(parts.duplicates.rows()) == sorted(whole.duplicates.rows()) and whole.duplicates.height == 2
    assert parts.sheets.equals(whole.sheets) and parts.totals.equals(whole.totals)
    assert parts.figures == whole.figures and whole.figures["persons"] == 10
    assert parts.unmatched.equals(whole.unmatched)
    assert (whole.unmatched["reason"] == "roster_rejected").sum() == 2  # 人1 twice (the roster conflict)
    assert (whole.unmatched["reason"] == "not_on_roster").sum() == 2  # nobody; 人9 (mistyped in the roster)
    assert whole.other_year_payments == parts.other_year_payments == 1
    for name in ("催缴名单_2026.xlsx", "对账报告_2026.xlsx", "财政补助资金测算表_2026.xlsx"):
        assert _cells(tmp_path / "parts" / name) == _cells(tmp_path / "whole" / name)


def test_a_second_night_in_partitions_replaces_the_year_and_records_the_same_status_changes(tmp_path):
    people = [make_id("360222", dt.date(1960 + i, 3, 1 + i), i) for i in range(1, 9)]
    roster = write_workbook(
        tmp_path / "roster.xlsx", {"S": [ROSTER_HEADER, *[_roster_row(i, f"人{i}", p) for i, p in enumerate(people)]]}
    )
    first = write_workbook(
        tmp_path / "p1.xlsx",
        {
            "S": [
                PAYMENT_HEADER,
                *[_pay_row(i, f"人{i}", p, amount=400 if i % 2 else 200) for i, p in enumerate(people)],
            ]
        },
    )
    second = write_workbook(
        tmp_path / "p2.xlsx",
        {"S": [PAYMENT_HEADER, *[_pay_row(i, f"人{i}", p, amount=400) for i, p in enumerate(people[:6])]]},
    )
    for name, rows in (("whole", 10_000_000), ("parts", 3)):
        night1 = _night(tmp_path, name, [str(roster)], [str(first)], partition_rows=rows)
        night2 = _night(tmp_path, name, [str(roster)], [str(second)], partition_rows=rows)
        assert night2.partitions == night1.partitions == (1 if name == "whole" else 3)
    whole, parts = _tables(tmp_path / "whole" / "medins.duckdb"), _tables(tmp_path / "parts" / "medins.duckdb")
    assert parts == whole
    # 人0 2 4 paid 200 then 400; 人7 paid 400 then nothing (人6 paid 200, then nothing: still not paid in full)
    changes = {(r[1], r[5], r[6]) for r in whole["status_changes"]}  # id, previous status, status
    assert {(people[i], "underpaid", "paid_in_full") for i in (0, 2, 4)} <= changes
    assert (people[7], "paid_in_full", "unpaid") in changes and len(whole["determinations"]) == 8


def test_a_night_in_partitions_that_fails_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    people = [make_id("360222", dt.date(1970 + i, 5, 1 + i), i) for i in range(1, 7)]
    roster = write_workbook(
        tmp_path / "roster.xlsx", {"S": [ROSTER_HEADER, *[_roster_row(i, f"人{i}", p) for i, p in enumerate(people)]]}
    )
    payments = write_workbook(
        tmp_path / "p.xlsx", {"S": [PAYMENT_HEADER, *[_pay_row(i, f"人{i}", p) for i, p in enumerate(people)]]}
    )
    first = _night(tmp_path, "db", [str(roster)], [str(payments)], partition_rows=3)
    assert first.partitions == 3
    db = tmp_path / "db" / "medins.duckdb"
    before = _tables(db)

    import pipeline.night as run_module

    calls = []
    real = run_module.determine

    def fails_on_the_second_partition(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "determine", fails_on_the_second_partition)
    with pytest.raises(RuntimeError):
        _night(tmp_path, "db", [str(roster)], [str(payments)], partition_rows=3)
    assert _tables(db) == before
    con = duckdb.connect(str(db), read_only=True)
    names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    con.close()
    assert not any(n.startswith("__next_") for n in names)


def test_the_planned_roster_rows_of_a_csv_are_its_lines_and_of_an_xls_its_size_over_150(tmp_path):
    """A night plans its partitions from estimated roster rows (pipeline/partition.py): a CSV counts its
    lines (GB18030 too: no multi-byte character holds a newline byte), an .xls is about 150 bytes a row."""
    from pipeline.partition import estimated_rows

    csv = tmp_path / "roster.csv"
    csv.write_bytes("身份证号码,姓名\n360222199001011234,张三\n360222199001011235,李四\n".encode("gb18030"))
    assert estimated_rows(csv) == 3
    xls = tmp_path / "roster.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(150 * 1000 - 8))
    assert estimated_rows(xls) == 1000
    assert estimated_rows(tmp_path / "missing.xls") == 0
