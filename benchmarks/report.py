"""The benchmark's Markdown: one table per measured night, the machine it ran on."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
        "cpu": grab("/proc/cpuinfo", "model name"),
        "memory": grab("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        **{p: version(p) for p in ("polars", "fastexcel", "duckdb", "xlsxwriter")},
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", "pipeline", "schemas", "policy_params").splitlines(),
    }


def machine_line(mach: dict) -> str:
    return (
        f"machine: {mach['nproc']} CPUs ({mach['cpu']}), {mach['memory']} RAM, Linux {mach['kernel']}; "
        f"Python {mach['python']}, polars {mach['polars']}, fastexcel {mach['fastexcel']}, duckdb {mach['duckdb']}, "
        f"xlsxwriter {mach['xlsxwriter']}; code {mach['commit']}"
        + (f" + {len(mach['uncommitted'])} uncommitted file(s)" if mach["uncommitted"] else "")
    )


def _stage_lines(run: dict) -> list[str]:
    fl = run["floor"]
    lines = ["| stage | wall s | peak RSS MB (process tree) | peak RSS MB (main process) |", "|---|---:|---:|---:|"]
    for s in run["stages"]:
        calls = f" (×{s['calls']})" if s["calls"] > 1 else ""
        hwm = "" if s["self_hwm_mb"] is None else format(s["self_hwm_mb"], ",")
        lines.append(f"| {s['stage']}{calls} | {s['seconds']:.2f} | {s['peak_rss_mb']:,} | {hwm} |")
    return [
        *lines,
        f"| (outside the stages: the lock, cleaning leftovers) | {run['between_stages_s']:.2f} | | |",
        f"| **total run_night** | **{run['total_s']:.2f}** | **{run['peak_rss_mb']:,}** | "
        f"**{run['main_process_peak_mb']:,}** |",
        f"| (process: python start, imports, run_night) | {run['process_s']:.2f} | | |",
        f"| floor: {fl['reader']}, sequential | {fl['sequential_s']:.2f} | {fl['sequential_peak_rss_mb']:,} | |",
        f"| floor: {fl['reader']}, parallel ({fl['parallel_workers']} processes) | {fl['parallel_s']:.2f} | | |",
    ]


def _workbook_lines(run: dict) -> list[str]:
    out = []
    for wb in run.get("workbooks", []):
        rows = sum(x["rows"] for x in wb["sheets"])
        cells = sum(x["cells"] for x in wb["sheets"])
        out.append(
            f"workbook {wb['file']} ({wb['mb']:,} MB): "
            + "; ".join(f"{x['sheet']} {x['rows']:,} rows / {x['cells']:,} cells" for x in wb["sheets"])
            + f"; **all {rows:,} rows / {cells:,} cells**"
        )
    return out


def table(run: dict) -> str:
    """A night's stages, ratio to the floor, rows, database, workbooks and what came from the cache."""
    r, p = run["rows"]["roster"], run["rows"]["payments"]
    f = run["figures"]
    lines = [
        f"#### {run['label']}",
        "",
        *_stage_lines(run),
        "",
        f"ratio to floor: **{run['ratio_to_sequential_floor']:.2f}x** sequential, "
        f"**{run['ratio_to_parallel_floor']:.2f}x** parallel",
        f"rows: roster {r['rows_read']:,} read ({r['accepted']:,} accepted, {r['rejected']:,} rejected), "
        f"payments {p['rows_read']:,} read ({p['accepted']:,} accepted, {p['rejected']:,} rejected); "
        f"files: {', '.join(run['files'])}",
        f"persons {f['persons']:,}: unpaid {f['unpaid']:,}, underpaid {f['underpaid']:,}, overpaid "
        f"{f['overpaid']:,}, paid in full {f['paid_in_full']:,}, subsidised {f['subsidized']:,}",
        f"runs as: {'one piece' if run['partitions'] == 1 else str(run['partitions']) + ' partitions'}",
    ]
    measured = [x for x in run.get("sheet_seconds", []) if x["read_s"] is not None]
    cached = [
        f"{x['file']} [{x['sheet']}]" + (", its checks too" if x.get("checks_reused") else ", checked again")
        for x in run.get("sheet_seconds", [])
        if x["read_s"] is None
    ]
    if measured:
        lines += ["", "| file | sheet | read s in its parser child (the children share the cores) |", "|---|---|---:|"]
        lines += [f"| {x['file']} | {x['sheet']} | {x['read_s']:.2f} |" for x in measured]
    if cached:
        lines.append(f"\nsheets taken from the cache (the same bytes read before): {'; '.join(cached)}")
    lines.append(f"\ndatabase file: {run['database_mb']:,} MB")
    lines += _workbook_lines(run)
    return "\n".join(lines)
