"""DuckDB: every table of a run written in one transaction.

A run replaces the rows of its coverage year in the per-year tables and
leaves other years alone; `runs` and `status_changes` keep every run.
Money arrives as integer fen (`<column>_fen`) and is stored as exact
DECIMAL(14,2) yuan.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb
import polars as pl

from pipeline.faults import checkpoint
from pipeline.io.tables import DDL, DIFFED_TABLES, LOW_CARDINALITY, MONEY, PER_YEAR_TABLES, ROW_KEYS

T = TypeVar("T")

INSERT_SLICE_ROWS = 500_000


def _column_defs(table: str) -> list[tuple[str, str]]:
    """(column, its definition as written in tables.py), in order."""
    out = []
    for line in DDL[table].strip().splitlines():
        line = line.split("--")[0].strip().rstrip(",")
        if line:
            out.append((line.split()[0].strip('"'), line))
    return out


def _columns(table: str) -> list[str]:
    return [name for name, _ in _column_defs(table)]


def _money_columns(table: str) -> set[str]:
    return {name for name, definition in _column_defs(table) if MONEY in definition}


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the tables; add to a database made by an earlier version the columns added since
    (tables are only ever extended, CONTRACT.md)."""
    for name, ddl in DDL.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({ddl})")
        have = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main'",
            [name]).fetchall()}
        for column, definition in _column_defs(name):
            if column not in have:
                con.execute(f"ALTER TABLE {name} ADD COLUMN {definition.replace(' PRIMARY KEY', '')}")


def _select_list(table: str, frame_cols: list[str], run_id: str) -> str:
    money = _money_columns(table)
    parts = []
    for col in _columns(table):
        q = f'"{col}"'
        if col == "run_id" and col not in frame_cols:
            parts.append(f"'{run_id}' AS run_id")
        elif col in money and f"{col}_fen" in frame_cols:
            parts.append(f'CAST(CAST("{col}_fen" AS DECIMAL(18,0)) * 0.01::DECIMAL(3,2) AS {MONEY}) AS {q}')
        elif col in frame_cols:
            parts.append(q)
        else:
            parts.append(f"NULL AS {q}")
    return ", ".join(parts)


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> Iterator[None]:
    """The frame visible to SQL as `name` (as Arrow) while the block runs."""
    con.register(name, frame.to_arrow())
    try:
        yield
    finally:
        con.unregister(name)


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, run_id: str,
                 into: str | None = None) -> None:
    """Insert a polars frame into a table of tables.py (or `into`, a table made from its DDL),
    converting fen to yuan."""
    if frame.height == 0:
        return
    view = f"__new_{table}"
    coded = [c for c, t in frame.schema.items() if c in LOW_CARDINALITY and t == pl.Utf8]
    frame = frame.with_columns(pl.col(coded).cast(pl.Categorical)) if coded else frame
    columns = ", ".join(f'"{c}"' for c in _columns(table))
    sql = f"INSERT INTO {into or table} ({columns}) SELECT {_select_list(table, frame.columns, run_id)} FROM {view}"
    # An Arrow table registers about twice as fast as the polars frame itself (measured at 1M rows);
    # converting a slice at a time keeps the copy to one slice, not the whole table.
    for part in frame.iter_slices(INSERT_SLICE_ROWS):
        with _registered(con, view, part):
            con.execute(sql)


ROW_HASH, KEY_HASH = "row_hash", "key_hash"

def with_row_hash(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """The frame with `row_hash` (64-bit hash of every column it holds; run_id is not among them)
    and `key_hash` (of the columns naming the row, tables.ROW_KEYS)."""
    return frame.with_columns(frame.hash_rows(seed=0).alias(ROW_HASH),
                              frame.select(ROW_KEYS[table]).hash_rows(seed=0).alias(KEY_HASH))


@dataclass
class _Diff:
    """What a run changes in one diffed table for its coverage year."""
    table: str
    added: pl.DataFrame          # rows to insert (with row_hash and key_hash)
    gone: pl.DataFrame | None    # __rowid of the rows to delete; None: delete the whole year
    kept: int                    # rows left in place (re-stamped with the run)
    before: int                  # rows of the year before the run


def _diff(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, coverage_year: int) -> _Diff:
    """Which rows of the year stay, go and come.

    A row stays when a row of tonight's frame has the same row_hash *and* key_hash: the same line
    of the same file, or the same person, with every column equal (a wrong match needs the row's
    own 64-bit hash to collide, about 2^-64 per changed row). Where a row_hash repeats within the
    table or the frame (identical rows), the year is rewritten whole.
    """
    frame = with_row_hash(frame, table)
    old = query_frame(con, f"SELECT rowid AS __rowid, {ROW_HASH}, {KEY_HASH} FROM {table} "
                      f"WHERE {DIFFED_TABLES[table]} = ?", [coverage_year])
    hashed = old.filter(pl.col(ROW_HASH).is_not_null() & pl.col(KEY_HASH).is_not_null())
    if (hashed.height == 0 or hashed[ROW_HASH].n_unique() != hashed.height
            or frame[ROW_HASH].n_unique() != frame.height):
        return _Diff(table, frame, None, 0, old.height)
    # row_hash is unique on both sides: join on it alone (one integer key is much faster), then
    # require the key_hash to agree
    same = frame.select(ROW_HASH, KEY_HASH, pl.int_range(pl.len(), dtype=pl.UInt32).alias("__i")).join(
        hashed, on=ROW_HASH, how="inner", suffix="__old").filter(pl.col(KEY_HASH) == pl.col(f"{KEY_HASH}__old"))
    gone = old.select("__rowid").filter(~pl.col("__rowid").is_in(same["__rowid"].implode()))
    added = frame.filter(~pl.int_range(pl.len(), dtype=pl.UInt32).is_in(same["__i"].implode()))
    return _Diff(table, added, gone, same.height, old.height)


def _apply(con: duckdb.DuckDBPyConnection, diff: _Diff, run_id: str, coverage_year: int) -> tuple[int, int, int]:
    """Delete the rows that went, re-stamp the rows that stayed, insert the new; (kept, written, deleted)."""
    year = f"{DIFFED_TABLES[diff.table]} = ?"
    if diff.gone is None:
        con.execute(f"DELETE FROM {diff.table} WHERE {year}", [coverage_year])
    elif diff.gone.height:
        with _registered(con, "__gone", diff.gone):
            con.execute(f"DELETE FROM {diff.table} WHERE rowid IN (SELECT __rowid FROM __gone)")
    if diff.kept:
        con.execute(f"UPDATE {diff.table} SET run_id = ? WHERE {year} AND run_id <> ?", [run_id, coverage_year, run_id])
    insert_frame(con, diff.table, diff.added, run_id)
    return diff.kept, diff.added.height, diff.before - diff.kept


def _record_status_changes(con: duckdb.DuckDBPyConnection, run_id: str, coverage_year: int,
                           diff: _Diff) -> None:
    """Persons whose status differs from the previous run of this coverage year.

    Runs inside the publishing transaction, before the old reconciliation is
    replaced; nothing to compare on a year's first run. Only rows that changed
    can change status: the rows going out are compared with the rows coming in.
    """
    if not diff.before:
        return
    if diff.gone is None:
        outgoing, params, gone = "SELECT * FROM reconciliation WHERE coverage_year = ?", [coverage_year], None
    else:
        outgoing, params, gone = "SELECT * FROM reconciliation WHERE rowid IN (SELECT __rowid FROM __gone)", [], diff.gone
    incoming = diff.added.select("id_number", "name", "county", "township", "status", "amount_diff_fen")
    with _registered(con, "__recon_frame", incoming), \
            (_registered(con, "__gone", gone) if gone is not None else nullcontext()):
        _insert_status_changes(
            con, run_id, coverage_year, outgoing, params,
            "SELECT id_number, name, county, township, status, "
            f"CAST(CAST(amount_diff_fen AS DECIMAL(18,0)) * 0.01::DECIMAL(3,2) AS {MONEY}) AS amount_diff "
            "FROM __recon_frame", [])


def _insert_status_changes(con: duckdb.DuckDBPyConnection, run_id: str, coverage_year: int,
                           outgoing: str, outgoing_params: list, incoming: str, incoming_params: list) -> None:
    """status_changes lines for the persons whose status differs between `outgoing` (reconciliation
    rows going out) and `incoming` (rows coming in: id_number, name, county, township, status,
    amount_diff)."""
    con.execute(
        f"""
        INSERT INTO status_changes
        SELECT ?, ?, coalesce(n.id_number, o.id_number), coalesce(n.name, o.name),
               coalesce(n.county, o.county), coalesce(n.township, o.township),
               o.run_id, o.status, n.status, o.amount_diff, n.amount_diff
        FROM ({outgoing}) o
        FULL OUTER JOIN ({incoming}) n ON n.id_number = o.id_number
        WHERE o.status IS DISTINCT FROM n.status
        """,
        [run_id, coverage_year, *outgoing_params, *incoming_params],
    )


def _connect(db_path: Path, previous: Future | None) -> duckdb.DuckDBPyConnection:
    """The database, once its `.previous` copy is in place (`previous`: a copy_previous already
    running; None: made now), with the tables of tables.py and no staged table of a killed night."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    if previous is None:
        keep_previous(db_path)
    else:
        previous.result()()
    con = duckdb.connect(str(db_path))
    try:
        # Row order inside a table carries no meaning (every report and query orders explicitly);
        # letting DuckDB write row groups in any order halves the insert at 1M rows (benchmarks/).
        con.execute("SET preserve_insertion_order = false")
        ensure_tables(con)
        drop_staged(con)  # of a night in partitions that was killed
    except BaseException:
        con.close()
        raise
    return con


def publish(db_path: Path, run_row: dict, frames: dict[str, pl.DataFrame], coverage_year: int,
            before_commit: Callable[[duckdb.DuckDBPyConnection], T] | None = None,
            written: dict[str, tuple[int, int, int]] | None = None,
            previous: Future | None = None) -> T | None:
    """Replace the coverage year's rows of every table and add the run, in one transaction.

    The big tables (DIFFED_TABLES) are rewritten only where rows changed; `written` receives, per
    such table, (rows kept, rows inserted, rows deleted). `frames` is emptied as the tables are
    written, so that memory the caller no longer refers to is freed before the reports are built.
    `previous`: the caller's copy_previous(db_path), already running (waited for here, and its
    copy put in place); None: keep_previous runs here. `before_commit(con)` runs inside the transaction once every row is in
    place (the reports are built from it); its result is returned after the
    commit. Any failure rolls everything back.
    """
    written = {} if written is None else written
    con = _connect(db_path, previous)
    try:
        run_id = run_row["run_id"]
        con.execute("BEGIN TRANSACTION")
        try:
            diffs = {t: _diff(con, t, f, coverage_year) for t, f in frames.items() if t in DIFFED_TABLES}
            if "reconciliation" in diffs:
                _record_status_changes(con, run_id, coverage_year, diffs["reconciliation"])
            for table in PER_YEAR_TABLES:
                if table not in DIFFED_TABLES:
                    con.execute(f"DELETE FROM {table} WHERE coverage_year = ?", [coverage_year])
            for table in DIFFED_TABLES:
                if table not in frames:
                    con.execute(f"DELETE FROM {table} WHERE {DIFFED_TABLES[table]} = ?", [coverage_year])
            for table in list(frames):
                # each frame is let go once written (the caller hands them over), so the reports,
                # built next, do not run beside every table's rows
                frame = frames.pop(table)
                if table in diffs:
                    written[table] = _apply(con, diffs.pop(table), run_id, coverage_year)
                else:
                    insert_frame(con, table, frame, run_id)
                del frame
            runs = pl.DataFrame([run_row])
            insert_frame(con, "runs", runs, run_id)
            checkpoint("before_commit")
            staged = before_commit(con) if before_commit else None
            checkpoint("commit")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
    return staged


STAGED_PREFIX = "__next_"
# The per-person tables a night in partitions builds beside the real ones (YearWriter).
STAGED_TABLES = (*DIFFED_TABLES, "unmatched_payments")
# DuckDB's buffer pool while a night in partitions writes: the committed blocks are evicted beyond it.
WRITER_MEMORY_LIMIT = "1GB"


def drop_staged(con: duckdb.DuckDBPyConnection) -> None:
    """Remove the staged tables of a night in partitions that was killed before it finished."""
    for (name,) in con.execute("SELECT table_name FROM information_schema.tables WHERE starts_with(table_name, ?) "
                               "AND table_schema = 'main'", [STAGED_PREFIX]).fetchall():
        con.execute(f'DROP TABLE IF EXISTS "{name}"')


class YearWriter:
    """`publish` for a night run in partitions of residents (pipeline/run.py): the same tables, the
    rows arriving a partition at a time, and still one commit that replaces the year.

    DuckDB holds an open transaction's new rows in memory, so the partitions
    cannot all go into one transaction. Each per-person table is instead built
    beside the real one, as `__next_<table>`: a copy of the other years' rows,
    then tonight's rows, one committed partition at a time. `finish` then, in
    one transaction, records the status changes (the real table's year against
    the staged one), puts each staged table in place of the real one (DROP,
    RENAME), replaces the small per-year tables, records the run, builds the
    reports and commits. Until that commit the real tables are untouched; a
    failure drops the staged tables (and a killed run's are dropped by the
    next). The big tables are written whole (no row is kept from the previous
    run): `written` shows every row written and every old row deleted.
    """

    def __init__(self, db_path: Path, coverage_year: int, run_id: str, previous: Future | None = None) -> None:
        self.coverage_year, self.run_id = coverage_year, run_id
        self.con = _connect(db_path, previous)
        self.added: dict[str, int] = {t: 0 for t in DIFFED_TABLES}
        self.in_transaction = False

    def __enter__(self) -> YearWriter:
        con, year = self.con, self.coverage_year
        try:
            con.execute(f"SET memory_limit = '{WRITER_MEMORY_LIMIT}'")
            self.before = {t: con.execute(f"SELECT count(*) FROM {t} WHERE {column} = ?", [year]).fetchone()[0]
                           for t, column in DIFFED_TABLES.items()}
            for table in STAGED_TABLES:
                columns = ", ".join(f'"{c}"' for c in _columns(table))
                con.execute(f"CREATE TABLE {STAGED_PREFIX}{table} ({DDL[table]})")
                con.execute(f"INSERT INTO {STAGED_PREFIX}{table} ({columns}) SELECT {columns} FROM {table} "
                            f"WHERE {DIFFED_TABLES.get(table, 'coverage_year')} IS DISTINCT FROM ?", [year])
        except BaseException:
            self._abandon()
            raise
        return self

    def add(self, table: str, frame: pl.DataFrame) -> None:
        """Insert (and commit) one partition's rows of a per-person table into its staged table."""
        if table in DIFFED_TABLES:
            frame = with_row_hash(frame, table)
            self.added[table] += frame.height
        insert_frame(self.con, table, frame, self.run_id, into=STAGED_PREFIX + table)

    def finish(self, run_row: dict, frames: dict[str, pl.DataFrame],
               before_commit: Callable[[duckdb.DuckDBPyConnection], T] | None = None,
               written: dict[str, tuple[int, int, int]] | None = None) -> T | None:
        """Put the staged tables in place, add the small tables (`frames`) and the run, commit."""
        con, year, run_id = self.con, self.coverage_year, self.run_id
        con.execute("BEGIN TRANSACTION")
        self.in_transaction = True
        if self.before.get("reconciliation"):
            _insert_status_changes(
                con, run_id, year, "SELECT * FROM reconciliation WHERE coverage_year = ?", [year],
                f"SELECT * FROM {STAGED_PREFIX}reconciliation WHERE coverage_year = ?", [year])
        for table in STAGED_TABLES:
            con.execute(f"DROP TABLE {table}")
            con.execute(f"ALTER TABLE {STAGED_PREFIX}{table} RENAME TO {table}")
        for table in DIFFED_TABLES:
            if written is not None:
                written[table] = (0, self.added[table], self.before[table])
        for table in PER_YEAR_TABLES:
            if table not in STAGED_TABLES:
                con.execute(f"DELETE FROM {table} WHERE coverage_year = ?", [year])
        for table in list(frames):
            insert_frame(con, table, frames.pop(table), run_id)
        insert_frame(con, "runs", pl.DataFrame([run_row]), run_id)
        checkpoint("before_commit")
        staged = before_commit(con) if before_commit else None
        checkpoint("commit")
        con.execute("COMMIT")
        self.in_transaction = False
        return staged

    def _abandon(self) -> None:
        try:
            if self.in_transaction:
                self.con.execute("ROLLBACK")
            drop_staged(self.con)
        finally:
            self.con.close()

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self._abandon()
        else:
            self.con.close()


def previous_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".previous")


def keep_previous(db_path: Path) -> None:
    """Copy the last committed database aside before changing it (restore: copy it back).

    Runs under the run lock, when no writer has the file open; the copy is
    made under a temporary name and renamed, so `.previous` is always whole.
    """
    copy_previous(db_path)()


def _previous_temps(db_path: Path) -> tuple[Path, Path]:
    """Where copy_previous copies the database and its WAL (names clean_leftovers removes)."""
    target = previous_path(db_path)
    return target.with_name(f".{target.name}.tmp"), db_path.with_name(f".{db_path.name}.wal.previous.tmp")


def discard_previous_copy(db_path: Path) -> None:
    """Remove a copy_previous copy that will not be put in place (its run failed)."""
    for temp in _previous_temps(db_path):
        temp.unlink(missing_ok=True)


def copy_previous(db_path: Path) -> Callable[[], None]:
    """keep_previous in two steps: copy now (under temporary names), rename into place when the
    returned function is called, so that a run that fails before publishing leaves `.previous` as
    it was (the temporary copies are removed by clean_leftovers)."""
    if not db_path.exists():
        return lambda: None
    target = previous_path(db_path)
    temp, temp_wal = _previous_temps(db_path)
    shutil.copyfile(db_path, temp)
    wal = db_path.with_name(db_path.name + ".wal")
    target_wal = target.with_name(target.name + ".wal")
    if wal.exists():  # an unclean stop left a WAL: keep it with the copy so DuckDB replays it on open
        shutil.copyfile(wal, temp_wal)

    def install() -> None:
        if temp_wal.exists():
            os.replace(temp_wal, target_wal)
        else:
            target_wal.unlink(missing_ok=True)
        os.replace(temp, target)
    return install


def query_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    """A query's whole result as a polars frame (DECIMAL stays Decimal)."""
    return con.sql(sql, params=params or None).pl()
