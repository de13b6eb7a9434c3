"""The benchmark's inputs: generated nights (cached under benchmarks/data/), the tax bureau's next daily
export, and the same rows as .xls and CSV.

Generated nights come from `tools.sample.generate_sample` (messy: title rows, blank and footer rows,
planted bad rows) with a payment mix (`MIXES`): "bureau" carries the shares of a county in the
collection period as measured from outside (9 % of residents unpaid, 4 % underpaid, 3 % overpaid,
about 2 % of payments matching nobody, from the planted bad roster rows); "collection-start" is the first weeks of a period (90 % unpaid).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
EXCEL_MAX_ROWS = 1_048_576
XLS_MAX_ROWS = 65_536  # rows per sheet of an old binary .xls (BIFF8)
MB = 1024 * 1024

# tools.sample.context.PaymentMix thresholds (cumulative shares of one draw per resident who owes),
# and strangers' payments per resident
MIXES = {
    "bureau": {
        "unpaid": 0.09,
        "underpaid": 0.13,
        "instalments": 0.15,
        "paid_twice": 0.16,
        "overpaid": 0.19,
        "strangers": 0.0,  # the planted rows already give 2 % of payments matching nobody
    },
    "collection-start": {
        "unpaid": 0.90,
        "underpaid": 0.92,
        "instalments": 0.93,
        "paid_twice": 0.935,
        "overpaid": 0.94,
        "strangers": 0.005,
    },
}
# payment rows per resident the tax export holds, where a mix fixes them: the bureau's night is 1M roster
# rows and 1M payment rows (the generator splits payments into instalments to reach the count)
PAYMENT_ROWS_PER_RESIDENT = {"bureau": 1.0}


def _sheets_needed(biggest: int) -> int:
    """Sheets per file so that the biggest file fits Excel's row limit (the generator's own check)."""
    sheets = 2
    while biggest / sheets * 1.05 + 50 > EXCEL_MAX_ROWS:
        sheets += 1
    return sheets


def dataset(rows: int, roster_files: int, seed: int, year: int, mix: str, regenerate: bool) -> dict:
    """Roster and payment files for `rows` residents per roster file, paying as `MIXES[mix]`;
    generated once (in a child process), then reused."""
    per = PAYMENT_ROWS_PER_RESIDENT.get(mix)
    payment_rows = None if per is None else round(rows * roster_files * per)
    key = f"rows{rows}-files{roster_files}-seed{seed}-y{year}-{mix}" + (f"-pay{payment_rows}" if payment_rows else "")
    where, marker = DATA / key, DATA / key / "generated.json"
    if marker.exists() and not regenerate:
        return _located(json.loads(marker.read_text()), where, generated_now=False)
    tmp = DATA / (key + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(where, ignore_errors=True)
    sheets = _sheets_needed(rows * roster_files)
    print(f"generating {key} ({sheets} sheets per file) ...", file=sys.stderr, flush=True)
    code = (
        "import json, sys, time; from pathlib import Path; from tools.sample import generate_sample\n"
        "a = json.loads(sys.argv[1]); t = time.perf_counter()\n"
        "r = generate_sample(a['rows'], a['seed'], a['year'], Path(a['dir']), roster_files=a['roster_files'],\n"
        "                    sheets_per_file=a['sheets'], extra_formats=False, payment_mix=a['mix'],\n"
        "                    payment_rows=a['payment_rows'])\n"
        "keep = {k: r[k] for k in ('residents', 'roster_rows', 'payment_rows', 'expected', 'payment_cases')}\n"
        "keep |= {'roster': [p.name for p in r['roster_files']], 'payments': [p.name for p in r['payment_files']],\n"
        "         'generate_seconds': round(time.perf_counter() - t, 1), 'sheets_per_file': a['sheets']}\n"
        "Path(a['dir'], 'generated.json').write_text(json.dumps(keep, default=str, indent=1))\n"
    )
    args = {
        "rows": rows * roster_files,
        "roster_files": roster_files,
        "seed": seed,
        "year": year,
        "dir": str(tmp),
        "sheets": sheets,
        "mix": MIXES[mix],
        "payment_rows": payment_rows,
    }
    subprocess.run([sys.executable, "-c", code, json.dumps(args)], cwd=ROOT, check=True)
    tmp.rename(where)
    info = json.loads(marker.read_text())
    print(f"generated in {info['generate_seconds']} s", file=sys.stderr, flush=True)
    return _located(info, where, generated_now=True)


def next_day_export(night1_db: Path, target: Path, rows: int, paid_on: dt.date) -> Path:
    """The tax bureau's next daily export as its own new file: `rows` payments of residents the first
    night found unpaid, each paying their due on `paid_on` under a new ticket number, with the title,
    header and footer rows of a real export."""
    import duckdb
    import xlsxwriter

    con = duckdb.connect(str(night1_db), read_only=True)
    try:
        payers = con.execute(
            "SELECT name, id_number, CAST(individual_due AS VARCHAR) FROM reconciliation "
            "WHERE status = 'unpaid' ORDER BY id_number LIMIT ?",
            [rows],
        ).fetchall()
        year = con.execute("SELECT max(coverage_year) FROM reconciliation").fetchall()[0][0]
    finally:
        con.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(target), {"constant_memory": True, "strings_to_numbers": False})
    ws = wb.add_worksheet("缴费明细")
    ws.write_row(0, 0, [f"城乡居民基本医疗保险费缴费明细（{paid_on:%Y年%m月%d日}导出）"])
    ws.write_row(1, 0, ["序号", "姓名", "证件号码", "缴费金额", "缴费日期", "费款所属期", "电子税票号码", "缴费渠道"])
    for i, (name, id_number, due) in enumerate(payers, 1):
        ticket = f"336{paid_on:%y%m%d}{i:011d}"
        ws.write_row(i + 1, 0, [i, name, id_number, due, paid_on.isoformat(), str(year), ticket, "微信"])
    ws.write_row(len(payers) + 2, 0, [f"合计：{len(payers)}笔"])
    wb.close()
    return target


def _located(info: dict, where: Path, generated_now: bool) -> dict:
    """The generator's summary with the file names turned into paths under `where`."""
    return info | {
        "generated_now": generated_now,
        "dir": str(where.relative_to(ROOT)),
        "roster": [str(where / n) for n in info["roster"]],
        "payments": [str(where / n) for n in info["payments"]],
    }


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


def _xls_chunks(rows: list[list[object]], head: list[list[object]]) -> list[list[list[object]]]:
    """`rows` in sheets of at most XLS_MAX_ROWS rows, each after the first opening on `head`."""
    chunks: list[list[list[object]]] = []
    start = 0
    while start < len(rows) or not chunks:
        lead = head if chunks else []
        take = XLS_MAX_ROWS - len(lead)
        chunks.append(lead + rows[start : start + take])
        start += take
    return chunks


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
        chunks = _xls_chunks(rows, rows[: _head_rows(rows, kind)])
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
