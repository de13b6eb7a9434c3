"""Measuring a night: wall time and memory per stage of `pipeline.run.run_night`, and the floor.

`Recorder.step` is what run_night announces its stages through; a thread samples the summed VmRSS of
this process and all its descendants (the forkserver, the parser and workbook children) every 50 ms,
and the main process's own peak (VmHWM, reset at each stage) is read at the end of each stage.
Peak RSS summed over processes counts pages shared between the forkserver and its children more than
once, so the tree figure is an upper bound. The floor is `polars.read_excel(path, engine="calamine",
sheet_id=0)` of the same files (for CSV `polars.read_csv(path, has_header=False, infer_schema=False)`),
one after the other in this process and in parallel in a pool of os.cpu_count() processes.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path

MB = 1024 * 1024


def _tree_memory() -> tuple[int, int]:
    """(VmRSS, RssAnon) in bytes, summed over this process and every descendant."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
                parent_of[int(entry)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
            except (OSError, ValueError):
                pass  # the process ended while we looked
    tree, frontier = {os.getpid()}, {os.getpid()}
    while frontier:
        kids = {pid for pid, ppid in parent_of.items() if ppid in frontier and pid not in tree}
        tree.update(kids)
        frontier = kids
    rss = anon = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmRSS:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith(b"RssAnon:"):
                        anon += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, anon


def _self_hwm(reset: bool = False) -> int | None:
    """This process's peak RSS (VmHWM) in bytes; reset=True starts a new peak (Linux clear_refs 5)."""
    try:
        if reset:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


class Recorder:
    """`step(name)` for run_night: wall time per stage, and the peak tree RSS seen while a stage was open."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.active: list[str] = []  # the open stages, outermost first
        self.order: list[str] = []
        self.stages: dict[str, dict] = {}
        self.lock, self.stopped = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        rss, anon = _tree_memory()
        with self.lock:
            for name in self.active:  # nested stages: a sample counts for every open stage
                s = self.stages[name]
                s["peak_rss"], s["peak_anon"] = max(s["peak_rss"], rss), max(s["peak_anon"], anon)

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval):
            self._sample()

    def _fold_hwm(self, reset: bool) -> None:
        """Give every open stage the main process's peak so far, then optionally start a new peak."""
        hwm = _self_hwm()
        for name in self.active:
            s = self.stages[name]
            s["self_hwm"] = max(s["self_hwm"] or 0, hwm or 0) or None
        if reset:
            _self_hwm(reset=True)

    @contextmanager
    def step(self, name: str):
        with self.lock:
            self._fold_hwm(reset=True)
            s = self.stages.setdefault(
                name,
                {
                    "depth": len(self.active),
                    "seconds": 0.0,
                    "calls": 0,
                    "parent": self.active[-1] if self.active else None,
                    "peak_rss": 0,
                    "peak_anon": 0,
                    "self_hwm": None,
                },
            )
            if s["calls"] == 0:
                self.order.append(name)
            s["calls"] += 1
            self.active.append(name)
        self._sample()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            s["seconds"] += time.perf_counter() - t0
            self._sample()
            with self.lock:
                self._fold_hwm(reset=False)
                self.active.remove(name)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()


def _calamine_read(path: str) -> tuple[int, float]:
    """(data rows, seconds) for reading every sheet of one workbook with polars + calamine defaults."""
    import polars as pl

    t0 = time.perf_counter()
    frames = pl.read_excel(path, engine="calamine", sheet_id=0)
    return sum(f.height for f in frames.values()), time.perf_counter() - t0


def _csv_read(path: str) -> tuple[int, float]:
    """(records, seconds) for reading one CSV file with polars, every field as text."""
    import polars as pl

    t0 = time.perf_counter()
    frame = pl.read_csv(path, has_header=False, infer_schema=False)
    return frame.height, time.perf_counter() - t0


FLOOR_READERS = {"calamine": _calamine_read, "read_csv": _csv_read}


def _warm() -> None:
    import fastexcel  # noqa: F401
    import polars  # noqa: F401


def floor(files: list[str], rec: Recorder, reader: str = "calamine") -> dict:
    """Sequential floor in this process, then the parallel floor in os.cpu_count() spawned processes.
    reader: "calamine" (polars.read_excel(path, engine="calamine", sheet_id=0)) or "read_csv"
    (polars.read_csv(path, has_header=False, infer_schema=False))."""
    _warm()  # polars imports fastexcel on its first read_excel: not part of the floor
    read = FLOOR_READERS[reader]
    seq_name = f"floor: {reader}, sequential"
    with rec.step(seq_name):
        seq = [read(f) for f in files]
    workers = os.cpu_count() or 1
    par_name = f"floor: {reader}, parallel ({workers} processes)"
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_warm) as pool:
        list(pool.map(time.sleep, [0.5] * workers))  # start every worker before the clock starts
        with rec.step(par_name):
            par = list(pool.map(read, files))
    return {
        "reader": reader,
        "sequential_s": rec.stages[seq_name]["seconds"],
        "parallel_s": rec.stages[par_name]["seconds"],
        "sequential_peak_rss_mb": rec.stages[seq_name]["peak_rss"] // MB,
        "parallel_workers": workers,
        "rows": sum(n for n, _ in seq),
        "per_file_s": {Path(f).name: round(s, 2) for f, (_, s) in zip(files, seq)},
        "per_file_parallel_s": {Path(f).name: round(s, 2) for f, (_, s) in zip(files, par)},
    }


def _stage_rows(rec: Recorder) -> list[dict]:
    """Every stage inside run_night, in the order opened: its time, the time not spent in the stages
    nested in it, and its memory."""
    nested = {n: sum(c["seconds"] for c in rec.stages.values() if c["parent"] == n) for n in rec.order}
    return [
        {
            "stage": n,
            "depth": s["depth"] - 1,
            "calls": s["calls"],
            "seconds": s["seconds"],
            "own_seconds": s["seconds"] - nested[n],
            "peak_rss_mb": s["peak_rss"] // MB,
            "peak_anon_mb": s["peak_anon"] // MB,
            "self_hwm_mb": s["self_hwm"] // MB if s["self_hwm"] else None,
        }
        for n in rec.order
        if (s := rec.stages[n])["depth"] > 0
    ]


def measure_night(spec: dict) -> dict:
    """In its own process, like a nightly `medins run`: run_night with stage times and memory."""
    import datetime as dt

    from pipeline.run import run_night
    from pipeline.settings import RunSettings

    work = Path(spec["work"])
    rec = Recorder()
    t0 = time.perf_counter()
    with rec.step("run_night"):
        result = run_night(
            RunSettings(
                spec["year"],
                spec["region"],
                spec["roster"],
                spec["payments"],
                work / "medins.duckdb",
                work,
                as_of=dt.date.fromisoformat(spec["as_of"]) if spec.get("as_of") else None,
                step=rec.step,
                write_workbooks=spec["excel"],
            )
        )
    total = time.perf_counter() - t0
    rec.close()
    sheets = result.sheets
    counts = {
        kind: {
            c: int(sheets.filter(sheets["kind"] == kind)[c].sum())
            for c in ("rows_read", "accepted", "rejected", "skipped_blank", "skipped_footer", "skipped_duplicate")
        }
        for kind in ("roster", "payments")
    }
    whole = rec.stages["run_night"]
    stages = _stage_rows(rec)
    between = total - sum(s["seconds"] for s in stages if s["depth"] == 0)
    return {
        "run_id": result.run_id,
        "total_s": total,
        "between_stages_s": between,
        "peak_rss_mb": whole["peak_rss"] // MB,
        "peak_anon_mb": whole["peak_anon"] // MB,
        "stages": stages,
        "main_process_peak_mb": (whole["self_hwm"] or 0) // MB,
        "rows": counts,
        "sheet_seconds": [{**x, "file": Path(x["file"]).name} for x in result.sheet_seconds],
        "files": [Path(f).name for f in spec["roster"] + spec["payments"]],
        "database_mb": round((work / "medins.duckdb").stat().st_size / MB, 1),
        "partitions": result.partitions,
        "workbooks": [_workbook_size(p) for p in result.reports],
        "written": {t: dict(zip(("kept", "written", "deleted"), n)) for t, n in result.written.items()},
        "figures": result.figures,
    }


def _workbook_size(path: Path) -> dict:
    """Rows and cells per sheet of a workbook the night wrote, counted in its sheet XML (xlsxwriter
    writes every row as `<row r=` and every cell as `<c r=`), streamed; after the night, not timed."""
    import zipfile

    from pipeline.io.grids import sheet_members

    sheets = []
    with zipfile.ZipFile(path) as z:
        for name, member in sheet_members(path).items():
            assert member is not None, name  # the night's own workbooks point at every sheet
            counts, tail = {b"<row ": 0, b"<c r=": 0}, b""
            with z.open(member) as f:
                while chunk := f.read(8 * MB):
                    buf = tail + chunk
                    for pattern in counts:  # the 4-byte tail cannot hold a whole 5-byte pattern
                        counts[pattern] += buf.count(pattern)
                    tail = buf[-4:]
            sheets.append({"sheet": name, "rows": counts[b"<row "], "cells": counts[b"<c r="]})
    return {"file": path.name, "mb": round(path.stat().st_size / MB, 1), "sheets": sheets}
