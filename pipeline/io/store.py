"""DuckDB: a night's tables written in one transaction into a private copy, then published at once.

The published file (`out/medins.duckdb`) is never opened for writing. A night
copies it to `.medins.duckdb.night.tmp` (while the inputs are read), writes
there, commits, checkpoints (no `.wal` is left), and `publish_database` puts
the copy in place with one rename, after keeping the old file as
`.previous`. A session an analyst left open keeps reading the old file until
it reconnects; nothing the analyst holds can lock the night out. The file is
written in DuckDB's v1.1 storage format, which every client from DuckDB 1.1
on reads (docs/CONTRACT.md "Outputs").

The night's writer (`NightWriter`, the same for a night in one piece and a
night in partitions) replaces the rows of its coverage year and leaves other
years alone; `runs` and `status_changes` keep every run. Money arrives as
integer fen (`<column>_fen`) and is stored as exact DECIMAL(14,2) yuan.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from pipeline.errors import DatabaseDamagedError, DatabaseWriteError, InputFileError, MedinsError, RunLockedError
from pipeline.faults import checkpoint, disk_full
from pipeline.io.machine import kind_of, write_error
from pipeline.io.progress_sql import insert_progress
from pipeline.io.tables import LOW_CARDINALITY, MONEY, PER_YEAR_TABLES, RETIRED_COLUMNS, TABLES, VIEWS
from schemas.outputs import check_output

# slices of whole row groups (DuckDB writes 122,880 rows a group): no part-filled group to merge
INSERT_SLICE_ROWS = 8 * 122_880
ROW_HASH, KEY_HASH = "row_hash", "key_hash"
STORAGE_VERSION = "v1.1.0"  # the storage format DuckDB 1.1 and every later client reads
_HEADER_VERSION_V1_1 = 64  # the version number such a file carries in its header
_CATALOG = "night"
# A row a night deletes stays in its row group, marked, until a checkpoint vacuums the group, which
# rewrites the table: 2 % of a 1M-row table's rows changed cost that checkpoint 1.4 s more and the file
# 30 MB more (benchmarks/README.md). A night's checkpoint vacuums only once the deleted rows the
# per-year tables carry pass this share of their live rows; until then they cost a little space.
VACUUM_DEAD_SHARE = 0.10


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


_WRITE = ("写数据库", "the night's database")


def _write_error(e: OSError | duckdb.Error, db_path: Path, what: tuple[str, str] = _WRITE) -> MedinsError:
    """Disk full (NoSpaceError) or no permission (NoPermissionError) in the database's folder, by
    pipeline/io/machine.py; any other failure to write it, DatabaseWriteError."""
    typed = write_error(e, db_path.parent, *what)
    if typed is not None:
        return typed
    text = (str(e).strip().splitlines() or [""])[0][:200]
    return DatabaseWriteError(
        f"写入失败（{type(e).__name__}: {text}）：本次结果未发布，已发布的数据库未改动 / write failed "
        f"({type(e).__name__}: {text}): the night was not published, {db_path} is untouched: {db_path.parent}"
    )


@contextmanager
def writing(db_path: Path, what: tuple[str, str] = _WRITE) -> Iterator[None]:
    """Disk full, no permission or another failure of the machine while writing the night's copy or
    publishing it: one clear line. DuckDB says a full disk as text, in whichever exception the
    statement raised (an IOException, or a TransactionException from the COMMIT)."""
    try:
        yield
    except (OSError, duckdb.Error) as e:
        io = isinstance(e, OSError | duckdb.IOException | duckdb.PermissionException)
        if not io and kind_of(e) is None:
            raise
        raise _write_error(e, db_path, what) from None


def prepare_work_copy(db_path: Path) -> Path:
    """Copy the published database to the night's private file (none yet: the night starts empty).
    A file that is not a DuckDB database is refused here, before anything is written."""
    work = work_path(db_path)
    work.unlink(missing_ok=True)
    if not db_path.exists():
        return work
    _check_header(db_path)
    with writing(db_path, ("复制数据库", "the night's copy of the database")):
        disk_full("database_copy", work)
        shutil.copyfile(db_path, work)
    return work


def _check_header(db_path: Path) -> None:
    with db_path.open("rb") as f:
        head = f.read(4096)
    if len(head) < 4096 or head[8:12] != b"DUCK":
        raise _damaged(db_path, "已损坏或不是DuckDB数据库")


@contextmanager
def reading(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The published database open read-only while the block runs (`medins explain`). A file that is
    not a DuckDB database, or that DuckDB finds damaged opening or reading it, is refused as the
    night refuses it (DatabaseDamagedError, naming the copy to restore); a file another program holds
    open for writing is said to be in use, never called damaged."""
    if not db_path.exists():
        raise InputFileError(
            f"找不到数据库，请先运行 medins run / database not found, run `medins run` first: {db_path}"
        )
    _check_header(db_path)
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.Error as e:
        if "lock" in str(e):
            raise RunLockedError(
                f"数据库正被其他程序以可写方式打开，请关闭后重试 / the database is open for writing in another "
                f"program: close it and try again: {db_path}"
            ) from None
        raise _damaged(db_path, "已损坏（无法打开）") from None
    try:
        yield con
    except (duckdb.ProgrammingError, duckdb.DataError):
        raise  # a query of ours, not the file
    except duckdb.Error:
        raise _damaged(db_path, "已损坏（无法打开）") from None
    finally:
        con.close()


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
        if isinstance(e, OSError) or kind_of(e) is not None:
            raise _write_error(e, db_path) from None
        raise _damaged(db_path, "已损坏（无法打开）") from None
    except duckdb.Error:
        raise _damaged(db_path, "已损坏（无法打开）") from None
    try:
        # Row order inside a table carries no meaning (every report and query orders explicitly);
        # letting DuckDB write row groups in any order halves the insert at 1M rows.
        con.execute("SET preserve_insertion_order = false")
        ensure_tables(con)
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
    with writing(db_path, ("发布数据库", "the published database and its .previous")):
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
    since (tables are only ever extended); put every comment in place (those that differ)."""
    for table in TABLES.values():
        con.execute(table.ddl())
        have = dict(
            con.execute(
                "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = ?"
                " AND database_name = current_database()",
                [table.name],
            ).fetchall()
        )
        for column in table.columns:
            if column.name not in have:
                con.execute(f"ALTER TABLE {table.name} ADD COLUMN {column.definition.replace(' PRIMARY KEY', '')}")
        for retired in RETIRED_COLUMNS.get(table.name, ()):
            if retired in have:  # a column an earlier version kept for itself (never part of the contract)
                con.execute(f'ALTER TABLE {table.name} DROP COLUMN "{retired}"')
        con.execute(f"COMMENT ON TABLE {table.name} IS {_quote(table.comment)}")
        for column in table.columns:
            if have.get(column.name) != column.comment:
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


def _stored_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """The rows a table's row groups hold as committed, deleted ones included."""
    sql = (
        f"SELECT coalesce(sum(count), 0) FROM pragma_storage_info({_quote(table)})"
        " WHERE column_id = 0 AND segment_type <> 'VALIDITY'"
    )
    return int(con.execute(sql).fetchall()[0][0])


def _live_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


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


def query_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    """A query's whole result as a polars frame (DECIMAL stays Decimal)."""
    return con.sql(sql, params=params or None).pl()


def with_row_hash(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """The frame with `row_hash` (of every column the table stores from it, text compared as text) and
    `key_hash` (of the columns naming the row: its file, sheet and row, or the person)."""
    t = TABLES[table]
    content = frame.select(t.frame_columns).with_columns(pl.col(pl.Categorical).cast(pl.Utf8))
    return frame.with_columns(
        content.hash_rows(seed=0).alias(ROW_HASH),
        content.select(t.key_frame_columns).hash_rows(seed=0).alias(KEY_HASH),
    )


class NightWriter:
    """Writes one night of one coverage year into the night's copy of the database, in one
    transaction: the year's rows of every per-year table are replaced, other years' stay; `runs`,
    `status_changes` and `collection_progress` keep every run's.

    The big per-person tables (`incremental` in the registry) keep the year's rows that tonight gives
    again unchanged: a row stays when a row of tonight's frame has the same key and the same content
    (`key_hash` and `row_hash`, 64-bit hashes; a wrong match needs the row's own hash to collide, about
    2^-64 per changed row); only the others are inserted. The year's old hashes are read once, so the
    partitions of a night, whatever their number, are compared with all of them alike.

    `add(table, frame)` writes a partition's rows of a per-person table; `finish` inserts the night's
    small tables, records the status changes (the year's rows that go against those that come),
    deletes the year's rows of earlier runs but the kept ones and re-stamps those with the run, checks
    the totals (`audit`), writes the collection-progress snapshot of `data_date` and the not-renewed
    rows (pipeline/io/progress_sql.py), adds the run and commits, the checkpoint vacuuming only once the
    deleted rows pass `VACUUM_DEAD_SHARE`. `written`: per per-person table, (rows kept, rows written,
    rows deleted). A failure before the commit leaves the night's copy unpublished, so the published
    file is as it was.
    """

    def __init__(
        self, con: duckdb.DuckDBPyConnection, coverage_year: int, run_id: str, db_path: Path, data_date: dt.date
    ) -> None:
        self.con, self.coverage_year, self.run_id = con, coverage_year, run_id
        self.db_path, self.data_date = db_path, data_date
        self.written: dict[str, tuple[int, int, int]] = {}
        con.execute("BEGIN TRANSACTION")
        self.old = {
            # a row without hashes (written before they were kept) matches nothing: it goes
            name: query_frame(
                con, f"SELECT rowid AS __rowid, {KEY_HASH}, {ROW_HASH} FROM {name} WHERE {t.year} = ?", [coverage_year]
            )
            for name, t in TABLES.items()
            if t.incremental
        }
        # every old row of the year (`old` may lose rows alike in key and content in `_match`): those not
        # kept go
        self.year_rows = {name: old["__rowid"] for name, old in self.old.items()}
        self.dead_before = sum(_stored_rows(con, table) - _live_rows(con, table) for table in PER_YEAR_TABLES)
        self.kept: dict[str, list[pl.Series]] = {name: [] for name in self.old}

    def add(self, table: str, frame: pl.DataFrame) -> None:
        check_output(table, frame)
        if table in self.old:
            frame = with_row_hash(frame, table)
            match = self._match(table, frame.select(KEY_HASH, ROW_HASH))
            same = match.is_not_null()
            self.kept[table].append(match.filter(same))
            frame = frame.filter(~same)
        kept, added, _ = self.written.get(table, (0, 0, 0))
        self.written[table] = (kept + (len(self.kept[table][-1]) if table in self.old else 0), added + frame.height, 0)
        with writing(self.db_path):  # its own: the partitions' scratch is written between these
            disk_full("database_write", self.db_path)
            insert_frame(self.con, table, frame, self.run_id)

    def _match(self, table: str, hashes: pl.DataFrame) -> pl.Series:
        """Per row of `hashes`, the rowid of the year's old row with the same key and content, or null."""
        match = hashes.join(self.old[table], on=[KEY_HASH, ROW_HASH], how="left", maintain_order="left")
        if match.height != hashes.height:
            # old rows alike in key and content (none this version writes): one of them stays, the others go
            self.old[table] = self.old[table].unique([KEY_HASH, ROW_HASH], keep="first", maintain_order=True)
            match = hashes.join(self.old[table], on=[KEY_HASH, ROW_HASH], how="left", maintain_order="left")
        return match["__rowid"]

    def _register_kept(self) -> None:
        """Of each incremental table, the year's old rows that go tonight (not kept), as a temporary
        table `__gone_<table>` of their rowids."""
        for table, parts in self.kept.items():
            kept = pl.concat([pl.Series("__rowid", [], dtype=pl.Int64), *[p.cast(pl.Int64) for p in parts]])
            rows = self.year_rows[table].cast(pl.Int64)
            gone = rows.filter(~rows.is_in(kept.implode()))
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE __gone_{table} (__rowid BIGINT)")
            with _registered(self.con, "__rows", gone.alias("__rowid").to_frame()):
                self.con.execute(f"INSERT INTO __gone_{table} SELECT __rowid FROM __rows")

    def _insert_status_changes(self) -> None:
        """The persons whose status differs between the year's reconciliation rows that go (of earlier
        runs, not kept tonight) and those that come (written tonight); a kept row has not changed.
        Nothing to compare on a year's first run."""
        columns = ", ".join(TABLES["status_changes"].column_names)
        self.con.execute(
            f"""
            INSERT INTO status_changes ({columns})
            WITH before AS (SELECT rowid AS __rowid, * FROM reconciliation WHERE coverage_year = $year
                              AND run_id <> $run),
                 o AS (SELECT * FROM before WHERE __rowid IN (SELECT __rowid FROM __gone_reconciliation)),
                 n AS (SELECT * FROM reconciliation WHERE coverage_year = $year AND run_id = $run)
            SELECT $run, $year, coalesce(n.id_number, o.id_number), coalesce(n.name, o.name),
                   coalesce(n.county, o.county), coalesce(n.township, o.township), o.run_id, o.status, n.status,
                   o.amount_diff, n.amount_diff
            FROM o FULL OUTER JOIN n ON n.id_number = o.id_number
            WHERE o.status IS DISTINCT FROM n.status AND EXISTS (SELECT 1 FROM before)""",
            {"year": self.coverage_year, "run": self.run_id},
        )

    def _replace_year(self, table: str, column: str) -> int:
        """Delete the year's rows of earlier runs (of an incremental table: those not kept tonight), then
        stamp the kept ones with the run; the rows deleted."""
        con, args = self.con, [self.coverage_year, self.run_id]
        if table not in self.kept:
            deleted = con.execute(f"DELETE FROM {table} WHERE {column} = ? AND run_id IS DISTINCT FROM ?", args)
            return int((deleted.fetchone() or (0,))[0])
        deleted = con.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT __rowid FROM __gone_{table})")
        gone = int((deleted.fetchone() or (0,))[0])
        con.execute(
            f"UPDATE {table} SET run_id = ? WHERE {column} = ? AND run_id IS DISTINCT FROM ?", [self.run_id, *args]
        )
        con.execute(f"DROP TABLE __gone_{table}")
        return gone

    def _choose_vacuum(self, deleted: int) -> None:
        """Whether tonight's checkpoint vacuums (VACUUM_DEAD_SHARE): the deleted rows the per-year
        tables carry after tonight's deletes against their live rows."""
        live = sum(_live_rows(self.con, table) for table in PER_YEAR_TABLES)
        if self.dead_before + deleted > VACUUM_DEAD_SHARE * live:
            self.con.execute("RESET max_vacuum_tasks")
        else:
            self.con.execute("SET max_vacuum_tasks = 0")

    def finish(
        self, run_row: dict, frames: dict[str, pl.DataFrame], audit: Callable[[duckdb.DuckDBPyConnection], None]
    ) -> None:
        """`audit`: the checks of tonight's rows that must hold before the commit (pipeline/io/audit.py)."""
        con, year = self.con, self.coverage_year
        for table in list(frames):
            insert_frame(con, table, frames.pop(table), self.run_id)
        self._register_kept()
        self._insert_status_changes()
        deleted = 0
        for table, column in PER_YEAR_TABLES.items():
            gone = self._replace_year(table, column)
            deleted += gone
            if table in self.written:
                kept, added, _ = self.written[table]
                self.written[table] = (kept, added, gone)
        self._choose_vacuum(deleted)
        audit(con)
        insert_progress(con, year, self.data_date, self.run_id)
        insert_frame(con, "runs", pl.DataFrame([run_row]), self.run_id)
        checkpoint("before_commit")
        con.execute("COMMIT")
        checkpoint("commit")
