"""A night into a database that already holds the year ends exactly as a night into a fresh one:
the one writer (pipeline/io/store.py NightWriter) replaces the year's rows of every per-year table,
keeps other years, and records the status changes against the year's previous run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl
import pytest

from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, run_night, write_workbook
from pipeline.io import store
from pipeline.io.store import query_frame
from pipeline.io.tables import PER_YEAR_TABLES

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


def night(tmp_path: Path, db: str, roster_file: Path, payments_file: Path, year: int = 2026):
    return run_night(
        year,
        "jingdezhen",
        [str(roster_file)],
        [str(payments_file)],
        tmp_path / db,
        tmp_path,
        as_of=TODAY,
        write_workbooks=False,
    )


def table(db: Path, name: str, where: str = "") -> pl.DataFrame:
    """The table's rows apart from run_id, in one order."""
    with duckdb.connect(str(db), read_only=True) as con:
        frame = query_frame(con, f"SELECT * EXCLUDE (run_id) FROM {name} {where}")
    return frame.sort(frame.columns)


def test_a_second_night_of_the_year_equals_a_night_into_a_fresh_database(tmp_path):
    r = roster(tmp_path)
    night(tmp_path, "m.duckdb", r, payments(tmp_path, "p1.xlsx", {0: 400, 1: 400, 2: 400}))
    # tonight: person 1 paid less, person 3 paid for the first time, person 2's line is gone
    p2 = payments(tmp_path, "p2.xlsx", {0: 400, 1: 300, 3: 400})
    second = night(tmp_path, "m.duckdb", r, p2)
    night(tmp_path, "fresh.duckdb", r, p2)
    for name in PER_YEAR_TABLES:
        kept, fresh = (table(tmp_path / db, name) for db in ("m.duckdb", "fresh.duckdb"))
        if name == "run_sheets":  # tonight's roster came from the cache in one of them
            kept, fresh = kept.drop("reused", "checks_reused"), fresh.drop("reused", "checks_reused")
        assert kept.equals(fresh), name
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
        for name, year_col in PER_YEAR_TABLES.items():
            ids = con.execute(f"SELECT DISTINCT run_id FROM {name} WHERE {year_col} = 2026").fetchall()
            assert ids in ([(second.run_id,)], []), name
    # (kept, written, deleted): the roster unchanged, every resident row kept; the payments file has
    # another name tonight, so every line is new (3 written, 3 deleted); persons 1, 2 and 3 changed
    # (1 paid less, 2 no longer paid, 3 now paid), person 0 is kept
    assert second.written["residents"] == (4, 0, 0)
    assert second.written["payments"] == (0, 3, 3)
    assert second.written["determinations"] == (1, 3, 3)
    assert second.written["reconciliation"] == (1, 3, 3)


def test_status_changes_name_who_changed_since_the_years_previous_run(tmp_path):
    r = roster(tmp_path)
    night(tmp_path, "m.duckdb", r, payments(tmp_path, "p1.xlsx", {0: 400, 1: 400, 2: 400}))
    second = night(tmp_path, "m.duckdb", r, payments(tmp_path, "p2.xlsx", {0: 400, 1: 300, 3: 400}))
    changes = table(tmp_path / "m.duckdb", "status_changes", f"WHERE run_id = '{second.run_id}'")
    assert sorted(changes.select("id_number", "previous_status", "status").rows()) == sorted(
        [(IDS[1], "paid_in_full", "underpaid"), (IDS[2], "paid_in_full", "unpaid"), (IDS[3], "unpaid", "paid_in_full")]
    )


def test_the_same_night_twice_keeps_every_row_and_stamps_it_with_the_new_run(tmp_path):
    r, p = roster(tmp_path), payments(tmp_path, "p.xlsx", {0: 400, 1: 400})
    first = night(tmp_path, "m.duckdb", r, p)
    second = night(tmp_path, "m.duckdb", r, p)
    assert {t: second.written[t] for t in ("residents", "payments", "determinations", "reconciliation")} == {
        "residents": (4, 0, 0),
        "payments": (2, 0, 0),
        "determinations": (4, 0, 0),
        "reconciliation": (4, 0, 0),
    }
    assert first.run_id != second.run_id
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
        for name in ("residents", "payments", "determinations", "reconciliation", "run_sheets"):
            assert con.execute(f"SELECT DISTINCT run_id FROM {name}").fetchall() == [(second.run_id,)], name
        assert con.execute("SELECT count(*) FROM status_changes").fetchall() == [(0,)]


def test_the_first_night_of_a_year_records_no_status_change_and_leaves_other_years_alone(tmp_path):
    r = roster(tmp_path)
    night(tmp_path, "m.duckdb", r, payments(tmp_path, "p1.xlsx", {0: 400}))
    before = table(tmp_path / "m.duckdb", "determinations")
    night(tmp_path, "m.duckdb", r, payments(tmp_path, "p2.xlsx", {0: 400, 1: 400}), year=2025)
    assert table(tmp_path / "m.duckdb", "status_changes", "WHERE coverage_year = 2025").height == 0
    assert table(tmp_path / "m.duckdb", "determinations", "WHERE coverage_year = 2026").equals(before)


def test_rows_written_before_the_hashes_were_kept_are_replaced_not_kept(tmp_path):
    """A database from an earlier version has the year's rows without row_hash: they match nothing,
    so the night replaces them (no row is left twice, none of an old run remains)."""
    r, p = roster(tmp_path), payments(tmp_path, "p.xlsx", {0: 400})
    night(tmp_path, "m.duckdb", r, p)
    with duckdb.connect(str(tmp_path / "m.duckdb")) as con:
        for name in ("residents", "payments", "determinations", "reconciliation"):
            con.execute(f"UPDATE {name} SET row_hash = NULL, key_hash = NULL")
    second = night(tmp_path, "m.duckdb", r, p)
    assert second.written["residents"] == (0, 4, 4)
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT run_id) FROM residents").fetchall() == [(4, 1)]
        assert con.execute("SELECT count(*) FROM residents WHERE row_hash IS NULL").fetchall() == [(0,)]


def test_old_rows_alike_in_key_and_content_leave_one_of_them(tmp_path):
    """Rows doubled in the database by hand (an analyst's INSERT): the night keeps one of each, the
    copies go."""
    r, p = roster(tmp_path), payments(tmp_path, "p.xlsx", {0: 400})
    night(tmp_path, "m.duckdb", r, p)
    with duckdb.connect(str(tmp_path / "m.duckdb")) as con:
        con.execute("INSERT INTO residents SELECT * FROM residents")
    second = night(tmp_path, "m.duckdb", r, p)
    assert second.written["residents"] == (4, 0, 4)
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT id_number) FROM residents").fetchall() == [(4, 4)]


def dead_rows(db: Path) -> dict[str, int]:
    """Per per-year table, the deleted rows its row groups still hold."""
    with duckdb.connect(str(db), read_only=True) as con:
        return {t: store._stored_rows(con, t) - store._live_rows(con, t) for t in PER_YEAR_TABLES}


@pytest.mark.parametrize("share", [1.0, 0.0])
def test_a_nights_checkpoint_vacuums_once_the_deleted_rows_pass_their_share(tmp_path, monkeypatch, share):
    """Under the share the deleted rows stay in their row groups (a vacuum rewrites whole tables: too
    dear for 2 % of them); past it the checkpoint vacuums and no deleted row is left."""
    monkeypatch.setattr(store, "VACUUM_DEAD_SHARE", share)
    r = roster(tmp_path)
    night(tmp_path, "m.duckdb", r, payments(tmp_path, "p1.xlsx", {0: 400, 1: 400, 2: 400}))
    assert sum(dead_rows(tmp_path / "m.duckdb").values()) == 0
    night(tmp_path, "m.duckdb", r, payments(tmp_path, "p2.xlsx", {0: 400, 1: 300, 3: 400}))
    dead = dead_rows(tmp_path / "m.duckdb")
    if share == 1.0:  # persons 1, 2, 3 changed: their determinations and reconciliation rows are deleted ones
        assert dead["determinations"] == dead["reconciliation"] == 3
    else:
        assert sum(dead.values()) == 0
