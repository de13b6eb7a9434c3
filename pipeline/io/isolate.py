"""Parse each sheet in a child process: a memory limit, a timeout, and the cores in parallel.

calamine is native code: a hostile sheet can make it allocate hundreds of GB
and kill the process without a Python exception. Each sheet is therefore read
in its own child (forked from a forkserver that has the reader preloaded, so
a child starts in milliseconds) under RLIMIT_AS and a wall-clock timeout;
several children run at once, one per core. A child reads one unit of work
(an .xlsx sheet, or a whole file of another format) and hands back what it
read: each sheet's rows under the header as text (Arrow IPC) and a JSON
manifest of its counts. The checks run in the parent, every night
(pipeline/validate.py). A unit read before (pipeline/io/cache.py, the same
bytes and reader) is taken from the cache instead.

What goes wrong is reported by what happened (pipeline/io/machine.py): a
problem of the file (InputFileError, exit 2: refused whole, or skipped with
--skip-bad-files); the memory limit reached, or the child killed by the
system (MemoryLimitError, exit 11); the input removed or changed while read
(its size and time against those taken when it was hashed: InputChangedError,
exit 12); no space or no permission for the child's own files
(NoSpaceError 9, NoPermissionError 10: never skipped, the next file would
meet the same). The child classifies its errors and says which in its JSON
result; when not even that can be written it exits with CHILD_EXITS.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import resource
import shutil
import signal
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing import forkserver
from multiprocessing.connection import wait
from multiprocessing.context import ForkServerContext, ForkServerProcess
from pathlib import Path

import polars as pl

from pipeline.errors import (
    DatabaseWriteError,
    InputChangedError,
    InputFileError,
    MedinsError,
    MemoryLimitError,
    NoSpaceError,
)
from pipeline.faults import checkpoint, disk_full
from pipeline.io import cache, machine
from pipeline.io.excel_in import SheetRead, read_file
from pipeline.io.grids import sheet_members
from pipeline.io.masking import mask_ids_in_text
from pipeline.io.preflight import check_file
from pipeline.io.rows import Rows
from schemas.headers import load_header_map

TMP_PREFIX = ".medins-tmp-"
CACHE_DIR_NAME = cache.CACHE_DIR_NAME


@dataclass(frozen=True)
class ReadJob:
    """One input file; its size and modification time as they were when it was hashed (-1: unknown)."""

    path: Path
    kind: str
    sha256: str = ""
    size: int = -1
    mtime_ns: int = -1


@dataclass(frozen=True)
class ReadLimits:
    memory_bytes: int = 6 * 1024**3
    timeout_seconds: float = 900.0
    workers: int = max(1, min(os.cpu_count() or 1, 8))


_context = None


def start_forkserver() -> None:
    """Start the forkserver now: it imports its modules while the caller hashes and plans the inputs."""
    child_context()
    forkserver.ensure_running()


def child_context() -> ForkServerContext:
    """The forkserver the sheet parsers (and the workbook builder, pipeline/run.py) are forked from."""
    global _context
    if _context is None:
        _context = mp.get_context("forkserver")
        _context.set_forkserver_preload(["pipeline.io.isolate", "pipeline.io.excel_out"])  # the readers, the workbooks
    return _context


# --- in the child ----------------------------------------------------------------------

# The child's exit status when not even its JSON result could be written, by the machine's error.
CHILD_EXITS = {machine.NO_SPACE: 90, machine.NO_PERMISSION: 91, machine.GONE: 92}


class _OwnFiles(Exception):
    """An error of the machine writing the child's own files (its rows, its stderr): not the input's."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@contextmanager
def _own_files() -> Iterator[None]:
    try:
        yield
    except Exception as e:
        kind = machine.kind_of(e)
        if kind is None:
            raise
        raise _OwnFiles(kind) from None


def _read_unit(job: ReadJob, fmt: str, sheet_index: int | None, out_base: str) -> list[dict]:
    """Read one unit of work; each sheet's rows as IPC beside `out_base`; the manifest entries."""
    checkpoint("in_parser")
    started = time.perf_counter()
    manifest = []
    for i, sheet in enumerate(
        read_file(job.path, load_header_map(job.kind), job.sha256 or None, only_sheet=sheet_index, fmt=fmt)
    ):
        sheet.read_seconds = round(time.perf_counter() - started, 3)
        meta = {k: v for k, v in asdict(sheet).items() if k != "rows"}
        if sheet.rows is not None:
            meta["rows_file"] = f"{Path(out_base).name}.{i}.arrow"
            rows = sheet.rows.load()
            with _own_files():
                disk_full("scratch", f"{out_base}.{i}.arrow")
                rows.write_ipc(f"{out_base}.{i}.arrow")
        manifest.append(meta)
    return manifest


def _outcome(job: ReadJob, fmt: str, sheet_index: int | None, out_base: str, memory_bytes: int) -> dict:
    """What the child reports: the sheets, or what went wrong and whose it is."""
    try:
        with _own_files():
            os.dup2(os.open(out_base + ".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        return {"ok": True, "sheets": _read_unit(job, fmt, sheet_index, out_base)}
    except _OwnFiles as e:
        return {"ok": False, "scratch": e.kind}
    except InputFileError as e:
        return {"ok": False, "message": str(e)}
    except MemoryError:
        return {"ok": False, "memory": True}
    except Exception as e:  # the machine's (the input removed, unreadable), else a bug of ours
        kind = machine.kind_of(e)
        if kind is not None:
            return {"ok": False, "input": kind, "error": mask_ids_in_text(_first_line(e))}
        return {"ok": False, "internal": mask_ids_in_text("".join(traceback.format_exception(e)))}
    except BaseException as e:  # a native parser's panic (pyo3's PanicException is a BaseException)
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        return {"ok": False, "panic": mask_ids_in_text(_first_line(e))}


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def _child(job: ReadJob, fmt: str, sheet_index: int | None, out_base: str, memory_bytes: int) -> None:
    """Runs in the child: the result (or why there is none) as JSON beside the IPC files."""
    result = _outcome(job, fmt, sheet_index, out_base, memory_bytes)
    try:
        with open(out_base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False)
        os.replace(out_base + ".json.tmp", out_base + ".json")
    except OSError as e:
        os._exit(CHILD_EXITS.get(machine.kind_of(e) or "", 1))


# --- in the parent ---------------------------------------------------------------------


def _sheets_from(manifest: list[dict], base: Path, job: ReadJob, reused: bool = False) -> list[SheetRead]:
    """Sheets back from a manifest; their rows stay in their IPC files under `base` until checked. File
    name and sha256 are tonight's (a cached entry is named by its bytes, not by its path)."""
    out = []
    for meta in manifest:
        meta = dict(meta)
        rows_file = meta.pop("rows_file", None)
        meta.update(source_file=str(job.path), sha256=job.sha256, reused=reused)
        sheet = SheetRead(**meta)
        if rows_file:
            pl.read_ipc_schema(base / rows_file)  # a damaged file is found now, not in a later step
            sheet.rows = Rows(path=base / rows_file)
        out.append(sheet)
    return out


_SCRATCH = ("写解析暂存文件", "the parsed rows (parser scratch)")
# what --skip-bad-files may go on without: a file's own problems, not the machine's
SKIPPABLE = (InputFileError, MemoryLimitError, InputChangedError)


def _timed_out(job: ReadJob, limits: ReadLimits) -> InputFileError:
    return InputFileError(
        f"解析超时（超过{limits.timeout_seconds:.0f}秒）/ parsing took longer than "
        f"{limits.timeout_seconds:.0f} s: {job.path}"
    )


def _out_of_memory(job: ReadJob, limits: ReadLimits, killed: bool, asked: int | None = None) -> MemoryLimitError:
    """The limit and the option that sets it; what the parser asked for when it said (`asked`, bytes)."""
    gb = f"{limits.memory_bytes / 1024**3:g}"
    if killed:
        return MemoryLimitError(
            f"解析程序被系统终止（SIGKILL），多为内存耗尽：每个解析进程上限 {gb} GB，可用 --parse-memory-limit 设置 / "
            f"the parser was killed (SIGKILL), most often by the system running out of memory: limit {gb} GB per "
            f"parser, set with --parse-memory-limit: {job.path}"
        )
    zh, en = (
        (f"，一次申请 {asked / 1024**3:.3g} GB", f", it asked for {asked / 1024**3:.3g} GB at once")
        if asked
        else ("", "")
    )
    return MemoryLimitError(
        f"解析时内存超过上限（{gb} GB{zh}），可用 --parse-memory-limit 调高 / parser ran out of memory ({gb} GB "
        f"limit{en}; raise it with --parse-memory-limit): {job.path}"
    )


def _removed(job: ReadJob) -> InputChangedError:
    return InputChangedError(
        f"输入文件在读取时被删除或移走，请确认文件后重新运行 / input file removed while being read: check the "
        f"file and run again: {job.path}"
    )


def changed_since_hashed(job: ReadJob) -> InputChangedError | None:
    """The input removed, or its size or time not those taken when it was hashed; None when as it was."""
    if job.size < 0:
        return None
    try:
        st = os.stat(job.path)
    except FileNotFoundError:
        return _removed(job)
    except OSError:
        return None
    if (st.st_size, st.st_mtime_ns) != (job.size, job.mtime_ns):
        return InputChangedError(
            f"输入文件在读取时被改动，请等导出或复制完成后重新运行 / input file changed while being read: run again "
            f"when the export or copy is complete: {job.path}"
        )
    return None


def _scratch_error(kind: str, tmp_dir: Path) -> MedinsError:
    """The machine's error writing the parsers' scratch folder (in the --out folder)."""
    if kind == machine.NO_SPACE:
        return NoSpaceError(str(tmp_dir.parent), *_SCRATCH)
    if kind == machine.NO_PERMISSION:
        return machine.no_permission(tmp_dir.parent, *_SCRATCH)
    return DatabaseWriteError(
        f"解析暂存目录在运行中被删除 / the parser scratch folder was removed while the night ran: {tmp_dir}"
    )


def _child_error(job: ReadJob, result: dict, exitcode: int | None, out_base: str, limits: ReadLimits) -> MedinsError:
    """Why a child returned no sheets, by what happened (module docstring): its own files not written;
    the input changed meanwhile (then whatever else it met follows from that); what the child met."""
    if result.get("internal"):
        raise RuntimeError(
            f"读取 {job.path} 时程序出错 / internal error while reading {job.path}:\n{result['internal']}"
        )
    scratch = result.get("scratch") or {code: kind for kind, code in CHILD_EXITS.items()}.get(exitcode or 0)
    if scratch or result.get("input") == machine.NO_SPACE:
        return _scratch_error(scratch or machine.NO_SPACE, Path(out_base).parent)
    if changed := changed_since_hashed(job):
        return changed
    if result.get("message"):
        return InputFileError(result["message"])
    if result.get("memory"):
        return _out_of_memory(job, limits, killed=False)
    if result.get("input") == machine.GONE:
        return _removed(job)
    if result.get("input") == machine.NO_PERMISSION:
        return InputFileError(f"没有读取权限 / no permission to read the file: {job.path} ({result.get('error')})")
    if result.get("panic"):
        return InputFileError(
            f"解析程序读取此文件时出错，请用Excel或WPS打开后另存为 .xlsx / the parser failed on this file "
            f"({result['panic']}): open it in Excel or WPS and save it again as .xlsx: {job.path}"
        )
    return _died(job, exitcode, out_base, limits)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _died(job: ReadJob, exitcode: int | None, out_base: str, limits: ReadLimits) -> MedinsError:
    """A child that left no result: killed (SIGKILL: most often the system's out-of-memory killer), out of
    memory in native code (Rust aborts with "memory allocation of … failed"), or crashed."""
    try:
        with open(out_base + ".stderr", encoding="utf-8", errors="replace") as f:
            stderr = f.read(1 << 20)
    except OSError:
        stderr = ""
    if exitcode == -signal.SIGKILL:
        return _out_of_memory(job, limits, killed=True)
    if asked := re.search(r"memory allocation of (\d+) bytes failed", stderr):
        return _out_of_memory(job, limits, killed=False, asked=int(asked[1]))
    if "MemoryError" in stderr:
        return _out_of_memory(job, limits, killed=False)
    how = _signal_name(-exitcode) if exitcode is not None and exitcode < 0 else f"exit {exitcode}"
    return InputFileError(
        f"解析程序读取此文件时崩溃（{how}），请用Excel或WPS打开后另存为 .xlsx，或用 --skip-bad-files 跳过 / the "
        f"parser crashed ({how}) reading this file: open it in Excel or WPS and save it again as .xlsx, or skip "
        f"it with --skip-bad-files: {job.path}"
    )


@dataclass
class _Plan:
    """What is known of one job before parsing: its format, its units of work (the sheets of an .xlsx,
    each its own zip part; the whole file otherwise: calamine parses an .xls or .ods whole on opening)
    and their cache keys."""

    fmt: str = ""
    units: list[int | None] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    sheets: dict[int, list[SheetRead]] = field(default_factory=dict)

    @property
    def n_units(self) -> int:
        return len(self.units)


def _plan(job: ReadJob, use_cache: bool) -> _Plan:
    """Preflight (pure Python: the hostile file is refused before any child touches it), the units of
    work, and each unit's cache key."""
    try:
        fmt = check_file(job.path)
        units: list[int | None] = list(range(len(sheet_members(job.path)))) if fmt == "xlsx" else [None]
        sizes = _unit_sizes(job.path, fmt)
    except InputFileError as e:
        raise changed_since_hashed(job) or e from None  # removed or rewritten meanwhile: say so, not "damaged"
    except OSError as e:
        raise changed_since_hashed(job) or InputFileError(
            f"无法读取文件 / cannot read file: {job.path} ({e.strerror or type(e).__name__})"
        ) from None
    except (zipfile.BadZipFile, KeyError, SyntaxError, ValueError, EOFError) as e:
        if changed := changed_since_hashed(job):
            raise changed from None
        # a container that looked right but cannot be listed (a zip without its parts, broken XML)
        raise InputFileError(
            f"文件已损坏或无法读取，请重新导出或重新下载 / cannot read file (damaged or truncated): export or "
            f"download it again: {job.path} ({type(e).__name__})"
        ) from None
    digests = cache.unit_digests(job.path, fmt, job.sha256, len(units)) if use_cache and job.sha256 else None
    keys: list[str | None] = (
        [cache.entry_key(d, job.kind) for d in digests] if digests is not None else [None] * len(units)
    )
    return _Plan(fmt=fmt, units=units, keys=keys, sizes=sizes)


def _unit_sizes(path: Path, fmt: str) -> list[int]:
    """Bytes each unit of work holds (an .xlsx sheet's stored XML, else the file): the biggest are
    parsed first, so the cores finish together."""
    if fmt != "xlsx":
        return [path.stat().st_size]
    with zipfile.ZipFile(path) as z:
        stored = {info.filename: info.compress_size for info in z.infolist()}
    return [stored.get(member or "", 0) for member in sheet_members(path).values()]


def _from_cache(cache_dir: Path, plan: _Plan, k: int, job: ReadJob) -> list[SheetRead] | None:
    """The sheet from its cache entry; None when there is none or its files cannot be read."""
    key = plan.keys[k]
    hit = cache.find(cache_dir, key) if key else None
    if hit is None:
        return None
    try:
        sheets = _sheets_from(hit[1], hit[0], job, reused=True)
        cache.touch(hit[0])
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return None
    return sheets


def read_isolated(
    jobs: list[ReadJob],
    tmp_dir: Path,
    limits: ReadLimits = ReadLimits(),
    skip_bad_files: bool = False,
    cache_dir: Path | None = None,
) -> tuple[list[list[SheetRead]], list[tuple[ReadJob, str]], list[ReadJob]]:
    """Read every sheet of every job's file in children, or from the cache when the same sheet was read
    before; sheets are the unit of work, so one big file does not hold up the other core.

    Returns (sheets per job in order, skipped files with reasons, jobs whose every sheet came from
    the cache). A bad file stops everything (its error: module docstring) unless `skip_bad_files`; an
    error of the machine stops everything always. The sheets' rows stay in their IPC files (in the
    cache, or in `tmp_dir`, which the caller removes).
    """
    skipped: dict[int, str] = {}

    def fail(j: int, error: MedinsError) -> None:
        if not skip_bad_files or not isinstance(error, SKIPPABLE):
            raise error
        skipped.setdefault(j, str(error))

    start_forkserver()  # (already running when the night started it)
    plans: list[_Plan] = []
    for j, job in enumerate(jobs):
        try:
            plans.append(_plan(job, cache_dir is not None))
        except (InputFileError, InputChangedError) as e:
            plans.append(_Plan())
            fail(j, e)
    pending = [(j, k) for j, plan in enumerate(plans) if j not in skipped for k in range(plan.n_units)]
    if cache_dir is not None:
        with ThreadPoolExecutor(max_workers=limits.workers) as pool:  # reading IPC releases the GIL
            found = list(pool.map(lambda jk: _from_cache(cache_dir, plans[jk[0]], jk[1], jobs[jk[0]]), pending))
        for (j, k), sheets in zip(pending, found):
            if sheets is not None:
                plans[j].sheets[k] = sheets
    from_cache = {(j, k) for j, plan in enumerate(plans) for k in plan.sheets}
    to_parse = sorted((jk for jk in pending if jk not in from_cache), key=lambda jk: -plans[jk[0]].sizes[jk[1]])
    if to_parse:
        _run_children(jobs, plans, to_parse, tmp_dir, limits, cache_dir, fail)
    for j, job in enumerate(jobs):  # a file rewritten while read, its sheets from the cache or a child
        if j not in skipped and (changed := changed_since_hashed(job)):
            fail(j, changed)
    reused = [
        job
        for j, job in enumerate(jobs)
        if j not in skipped and plans[j].n_units and all((j, k) in from_cache for k in range(plans[j].n_units))
    ]
    out = [
        [] if j in skipped else [s for k in range(plans[j].n_units) for s in plans[j].sheets.get(k, [])]
        for j in range(len(jobs))
    ]
    return out, [(jobs[j], m) for j, m in sorted(skipped.items())], reused


def _collect(
    job: ReadJob, plan: _Plan, k: int, out_base: str, exitcode: int | None, limits: ReadLimits, cache_dir: Path | None
) -> list[SheetRead] | MedinsError:
    """A finished child's sheets (moved into the cache when there is one), or why there are none: the
    input changed meanwhile, or what the child says (`_child_error`)."""
    result = _load(out_base)
    tmp_dir = Path(out_base).parent
    if not result or not result.get("ok"):
        return _child_error(job, result or {}, exitcode, out_base, limits)
    key = plan.keys[k] if plan.keys else None
    if cache_dir is not None and key is not None:
        with machine.writing_to(cache_dir, "写读取缓存", "the cache of sheets read"):
            entry = cache.store(cache_dir, key, tmp_dir, result["sheets"])
        return _sheets_from(result["sheets"], entry, job)
    return _sheets_from(result["sheets"], tmp_dir, job)


def _load(out_base: str) -> dict | None:
    try:
        with open(out_base + ".json", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _run_children(
    jobs: list[ReadJob],
    plans: list[_Plan],
    pending: list[tuple[int, int]],
    tmp_dir: Path,
    limits: ReadLimits,
    cache_dir: Path | None,
    fail: Callable[[int, MedinsError], None],
) -> None:
    """Parse the `pending` (job, sheet) pairs in children, `limits.workers` at a time."""
    ctx = child_context()
    with machine.writing_to(tmp_dir.parent, *_SCRATCH):
        tmp_dir.mkdir(parents=True, exist_ok=True)
    running: dict[tuple[int, int], tuple[ForkServerProcess, float, str]] = {}
    failed: set[int] = set()
    try:
        while pending or running:
            while pending and len(running) < limits.workers:
                j, k = pending.pop(0)
                if j in failed:
                    continue
                out_base = str(tmp_dir / f"job{j}-s{k}")
                proc = ctx.Process(
                    target=_child,
                    args=(jobs[j], plans[j].fmt, plans[j].units[k], out_base, limits.memory_bytes),
                    daemon=True,
                )
                proc.start()
                running[(j, k)] = (proc, time.monotonic(), out_base)
            if running:
                wait([p.sentinel for p, _, _ in running.values()], timeout=0.2)
            for (j, k), (proc, started, out_base) in list(running.items()):
                timed_out = proc.is_alive() and time.monotonic() - started > limits.timeout_seconds
                if proc.is_alive() and not timed_out:
                    continue
                if timed_out:
                    proc.kill()
                proc.join()
                del running[(j, k)]
                got = (
                    _timed_out(jobs[j], limits)
                    if timed_out
                    else _collect(jobs[j], plans[j], k, out_base, proc.exitcode, limits, cache_dir)
                )
                if isinstance(got, list):
                    plans[j].sheets[k] = got
                    continue
                failed.add(j)
                fail(j, got)
    finally:
        for proc, _, _ in running.values():
            proc.kill()
            proc.join()


def clean_leftovers(out_dir: Path) -> list[Path]:
    """Remove what a killed run left in out_dir: parser scratch directories, half-written reports
    (`.<name>.xlsx.tmp`), an unpublished database (`.<name>.night.tmp`). Called under the run lock."""
    removed = []
    if out_dir.is_dir():
        leftovers = (
            TMP_PREFIX + "*",
            ".*.xlsx.tmp",
            ".*.xlsx.tmp.parts",
            ".*.previous.tmp",
            ".*.night.tmp",
            ".*.night.tmp.wal",
            ".*.night.tmp.v1_1",
        )
        for p in [p for pattern in leftovers for p in out_dir.glob(pattern)]:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed
