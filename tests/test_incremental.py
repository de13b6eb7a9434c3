"""A run rewrites only the rows that changed (pipeline/io/store.py, DIFFED_TABLES), and the tables end
up exactly as if the coverage year had been deleted and written again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl
import pytest

import pipeline.io.store as store
from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, run_night, write_workbook
from pipeline.io.store import _apply, _diff, ensure_tables, query_frame, with_row_hash
from pipeline.io.tables import DIFFED_TABLES

TODAY = dt.date(2026, 11, 23)
IDS = [make_id("360222", dt.date(1990, 5, 1), n) for n in range(1, 5)]
NAMES = ["张三", "李四", "王五", "赵六"]


def roster(tmp_path: Path) -> Path:
    rows = [
        [n + 1, NAMES[n], IDS[n], "浮梁县", "浮梁镇", "新平村", None, "是", None, None, "2025-10-20", None]
        for n in range(4)
    ]
    return write_workbook(tmp_path / "roster.xlsx", {"S": [ROSTER_HEADER, *rows]})


def payments(tmp_path: Path, name: str, amounts: dict[int, int]) -> Path:
    """One payment line per person n with the given amount (yuan), in order of n."""
    rows = [
        [i + 1, NAMES[n], IDS[n], amount, "2025-11-01", "2026", f"33600000000000000{n:03d}", "微信"]
        for i, (n, amount) in enumerate(sorted(amounts.items()))
    ]
    return write_workbook(tmp_path / name, {"S": [PAYMENT_HEADER, *rows]})


def write(con, table: str, frame: pl.DataFrame, run_id: str, written: dict) -> None:
    written[table] = _apply(con, _diff(con, table, frame, 2026), run_id, 2026)


def night(tmp_path: Path, db: str, roster_file: Path, payments_file: Path):
    return run_night(
        2026,
        "jingdezhen",
        [str(roster_file)],
        [str(payments_file)],
        tmp_path / db,
        tmp_path,
        today=TODAY,
        write_workbooks=False,
    )


def table(db: Path, name: str) -> pl.DataFrame:
    """The table's rows apart from run_id, in one order."""
    with duckdb.connect(str(db), read_only=True) as con:
        frame = query_frame(con, f"SELECT * EXCLUDE (run_id) FROM {name}")
    return frame.sort(frame.columns)


def test_a_payments_only_night_keeps_unchanged_rows_and_equals_a_full_write(tmp_path):
    r = roster(tmp_path)
    night(tmp_path, "m.duckdb", r, payments(tmp_path, "p1.xlsx", {0: 400, 1: 400, 2: 400}))
    # tonight: person 1 paid less, person 3 paid for the first time, person 2's line is gone
    p2 = payments(tmp_path, "p2.xlsx", {0: 400, 1: 300, 3: 400})
    second = night(tmp_path, "m.duckdb", r, p2)
    fresh = night(tmp_path, "fresh.duckdb", r, p2)

    for name in DIFFED_TABLES:
        assert table(tmp_path / "m.duckdb", name).equals(table(tmp_path / "fresh.duckdb", name)), name
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
        for name, year_col in DIFFED_TABLES.items():
            ids = con.execute(f"SELECT DISTINCT run_id FROM {name} WHERE {year_col} = 2026").fetchall()
            assert ids == [(second.run_id,)], name
    # roster unchanged: every resident row kept. Payments: the file's name changed, so every line
    # is new (3 written, 3 deleted). Determinations and reconciliation: person 0 unchanged; persons
    # 1, 2 and 3 changed (1 paid less, 2 no longer paid, 3 now paid).
    assert second.written["residents"] == (4, 0, 0)
    assert second.written["payments"] == (0, 3, 3)
    assert second.written["determinations"] == (1, 3, 3)
    assert second.written["reconciliation"] == (1, 3, 3)
    assert fresh.written["determinations"] == (0, 4, 0)


def test_status_changes_from_the_changed_rows_equal_those_of_a_full_comparison(tmp_path, monkeypatch):
    r = roster(tmp_path)
    p1 = payments(tmp_path, "p1.xlsx", {0: 400, 1: 400, 2: 400})
    p2 = payments(tmp_path, "p2.xlsx", {0: 400, 1: 300, 3: 400})
    night(tmp_path, "diffed.duckdb", r, p1)
    night(tmp_path, "diffed.duckdb", r, p2)
    full = store._diff

    def rewrite_all(con, table, frame, year):  # the whole year out, the whole frame in
        d = full(con, table, frame, year)
        return store._Diff(table, with_row_hash(frame, table), None, 0, d.before)

    monkeypatch.setattr(store, "_diff", rewrite_all)
    night(tmp_path, "full.duckdb", r, p1)
    night(tmp_path, "full.duckdb", r, p2)
    changes = {
        db: table(tmp_path / db, "status_changes").drop("previous_run_id") for db in ("diffed.duckdb", "full.duckdb")
    }
    assert changes["diffed.duckdb"].equals(changes["full.duckdb"])
    assert sorted(changes["full.duckdb"].select("id_number", "previous_status", "status").rows()) == sorted(
        [(IDS[1], "paid_in_full", "underpaid"), (IDS[2], "paid_in_full", "unpaid"), (IDS[3], "unpaid", "paid_in_full")]
    )


def test_the_same_night_twice_rewrites_nothing(tmp_path):
    r, p = roster(tmp_path), payments(tmp_path, "p.xlsx", {0: 400, 1: 400})
    first = night(tmp_path, "m.duckdb", r, p)
    second = night(tmp_path, "m.duckdb", r, p)
    assert second.written == {
        "residents": (4, 0, 0),
        "payments": (2, 0, 0),
        "determinations": (4, 0, 0),
        "reconciliation": (4, 0, 0),
    }
    assert first.run_id != second.run_id
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
        assert con.execute("SELECT DISTINCT run_id FROM determinations").fetchall() == [(second.run_id,)]


@pytest.fixture()
def con():
    connection = duckdb.connect(":memory:")
    ensure_tables(connection)
    yield connection
    connection.close()


def _recon(ids: list[str], status: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"coverage_year": [2026] * len(ids), "id_number": ids, "status": status, "amount_diff_fen": [100] * len(ids)},
        schema_overrides={"coverage_year": pl.Int32},
    )


def test_rows_written_by_an_older_version_without_row_hash_are_replaced(con):
    con.execute(
        "INSERT INTO reconciliation (run_id, coverage_year, id_number, status) VALUES "
        "('old', 2026, 'A', 'unpaid'), ('old', 2026, 'B', 'unpaid'), ('old', 2025, 'A', 'unpaid')"
    )
    written: dict = {}
    write(con, "reconciliation", _recon(["A", "B"], ["unpaid", "underpaid"]), "new", written)
    rows = con.execute(
        "SELECT run_id, coverage_year, id_number, status, amount_diff, row_hash IS NULL "
        "FROM reconciliation ORDER BY coverage_year, id_number"
    ).fetchall()
    assert [r[:4] for r in rows] == [
        ("old", 2025, "A", "unpaid"),
        ("new", 2026, "A", "unpaid"),
        ("new", 2026, "B", "underpaid"),
    ]
    assert [r[5] for r in rows] == [True, False, False]  # the other year's row is left alone
    assert written["reconciliation"] == (0, 2, 2)  # nothing hashed before: the year is written anew


def test_a_row_whose_hash_matches_but_key_differs_is_rewritten(con):
    frame = _recon(["A", "B"], ["unpaid", "unpaid"])
    written: dict = {}
    write(con, "reconciliation", frame, "r1", written)
    # forge a collision: B's stored row carries the hash that A's row has tonight (A's its own, other)
    a_hash = with_row_hash(frame, "reconciliation")["row_hash"][0]
    con.execute("UPDATE reconciliation SET row_hash = ? WHERE id_number = 'A'", [a_hash ^ 1])
    con.execute("UPDATE reconciliation SET row_hash = ? WHERE id_number = 'B'", [a_hash])
    write(con, "reconciliation", frame, "r2", written)
    assert written["reconciliation"] == (0, 2, 2)  # the equal hash under another key kept nothing
    assert con.execute(
        "SELECT id_number, run_id, row_hash = ? FROM reconciliation ORDER BY 1", [a_hash]
    ).fetchall() == [("A", "r2", True), ("B", "r2", False)]


def test_identical_rows_in_a_frame_fall_back_to_a_full_rewrite(con):
    written: dict = {}
    write(con, "reconciliation", _recon(["A", "B"], ["unpaid", "unpaid"]), "r1", written)
    twice = _recon(["A", "A", "B"], ["unpaid", "unpaid", "unpaid"])
    write(con, "reconciliation", twice, "r2", written)
    assert written["reconciliation"] == (0, 3, 2)
    assert con.execute("SELECT id_number, run_id FROM reconciliation ORDER BY 1").fetchall() == [
        ("A", "r2"),
        ("A", "r2"),
        ("B", "r2"),
    ]


def test_inserting_a_few_rows_at_a_time_writes_every_row_once(tmp_path, monkeypatch):
    r, p = roster(tmp_path), payments(tmp_path, "p.xlsx", {0: 400, 1: 300, 3: 400})
    night(tmp_path, "whole.duckdb", r, p)
    monkeypatch.setattr(store, "INSERT_SLICE_ROWS", 2)  # 4 residents: slices of 2, 2; 3 payments: 2, 1
    night(tmp_path, "sliced.duckdb", r, p)
    for name in ("residents", "payments", "determinations", "reconciliation", "rejected_rows"):
        assert table(tmp_path / "sliced.duckdb", name).equals(table(tmp_path / "whole.duckdb", name)), name
    assert table(tmp_path / "sliced.duckdb", "residents").height == 4
