"""DuckDB: a night's tables written in one transaction into a private copy, then published at once.

The published file (`out/medins.duckdb`) is never opened for writing. A night
copies it to `.medins.duckdb.night.tmp` (while the inputs are read), writes
there, commits, checkpoints (no `.wal` is left), and `publish_database` puts
the copy in place with one rename, after keeping the old file as
`.previous`. A session an analyst left open keeps reading the old file until
it reconnects; nothing the analyst holds can lock the night out. The file is
written in DuckDB's v1.1 storage format, which every client from DuckDB 1.1
on reads (docs/CONTRACT.md "Outputs").

A night's writer (`DiffedWriter` for a night in one piece, `StagedWriter` for
a night in partitions) replaces the rows of its coverage year and leaves
other years alone; `runs` and `status_changes` keep every run. Money arrives
as integer fen (`<column>_fen`) and is stored as exact DECIMAL(14,2) yuan.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb
import polars as pl
import pyarrow as pa

from pipeline.errors import DatabaseDamagedError, DatabaseWriteError
from pipeline.faults import checkpoint
from pipeline.io.tables import (
    DIFFED_TABLES,
    LOW_CARDINALITY,
    MONEY,
    PER_YEAR_TABLES,
    ROW_KEYS,
    STAGED_TABLES,
    TABLES,
    VIEWS,
)

T = TypeVar("T")

INSERT_SLICE_ROWS = 500_000
STORAGE_VERSION = "v1.1.0"  # the storage format DuckDB 1.1 and every later client reads
_HEADER_VERSION_V1_1 = 64  # the version number such a file carries in its header
_CATALOG = "night"
STAGED_PREFIX = "__next_"
# DuckDB's memory while a night in partitions writes (its own cache; the staged tables are on disk).
WRITER_MEMORY_LIMIT = "1GB"
ROW_HASH, KEY_HASH = "row_hash", "key_hash"


# --- files -------------------------------------------------------------------------------


def previous_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".previous")


def work_path(db_path: Path) -> Path:
    """The night's private copy (a hidden name in the same folder, removed by clean_leftovers)."""
    return db_path.with_name(f".{db_path.name}.night.tmp")


def _damaged(db_path: Path, what: str) -> DatabaseDamagedError:
    previous = previous_path(db_path)
    restore = (
        f"上一次完好的数据库是 {previous}，确认没有运行后执行 cp {previous} {db_path} 恢复 / the last good copy is "
        f"{previous}: with no run going, `cp {previous} {db_path}` restores it"
        if previous.exists()
        else "没有可恢复的副本，移走该文件后重新运行将新建数据库 / no copy to restore: move the file away and "
        "the next run builds a new database"
    )
    return DatabaseDamagedError(
        f"数据库文件{what} / database file {db_path} is damaged or not a DuckDB file; {restore}"
    )


def _write_error(e: OSError | duckdb.Error, db_path: Path) -> DatabaseWriteError:
    text = str(e)
    if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left" in text:
        why = "磁盘空间不足 / no space left on the disk"
    elif isinstance(e, PermissionError) or "Permission denied" in text or "Read-only" in text:
        why = "没有写入权限 / no permission to write"
    else:
        why = f"写入失败 / write failed ({type(e).__name__})"
    return DatabaseWriteError(
        f"{why}：本次结果未发布，已发布的数据库未改动 / the night was not published, "
        f"{db_path} is untouched: {db_path.parent}"
    )


@contextmanager
def writing(db_path: Path) -> Iterator[None]:
    """Disk full or no permission while writing the night's copy or publishing it: one clear line."""
    try:
        yield
    except (OSError, duckdb.IOException, duckdb.PermissionException) as e:
        raise _write_error(e, db_path) from None


def prepare_work_copy(db_path: Path) -> Path:
    """Copy the published database to the night's private file (none yet: the night starts empty).
    A file that is not a DuckDB database is refused here, before anything is written."""
    work = work_path(db_path)
    work.unlink(missing_ok=True)
    if not db_path.exists():
        return work
    with db_path.open("rb") as f:
        head = f.read(4096)
    if len(head) < 4096 or head[8:12] != b"DUCK":
        raise _damaged(db_path, "已损坏或不是DuckDB数据库")
    with writing(db_path):
        shutil.copyfile(db_path, work)
    return work


def _header_version(path: Path) -> int:
    with path.open("rb") as f:
        head = f.read(20)
    return struct.unpack("<Q", head[12:20])[0] if len(head) >= 20 else 0


def _attach(con: duckdb.DuckDBPyConnection, path: Path, alias: str, *, read_only: bool = False) -> None:
    quoted = str(path).replace("'", "''")
    option = "READ_ONLY" if read_only else f"STORAGE_VERSION '{STORAGE_VERSION}'"
    con.execute(f"ATTACH '{quoted}' AS {alias} ({option})")


def _lower_storage(work: Path) -> None:
    """A database written by an earlier version in a newer storage format, copied table by table into
    the v1.1 format (once: later nights keep it)."""
    lowered = work.with_name(work.name + ".v1_1")
    lowered.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        _attach(con, work, "old", read_only=True)
        _attach(con, lowered, "new")
        con.execute("COPY FROM DATABASE old TO new")
    finally:
        con.close()
    os.replace(lowered, work)


def connect_work(db_path: Path, work: Path) -> duckdb.DuckDBPyConnection:
    """The night's copy, open for writing, with the tables, comments and views of tables.py."""
    try:
        if work.exists() and _header_version(work) != _HEADER_VERSION_V1_1:
            _lower_storage(work)
        con = duckdb.connect()
        _attach(con, work, _CATALOG)
        con.execute(f"USE {_CATALOG}")
    except (duckdb.IOException, duckdb.PermissionException, OSError) as e:
        if isinstance(e, OSError) or "No space" in str(e) or "Permission" in str(e):
            raise _write_error(e, db_path) from None
        raise _damaged(db_path, "已损坏（无法打开）") from None
    except duckdb.Error:
        raise _damaged(db_path, "已损坏（无法打开）") from None
    try:
        # Row order inside a table carries no meaning (every report and query orders explicitly);
        # letting DuckDB write row groups in any order halves the insert at 1M rows.
        con.execute("SET preserve_insertion_order = false")
        ensure_tables(con)
        drop_staged(con)  # of a night in partitions that was killed
    except BaseException:
        con.close()
        raise
    return con


def close_work(con: duckdb.DuckDBPyConnection, work: Path) -> None:
    """Checkpoint and close the night's copy: everything in the file, no `.wal` beside it."""
    con.execute(f"CHECKPOINT {_CATALOG}")
    con.execute("USE memory")
    con.execute(f"DETACH {_CATALOG}")
    con.close()
    wal = work.with_name(work.name + ".wal")
    if wal.exists():
        raise DatabaseWriteError(f"数据库检查点未完成 / the night's copy still has a WAL: {wal}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_database(db_path: Path, work: Path) -> None:
    """Put the night's copy in place of the published database in one step (written, synced, renamed);
    the old file becomes `.previous` (a hard link: the same bytes, no copy)."""
    with writing(db_path):
        _fsync(work)
        previous = previous_path(db_path)
        if db_path.exists() and not (previous.exists() and os.path.samefile(db_path, previous)):
            temp = previous.with_name(f".{previous.name}.tmp")
            temp.unlink(missing_ok=True)
            try:
                os.link(db_path, temp)
            except OSError:
                shutil.copyfile(db_path, temp)
            os.replace(temp, previous)
            previous.with_name(previous.name + ".wal").unlink(missing_ok=True)
        checkpoint("publish")
        os.replace(work, db_path)
        # a WAL beside the published name belongs to the file just replaced (a session that wrote into
        # it): it must not be replayed onto the new one
        db_path.with_name(db_path.name + ".wal").unlink(missing_ok=True)
        _fsync(db_path.parent)


# --- tables --------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the tables and views; add to a database made by an earlier version the columns added
    since (tables are only ever extended); put every comment in place."""
    for table in TABLES.values():
        con.execute(table.ddl())
        have = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND database_name = current_database()",
                [table.name],
            ).fetchall()
        }
        for column in table.columns:
            if column.name not in have:
                con.execute(f"ALTER TABLE {table.name} ADD COLUMN {column.definition.replace(' PRIMARY KEY', '')}")
        con.execute(f"COMMENT ON TABLE {table.name} IS {_quote(table.comment)}")
        for column in table.columns:
            con.execute(f'COMMENT ON COLUMN {table.name}."{column.name}" IS {_quote(column.comment)}')
    for view in VIEWS.values():
        con.execute(f'CREATE OR REPLACE VIEW "{view.name}" AS {view.sql}')
        con.execute(f'COMMENT ON VIEW "{view.name}" IS {_quote(view.comment)}')


def _select_list(table: str, frame_cols: list[str], run_id: str, fill_missing: bool = True) -> str:
    """The table's columns from a frame's (fen -> yuan; the run's id where the frame has none); a
    column the frame lacks is NULL, or left out when not `fill_missing`."""
    money = TABLES[table].money_columns
    parts = []
    for col in TABLES[table].column_names:
        q = f'"{col}"'
        if col == "run_id" and col not in frame_cols:
            parts.append(f"{_quote(run_id)} AS run_id")
        elif col in money and f"{col}_fen" in frame_cols:
            parts.append(f'CAST(CAST("{col}_fen" AS DECIMAL(18,0)) * 0.01::DECIMAL(3,2) AS {MONEY}) AS {q}')
        elif col in frame_cols:
            parts.append(q)
        elif fill_missing:
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


def insert_frame(
    con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, run_id: str, into: str | None = None
) -> None:
    """Insert a polars frame into a table of tables.py (or `into`, a table made like it), converting
    fen to yuan."""
    if frame.height == 0:
        return
    view = f"__new_{table}"
    coded = [c for c, t in frame.schema.items() if c in LOW_CARDINALITY and t == pl.Utf8]
    frame = frame.with_columns(pl.col(coded).cast(pl.Categorical)) if coded else frame
    columns = ", ".join(f'"{c}"' for c in TABLES[table].column_names)
    sql = f"INSERT INTO {into or table} ({columns}) SELECT {_select_list(table, frame.columns, run_id)} FROM {view}"
    # one Arrow slice at a time: the copy is one slice, not the whole table
    for part in frame.iter_slices(INSERT_SLICE_ROWS):
        with _registered(con, view, part):
            con.execute(sql)


def with_row_hash(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """The frame with `row_hash` (64-bit hash of every column it holds; run_id is not among them)
    and `key_hash` (of the columns naming the row, tables.ROW_KEYS)."""
    return frame.with_columns(
        frame.hash_rows(seed=0).alias(ROW_HASH), frame.select(ROW_KEYS[table]).hash_rows(seed=0).alias(KEY_HASH)
    )


def query_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    """A query's whole result as a polars frame (DECIMAL stays Decimal)."""
    return con.sql(sql, params=params or None).pl()


def drop_staged(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the staged tables a killed night in partitions left behind."""
    for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '__next_%' AND database_name = current_database()"
    ).fetchall():
        con.execute(f"DROP TABLE IF EXISTS {name}")


def _status_changes(con: duckdb.DuckDBPyConnection, run_id: str, coverage_year: int, incoming: str) -> pl.DataFrame:
    """The status_changes rows: the persons whose status differs between the year's reconciliation
    rows of the previous run and `incoming` (this run's: id_number, name, county, township, status,
    amount_diff). Nothing to compare on a year's first run."""
    columns = ", ".join(TABLES["status_changes"].column_names)
    return query_frame(
        con,
        f"""
        SELECT {columns} FROM (
            SELECT ? AS run_id, ? AS coverage_year, coalesce(n.id_number, o.id_number) AS id_number,
                   coalesce(n.name, o.name) AS name, coalesce(n.county, o.county) AS county,
                   coalesce(n.township, o.township) AS township, o.run_id AS previous_run_id,
                   o.status AS previous_status, n.status AS status, o.amount_diff AS previous_amount_diff,
                   n.amount_diff AS amount_diff
            FROM (SELECT * FROM reconciliation WHERE coverage_year = ?) o
            FULL OUTER JOIN ({incoming}) n ON n.id_number = o.id_number
            WHERE o.status IS DISTINCT FROM n.status
              AND EXISTS (SELECT 1 FROM reconciliation WHERE coverage_year = ?)
        )""",
        [run_id, coverage_year, coverage_year, coverage_year],
    )


@contextmanager
def memory_database(tables: dict[str, pa.Table], run_id: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB where each Arrow table reads as its table of tables.py, with the columns
    it holds (money in yuan, the run's id): what the workbooks query, without waiting for the night's
    copy to be written. A query of a column left out fails loudly rather than reading NULL."""
    con = duckdb.connect()
    try:
        for table, arrow in tables.items():
            con.register(f"__frame_{table}", arrow)
            select = _select_list(table, arrow.column_names, run_id, fill_missing=False)
            con.execute(f"CREATE VIEW {table} AS SELECT {select} FROM __frame_{table}")
        yield con
    finally:
        con.close()


# --- the night's writers ---------------------------------------------------------------------


@dataclass
class _Diff:
    """What a run changes in one diffed table for its coverage year."""

    table: str
    added: pl.DataFrame  # rows to insert (with row_hash and key_hash)
    gone: pl.DataFrame | None  # __rowid of the rows to delete; None: delete the whole year
    kept: int  # rows left in place (re-stamped with the run)
    before: int  # rows of the year before the run


def _diff(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, coverage_year: int) -> _Diff:
    """Which rows of the year stay, go and come.

    A row stays when a row of tonight's frame has the same row_hash *and* key_hash: the same line
    of the same file, or the same person, with every column equal (a wrong match needs the row's
    own 64-bit hash to collide, about 2^-64 per changed row). Where a row_hash repeats within the
    table or the frame (identical rows), the year is rewritten whole.
    """
    frame = with_row_hash(frame, table)
    old = query_frame(
        con,
        f"SELECT rowid AS __rowid, {ROW_HASH}, {KEY_HASH} FROM {table} WHERE {DIFFED_TABLES[table]} = ?",
        [coverage_year],
    )
    hashed = old.filter(pl.col(ROW_HASH).is_not_null() & pl.col(KEY_HASH).is_not_null())
    if hashed.height == 0 or hashed[ROW_HASH].n_unique() != hashed.height or frame[ROW_HASH].n_unique() != frame.height:
        return _Diff(table, frame, None, 0, old.height)
    # row_hash is unique on both sides: join on it alone, then require the key_hash to agree
    same = (
        frame.select(ROW_HASH, KEY_HASH, pl.int_range(pl.len(), dtype=pl.UInt32).alias("__i"))
        .join(hashed, on=ROW_HASH, how="inner", suffix="__old")
        .filter(pl.col(KEY_HASH) == pl.col(f"{KEY_HASH}__old"))
    )
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


class NightWriter:
    """Writes one night of one coverage year into the night's copy of the database.

    `add(table, frame)` hands over one partition's rows of a per-person table;
    `status_changes()` compares tonight's reconciliation with the year's
    previous one; `finish` writes the rest (small tables, the run) and commits
    in one transaction. `written`: per big table, (rows kept, rows written,
    rows deleted). A failure before the commit leaves the published file as it
    was (the night's copy is simply not published).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, coverage_year: int, run_id: str) -> None:
        self.con, self.coverage_year, self.run_id = con, coverage_year, run_id
        self.written: dict[str, tuple[int, int, int]] = {}

    def add(self, table: str, frame: pl.DataFrame) -> None:
        raise NotImplementedError

    def _replace_per_person_tables(self) -> None:
        raise NotImplementedError

    def status_changes(self) -> pl.DataFrame:
        raise NotImplementedError

    def finish(self, run_row: dict, frames: dict[str, pl.DataFrame]) -> None:
        con, year = self.con, self.coverage_year
        con.execute("BEGIN TRANSACTION")
        self._replace_per_person_tables()
        for table in PER_YEAR_TABLES:
            if table not in STAGED_TABLES:
                con.execute(f"DELETE FROM {table} WHERE coverage_year = ?", [year])
        for table in list(frames):
            insert_frame(con, table, frames.pop(table), self.run_id)
        insert_frame(con, "runs", pl.DataFrame([run_row]), self.run_id)
        checkpoint("before_commit")
        checkpoint("commit")
        con.execute("COMMIT")


class DiffedWriter(NightWriter):
    """A night in one piece: the big tables are rewritten only where rows changed since the year's
    previous run (`_diff`); the others are replaced."""

    def __init__(self, con: duckdb.DuckDBPyConnection, coverage_year: int, run_id: str) -> None:
        super().__init__(con, coverage_year, run_id)
        self.frames: dict[str, pl.DataFrame] = {}

    def add(self, table: str, frame: pl.DataFrame) -> None:
        self.frames[table] = pl.concat([self.frames[table], frame]) if table in self.frames else frame

    def report_frames(self) -> dict[str, pl.DataFrame]:
        """The per-person frames the workbooks read (before `finish` writes and lets them go)."""
        return {t: self.frames[t] for t in ("determinations", "reconciliation", "unmatched_payments")}

    def status_changes(self) -> pl.DataFrame:
        incoming = self.frames["reconciliation"].select(
            "id_number", "name", "county", "township", "status", "amount_diff_fen"
        )
        with _registered(self.con, "__recon_frame", incoming):
            return _status_changes(
                self.con,
                self.run_id,
                self.coverage_year,
                "SELECT id_number, name, county, township, status, "
                f"CAST(CAST(amount_diff_fen AS DECIMAL(18,0)) * 0.01::DECIMAL(3,2) AS {MONEY}) "
                "AS amount_diff FROM __recon_frame",
            )

    def _replace_per_person_tables(self) -> None:
        con, year = self.con, self.coverage_year
        for table in STAGED_TABLES:
            frame = self.frames.pop(table)
            if table in DIFFED_TABLES:
                self.written[table] = _apply(con, _diff(con, table, frame, year), self.run_id, year)
            else:
                con.execute(f"DELETE FROM {table} WHERE coverage_year = ?", [year])
                insert_frame(con, table, frame, self.run_id)
            del frame  # let each table's rows go once written


def _count(con: duckdb.DuckDBPyConnection, sql: str, *params: object) -> int:
    row = con.execute(sql, list(params)).fetchone()
    return int(row[0]) if row else 0


class StagedWriter(NightWriter):
    """A night in partitions: each per-person table is built beside the real one as `__next_<table>`
    (the other years' rows copied first), one committed partition at a time, with DuckDB's memory
    capped (an open transaction keeps its new rows in memory). `finish` puts each staged table in
    place of the real one (DROP, RENAME) and commits. These nights write
    the big tables whole."""

    def __init__(self, con: duckdb.DuckDBPyConnection, coverage_year: int, run_id: str) -> None:
        super().__init__(con, coverage_year, run_id)
        con.execute(f"SET memory_limit = '{WRITER_MEMORY_LIMIT}'")
        self.added = {t: 0 for t in DIFFED_TABLES}
        self.before = {
            t: _count(con, f"SELECT count(*) FROM {t} WHERE {column} = ?", coverage_year)
            for t, column in DIFFED_TABLES.items()
        }
        for table in STAGED_TABLES:
            columns = ", ".join(f'"{c}"' for c in TABLES[table].column_names)
            con.execute(TABLES[table].ddl(STAGED_PREFIX + table))
            con.execute(
                f"INSERT INTO {STAGED_PREFIX}{table} ({columns}) SELECT {columns} FROM {table} "
                f"WHERE {DIFFED_TABLES.get(table, 'coverage_year')} IS DISTINCT FROM ?",
                [coverage_year],
            )

    def add(self, table: str, frame: pl.DataFrame) -> None:
        if table in DIFFED_TABLES:
            frame = with_row_hash(frame, table)
            self.added[table] += frame.height
        insert_frame(self.con, table, frame, self.run_id, into=STAGED_PREFIX + table)

    def status_changes(self) -> pl.DataFrame:
        return _status_changes(
            self.con,
            self.run_id,
            self.coverage_year,
            f"SELECT * FROM {STAGED_PREFIX}reconciliation WHERE coverage_year = {int(self.coverage_year)}",
        )

    def _replace_per_person_tables(self) -> None:
        con = self.con
        for table in STAGED_TABLES:
            con.execute(f"DROP TABLE {table}")
            con.execute(f"ALTER TABLE {STAGED_PREFIX}{table} RENAME TO {table}")
        self.written = {t: (0, self.added[t], self.before[t]) for t in DIFFED_TABLES}
        ensure_tables(con)  # the comments and views of the tables just put in place
