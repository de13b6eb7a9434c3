"""Parse each sheet in a child process: a memory limit, a timeout, and the cores in parallel.

calamine is native code: a hostile sheet can make it allocate hundreds of GB
and kill the process without a Python exception. Each sheet is therefore read
in its own child (forked from a forkserver that has the reader preloaded, so
a child starts in milliseconds) under RLIMIT_AS and a wall-clock timeout;
several children run at once, one per core. A child reads one unit of work
(an .xlsx sheet, or a whole file of another format) and hands back what it
read: each sheet's rows under the header as text (Arrow IPC) and a JSON
manifest of its counts. The checks run in the parent, every night
(pipeline/validate.py). A child that dies, overruns or raises becomes an
InputFileError naming the file. A unit read before (pipeline/io/cache.py,
the same bytes and reader) is taken from the cache instead.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import shutil
import time
import traceback
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import forkserver
from multiprocessing.connection import wait
from multiprocessing.context import ForkServerContext, ForkServerProcess
from pathlib import Path

import polars as pl

from pipeline.errors import InputFileError
from pipeline.io import cache
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
    path: Path
    kind: str
    sha256: str = ""


@dataclass(frozen=True)
class ReadLimits:
    memory_bytes: int = 6 * 1024**3
    timeout_seconds: float = 900.0
    workers: int = max(1, min(os.cpu_count() or 1, 8))


_context = None


def child_context() -> ForkServerContext:
    """The forkserver the sheet parsers (and the workbook builder, pipeline/run.py) are forked from."""
    global _context
    if _context is None:
        _context = mp.get_context("forkserver")
        _context.set_forkserver_preload(["pipeline.io.isolate", "pipeline.io.excel_out"])  # the readers, the workbooks
    return _context


# --- in the child ----------------------------------------------------------------------


def _read_unit(job: ReadJob, fmt: str, sheet_index: int | None, out_base: str) -> list[dict]:
    """Read one unit of work; each sheet's rows as IPC beside `out_base`; the manifest entries."""
    started = time.perf_counter()
    manifest = []
    for i, sheet in enumerate(
        read_file(job.path, load_header_map(job.kind), job.sha256 or None, only_sheet=sheet_index, fmt=fmt)
    ):
        sheet.read_seconds = round(time.perf_counter() - started, 3)
        meta = {k: v for k, v in asdict(sheet).items() if k != "rows"}
        if sheet.rows is not None:
            meta["rows_file"] = f"{Path(out_base).name}.{i}.arrow"
            sheet.rows.load().write_ipc(f"{out_base}.{i}.arrow")
        manifest.append(meta)
    return manifest


def _child(job: ReadJob, fmt: str, sheet_index: int | None, out_base: str, memory_bytes: int) -> None:
    """Runs in the child: the result (or why there is none) as JSON beside the IPC files."""
    err = os.open(out_base + ".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(err, 2)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        result = {"ok": True, "sheets": _read_unit(job, fmt, sheet_index, out_base)}
    except InputFileError as e:
        result = {"ok": False, "message": str(e)}
    except MemoryError:
        result = {"ok": False, "memory": True}
    except Exception as e:  # a bug of ours, not a damaged file: the parent reports it as one
        result = {"ok": False, "internal": mask_ids_in_text("".join(traceback.format_exception(e)))}
    with open(out_base + ".json.tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)
    os.replace(out_base + ".json.tmp", out_base + ".json")


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


def _failure(job: ReadJob, exitcode: int | None, limits: ReadLimits, timed_out: bool, memory: bool) -> str:
    if timed_out:
        return (
            f"解析超时（超过{limits.timeout_seconds:.0f}秒）/ parsing took longer than "
            f"{limits.timeout_seconds:.0f} s: {job.path}"
        )
    if memory:
        return (
            f"解析时内存超过上限（{limits.memory_bytes / 1024**3:.0f} GB），工作表可能异常 / "
            f"parser ran out of memory ({limits.memory_bytes / 1024**3:.0f} GB limit): {job.path}"
        )
    return (
        f"解析程序崩溃（退出码 {exitcode}），文件可能损坏或内存超限 / parser crashed "
        f"(exit {exitcode}), damaged file or memory limit: {job.path}"
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
    except (zipfile.BadZipFile, KeyError, SyntaxError, ValueError, EOFError) as e:
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
    the cache). A bad file stops everything (InputFileError) unless `skip_bad_files`. The sheets'
    rows stay in their IPC files (in the cache, or in `tmp_dir`, which the caller removes).
    """
    skipped: dict[int, str] = {}

    def fail(j: int, message: str) -> None:
        if not skip_bad_files:
            raise InputFileError(message)
        skipped.setdefault(j, message)

    child_context()
    forkserver.ensure_running()  # the parsers' forkserver imports its modules meanwhile
    plans: list[_Plan] = []
    for j, job in enumerate(jobs):
        try:
            plans.append(_plan(job, cache_dir is not None))
        except InputFileError as e:
            plans.append(_Plan())
            fail(j, str(e))
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
    job: ReadJob, plan: _Plan, k: int, out_base: str, tmp_dir: Path, cache_dir: Path | None
) -> list[SheetRead] | str:
    """A finished child's sheets (moved into the cache when there is one), or why there are none."""
    result = _load(out_base)
    if not result or not result.get("ok"):
        if result and result.get("internal"):
            raise RuntimeError(
                f"读取 {job.path} 时程序出错 / internal error while reading {job.path}:\n{result['internal']}"
            )
        return (result or {}).get("message") or ("memory" if result and result.get("memory") else "")
    key = plan.keys[k] if plan.keys else None
    if cache_dir is not None and key is not None:
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
    fail: Callable[[int, str], None],
) -> None:
    """Parse the `pending` (job, sheet) pairs in children, `limits.workers` at a time."""
    ctx = child_context()
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
                got = "" if timed_out else _collect(jobs[j], plans[j], k, out_base, tmp_dir, cache_dir)
                if isinstance(got, list):
                    plans[j].sheets[k] = got
                    continue
                failed.add(j)
                fail(
                    j,
                    got
                    if got not in ("", "memory")
                    else _failure(jobs[j], proc.exitcode, limits, timed_out, got == "memory"),
                )
    finally:
        for proc, _, _ in running.values():
            proc.kill()
            proc.join()


def clean_leftovers(out_dir: Path) -> list[Path]:
    """Remove what a killed run left in out_dir: parser scratch directories, half-written reports
    (`.<name>.xlsx.tmp`), an unpublished database (`.<name>.night.tmp`). Called under the run lock."""
    removed = []
    if out_dir.is_dir():
        leftovers = (TMP_PREFIX + "*", ".*.xlsx.tmp", ".*.previous.tmp", ".*.night.tmp", ".*.night.tmp.wal")
        for p in [p for pattern in leftovers for p in out_dir.glob(pattern)]:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed
