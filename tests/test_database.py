"""The published DuckDB file as analysts get it (docs/CONTRACT.md "Outputs", "What analysts can rely on").

Nights run as `medins run` in their own processes and sessions are opened in their own processes too:
DuckDB caches the databases a process has open, so a night and a session in one process would share one.
Only the tests that make the disk fail patch the night in this process.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import errno
import hashlib
import importlib.metadata
import io
import json
import os
import queue
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

import pipeline.io.store
from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, write_workbook
from pipeline.cli import app
from pipeline.errors import DatabaseDamagedError, NoPermissionError, NoSpaceError

REPO = Path(__file__).resolve().parents[1]
DUCKDB_CLI = REPO / ".venv" / "bin" / "duckdb"
DUCKDB_CLI_VERSION = "v1.5.6"  # an older client: it cannot read DuckDB's newest storage format
MEDINS = [sys.executable, "-m", "pipeline.cli"]
V1_1_HEADER_VERSION = 64  # what a file in the v1.1 storage format carries in bytes 12..20 of its header
LIBRARIES = ("polars", "pandera", "duckdb", "fastexcel", "xlsxwriter")
SCHEMA = tomllib.loads((REPO / "schemas" / "tables.toml").read_text(encoding="utf-8"))
TABLES = {name: spec for name, spec in SCHEMA.items() if name != "views"}
VIEWS = SCHEMA["views"]
PEOPLE = [make_id("360222", dt.date(1960 + i, 1 + i % 12, 1 + i % 28), i) for i in range(12)]


def readme_example_queries() -> list[tuple[str, str]]:
    """(the comment above it, the SQL) of every query in README.md's "Example queries" section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Example queries", 1)[1]
    section = re.split(r"^#{1,3} ", section, maxsplit=1, flags=re.MULTILINE)[0]
    queries = []
    for block in re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL):
        for statement in filter(str.strip, block.split(";")):
            comments = [line[2:].strip() for line in statement.strip().splitlines() if line.startswith("--")]
            queries.append((comments[0] if comments else statement.strip().splitlines()[0], statement.strip()))
    return queries


EXAMPLE_QUERIES = readme_example_queries()


# --- inputs, nights and files ------------------------------------------------------------


def roster_rows(name_suffix: str = "") -> list[list]:
    """12 residents of 浮梁县, insured last year; every fifth a 城乡低保对象 (subsidised)."""
    people = [
        {
            "序号": i,
            "姓名": f"居民{i}{name_suffix}",
            "证件号码": pid,
            "县(市、区)": "浮梁县",
            "乡镇(街道)": "浮梁镇" if i % 2 else "鹅湖镇",
            "村(社区)": "新平村",
            "人员身份": "城乡低保对象" if i % 5 == 0 else None,
            "上年度参保": "是",
            "参保登记日期": "2025-10-20",
        }
        for i, pid in enumerate(PEOPLE)
    ]
    return [ROSTER_HEADER] + [[person.get(h) for h in ROSTER_HEADER] for person in people]


def payment_rows() -> list[list]:
    # 400 is due in 2026: every third person pays 300 (underpaid, to phone), person 1 pays 500 (to refund)
    amounts = [500 if i == 1 else 300 if i % 3 == 0 else 400 for i in range(len(PEOPLE))]
    return [PAYMENT_HEADER] + [
        [i, f"居民{i}", pid, amounts[i], "2025-11-01", "2026", f"3360000000000000{i:04d}", "微信"]
        for i, pid in enumerate(PEOPLE)
    ]


def run_args(roster: Path, payments: Path, out: Path) -> list[str]:
    """`medins run` for one night of 2026 into out/."""
    files = [f"--roster={roster}", f"--payments={payments}", f"--db={out / 'medins.duckdb'}", f"--out={out}"]
    return ["run", "--coverage-year=2026", "--region=jingdezhen", *files]


def medins_run(cwd: Path, roster: Path, payments: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MEDINS, *run_args(roster, payments, out)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def night_ok(cwd: Path, roster: Path, payments: Path, out: Path) -> None:
    night = medins_run(cwd, roster, payments, out)
    assert night.returncode == 0, night.stderr


def header_version(path: Path) -> int:
    with path.open("rb") as f:
        return struct.unpack("<Q", f.read(20)[12:20])[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def leftovers(out: Path) -> list[str]:
    """Hidden (temporary) files a night left in its folder; the cache of checked rows is meant to stay."""
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".medins-cache")


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def cli(db: Path, sql: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DUCKDB_CLI), *flags, "-csv", str(db), "-c", sql], capture_output=True, text=True, timeout=60
    )


def needs_cli() -> None:
    if not DUCKDB_CLI.exists():
        pytest.skip(
            f"DuckDB CLI missing: install it with `.venv/bin/pip install duckdb-cli=={DUCKDB_CLI_VERSION[1:]}` "
            f"(expected at {DUCKDB_CLI})"
        )


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """Two nights (the second with changed names) into <tmp>/out; also holds the night's inputs."""
    base = tmp_path_factory.mktemp("published")
    write_workbook(base / "roster.xlsx", {"S": roster_rows()})
    write_workbook(base / "roster_changed.xlsx", {"S": roster_rows("改")})
    write_workbook(base / "payments.xlsx", {"S": payment_rows()})
    night_ok(base, base / "roster.xlsx", base / "payments.xlsx", base / "out")
    night_ok(base, base / "roster_changed.xlsx", base / "payments.xlsx", base / "out")
    return base


@pytest.fixture
def copied(published, tmp_path) -> Path:
    """tmp_path/out holding a copy of the published database and its `.previous` (a test may change them)."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("medins.duckdb", "medins.duckdb.previous"):
        shutil.copy2(published / "out" / name, out / name)
    return out


def run_ids(db: Path) -> list[str]:
    return [r[0] for r in query(db, "SELECT run_id FROM runs ORDER BY run_id")]


# --- readable by an older client ---------------------------------------------------------


def test_the_duckdb_cli_is_the_pinned_older_client():
    needs_cli()
    version = subprocess.run([str(DUCKDB_CLI), "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.split()[0] == DUCKDB_CLI_VERSION


def test_the_readme_has_example_queries():
    assert len(EXAMPLE_QUERIES) >= 5, EXAMPLE_QUERIES


@pytest.mark.parametrize("sql", [q for _, q in EXAMPLE_QUERIES], ids=[name for name, _ in EXAMPLE_QUERIES])
def test_each_readme_example_query_runs_in_the_older_cli_read_only(published, sql):
    needs_cli()
    answer = cli(published / "out" / "medins.duckdb", sql, "-readonly")
    assert (answer.returncode, answer.stderr) == (0, ""), sql
    assert answer.stdout.splitlines(), "no header line: the query returned nothing"


@pytest.mark.parametrize("view", list(VIEWS))
def test_each_chinese_view_runs_in_the_older_cli_read_only(published, view):
    needs_cli()
    answer = cli(published / "out" / "medins.duckdb", f'SELECT * FROM "{view}"', "-readonly")
    assert (answer.returncode, answer.stderr) == (0, "")
    assert next(csv.reader(io.StringIO(answer.stdout)))[0] == "待遇年度"


def test_the_header_says_storage_version_64_which_duckdb_1_1_3_reads(published):
    assert header_version(published / "out" / "medins.duckdb") == V1_1_HEADER_VERSION


def test_a_night_leaves_no_wal_and_no_temporary_file(published):
    out = published / "out"
    assert not (out / "medins.duckdb.wal").exists()
    assert leftovers(out) == []


# --- comments and library versions -------------------------------------------------------


def test_every_table_and_column_has_a_comment_and_money_comments_say_yuan(published):
    db = published / "out" / "medins.duckdb"
    tables = dict(query(db, "SELECT table_name, comment FROM duckdb_tables()"))
    assert {t: tables.get(t) for t in TABLES if not tables.get(t)} == {}, "tables missing or without a comment"
    columns = query(
        db,
        "SELECT table_name, column_name, comment, data_type FROM duckdb_columns() "
        f"WHERE table_name IN ({', '.join(repr(t) for t in TABLES)})",
    )
    assert [(t, c) for t, c, comment, _ in columns if not (comment or "").strip()] == []
    found = {(t, c) for t, c, _, _ in columns}
    assert [(t, c[0]) for t, spec in TABLES.items() for c in spec["columns"] if (t, c[0]) not in found] == []
    money = {(t, c[0]) for t, spec in TABLES.items() for c in spec["columns"] if c[1] == "MONEY"}
    assert money, "tables.toml declares no MONEY column"
    assert [(t, c, comment) for t, c, comment, _ in columns if (t, c) in money and "元" not in comment] == []
    assert [
        (t, c, data_type) for t, c, _, data_type in columns if (t, c) in money and data_type != "DECIMAL(14,2)"
    ] == []


def test_the_chinese_views_exist_with_comments(published):
    views = dict(
        query(published / "out" / "medins.duckdb", "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal")
    )
    assert {v: views.get(v) for v in VIEWS} == {v: spec["comment"] for v, spec in VIEWS.items()}


def test_runs_name_the_installed_library_versions(published):
    installed = {name: importlib.metadata.version(name) for name in LIBRARIES}
    rows = query(published / "out" / "medins.duckdb", "SELECT run_id, library_versions FROM runs ORDER BY run_id")
    assert len(rows) == 2
    for run_id, versions in rows:
        named = json.loads(versions)
        assert {name: named.get(name) for name in LIBRARIES} == installed, run_id


# --- sessions never block a night ----------------------------------------------------------

ANALYST_PY = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
while sql := sys.stdin.readline():
    print(con.execute(sql).fetchone()[0], flush=True)
"""
SESSIONS = {
    "duckdb CLI read-write (its default)": ("cli", []),
    "duckdb CLI -readonly": ("cli", ["-readonly"]),
    "python duckdb.connect(read_only=True)": ("python", []),
}
RUN_IDS_SQL = "SELECT string_agg(run_id, ' ' ORDER BY run_id) FROM runs;"


class Session:
    """An analyst's session in its own process: one statement a line in, one value a line out."""

    def __init__(self, kind: str, flags: list[str], db: Path) -> None:
        argv = (
            [str(DUCKDB_CLI), *flags, "-csv", "-noheader", str(db)]
            if kind == "cli"
            else [sys.executable, "-c", ANALYST_PY, str(db)]
        )
        # its own process group: the CLI is a Python wrapper around the duckdb binary
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr  # all three piped above
        self.to_session, self.from_session, self.errors = self.proc.stdin, self.proc.stdout, self.proc.stderr
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.from_session:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def ask(self, sql: str) -> str:
        with contextlib.suppress(BrokenPipeError):
            self.to_session.write(sql + "\n")
            self.to_session.flush()
        try:
            line = self.lines.get(timeout=30)
        except queue.Empty:
            line = None
        if line is None:
            self.close()
            raise AssertionError(f"the session gave no answer to {sql!r}: {self.stderr}")
        return line

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.to_session.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.stderr = self.errors.read()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_) -> None:
        if self.proc.returncode is None:
            self.close()


@pytest.mark.parametrize("session", list(SESSIONS))
def test_an_open_session_does_not_block_a_night_and_keeps_the_previous_night(published, copied, session):
    kind, flags = SESSIONS[session]
    if kind == "cli":
        needs_cli()
    db = copied / "medins.duckdb"
    before = run_ids(db)
    with Session(kind, flags, db) as old:
        assert old.ask(RUN_IDS_SQL).split() == before
        night_ok(published, published / "roster.xlsx", published / "payments.xlsx", copied)
        # the old session still answers, from the night it opened (until it reconnects)
        assert old.ask(RUN_IDS_SQL).split() == before
        with Session(kind, flags, db) as new:
            now = new.ask(RUN_IDS_SQL).split()
        assert now[: len(before)] == before and len(now) == len(before) + 1
        previous = digest(copied / "medins.duckdb.previous")
        old.close()
        assert old.proc.returncode == 0, old.stderr
    assert digest(copied / "medins.duckdb.previous") == previous, "closing the old session changed .previous"
    assert not (copied / "medins.duckdb.wal").exists()
    assert leftovers(copied) == []
    assert run_ids(db) == now


def test_a_write_into_the_published_file_is_discarded_by_the_next_night(published, copied):
    """Writing into the published file is not supported (README "For the analyst"): a read-write
    session opened before a night that then writes leaves a WAL beside the new file, which later
    sessions replay; the next night starts from the published file without it, discards it, and
    publishes its own rows only."""
    needs_cli()
    db = copied / "medins.duckdb"
    with Session("cli", [], db) as old:
        assert old.ask("SELECT count(*) FROM runs;") == "2"
        night_ok(published, published / "roster.xlsx", published / "payments.xlsx", copied)
        # an analyst corrects a name in the session opened on the previous night
        assert (
            old.ask(
                "UPDATE determinations SET name = '更正' WHERE rowid < 3; "
                "SELECT count(*) FROM determinations WHERE name = '更正';"
            )
            == "3"
        )
    night_ok(published, published / "roster.xlsx", published / "payments.xlsx", copied)
    assert not (copied / "medins.duckdb.wal").exists()
    with Session("cli", ["-readonly"], db) as new:
        seen = (
            new.ask("SELECT count(*) FROM runs;"),
            new.ask("SELECT count(*) FROM determinations WHERE name = '更正';"),
        )
    assert seen == ("4", "0")


# --- a damaged or foreign file at the published path ---------------------------------------


def test_a_text_file_at_the_published_path_exits_7_and_is_left_as_it_was(published, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    db = out / "medins.duckdb"
    db.write_text("身份证号,姓名\n这不是数据库 / not a database\n", encoding="utf-8")
    before = digest(db)
    night = medins_run(tmp_path, published / "roster.xlsx", published / "payments.xlsx", out)
    assert night.returncode == DatabaseDamagedError.exit_code == 7
    line = one_line(night.stderr)
    assert line.startswith("错误 / error: ") and f"database file {db} is damaged or not a DuckDB file" in line
    assert "no copy to restore" in line
    assert digest(db) == before
    assert leftovers(out) == []


def test_a_duckdb_file_truncated_to_half_exits_7_naming_the_previous_copy(published, copied, tmp_path):
    db, previous = copied / "medins.duckdb", copied / "medins.duckdb.previous"
    os.truncate(db, db.stat().st_size // 2)
    before = {p.name: digest(p) for p in (db, previous)}
    night = medins_run(tmp_path, published / "roster.xlsx", published / "payments.xlsx", copied)
    assert night.returncode == DatabaseDamagedError.exit_code == 7
    line = one_line(night.stderr)
    assert f"database file {db} is damaged or not a DuckDB file" in line
    assert f"the last good copy is {previous}: with no run going, `cp {previous} {db}` restores it" in line
    assert {p.name: digest(p) for p in (db, previous)} == before
    assert leftovers(copied) == []


# --- the disk refuses: nothing published, the published file as it was -------------------------


def refuse_publish_rename(monkeypatch, db: Path) -> None:
    """Disk full when the night's copy is renamed onto the published name (and only then)."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).resolve() == db.resolve():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(pipeline.io.store.os, "replace", replace)


def refuse_work_copy(monkeypatch, db: Path) -> None:
    """No permission when the published file is copied to the night's private copy."""
    real = shutil.copyfile

    def copyfile(src, dst, *args, **kwargs):
        if Path(src).resolve() == db.resolve():
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(pipeline.io.store.shutil, "copyfile", copyfile)


FAILURES = {  # how, the exit code, the message (pipeline/io/machine.py) as a pattern with {out} for the folder
    "disk full at the publish rename": (
        refuse_publish_rename,
        NoSpaceError.exit_code,
        r"磁盘空间不足（可用 [0-9.]+ MB，约需 \d+ MB；发布数据库时），本次未发布，已发布的文件未改动 / no space left on "
        r"device: {out} \(free [0-9.]+ MB, about \d+ MB needed\) while writing the published database and its "
        r"\.previous; the night was not published, the published files are untouched",
    ),
    "permission denied copying the published file": (
        refuse_work_copy,
        NoPermissionError.exit_code,
        r"没有写入权限（复制数据库）：{out}，权限 drwx------，属主 \S+，运行用户 .+；本次未发布，已发布的文件未改动 / "
        r"cannot write the night's copy of the database in {out}: permission drwx------, owner \S+, running as .+; "
        r"the night was not published, the published files are untouched",
    ),
}


def fail_a_night(published: Path, tmp_path: Path, monkeypatch, failure: str):
    """A copy of the published outputs, their digests, and the result of a night (the CLI in this process)
    whose disk refuses as `failure` says."""
    out = tmp_path / "out"
    shutil.copytree(published / "out", out)
    db = out / "medins.duckdb"
    before = {p.name: digest(p) for p in out.iterdir() if p.is_file() and not p.name.endswith(".lock")}
    with monkeypatch.context() as patched:
        FAILURES[failure][0](patched, db)
        result = CliRunner().invoke(app, run_args(published / "roster.xlsx", published / "payments.xlsx", out))
    return out, db, before, result


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_night_that_cannot_write_exits_9_or_10_and_leaves_the_published_outputs(
    published, tmp_path, monkeypatch, failure
):
    out, db, before, result = fail_a_night(published, tmp_path, monkeypatch, failure)
    _, code, pattern = FAILURES[failure]
    assert result.exit_code == code, result.output
    assert re.fullmatch("错误 / error: " + pattern.format(out=re.escape(str(out))), one_line(result.output))
    assert digest(db) == before["medins.duckdb"]
    assert {name: digest(out / name) for name in before if name.endswith(".xlsx")} == {
        name: h for name, h in before.items() if name.endswith(".xlsx")
    }
    assert len(run_ids(db)) == 2


@pytest.mark.parametrize(
    "failure",
    ["disk full at the publish rename", "permission denied copying the published file"],
)
def test_a_night_that_cannot_write_leaves_no_temporary_file(published, tmp_path, monkeypatch, failure):
    out, _, _, result = fail_a_night(published, tmp_path, monkeypatch, failure)
    assert result.exit_code == FAILURES[failure][1], result.output
    assert leftovers(out) == []


# --- a database in the newest storage format -----------------------------------------------


def test_a_night_on_a_newest_format_file_writes_version_64_and_keeps_the_earlier_runs(published, copied):
    db = copied / "medins.duckdb"
    earlier = run_ids(db)
    newest = copied / "newest.duckdb"
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{db}' AS old (READ_ONLY)")
        con.execute(f"ATTACH '{newest}' AS new (STORAGE_VERSION 'latest')")
        con.execute("COPY FROM DATABASE old TO new")
    finally:
        con.close()
    os.replace(newest, db)
    assert header_version(db) != V1_1_HEADER_VERSION
    night_ok(published, published / "roster.xlsx", published / "payments.xlsx", copied)
    assert header_version(db) == V1_1_HEADER_VERSION
    now = run_ids(db)
    assert now[: len(earlier)] == earlier and len(now) == len(earlier) + 1
    assert query(db, "SELECT count(*) FROM duckdb_views() WHERE NOT internal") == [(len(VIEWS),)]
    if DUCKDB_CLI.exists():
        answer = cli(db, "SELECT count(*) AS n FROM runs", "-readonly")
        assert (answer.returncode, answer.stdout.split()) == (0, ["n", str(len(now))]), answer.stderr
