"""City-scale benchmark of the nightly run: wall time and peak memory per stage, against the calamine floor.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/run.py                      # quick size: 100,000 roster + 100,000 payment rows
    .venv/bin/python benchmarks/run.py --rows 1000000       # the city-scale night
    .venv/bin/python benchmarks/run.py --rows 1000000 --scenario payments-changed
    .venv/bin/python benchmarks/run.py --rows 1000000 --scenario province --roster-files 5

What it does, in one invocation:
1. generates the inputs with tools.sample.generate_sample (in a child process), or reuses them from
   benchmarks/data/<rows,payment rows,files,seed,year>/ when they are already there;
2. runs pipeline.run.run_night on them into a fresh DuckDB under benchmarks/out/, timing every stage that
   run_night announces through `step`; a thread samples the summed VmRSS of this process and all its
   descendants (the forkserver and the workbook-parsing children) every 50 ms, and the main process's own
   peak (VmHWM, reset at each stage) is read at the end of each stage;
3. measures the floor: polars.read_excel(path, engine="calamine", sheet_id=0) over the same files (for CSV
   inputs polars.read_csv(path, has_header=False, infer_schema=False)), once one after the other in this
   process and once in parallel in a pool of os.cpu_count() processes;
4. prints a Markdown table per run (stage | wall s | peak RSS MB) with the ratios to both floors, the rows,
   the database file's size, the rows and cells of the workbooks written, the exact command and the
   machine, and writes the same as JSON to benchmarks/out/<scenario>-<rows>.json.

Scenarios: full (default; one fresh database, one run); payments-changed (run, then run again with the same
roster files and night 1's payments file with 2% more rows added before its footer; the second run is the
one the incremental target is about); province (--roster-files N roster files of --rows residents each and
one payments file of N x --payment-rows rows, after a 1-file baseline run, to show how time and memory grow);
formats (the same rows as .xlsx, as old binary .xls and as UTF-8 CSV, three nights each into a fresh
database, each against the floor of its own files).

Peak RSS summed over processes counts pages shared between the forkserver and its children more than once,
so the tree figure is an upper bound. Each night runs in a fresh child process of this script (as a nightly
`medins run` would), so one night's memory does not carry into the next; the JSON adds getrusage(RUSAGE_CHILDREN)
(the largest single child: the forkserver is stopped, and so reaped, after the run). The floor runs in this
parent process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA, OUT = ROOT / "benchmarks" / "data", ROOT / "benchmarks" / "out"
EXCEL_MAX_ROWS = 1_048_576
MB = 1024 * 1024


# --------------------------------------------------------------------------- memory of the process tree
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
        self.interval, self.active, self.order = interval, [], []
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


def _stop_forkserver() -> None:
    """Stop (and so reap) the forkserver the reader started, so RUSAGE_CHILDREN includes its children."""
    try:
        from multiprocessing import forkserver

        forkserver._forkserver._stop()
    except Exception:  # private API: only a getrusage figure depends on it
        pass


# --------------------------------------------------------------------------- inputs
def _sheets_needed(biggest: int) -> int:
    """Sheets per file so that the biggest file fits Excel's row limit (the generator's own check)."""
    sheets = 2
    while biggest / sheets * 1.05 + 50 > EXCEL_MAX_ROWS:
        sheets += 1
    return sheets


def dataset(rows: int, payment_rows: int, roster_files: int, seed: int, year: int, regenerate: bool) -> dict:
    """Roster and payment files for `rows` residents per roster file; generated once, then reused."""
    key = f"rows{rows}-pay{payment_rows}-files{roster_files}-seed{seed}-y{year}"
    where, marker = DATA / key, DATA / key / "generated.json"
    if marker.exists() and not regenerate:
        return _located(json.loads(marker.read_text()), where, generated_now=False)
    tmp = DATA / (key + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(where, ignore_errors=True)
    sheets = _sheets_needed(max(rows, payment_rows))
    print(f"generating {key} ({sheets} sheets per file) ...", file=sys.stderr, flush=True)
    code = (
        "import json, sys, time; from pathlib import Path; from tools.sample import generate_sample\n"
        "a = json.loads(sys.argv[1]); t = time.perf_counter()\n"
        "r = generate_sample(a['rows'], a['seed'], a['year'], Path(a['dir']), payment_rows=a['payment_rows'],\n"
        "                    roster_files=a['roster_files'], sheets_per_file=a['sheets'], extra_formats=False)\n"
        "keep = {k: r[k] for k in ('residents', 'roster_rows', 'payment_rows', 'expected')}\n"
        "keep |= {'roster': [p.name for p in r['roster_files']], 'payments': [p.name for p in r['payment_files']],\n"
        "         'generate_seconds': round(time.perf_counter() - t, 1), 'sheets_per_file': a['sheets']}\n"
        "Path(a['dir'], 'generated.json').write_text(json.dumps(keep, default=str, indent=1))\n"
    )
    args = {
        "rows": rows * roster_files,
        "payment_rows": payment_rows,
        "roster_files": roster_files,
        "seed": seed,
        "year": year,
        "dir": str(tmp),
        "sheets": sheets,
    }
    subprocess.run([sys.executable, "-c", code, json.dumps(args)], cwd=ROOT, check=True)
    tmp.rename(where)
    info = json.loads(marker.read_text())
    print(f"generated in {info['generate_seconds']} s", file=sys.stderr, flush=True)
    return _located(info, where, generated_now=True)


def appended_payments(night1: list[str], donor: list[str], extra: int, regenerate: bool) -> list[str]:
    """The tax bureau's payments export: the generated file's sheets, every cell as it was read, with
    `extra` more payment rows (the last data rows of `donor`, a file generated for the same
    residents) added before the footer of the last sheet. Written once, then reused.

    Night 1 uses it with extra=0 and night 2 with the late payments: one export tool writes both
    nights (text inline in each sheet, as streaming exporters such as Apache POI's SXSSF write it),
    so a sheet without new rows is the same bytes on both nights."""
    import fastexcel
    import xlsxwriter

    from schemas.headers import load_header_map

    source = Path(night1[0])
    target = source.parent / f"appended{extra}" / source.name
    if target.exists() and not regenerate:
        return [str(target)]
    header_map = load_header_map("payments")
    ticket_header = header_map.header_of("ticket_no")
    footer = tuple(header_map.footer_prefixes)

    def sheets_of(path: str) -> list[tuple[str, list[list]]]:
        reader = fastexcel.read_excel(path)
        return [
            (name, reader.load_sheet(name, header_row=None, dtypes="string").to_polars().rows())
            for name in reader.sheet_names
        ]

    def split(rows: list[list]) -> tuple[int, int]:
        """(header index, index of the first footer row after the data)."""
        head = next(i for i, r in enumerate(rows) if ticket_header in [str(c).replace(" ", "") for c in r if c])
        end = len(rows)
        while end > head + 1 and (
            not any(rows[end - 1]) or str(next(c for c in rows[end - 1] if c)).startswith(footer)
        ):
            end -= 1
        return head, end

    donor_sheets = sheets_of(donor[0])
    donor_rows = donor_sheets[-1][1]
    d_head, d_end = split(donor_rows)
    added = donor_rows[max(d_head + 1, d_end - extra) : d_end]
    print(f"writing {target.relative_to(ROOT)} (night 1 + {len(added):,} rows) ...", file=sys.stderr, flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(
        str(target),
        {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False},
    )
    sheets = sheets_of(str(source))
    for k, (name, rows) in enumerate(sheets):
        if k == len(sheets) - 1:
            _, end = split(rows)
            rows = rows[:end] + added + rows[end:]
        ws = wb.add_worksheet(name)
        for i, row in enumerate(rows):
            ws.write_row(i, 0, ["" if c is None else c for c in row])
    wb.close()
    return [str(target)]


def _located(info: dict, where: Path, generated_now: bool) -> dict:
    """The generator's summary with the file names turned into paths under `where`."""
    return info | {
        "generated_now": generated_now,
        "dir": str(where.relative_to(ROOT)),
        "roster": [str(where / n) for n in info["roster"]],
        "payments": [str(where / n) for n in info["payments"]],
    }


XLS_MAX_ROWS = 65_536  # rows per sheet of an old binary .xls (BIFF8)


def _text_grid(reader, index: int):
    """A sheet's cells as text from row 1, as the night reads them, and which cells are number cells
    (a Boolean read: only number cells come back non-null; date cells, text and blanks do not)."""
    import polars as pl

    text = reader.load_sheet(index, header_row=None, skip_rows=0, dtypes="string").to_polars()
    typed = reader.load_sheet(index, header_row=None, skip_rows=0, dtypes="boolean").to_polars()
    numbers = typed.select(pl.all().is_not_null())
    return text, numbers


def _head_rows(rows: list[list], kind: str) -> int:
    """Rows up to and including the header row (found as the night finds it: the first row among the
    first `header_scan_rows` holding at least `min_header_matches` known headers); 0 if none."""
    from schemas.headers import load_header_map, match_header

    header_map = load_header_map(kind)
    for i, row in enumerate(rows[: header_map.header_scan_rows]):
        if sum(match_header(c, header_map) is not None for c in row if c) >= header_map.min_header_matches:
            return i + 1
    return 0


def _write_format_copies(job: dict) -> dict:
    """One generated .xlsx as (a) one old binary .xls and (b) one UTF-8 CSV per sheet; in a pool worker.

    .xls: every sheet of more than 65,536 rows split into sheets `<name>-1`, `<name>-2`, ... of at most
    65,536 rows, each after the first repeating the rows above and including the header row (the title
    and header, as exporters that split a list over sheets do); every cell as the .xlsx night reads it,
    text, except number cells, written as the same numbers (date cells are text: what calamine reads).
    CSV: the text grid of each sheet (title, header, blank and footer lines kept as rows), no header line
    of its own."""
    import fastexcel
    import xlwt

    src, kind = Path(job["source"]), job["kind"]
    xls_dir, csv_dir = Path(job["xls_dir"]), Path(job["csv_dir"])
    t0 = time.perf_counter()
    reader = fastexcel.read_excel(str(src))
    book = xlwt.Workbook(encoding="utf-8")
    csvs, xls_sheets, cells = [], [], 0
    for index, name in enumerate(reader.sheet_names):
        text, numbers = _text_grid(reader, index)
        target = csv_dir / f"{src.stem}_{name}.csv"
        text.write_csv(target, include_header=False)
        csvs.append(target.name)
        columns = [text.to_series(c).to_list() for c in range(text.width)]
        for c, col in enumerate(columns):
            for i in numbers.to_series(c).arg_true().to_list():
                col[i] = float(col[i])
        rows = [list(r) for r in zip(*columns)] if columns else []
        del columns, text, numbers
        head = rows[: _head_rows(rows, kind)]
        chunks, start = [], 0
        while start < len(rows) or not chunks:
            lead = head if chunks else []
            take = XLS_MAX_ROWS - len(lead)
            chunks.append(lead + rows[start : start + take])
            start += take
        for k, chunk in enumerate(chunks, 1):
            sheet_name = name if len(chunks) == 1 else f"{name}-{k}"
            ws = book.add_sheet(sheet_name)
            for r, row in enumerate(chunk):
                w_row = ws.row(r)
                for c, value in enumerate(row):
                    if value is not None:
                        w_row.write(c, value)
                        cells += 1
                if r % 1000 == 999:
                    ws.flush_row_data()  # serialise the rows written so far (xlwt keeps them as objects)
            ws.flush_row_data()
            xls_sheets.append((sheet_name, len(chunk)))
        del rows, chunks
    target = xls_dir / f"{src.stem}.xls"
    book.save(str(target))
    return {
        "kind": kind,
        "source": src.name,
        "xls": target.name,
        "xls_sheets": xls_sheets,
        "xls_cells": cells,
        "xls_mb": round(target.stat().st_size / MB, 1),
        "csv": csvs,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def format_copies(info: dict, regenerate: bool) -> dict[str, dict[str, list[str]]]:
    """The generated night as .xls and as CSV (`_write_format_copies`), written once into
    <dataset>/formats/ (one pool worker per input file), then reused."""
    where = ROOT / info["dir"] / "formats"
    marker = where / "formats.json"
    if not marker.exists() or regenerate:
        tmp = where.with_name("formats.part")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(where, ignore_errors=True)
        (tmp / "xls").mkdir(parents=True)
        (tmp / "csv").mkdir()
        jobs = [
            {"source": f, "kind": kind, "xls_dir": str(tmp / "xls"), "csv_dir": str(tmp / "csv")}
            for kind in ("roster", "payments")
            for f in info[kind]
        ]
        print(f"writing the .xls and CSV copies of {info['dir']} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        with ProcessPoolExecutor(min(len(jobs), os.cpu_count() or 1), mp_context=get_context("spawn")) as pool:
            written = list(pool.map(_write_format_copies, jobs))
        (tmp / "formats.json").write_text(
            json.dumps({"files": written, "seconds": round(time.perf_counter() - t0, 1)}, ensure_ascii=False, indent=1)
        )
        tmp.rename(where)
        print(f"written in {round(time.perf_counter() - t0, 1)} s", file=sys.stderr, flush=True)
    made = json.loads(marker.read_text())
    out: dict = {"xls": {"roster": [], "payments": []}, "csv": {"roster": [], "payments": []}, "written": made}
    for f in made["files"]:
        out["xls"][f["kind"]].append(str(where / "xls" / f["xls"]))
        out["csv"][f["kind"]] += [str(where / "csv" / n) for n in f["csv"]]
    return out


# --------------------------------------------------------------------------- the floor
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


# --------------------------------------------------------------------------- one measured night
def measure_night(spec: dict) -> dict:
    """In its own process, like a nightly `medins run`: run_night with stage times and memory."""
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
                step=rec.step,
                write_workbooks=spec["excel"],
            )
        )
    total = time.perf_counter() - t0
    rec.close()
    _stop_forkserver()
    # RUSAGE_SELF is left out: resetting VmHWM at each stage also resets what getrusage reports for us.
    children_maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 // MB
    sheets = result.sheets
    counts = {
        kind: {
            c: int(sheets.filter(sheets["kind"] == kind)[c].sum())
            for c in ("rows_read", "accepted", "rejected", "skipped_blank", "skipped_footer", "skipped_duplicate")
        }
        for kind in ("roster", "payments")
    }
    whole = rec.stages["run_night"]
    nested = {n: sum(c["seconds"] for c in rec.stages.values() if c["parent"] == n) for n in rec.order}
    stages = [
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
    between = total - sum(s["seconds"] for s in stages if s["depth"] == 0)
    return {
        "run_id": result.run_id,
        "total_s": total,
        "between_stages_s": between,
        "peak_rss_mb": whole["peak_rss"] // MB,
        "peak_anon_mb": whole["peak_anon"] // MB,
        "stages": stages,
        "main_process_peak_mb": (whole["self_hwm"] or 0) // MB,
        "ru_maxrss_children_mb": children_maxrss,
        "rows": counts,
        "sheet_seconds": [{**x, "file": Path(x["file"]).name} for x in result.sheet_seconds],
        "files": [Path(f).name for f in spec["roster"] + spec["payments"]],
        "database_mb": round((work / "medins.duckdb").stat().st_size / MB, 1),
        "partitions": result.partitions,
        "workbooks": [_workbook_size(p) for p in result.reports],
        "written": {t: dict(zip(("kept", "written", "deleted"), n)) for t, n in result.written.items()},
    }


def _workbook_size(path: Path) -> dict:
    """Rows and cells per sheet of a workbook the night wrote, counted in its sheet XML (xlsxwriter
    writes every row as `<row r=` and every cell as `<c r=`), streamed; after the night, not timed."""
    import zipfile

    from pipeline.io.grids import sheet_members

    sheets = []
    with zipfile.ZipFile(path) as z:
        for name, member in sheet_members(path).items():
            counts, tail = {b"<row ": 0, b"<c r=": 0}, b""
            with z.open(member) as f:
                while chunk := f.read(8 * MB):
                    buf = tail + chunk
                    for pattern in counts:  # the 4-byte tail cannot hold a whole 5-byte pattern
                        counts[pattern] += buf.count(pattern)
                    tail = buf[-4:]
            sheets.append({"sheet": name, "rows": counts[b"<row "], "cells": counts[b"<c r="]})
    return {"file": path.name, "mb": round(path.stat().st_size / MB, 1), "sheets": sheets}


def night(args, inputs: dict, work: Path, label: str, fresh: bool, reader: str = "calamine") -> dict:
    """One night measured in a fresh child process; then the floor on the same files, in this process."""
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    # The bureau's staff drop each night's exports into the same folder under the same names: the
    # run reads them there (symbolic links to the generated files), so night 2's payments file has
    # night 1's path and its unchanged lines are the same rows (source_file is part of a row).
    inbox = work / "inbox"
    shutil.rmtree(inbox, ignore_errors=True)
    inbox.mkdir()
    dropped = {}
    for kind in ("roster", "payments"):
        dropped[kind] = []
        for f in inputs[kind]:
            link = inbox / Path(f).name
            link.symlink_to(Path(f).resolve())
            dropped[kind].append(str(link))
    spec = {"year": args.year, "region": args.region, "excel": not args.no_excel, "work": str(work), **dropped}
    print(f"running {label} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--measure-night", json.dumps(spec)], cwd=ROOT, check=True)
    process_s = time.perf_counter() - t0
    run = json.loads((work / "night.json").read_text())
    rec = Recorder()
    fl = floor(inputs["roster"] + inputs["payments"], rec, reader)
    rec.close()
    return {
        "label": label,
        "process_s": process_s,
        **run,
        "floor": fl,
        "ratio_to_sequential_floor": run["total_s"] / fl["sequential_s"],
        "ratio_to_parallel_floor": run["total_s"] / fl["parallel_s"],
    }


# --------------------------------------------------------------------------- reporting
def machine() -> dict:
    def grab(path: str, key: str) -> str:
        try:
            return next(line.split(":", 1)[1].strip() for line in open(path) if line.startswith(key))
        except (OSError, StopIteration):
            return "?"

    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu": grab("/proc/cpuinfo", "model name"),
        "memory": grab("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        **{p: version(p) for p in ("polars", "fastexcel", "duckdb", "xlsxwriter")},
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", "pipeline", "schemas", "policy_params").splitlines(),
    }


def _per_sheet_read(measured: list[dict]) -> tuple[list[dict], bool]:
    """The sheets' own read seconds. An .xlsx sheet is its own unit of work (its own parser child); the
    other formats are read a whole file per child, where `read_s` counts from the child's start (so it
    includes the earlier sheets' reading and row checks): their own time is the difference with the
    previous sheet's, less its row checks (the rest is writing its rows for the parent)."""
    out, derived, previous = [], False, {}
    for x in measured:
        own = x["read_s"]
        if not x["file"].lower().endswith((".xlsx", ".xlsm")) and x["file"] in previous:
            before = previous[x["file"]]
            own, derived = x["read_s"] - before["read_s"] - (before["check_s"] or 0), True
        previous[x["file"]] = x
        out.append({**x, "own_read_s": own})
    return out, derived


def table(run: dict) -> str:
    fl = run["floor"]
    reader = fl.get("reader", "calamine")
    lines = [
        f"#### {run['label']}",
        "",
        "| stage | wall s | peak RSS MB (process tree) | peak RSS MB (main process) |",
        "|---|---:|---:|---:|",
    ]
    for s in run["stages"]:
        name = ("&nbsp;&nbsp;" * s["depth"] + "↳ " if s["depth"] else "") + s["stage"]
        calls = f" (×{s['calls']})" if s["calls"] > 1 else ""
        if s["own_seconds"] < s["seconds"] - 1e-9:
            calls += f" — incl. ↳ below; own {s['own_seconds']:.2f} s"
        lines.append(
            f"| {name}{calls} | {s['seconds']:.2f} | {s['peak_rss_mb']:,} | "
            f"{'' if s['self_hwm_mb'] is None else format(s['self_hwm_mb'], ',')} |"
        )
    lines += [
        f"| (between stages) | {run['between_stages_s']:.2f} | | |",
        f"| **total run_night** | **{run['total_s']:.2f}** | **{run['peak_rss_mb']:,}** | "
        f"**{run['main_process_peak_mb']:,}** |",
        f"| (process: python start, imports, run_night) | {run['process_s']:.2f} | | |",
        f"| floor: {reader}, sequential | {fl['sequential_s']:.2f} | {fl['sequential_peak_rss_mb']:,} | |",
        f"| floor: {reader}, parallel ({fl['parallel_workers']} processes) | {fl['parallel_s']:.2f} | | |",
        "",
        f"ratio to floor: **{run['ratio_to_sequential_floor']:.2f}x** sequential (bar ≤ 2.2x), "
        f"**{run['ratio_to_parallel_floor']:.2f}x** parallel",
    ]
    r, p = run["rows"]["roster"], run["rows"]["payments"]
    lines.append(
        f"rows: roster {r['rows_read']:,} read ({r['accepted']:,} accepted, {r['rejected']:,} rejected), "
        f"payments {p['rows_read']:,} read ({p['accepted']:,} accepted, {p['rejected']:,} rejected); "
        f"files: {', '.join(run['files'])}"
    )
    if "partitions" in run:
        lines.append(f"runs as: {'one piece' if run['partitions'] == 1 else str(run['partitions']) + ' partitions'}")
    measured, derived = _per_sheet_read([x for x in run.get("sheet_seconds", []) if x["read_s"] is not None])
    reused = [f"{x['file']} [{x['sheet']}]" for x in run.get("sheet_seconds", []) if x["read_s"] is None]
    if measured:
        lines += [
            "",
            "inside 读取 read: each sheet in its parser child (the children share the cores)",
            "",
            "| file | sheet | read s (calamine, trimming, number-cell check) | row checks s (pandera model) |",
            "|---|---|---:|---:|",
        ]
        lines += [f"| {x['file']} | {x['sheet']} | {x['own_read_s']:.2f} | {x['check_s'] or 0:.2f} |" for x in measured]
        read_s, check_s = sum(x["own_read_s"] for x in measured), sum(x["check_s"] or 0 for x in measured)
        lines.append(f"| **all** | | **{read_s:.2f}** | **{check_s:.2f}** ({check_s / read_s:.0%} of reading) |")
        if derived:
            lines.append(
                "\n(a file other than .xlsx is read whole in one child, whose `read_s` counts from its start: "
                "a later sheet's read s here is its difference with the sheet before, less that sheet's "
                "row checks; calamine parses an .xls whole on opening, so its first sheet carries most "
                "of the file's reading)"
            )
    publish = next((x for x in run["stages"] if x["stage"].startswith("发布")), None)
    if "database_mb" in run:
        lines.append(
            f"\ndatabase file: {run['database_mb']:,} MB"
            + (f"; 发布 publish (the rename that publishes it): {publish['seconds']:.2f} s" if publish else "")
        )
    for wb in run.get("workbooks", []):
        lines.append(
            f"workbook {wb['file']} ({wb['mb']:,} MB): "
            + "; ".join(f"{x['sheet']} {x['rows']:,} rows / {x['cells']:,} cells" for x in wb["sheets"])
            + f"; **all {sum(x['rows'] for x in wb['sheets']):,} rows / {sum(x['cells'] for x in wb['sheets']):,} cells**"
        )
    if reused:
        lines.append(
            f"\nsheets reused from the cache (the same bytes read before, rows already checked): {', '.join(reused)}"
        )
    written = run.get("written", {})
    if any(n["kept"] for n in written.values()):
        lines.append(
            "DuckDB rows kept / written / deleted (unchanged rows stay): "
            + "; ".join(f"{t} {n['kept']:,} / {n['written']:,} / {n['deleted']:,}" for t, n in written.items())
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", choices=("full", "payments-changed", "province", "formats"), default="full")
    ap.add_argument("--rows", type=int, default=100_000, help="residents per roster file (default 100000)")
    ap.add_argument("--payment-rows", type=int, help="payment rows (default: --rows; province: per roster file)")
    ap.add_argument("--roster-files", type=int, help="roster files (default 1; province: 5)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--year", type=int, default=2026)
    ap.add_argument("--region", default="jingdezhen")
    ap.add_argument("--no-excel", action="store_true", help="skip writing the two workbooks")
    ap.add_argument("--no-baseline", action="store_true", help="province: skip the 1-file baseline run")
    ap.add_argument("--regenerate", action="store_true", help="generate the inputs even if cached")
    ap.add_argument("--keep", action="store_true", help="keep the DuckDB file and workbooks under benchmarks/out/")
    ap.add_argument("--measure-night", help=argparse.SUPPRESS)  # internal: the child process of night()
    args = ap.parse_args()
    if args.measure_night:
        spec = json.loads(args.measure_night)
        Path(spec["work"], "night.json").write_text(json.dumps(measure_night(spec)))
        return 0
    pay = args.payment_rows if args.payment_rows is not None else args.rows
    files = args.roster_files or (5 if args.scenario == "province" else 1)
    work = OUT / f"{args.scenario}-{args.rows}-work"

    def inputs_for(rows_: int, pay_: int, files_: int) -> tuple[dict, dict]:
        info = dataset(rows_, pay_, files_, args.seed, args.year, args.regenerate)
        return info, {"roster": info["roster"], "payments": info["payments"]}

    runs, generated = [], []
    if args.scenario in ("full", "payments-changed"):
        info, inputs = inputs_for(args.rows, pay, files)
        generated.append(info)
        if args.scenario == "payments-changed":
            more = pay + max(1, pay // 50)  # the tax bureau's next export: the same payers plus 2% late ones
            info2, changed = inputs_for(args.rows, more, files)
            generated.append(info2)
        if args.scenario == "payments-changed":
            # both nights' payments files come out of the same export tool (appended_payments): the
            # sheets the new rows do not touch are the same bytes both nights, as a real tool's are
            exported = appended_payments(inputs["payments"], changed["payments"], 0, args.regenerate)
            inputs = {"roster": inputs["roster"], "payments": exported}
        runs.append(night(args, inputs, work, f"night 1: {args.scenario}, fresh database", fresh=True))
        if args.scenario == "payments-changed":
            appended = appended_payments(info["payments"], changed["payments"], more - pay, args.regenerate)
            second = {"roster": inputs["roster"], "payments": appended}
            runs.append(
                night(
                    args,
                    second,
                    work,
                    f"night 2: same roster files, night 1's payments file plus {more - pay:,} rows",
                    fresh=False,
                )
            )
    elif args.scenario == "formats":
        info, inputs = inputs_for(args.rows, pay, files)
        generated.append(info)
        copies = format_copies(info, args.regenerate)
        generated.append({"formats": copies.pop("written")})
        for fmt, night_inputs, reader in (
            ("xlsx", inputs, "calamine"),
            ("xls", copies["xls"], "calamine"),
            ("csv", copies["csv"], "read_csv"),
        ):
            run = night(
                args,
                night_inputs,
                work / fmt,
                f"{fmt}: the same rows as {fmt} files, fresh database",
                fresh=True,
                reader=reader,
            )  # --keep keeps each night's database under <work>/<fmt>/
            runs.append(run | {"format": fmt})
    else:
        if not args.no_baseline:
            info, inputs = inputs_for(args.rows, pay, 1)
            generated.append(info)
            runs.append(night(args, inputs, work, "baseline: 1 roster file", fresh=True))
        info, inputs = inputs_for(args.rows, pay * files, files)
        generated.append(info)
        runs.append(night(args, inputs, work, f"province: {files} roster files", fresh=True))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)

    summary: dict = {}
    for run in runs:
        n = run["rows"]["roster"]["rows_read"] + run["rows"]["payments"]["rows_read"]
        run["seconds_per_million_rows"] = run["total_s"] / (n / 1e6)
    if args.scenario == "payments-changed":
        summary["second_over_first"] = runs[1]["total_s"] / runs[0]["total_s"]
    if args.scenario == "formats":
        summary["ratio_to_own_sequential_floor"] = {r["format"]: r["ratio_to_sequential_floor"] for r in runs}
        summary["ratio_to_own_parallel_floor"] = {r["format"]: r["ratio_to_parallel_floor"] for r in runs}
    if args.scenario == "province" and len(runs) == 2:
        summary["time_per_row_growth"] = runs[1]["seconds_per_million_rows"] / runs[0]["seconds_per_million_rows"]
        summary["peak_rss_growth"] = runs[1]["peak_rss_mb"] / runs[0]["peak_rss_mb"]
    command = shlex.join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    mach = machine()
    report = {
        "scenario": args.scenario,
        "command": command,
        "rows": args.rows,
        "payment_rows": pay,
        "roster_files": files,
        "seed": args.seed,
        "year": args.year,
        "region": args.region,
        "excel": not args.no_excel,
        "machine": mach,
        "inputs": generated,
        "runs": runs,
        "summary": summary,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    out_json = OUT / f"{args.scenario}-{args.rows}.json"
    out_json.write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str))

    print(f"### `{command}`\n")
    for run in runs:
        print(table(run))
        print(f"time per million rows read (roster + payments): {run['seconds_per_million_rows']:.1f} s\n")
    if "second_over_first" in summary:
        print(f"night 2 / night 1 wall time: **{summary['second_over_first']:.2f}** (bar ≤ 0.6)\n")
    if "ratio_to_own_sequential_floor" in summary:
        seq, par = summary["ratio_to_own_sequential_floor"], summary["ratio_to_own_parallel_floor"]
        print(
            "each night against its own sequential floor: "
            + "; ".join(
                f"{fmt}: {'total/floor = ' if k == 0 else ''}**{r:.2f}x**" for k, (fmt, r) in enumerate(seq.items())
            )
            + "\n(against its own parallel floor: "
            + "; ".join(f"{fmt}: {r:.2f}x" for fmt, r in par.items())
            + ")\n"
        )
    if "time_per_row_growth" in summary:
        print(
            f"{files} files vs 1: time per row ×{summary['time_per_row_growth']:.2f} (1.0 = linear), "
            f"peak RSS ×{summary['peak_rss_growth']:.2f}\n"
        )
    print(
        f"machine: {mach['nproc']} CPUs ({mach['cpu']}), {mach['memory']} RAM, Linux {mach['kernel']}; "
        f"Python {mach['python']}, polars {mach['polars']}, fastexcel {mach['fastexcel']}, duckdb {mach['duckdb']}; "
        f"code {mach['commit']}" + (f" + {len(mach['uncommitted'])} uncommitted file(s)" if mach["uncommitted"] else "")
    )
    print(f"JSON: {os.path.relpath(out_json, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
