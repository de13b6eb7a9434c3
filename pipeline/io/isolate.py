"""Parse each workbook in a child process: a memory limit, a timeout, and the cores in parallel.

calamine is native code: a hostile sheet can make it allocate hundreds of GB
and kill the process without a Python exception. Each workbook is therefore
read in its own child (forked from a forkserver that has the reader
preloaded, so a child starts in milliseconds) under RLIMIT_AS and a wall-clock
timeout; several children run at once, one per core. A child hands its
sheets back as Arrow IPC files in a private temporary directory. A child
that dies, overruns or raises becomes an InputFileError naming the file.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import shutil
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import wait
from pathlib import Path

import polars as pl

from pipeline.errors import InputFileError
from pipeline.io.excel_in import SheetRead, read_workbook
from schemas.headers import load_header_map

TMP_PREFIX = ".medins-tmp-"


@dataclass(frozen=True)
class ReadJob:
    path: Path
    kind: str
    coverage_year: int


@dataclass(frozen=True)
class ReadLimits:
    memory_bytes: int = 6 * 1024**3
    timeout_seconds: float = 900.0
    workers: int = max(1, min(os.cpu_count() or 1, 8))


_context = None


def _ctx():
    global _context
    if _context is None:
        _context = mp.get_context("forkserver")
        _context.set_forkserver_preload(["pipeline.io.excel_in"])
    return _context


def _child(job: ReadJob, out_base: str, memory_bytes: int) -> None:
    """Runs in the child: read one workbook, write its sheets as IPC and a JSON manifest."""
    err = os.open(out_base + ".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(err, 2)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        sheets = read_workbook(job.path, load_header_map(job.kind), job.coverage_year)
        manifest = []
        for i, sheet in enumerate(sheets):
            meta = asdict(sheet)
            meta.pop("data")
            meta["missing_required"] = list(sheet.missing_required)
            if sheet.data is not None:
                meta["data_file"] = f"{out_base}.{i}.arrow"
                sheet.data.write_ipc(meta["data_file"])
            manifest.append(meta)
        result = {"ok": True, "sheets": manifest}
    except InputFileError as e:
        result = {"ok": False, "message": str(e)}
    except MemoryError:
        result = {"ok": False, "memory": True}
    with open(out_base + ".json.tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)
    os.replace(out_base + ".json.tmp", out_base + ".json")


def _load(out_base: str) -> dict | None:
    try:
        with open(out_base + ".json", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _sheets_from(manifest: list[dict]) -> list[SheetRead]:
    out = []
    for meta in manifest:
        data_file = meta.pop("data_file", None)
        meta["missing_required"] = tuple(meta["missing_required"])
        sheet = SheetRead(**meta)
        sheet.data = pl.read_ipc(data_file) if data_file else None
        out.append(sheet)
    return out


def _failure(job: ReadJob, exitcode: int | None, limits: ReadLimits, timed_out: bool, memory: bool) -> str:
    if timed_out:
        return (f"解析超时（超过{limits.timeout_seconds:.0f}秒）/ parsing took longer than "
                f"{limits.timeout_seconds:.0f} s: {job.path}")
    if memory:
        return (f"解析时内存超过上限（{limits.memory_bytes / 1024**3:.0f} GB），工作表可能异常 / "
                f"parser ran out of memory ({limits.memory_bytes / 1024**3:.0f} GB limit): {job.path}")
    return (f"解析程序崩溃（退出码 {exitcode}），文件可能损坏或内存超限 / parser crashed "
            f"(exit {exitcode}), damaged file or memory limit: {job.path}")


def read_isolated(jobs: list[ReadJob], tmp_dir: Path, limits: ReadLimits = ReadLimits(),
                  skip_bad_files: bool = False) -> tuple[list[list[SheetRead]], list[tuple[ReadJob, str]]]:
    """Read every job's workbook in children; returns (sheets per job in order, skipped files with reasons).

    A bad file stops everything (InputFileError) unless `skip_bad_files`.
    """
    ctx = _ctx()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    results: list[list[SheetRead] | None] = [None] * len(jobs)
    skipped: list[tuple[ReadJob, str]] = []
    pending = list(enumerate(jobs))
    running: dict[int, tuple[mp.process.BaseProcess, float, str]] = {}
    try:
        while pending or running:
            while pending and len(running) < limits.workers:
                i, job = pending.pop(0)
                out_base = str(tmp_dir / f"job{i}")
                proc = ctx.Process(target=_child, args=(job, out_base, limits.memory_bytes), daemon=True)
                proc.start()
                running[i] = (proc, time.monotonic(), out_base)
            wait([p.sentinel for p, _, _ in running.values()], timeout=0.2)
            for i in list(running):
                proc, started, out_base = running[i]
                timed_out = proc.is_alive() and time.monotonic() - started > limits.timeout_seconds
                if proc.is_alive() and not timed_out:
                    continue
                if timed_out:
                    proc.kill()
                proc.join()
                del running[i]
                job = jobs[i]
                result = None if timed_out else _load(out_base)
                if result and result.get("ok"):
                    results[i] = _sheets_from(result["sheets"])
                    continue
                message = result.get("message") if result else None
                message = message or _failure(job, proc.exitcode, limits, timed_out, bool(result and result.get("memory")))
                if not skip_bad_files:
                    raise InputFileError(message)
                skipped.append((job, message))
                results[i] = []
    finally:
        for proc, _, _ in running.values():
            proc.kill()
            proc.join()
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return [r or [] for r in results], skipped


def clean_leftovers(out_dir: Path) -> list[Path]:
    """Remove what a killed run left in out_dir: parser scratch directories and half-written
    reports (`.<name>.xlsx.tmp`). Called under the run lock, so no live run owns them."""
    removed = []
    if out_dir.is_dir():
        for p in [*out_dir.glob(TMP_PREFIX + "*"), *out_dir.glob(".*.xlsx.tmp")]:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed
