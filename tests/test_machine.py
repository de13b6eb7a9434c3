"""When the machine fails, the message says so: a full disk, a folder that cannot be written, a parser
out of memory or an input changed while read are not a damaged roster (pipeline/io/machine.py).

Every case checks the message, the exit code, that the last published night is byte-identical and
that no scratch file of the failed night is left. A full disk is made for real on a small tmpfs where
the tests may mount one (root); every write point is also reached by an injected ENOSPC
(MEDINS_FAULT_ENOSPC, pipeline/faults.py), which the parser and workbook processes read too.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, run_night, write_workbook
from pipeline.errors import InputChangedError, NoSpaceError
from pipeline.faults import WRITES
from pipeline.io import machine
from pipeline.io.excel_in import read_file, sha256_of
from pipeline.io.isolate import ReadJob, read_isolated
from schemas.headers import load_header_map

PEOPLE = [make_id("360222", dt.date(1960 + i, 1 + i % 12, 1 + i % 28), i) for i in range(8)]
MEDINS = [sys.executable, "-m", "pipeline.cli"]
WHAT = {  # the write each injected point names, as the message says it
    "scratch": "the parsed rows (parser scratch)",
    "cache": "the cache of sheets read",
    "database_copy": "the night's copy of the database",
    "database_write": "the night's database",
    "spill": "a partition's rows (scratch)",
    "workbook": "the workbook 催缴名单_2026.xlsx",  # the first of WORKBOOKS
}
TAIL = "the night was not published, the published files are untouched"


def roster(path: Path, suffix: str = "") -> Path:
    rows = [
        [i, f"居民{i}{suffix}", pid, "浮梁县", "浮梁镇", "新平村", None, "是", None, None, "2025-10-20", None]
        for i, pid in enumerate(PEOPLE)
    ]
    return write_workbook(path, {"S": [ROSTER_HEADER, *rows]})


def payments(path: Path) -> Path:
    rows = [
        [i, f"居民{i}", pid, 400, "2025-11-01", "2026", f"33600000000000{i:06d}", "微信"]
        for i, pid in enumerate(PEOPLE)
    ]
    return write_workbook(path, {"S": [PAYMENT_HEADER, *rows]})


def medins_run(tmp: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Tonight: a changed roster, so the night would change every published file."""
    cmd = [*MEDINS, "run", "--coverage-year", "2026", "--region", "jingdezhen", "--out", str(out)]
    cmd += ["--roster", str(roster(tmp / "roster2.xlsx", "改")), "--payments", str(payments(tmp / "payments.xlsx"))]
    return subprocess.run(
        [*cmd, *extra], capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=tmp, timeout=300
    )


def snapshot(out: Path) -> dict[str, str]:
    """sha256 of every published file of the folder (the lock file aside)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.iterdir())
        if p.is_file() and not p.name.endswith(".lock")
    }


def scratch_left(out: Path) -> list[str]:
    """What a failed night may not leave: its hidden files and folders, the cache's half-stored entries,
    xlsxwriter's temporary files."""
    cache = out / ".medins-cache"
    left = [p.name for p in out.iterdir() if p.name.startswith((".", "tmp")) and p.name != ".medins-cache"]
    return left + ([p.name for p in cache.iterdir() if p.name.startswith(".")] if cache.is_dir() else [])


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """One night published into `out/`: each test fails a second night on a copy of it."""
    tmp = tmp_path_factory.mktemp("published")
    cmd = [*MEDINS, "run", "--coverage-year", "2026", "--region", "jingdezhen", "--out", str(tmp / "out")]
    cmd += ["--roster", str(roster(tmp / "roster.xlsx")), "--payments", str(payments(tmp / "payments.xlsx"))]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=300)
    assert first.returncode == 0, first.stderr
    return tmp / "out"


@pytest.fixture
def out(published, tmp_path) -> Path:
    shutil.copytree(published, tmp_path / "out")
    return tmp_path / "out"


def no_space_line(folder: Path, what: str | None) -> str:
    """The message as a pattern: the free megabytes are measured, the needed ones estimated; `what` the
    write it names (None: any)."""
    return (
        r"错误 / error: 磁盘空间不足（可用 [0-9.]+ MB，约需 \d+ MB；.+时），本次未发布，已发布的文件未改动 / no space left "
        rf"on device: {re.escape(str(folder))} \(free [0-9.]+ MB, about \d+ MB needed\) while writing "
        rf"{re.escape(what) if what else '.+'}; " + re.escape(TAIL)
    )


def assert_failed_cleanly(out: Path, before: dict[str, str]) -> None:
    assert snapshot(out) == before
    assert scratch_left(out) == []


# --- a full disk at each write point (injected) -------------------------------------------------------


@pytest.mark.parametrize("point", [w for w in WRITES if w != "spill"])
def test_a_full_disk_at_each_write_exits_9_naming_the_folder_even_when_skipping_bad_files(out, tmp_path, point):
    before = snapshot(out)
    result = medins_run(tmp_path, out, "--skip-bad-files", env={"MEDINS_FAULT_ENOSPC": point})
    assert result.returncode == NoSpaceError.exit_code == 9, result.stderr
    folder = out / ".medins-cache" if point == "cache" else out
    assert re.fullmatch(no_space_line(folder, WHAT[point]), result.stderr.strip()), result.stderr
    assert "damaged" not in result.stderr and "损坏" not in result.stderr
    assert_failed_cleanly(out, before)


def test_a_full_disk_writing_a_partitions_rows_is_named_with_the_nights_estimate(out, tmp_path, monkeypatch):
    """A night in partitions writes its rows to the scratch folder between the database's inserts."""
    monkeypatch.setenv("MEDINS_FAULT_ENOSPC", "spill")
    before = snapshot(out)
    rosters, pays = roster(tmp_path / "r.xlsx", "改"), payments(tmp_path / "p.xlsx")
    with pytest.raises(NoSpaceError) as failed:
        run_night(2026, "jingdezhen", [str(rosters)], [str(pays)], out / "medins.duckdb", out, partition_rows=3)
    inputs = rosters.stat().st_size + pays.stat().st_size
    assert failed.value.needed == 9 * inputs + (out / "medins.duckdb").stat().st_size + 4 * 1024**2
    assert re.fullmatch(no_space_line(out, WHAT["spill"]), f"错误 / error: {failed.value}")
    assert_failed_cleanly(out, before)


# --- a full disk and a read-only disk for real --------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MB tmpfs; skipped where it cannot be mounted (CI: not root), the injected cases stand."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs, which only root may mount; the injected ENOSPC cases cover it")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); the injected cases cover it")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.parametrize(
    ("spare", "what"),
    [
        (lambda db: 64 * 1024, "the parsed rows (parser scratch)"),  # the first write of the night fails
        # room for the night's copy of the database and the parsed rows, not for tonight's rows in it: DuckDB
        # says so as text, in the COMMIT's or the checkpoint's exception
        (lambda db: db + 1536 * 1024, "the night's database"),
    ],
    ids=["at once", "in the database"],
)
def test_a_disk_that_fills_up_exits_9_and_the_night_runs_once_space_is_freed(
    small_disk, published, tmp_path, spare, what
):
    out = small_disk / "out"
    shutil.copytree(published, out)
    before = snapshot(out)
    filler = small_disk / "filler"
    with filler.open("wb") as f:
        os.posix_fallocate(
            f.fileno(), 0, shutil.disk_usage(small_disk).free - spare((out / "medins.duckdb").stat().st_size)
        )
    result = medins_run(tmp_path, out)
    assert result.returncode == 9, result.stderr
    assert re.fullmatch(no_space_line(out, what), result.stderr.strip()), result.stderr
    assert_failed_cleanly(out, before)
    filler.unlink()
    assert medins_run(tmp_path, out).returncode == 0


def test_a_folder_that_cannot_be_written_exits_10_naming_it_and_why(out, tmp_path):
    before = snapshot(out)
    if os.geteuid() == 0:  # root writes through any mode: a read-only file system instead
        disk = tmp_path / "ro"
        disk.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)]).returncode != 0:
            pytest.skip("root, and cannot mount a tmpfs to make read-only")
        try:
            shutil.copytree(out, disk / "out")
            subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
            result = medins_run(tmp_path, disk / "out")
            why, where = "文件系统只读", disk / "out"
            after = snapshot(where), scratch_left(where)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
        assert after == (before, [])
    else:
        out.chmod(0o500)
        try:
            result = medins_run(tmp_path, out)
            why, where = "权限 dr-x------", out
        finally:
            out.chmod(0o700)
        assert_failed_cleanly(out, before)
    assert result.returncode == 10, result.stderr
    line = result.stderr.strip()
    assert line.startswith("错误 / error: 没有写入权限（") and f"：{where}，{why}" in line, line
    assert line.endswith(TAIL) and "damaged" not in line


# --- memory -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (
            "in_parser",
            "错误 / error: 解析程序被系统终止（SIGKILL），多为内存耗尽：每个解析进程上限 3 GB，可用 --parse-memory-limit "
            "设置 / the parser was killed (SIGKILL), most often by the system running out of memory: limit 3 GB per "
            "parser, set with --parse-memory-limit: {roster}",
        ),
        (
            "in_workbook",
            "错误 / error: 生成报表的进程被系统终止（SIGKILL），多为内存耗尽 / a workbook process was killed (SIGKILL), "
            "most often by the system running out of memory",
        ),
    ],
)
def test_a_child_killed_by_the_system_exits_11_naming_memory(out, tmp_path, point, message):
    before = snapshot(out)
    result = medins_run(tmp_path, out, "--parse-memory-limit", "3", env={"MEDINS_FAULT_AT": point})
    assert result.returncode == 11, result.stderr
    assert result.stderr.strip() == message.format(roster=tmp_path / "roster2.xlsx")
    assert_failed_cleanly(out, before)


# --- an input removed or changed while read -----------------------------------------------------------


def job_of(path: Path) -> ReadJob:
    st = path.stat()
    return ReadJob(path, "roster", sha256_of(path), st.st_size, st.st_mtime_ns)


def test_an_input_removed_after_it_was_hashed_is_named_as_removed_not_damaged(tmp_path):
    path = roster(tmp_path / "r.xlsx")
    job = job_of(path)
    path.unlink()
    with pytest.raises(InputChangedError) as gone:
        read_isolated([job], tmp_path / "scratch")
    assert gone.value.exit_code == 12
    assert str(gone.value) == (
        f"输入文件在读取时被删除或移走，请确认文件后重新运行 / input file removed while being read: check the file "
        f"and run again: {path}"
    )


def test_an_input_rewritten_while_read_is_named_and_skipped_with_skip_bad_files(tmp_path):
    path = roster(tmp_path / "r.xlsx")
    job = job_of(path)
    roster(path, "改")  # the export written again after it was hashed
    message = (
        f"输入文件在读取时被改动，请等导出或复制完成后重新运行 / input file changed while being read: run again when "
        f"the export or copy is complete: {path}"
    )
    with pytest.raises(InputChangedError, match=re.escape(message)):
        read_isolated([job], tmp_path / "scratch")
    sheets, skipped, _ = read_isolated([job], tmp_path / "scratch", skip_bad_files=True)
    assert sheets == [[]] and [(j.path, why) for j, why in skipped] == [(path, message)]


def test_calamine_on_a_vanished_file_is_an_error_of_the_machine_not_a_damaged_file(tmp_path):
    with pytest.raises(Exception) as failed:
        read_file(tmp_path / "gone.xlsx", load_header_map("roster"), "0" * 64, fmt="xlsx")
    assert machine.kind_of(failed.value) == machine.GONE


# --- the classification and the estimate ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), machine.NO_SPACE),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), machine.NO_SPACE),
        (OSError("No space left on device (os error 28)"), machine.NO_SPACE),  # polars
        (
            duckdb.TransactionException(
                'TransactionContext Error: Failed to commit: Could not write file "/x/.m.night.tmp": No space left on '
                "device"
            ),
            machine.NO_SPACE,
        ),
        (PermissionError(errno.EACCES, "Permission denied"), machine.NO_PERMISSION),
        (OSError(errno.EROFS, "Read-only file system"), machine.NO_PERMISSION),
        (ValueError("calamine error: Xlsx error: I/O error: No such file or directory (os error 2)"), machine.GONE),
        (ValueError("calamine error: Xlsx error: Zip error: invalid Zip archive"), None),
        (OSError(errno.EIO, "Input/output error"), None),
    ],
)
def test_errors_of_the_machine_are_told_by_errno_or_by_the_text_a_native_library_gives(error, kind):
    assert machine.kind_of(error) == kind


def test_a_wrapped_error_is_told_by_its_cause():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise RuntimeError("FileCreateError") from e
    except RuntimeError as wrapped:
        assert machine.kind_of(wrapped) == machine.NO_SPACE


def test_the_estimate_counts_only_what_the_night_writes_on_the_full_disks_file_system(tmp_path):
    db = tmp_path / "medins.duckdb"
    db.write_bytes(b"\0" * 3_000_000)
    assert machine.night_needs(tmp_path, 1_000_000, db, tmp_path) == 9_000_000 + 3_000_000 + 4 * 1024**2
    elsewhere = Path("/proc")  # another file system: nothing of the night is written there
    assert machine.night_needs(elsewhere, 1_000_000, db, tmp_path) == 0
