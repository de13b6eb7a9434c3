"""City-scale benchmark of the nightly run: wall time and peak memory per stage, against the calamine floor.

Run from the repository root with the project's virtualenv (benchmarks/README.md):

    .venv/bin/python benchmarks/run.py                                   # 100,000 residents
    .venv/bin/python benchmarks/run.py --rows 1000000                    # the city-scale first night
    .venv/bin/python benchmarks/run.py --rows 1000000 --scenario next-night
    .venv/bin/python benchmarks/run.py --rows 1000000 --scenario collection-start
    .venv/bin/python benchmarks/run.py --rows 1000000 --scenario province --roster-files 5
    .venv/bin/python benchmarks/run.py --rows 1000000 --scenario formats

Each night runs in a fresh child process (as a nightly `medins run` would), reading its inputs from
`<work>/inbox/` (symbolic links under the generated files' names, as the staff drop each night's
exports into one folder); then the floor is measured on the same files in this process. The report
is printed as Markdown and written as JSON to benchmarks/out/<scenario>-<rows>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.inputs import dataset, format_copies, next_day_export  # noqa: E402
from benchmarks.measure import Recorder, floor, measure_night  # noqa: E402
from benchmarks.report import machine, machine_line, table  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
NEXT_DAY_SHARE = 0.02  # the next daily export: 2 % new payments


def night(args, inputs: dict, work: Path, label: str, fresh: bool, as_of: dt.date, reader: str = "calamine") -> dict:
    """One night measured in a fresh child process; then the floor on the same files, in this process."""
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    inbox = work / "inbox"
    shutil.rmtree(inbox, ignore_errors=True)
    inbox.mkdir()
    dropped: dict[str, list[str]] = {}
    for kind in ("roster", "payments"):
        dropped[kind] = []
        for f in inputs[kind]:
            link = inbox / Path(f).name
            link.symlink_to(Path(f).resolve())
            dropped[kind].append(str(link))
    spec = {
        "year": args.year,
        "region": args.region,
        "excel": not args.no_excel,
        "work": str(work),
        "as_of": as_of.isoformat(),
        **dropped,
    }
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


def _first_and_next(args, work: Path) -> tuple[list[dict], list[dict]]:
    """Night 1 into a fresh database; night 2 the same roster and payments files (byte-identical) and
    the tax bureau's next daily export, a new small file of 2 % new payments, the next day."""
    info = dataset(args.rows, args.roster_files or 1, args.seed, args.year, args.mix, args.regenerate)
    inputs = {"roster": info["roster"], "payments": info["payments"]}
    today = dt.date.today()
    first = night(args, inputs, work, "night 1: fresh database", fresh=True, as_of=today - dt.timedelta(days=1))
    extra = max(1, round(NEXT_DAY_SHARE * info["payment_rows"]))
    export = next_day_export(work / "medins.duckdb", work / "exports" / f"payments_{today:%Y%m%d}.xlsx", extra, today)
    second = night(
        args,
        {"roster": inputs["roster"], "payments": [*inputs["payments"], str(export)]},
        work,
        f"night 2: the same files and the next daily export ({extra:,} payments)",
        fresh=False,
        as_of=today,
    )
    return [info], [first, second]


def _formats(args, work: Path) -> tuple[list[dict], list[dict]]:
    info = dataset(args.rows, args.roster_files or 1, args.seed, args.year, args.mix, args.regenerate)
    copies = format_copies(info, args.regenerate)
    made = copies.pop("written")
    runs = []
    for fmt, night_inputs, reader in (
        ("xlsx", {"roster": info["roster"], "payments": info["payments"]}, "calamine"),
        ("xls", copies["xls"], "calamine"),
        ("csv", copies["csv"], "read_csv"),
    ):
        label = f"{fmt}: the same rows as {fmt} files, fresh database"
        runs.append(
            night(args, night_inputs, work / fmt, label, fresh=True, as_of=dt.date.today(), reader=reader)
            | {"format": fmt}
        )
    return [info, {"formats": made}], runs


def _scenario(args, work: Path) -> tuple[list[dict], list[dict]]:
    """(the generated inputs, the measured nights) of the scenario asked for."""
    if args.scenario == "next-night":
        return _first_and_next(args, work)
    if args.scenario == "formats":
        return _formats(args, work)
    files = args.roster_files or (5 if args.scenario == "province" else 1)
    mix = "collection-start" if args.scenario == "collection-start" else args.mix
    info = dataset(args.rows, files, args.seed, args.year, mix, args.regenerate)
    inputs = {"roster": info["roster"], "payments": info["payments"]}
    label = {
        "full": "first night, fresh database",
        "collection-start": "collection start (90 % of residents unpaid), fresh database",
        "province": f"province: {files} roster files",
    }[args.scenario]
    return [info], [night(args, inputs, work, label, fresh=True, as_of=dt.date.today())]


def summarise(args, runs: list[dict]) -> dict:
    for run in runs:
        n = run["rows"]["roster"]["rows_read"] + run["rows"]["payments"]["rows_read"]
        run["seconds_per_million_rows"] = run["total_s"] / (n / 1e6)
    summary: dict = {}
    if args.scenario == "next-night":
        summary["second_over_first"] = runs[1]["total_s"] / runs[0]["total_s"]
    if args.scenario == "formats":
        summary["ratio_to_own_sequential_floor"] = {r["format"]: r["ratio_to_sequential_floor"] for r in runs}
    return summary


def print_report(command: str, runs: list[dict], summary: dict, mach: dict, out_json: Path) -> None:
    print(f"### `{command}`\n")
    for run in runs:
        print(table(run))
        print(f"time per million rows read (roster + payments): {run['seconds_per_million_rows']:.1f} s\n")
    if "second_over_first" in summary:
        print(f"night 2 / night 1 wall time: **{summary['second_over_first']:.2f}** (target ≤ 0.5)\n")
    if "ratio_to_own_sequential_floor" in summary:
        ratios = summary["ratio_to_own_sequential_floor"]
        print("each night against its own sequential floor: " + "; ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    print(machine_line(mach))
    print(f"JSON: {os.path.relpath(out_json, ROOT)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--scenario", choices=("full", "next-night", "collection-start", "province", "formats"), default="full"
    )
    ap.add_argument("--rows", type=int, default=100_000, help="residents per roster file (default 100000)")
    ap.add_argument("--roster-files", type=int, help="roster files (default 1; province: 5)")
    ap.add_argument("--mix", default="bureau", help="payment mix of benchmarks/inputs.py MIXES (default bureau)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--year", type=int, default=2026)
    ap.add_argument("--region", default="jingdezhen")
    ap.add_argument("--no-excel", action="store_true", help="skip writing the workbooks")
    ap.add_argument("--regenerate", action="store_true", help="generate the inputs even if cached")
    ap.add_argument("--keep", action="store_true", help="keep the DuckDB file and workbooks under benchmarks/out/")
    ap.add_argument("--measure-night", help=argparse.SUPPRESS)  # internal: the child process of night()
    args = ap.parse_args()
    if args.measure_night:
        spec = json.loads(args.measure_night)
        Path(spec["work"], "night.json").write_text(json.dumps(measure_night(spec)))
        return 0
    work = OUT / f"{args.scenario}-{args.rows}-work"
    generated, runs = _scenario(args, work)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    summary = summarise(args, runs)
    command = shlex.join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    mach = machine()
    report = {"scenario": args.scenario, "command": command, "machine": mach, "inputs": generated}
    report |= {"rows": args.rows, "runs": runs, "summary": summary}
    OUT.mkdir(parents=True, exist_ok=True)
    out_json = OUT / f"{args.scenario}-{args.rows}.json"
    out_json.write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str))
    print_report(command, runs, summary, mach, out_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
