"""The nightly steps, in order. Nothing else lives here."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipeline.errors import ConservationError, InputFileError
from pipeline.faults import checkpoint
from pipeline.io.excel_in import SheetRead, empty_read, estimated_rows, expand_inputs, sha256_of
from pipeline.io.isolate import (
    CACHE_DIR_NAME,
    TMP_PREFIX,
    ReadJob,
    ReadLimits,
    clean_leftovers,
    prune_cache,
    read_isolated,
    sheet_rejected,
    sheet_scan,
)
from pipeline.io.excel_out import build_reports, publish_reports
from pipeline.io.lock import run_lock
from pipeline.io.store import YearWriter, copy_previous, discard_previous_copy, publish
from pipeline.partition import partition_count, payment_partition, roster_partition, shared_tickets
from pipeline.params import Params, load_params
from pipeline.reconcile import reconcile, unmatched_payments
from pipeline.rules import determine
from pipeline.totals import subsidy_totals, totals_from_township_sums, township_sums
from pipeline.validate import (
    REJECTED_SCHEMA,
    Checked,
    Validated,
    check_sheet,
    settle_payments,
    settle_roster,
)
from schemas.headers import HeaderMap, load_header_map

SAMPLE_DIR = Path("sample_data")


@dataclass
class RunResult:
    run_id: str
    coverage_year: int
    region: str
    db_path: Path
    reports: list[Path]
    sheets: pl.DataFrame
    rejected: pl.DataFrame
    duplicates: pl.DataFrame
    determinations: pl.DataFrame
    reconciliation: pl.DataFrame
    unmatched: pl.DataFrame
    totals: pl.DataFrame
    other_year_payments: int
    warnings: list[str] = field(default_factory=list)
    # per sheet, measured in its parser child: seconds reading it and seconds checking its rows
    # (None for a sheet reused from the cache)
    sheet_seconds: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # per big table (store.DIFFED_TABLES): rows kept unchanged, inserted, deleted by this run
    written: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # partitions of residents the night ran in (pipeline/partition.py); with more than one,
    # `determinations` and `reconciliation` hold no rows (they are in DuckDB); `figures` has the summary
    partitions: int = 1
    figures: dict[str, int] = field(default_factory=dict)


def default_inputs(coverage_year: int) -> tuple[list[str], list[str]]:
    """sample_data/<Y>/roster*.xlsx and payments*.xlsx (CONTRACT.md: no file arguments)."""
    base = SAMPLE_DIR / str(coverage_year)
    if not base.is_dir():
        base = SAMPLE_DIR
    return [str(base / "roster*.xlsx")], [str(base / "payments*.xlsx")]


def _checked(sheets: list[SheetRead], kind: str, params: Params, header_map: HeaderMap,
             today: dt.date) -> list[Checked]:
    """The checked rows of every sheet (checked in the parser children, or reused from the cache)."""
    out = [Checked(parsed=s.data, rejected=s.rejected) for s in sheets if s.data is not None]
    if not out:  # every file of this kind skipped: the same columns, no rows
        empty = SheetRead(kind=kind, source_file="", sha256="", sheet="", data=empty_read(header_map))
        out = [check_sheet(empty, params, header_map, today)]
    return out


def conservation(sheets: list[SheetRead], validated: Validated, kind: str) -> pl.DataFrame:
    """Per file and sheet: rows read = accepted + rejected + skipped. Fails loudly if not."""
    keys = ["source_file", "sheet"]

    def count(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        if frame.height == 0:
            return pl.DataFrame(schema={"source_file": pl.Utf8, "sheet": pl.Utf8, name: pl.UInt32})
        if "__n" in frame.columns:  # counts already made (a night in partitions)
            return frame.group_by(keys).agg(pl.col("__n").sum().cast(pl.UInt32).alias(name))
        return frame.group_by(keys).agg(pl.len().alias(name))

    read = pl.DataFrame(
        [{
            "kind": kind, "source_file": s.source_file, "sha256": s.sha256, "sheet": s.sheet,
            "header_row": s.header_row, "rows_read": s.rows_read, "skipped_blank": s.skipped_blank,
            "skipped_footer": s.skipped_footer,
            "note": "; ".join(filter(None, [s.note, (
                "缺少必填列 / missing required column(s): " + ", ".join(s.missing_required))
                if s.missing_required else ""])),
            "reused": s.reused, "rows_reused": s.rows_read if s.reused else s.rows_reused,
        } for s in sheets],
        schema={"kind": pl.Utf8, "source_file": pl.Utf8, "sha256": pl.Utf8, "sheet": pl.Utf8,
                "header_row": pl.Int32, "rows_read": pl.Int64, "skipped_blank": pl.Int64,
                "skipped_footer": pl.Int64, "note": pl.Utf8, "reused": pl.Boolean, "rows_reused": pl.Int64},
    )
    rejected_rows = validated.rejected.select(*keys, "row_number").unique()
    table = (
        read.join(count(validated.accepted, "accepted"), on=keys, how="left")
        .join(count(rejected_rows, "rejected"), on=keys, how="left")
        .join(count(validated.duplicates, "skipped_duplicate"), on=keys, how="left")
        .with_columns(pl.col("accepted", "rejected", "skipped_duplicate").fill_null(0).cast(pl.Int64))
    )
    broken = table.filter(
        pl.col("rows_read") != pl.col("accepted") + pl.col("rejected") + pl.col("skipped_duplicate")
        + pl.col("skipped_blank") + pl.col("skipped_footer")
    )
    if broken.height:
        first = broken.row(0, named=True)
        raise ConservationError(
            f"行数不守恒 / rows lost: {first['source_file']} [{first['sheet']}] read {first['rows_read']}, "
            f"accepted {first['accepted']} + rejected {first['rejected']} + skipped "
            f"{first['skipped_duplicate'] + first['skipped_blank'] + first['skipped_footer']}"
        )
    return table


def _estimated_rows(path: Path) -> int:
    """excel_in.estimated_rows, 0 for a file it cannot look into (the read step then says why)."""
    try:
        return estimated_rows(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return 0


def _sha256_or_empty(path: Path) -> str:
    """The file's sha256 (the cache key); empty when unreadable, so the parser child reports why."""
    try:
        return sha256_of(path)
    except OSError:
        return ""


def _fingerprint(sheets: pl.DataFrame, params: Params) -> str:
    """Same inputs and parameters, same fingerprint: it names the data a workbook was built from."""
    files = sorted(set(zip(sheets["kind"].to_list(), sheets["sha256"].to_list())))
    text = json.dumps([files, params.coverage_year, params.region, params.digest()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _inputs_json(sheets: pl.DataFrame) -> str:
    files = []
    for (kind, source, sha), group in sheets.group_by(["kind", "source_file", "sha256"], maintain_order=True):
        files.append({"kind": kind, "file": source, "sha256": sha,
                      "sheets": group.drop("kind", "source_file", "sha256").to_dicts()})
    return json.dumps(files, ensure_ascii=False, default=str)


@dataclass
class _Night:
    """What the steps between reading and writing made of the night (in one piece or in partitions)."""
    sheets: pl.DataFrame
    rejected: pl.DataFrame
    duplicates: pl.DataFrame
    determinations: pl.DataFrame  # in partitions: no rows (they are in DuckDB)
    reconciliation: pl.DataFrame  # in partitions: no rows (they are in DuckDB)
    unmatched: pl.DataFrame
    totals: pl.DataFrame
    other_years: int
    roster_accepted: int
    payments_accepted: int
    figures: dict[str, int] = field(default_factory=dict)  # summary_figures
    big_tables: dict[str, pl.DataFrame] = field(default_factory=dict)  # in one piece: still to be written


STATUSES = ("subsidized", "paid_in_full", "underpaid", "unpaid", "overpaid")


def summary_figures(determinations: pl.DataFrame, reconciliation: pl.DataFrame) -> dict[str, int]:
    """The end-of-run summary's figures; each is a count or a sum over persons, so the figures of
    the partitions of a night add up to the night's."""
    status = pl.col("status")
    row = reconciliation.select(
        *[(status == s).sum().alias(s) for s in STATUSES],
        pl.col("individual_due_fen").sum().alias("due_fen"),
        pl.col("net_paid_fen").sum().alias("collected_fen"),
        pl.col("amount_diff_fen").filter(status == "overpaid").sum().alias("refund_fen"),
        pl.col("amount_diff_fen").filter(status.is_in(["underpaid", "unpaid"])).sum().alias("outstanding_fen"),
    ).row(0, named=True)
    return {"persons": determinations.height, "enrolled": int(determinations["enrolled"].sum()),
            **{k: int(v or 0) for k, v in row.items()}}


def _add_figures(total: dict[str, int], part: dict[str, int]) -> dict[str, int]:
    return {k: total.get(k, 0) + v for k, v in part.items()}


def _big_tables(rv: Validated, pv: Validated, determinations: pl.DataFrame, reconciliation: pl.DataFrame,
                unmatched: pl.DataFrame, coverage_year: int) -> dict[str, pl.DataFrame]:
    """The per-person tables as DuckDB takes them."""
    return {
        "residents": rv.accepted.with_columns(pl.col("identity_labels").list.join("、")),
        "payments": pv.accepted.with_columns(pl.lit(coverage_year, dtype=pl.Int32).alias("run_coverage_year")),
        "determinations": determinations,
        "reconciliation": reconciliation,
        "unmatched_payments": unmatched,
    }


def _duplicates_of(*validated: Validated) -> pl.DataFrame:
    return pl.concat([v.duplicates.select("source_file", "sheet", "row_number", "kept_at") for v in validated])


def _in_one_piece(roster_sheets: list[SheetRead], payment_sheets: list[SheetRead], params: Params,
                  roster_map: HeaderMap, payment_map: HeaderMap, today: dt.date, stage) -> _Night:
    coverage_year = params.coverage_year
    with stage("校验 validate"):
        # the row-level checks ran in the parser children; what is left is the cross-row rule
        rv = settle_roster(_checked(roster_sheets, "roster", params, roster_map, today), roster_map)
        pv = settle_payments(_checked(payment_sheets, "payments", params, payment_map, today), payment_map)
        sheets = pl.concat([conservation(roster_sheets, rv, "roster"),
                            conservation(payment_sheets, pv, "payments")])
        rejected = pl.concat([rv.rejected, pv.rejected]).with_columns(
            pl.lit(coverage_year, dtype=pl.Int32).alias("coverage_year"))
        for sheet in roster_sheets + payment_sheets:
            sheet.data = sheet.rejected = None  # free the per-sheet frames before the big steps
    checkpoint("after_validate")
    with stage("认定 determine"):
        determinations = determine(rv.accepted, pv.accepted, params)
    with stage("对账 reconcile"):
        reconciliation = reconcile(determinations, params)
        unmatched = unmatched_payments(pv.accepted, rv.accepted, rejected, params)
        other_years = pv.accepted.filter(pl.col("coverage_year") != coverage_year).height
    with stage("汇总 totals"):
        totals = subsidy_totals(determinations, params)
    return _Night(sheets=sheets, rejected=rejected, duplicates=_duplicates_of(rv, pv),
                  determinations=determinations, reconciliation=reconciliation, unmatched=unmatched,
                  totals=totals, other_years=other_years, roster_accepted=rv.accepted.height,
                  payments_accepted=pv.accepted.height, figures=summary_figures(determinations, reconciliation),
                  big_tables=_big_tables(rv, pv, determinations, reconciliation, unmatched, coverage_year))


def _split(sheets: list[SheetRead], part: pl.Expr, where: Path, kind: str) -> dict[int, list[Path]]:
    """Each sheet's checked rows cut into its partitions' IPC files, one sheet in memory at a time;
    returns the files of each partition."""
    files: dict[int, list[Path]] = {}
    where.mkdir(parents=True, exist_ok=True)
    for i, sheet in enumerate(sheets):
        frame = sheet_scan(sheet).with_columns(part.alias("__part")).collect()
        for (p,), piece in frame.partition_by("__part", as_dict=True, include_key=False).items():
            path = where / f"{kind}{i}-p{p}.arrow"
            piece.write_ipc(path)
            files.setdefault(p, []).append(path)
        del frame
    return files


def _in_partitions(roster_sheets: list[SheetRead], payment_sheets: list[SheetRead], params: Params,
                   roster_map: HeaderMap, payment_map: HeaderMap, today: dt.date, stage, n_parts: int,
                   writer: YearWriter, scratch: Path) -> _Night:
    """The night in `n_parts` partitions of residents (pipeline/partition.py), each written to DuckDB
    as soon as it is made: memory holds one partition's rows, the rejected lines and duplicates (a
    few per cent), and the few columns the totals and the summary need. The sheets' rows are first
    cut into per-partition files in `scratch`, so a partition reads its own rows only."""
    coverage_year = params.coverage_year
    roster_read = [s for s in roster_sheets if s.data is not None or s.data_path is not None]
    payment_read = [s for s in payment_sheets if s.data is not None or s.data_path is not None]
    with stage("校验 validate"):
        roster_rejected = [sheet_rejected(s) for s in roster_read]
        payment_rejected = [sheet_rejected(s) for s in payment_read]
        shared = shared_tickets([sheet_scan(s) for s in payment_read])
        roster_files = _split(roster_read, roster_partition(n_parts), scratch / "partitions", "roster")
        payment_files = _split(payment_read, payment_partition(n_parts, shared), scratch / "partitions", "payments")
    no_lines = pl.DataFrame(schema=REJECTED_SCHEMA)
    rejected_roster_lines = pl.concat([no_lines, *[r.select(REJECTED_SCHEMA.keys()) for r in roster_rejected]])
    conflicts, duplicates, counts = [], [], {"roster": [], "payments": []}
    sums, unmatched_parts, figures = [], [], {}
    other_years = roster_accepted = payments_accepted = 0

    def part_of(files: list[Path], kind: str, header_map: HeaderMap) -> list[Checked]:
        checked = [Checked(parsed=pl.read_ipc(f), rejected=no_lines) for f in files]
        return checked or _checked([], kind, params, header_map, today)

    for part in range(n_parts):
        with stage("校验 validate"):
            rv = settle_roster(part_of(roster_files.get(part, []), "roster", roster_map), roster_map)
            pv = settle_payments(part_of(payment_files.get(part, []), "payments", payment_map), payment_map)
            conflicts += [rv.rejected, pv.rejected]
            duplicates.append(_duplicates_of(rv, pv))
            for kind, v in (("roster", rv), ("payments", pv)):
                counts[kind].append(v.accepted.group_by("source_file", "sheet").agg(pl.len().alias("__n")))
        with stage("认定 determine"):
            determinations = determine(rv.accepted, pv.accepted, params)
        with stage("对账 reconcile"):
            reconciliation = reconcile(determinations, params)
            unmatched = unmatched_payments(pv.accepted, rv.accepted, pl.concat([rejected_roster_lines, rv.rejected]),
                                           params)
            other_years += pv.accepted.filter(pl.col("coverage_year") != coverage_year).height
        roster_accepted += rv.accepted.height
        payments_accepted += pv.accepted.height
        sums.append(township_sums(determinations, params))
        figures = _add_figures(figures, summary_figures(determinations, reconciliation))
        no_determinations, no_reconciliation = determinations.clear(), reconciliation.clear()
        unmatched_parts.append(unmatched)
        with stage("写入数据库 DuckDB"):
            for table, frame in _big_tables(rv, pv, determinations, reconciliation, unmatched,
                                            coverage_year).items():
                writer.add(table, frame)
        del rv, pv, determinations, reconciliation, unmatched

    with stage("校验 validate"):
        def validated(kind: str, sheet_lines: list[pl.DataFrame]) -> Validated:
            lines = pl.concat([no_lines, *[r.select(REJECTED_SCHEMA.keys()) for r in sheet_lines],
                               *[c.select(REJECTED_SCHEMA.keys()) for c in conflicts]]).filter(pl.col("kind") == kind)
            return Validated(accepted=pl.concat(counts[kind]), rejected=lines,
                             duplicates=pl.concat(duplicates))
        rv_all, pv_all = validated("roster", roster_rejected), validated("payments", payment_rejected)
        sheets = pl.concat([conservation(roster_sheets, rv_all, "roster"),
                            conservation(payment_sheets, pv_all, "payments")])
        rejected = pl.concat([rv_all.rejected, pv_all.rejected]).with_columns(
            pl.lit(coverage_year, dtype=pl.Int32).alias("coverage_year"))
    with stage("汇总 totals"):
        totals = totals_from_township_sums(sums, params)
    unmatched = pl.concat(unmatched_parts).sort("source_file", "sheet", "row_number")
    return _Night(sheets=sheets, rejected=rejected, duplicates=pl.concat(duplicates),
                  determinations=no_determinations, reconciliation=no_reconciliation, unmatched=unmatched,
                  totals=totals, other_years=other_years, roster_accepted=roster_accepted,
                  payments_accepted=payments_accepted, figures=figures)


def run_night(coverage_year: int, region: str, roster: list[str], payments: list[str], db_path: Path,
              out_dir: Path, **options) -> RunResult:
    """The nightly job, holding the database's run lock; temporary files of killed runs are cleaned first.

    Everything the run creates (database, reports, temporary files, logs) is
    owner-only (umask 077): the files hold residents' ID numbers (PIPL).
    """
    previous_umask = os.umask(0o077)
    try:
        with run_lock(db_path):
            clean_leftovers(out_dir)
            if db_path.parent.resolve() != out_dir.resolve():
                clean_leftovers(db_path.parent)
            # the copy of the last committed database (store.copy_previous) is made while the files
            # are read: it is disk work, and under the run lock nothing changes the database before
            # publish, which puts the copy in place; leaving the block waits for the copy, so none
            # outlives the lock, and a failed run's copy is removed
            with ThreadPoolExecutor(max_workers=1) as copying:
                previous = copying.submit(copy_previous, db_path)
                try:
                    return _run_night(coverage_year, region, roster, payments, db_path, out_dir,
                                      previous=previous, **options)
                except BaseException:
                    wait([previous])
                    discard_previous_copy(db_path)
                    raise
    finally:
        os.umask(previous_umask)


def _run_night(
    coverage_year: int,
    region: str,
    roster: list[str],
    payments: list[str],
    db_path: Path,
    out_dir: Path,
    *,
    unmask: bool = False,
    today: dt.date | None = None,
    step: Callable[[str], object] | None = None,
    write_workbooks: bool = True,
    read_limits: ReadLimits = ReadLimits(),
    skip_bad_files: bool = False,
    use_cache: bool = True,
    previous: Future | None = None,
    partition_rows: int | None = None,
) -> RunResult:
    """Read, validate, determine, reconcile, total, publish; return what the summary shows."""
    def stage(name: str):
        return step(name) if step else nullcontext()

    started = dt.datetime.now()
    today = today or started.date()
    run_id = f"{started:%Y%m%dT%H%M%S}-{coverage_year}-{uuid.uuid4().hex[:6]}"
    params: Params = load_params(coverage_year, region)
    if not roster and not payments:
        roster, payments = default_inputs(coverage_year)
    elif not roster or not payments:
        raise InputFileError("须同时提供花名册和缴费明细 / give both --roster and --payments (or neither, for sample_data/)")
    roster_map, payment_map = load_header_map("roster"), load_header_map("payments")

    with stage("读取 read"):
        paths = [(kind, p) for kind, specs in (("roster", roster), ("payments", payments)) for p in expand_inputs(specs)]
        with ThreadPoolExecutor(max_workers=read_limits.workers) as pool:  # hashlib releases the GIL
            shas = list(pool.map(_sha256_or_empty, [p for _, p in paths]))
        jobs = [ReadJob(p, kind, coverage_year, sha, region, params.digest(), today)
                for (kind, p), sha in zip(paths, shas)]
        cache_dir = db_path.parent / CACHE_DIR_NAME if use_cache else None
        # a night bigger than one partition keeps the sheets' rows in their files until used
        # (`partition_rows`, for tests: one piece up to that many rows, else partitions of that size)
        roster_rows = sum(_estimated_rows(p) for kind, p in paths if kind == "roster")
        n_parts = (partition_count(roster_rows) if partition_rows is None
                   else partition_count(roster_rows, partition_rows, partition_rows))
        scratch = out_dir / f"{TMP_PREFIX}{run_id}"
        per_job, skipped_files, reused = read_isolated(
            jobs, scratch, read_limits, skip_bad_files, cache_dir, lazy=n_parts > 1)
        if cache_dir is not None:
            prune_cache(cache_dir)
        roster_sheets = [s for job, sheets in zip(jobs, per_job) if job.kind == "roster" for s in sheets]
        payment_sheets = [s for job, sheets in zip(jobs, per_job) if job.kind == "payments" for s in sheets]
    checkpoint("after_read")
    writer = YearWriter(db_path, coverage_year, run_id, previous) if n_parts > 1 else None
    with writer if writer is not None else nullcontext():
        if writer is None:
            night = _in_one_piece(roster_sheets, payment_sheets, params, roster_map, payment_map, today, stage)
        else:
            night = _in_partitions(roster_sheets, payment_sheets, params, roster_map, payment_map, today,
                                   stage, n_parts, writer, scratch)
        sheets, rejected, duplicates = night.sheets, night.rejected, night.duplicates
        warnings = [
            f"{r['source_file']} [{r['sheet']}] 第{r['row_number']}行与{r['kept_at']}完全相同，已合并 / exact duplicate merged"
            for r in duplicates.head(50).to_dicts()
        ]
        warnings += [f"{r['source_file']} [{r['sheet']}]: {r['note']}" for r in sheets.filter(pl.col("note") != "").to_dicts()]
        warnings += [f"已跳过文件 / skipped file: {message}" for _, message in skipped_files]
        whole = {str(job.path) for job in reused}
        notes = [f"文件未变（各工作表内容相同），复用上次解析结果 / unchanged file reused: {job.path}" for job in reused]
        notes += [f"工作表未变，复用上次解析结果 / unchanged sheet reused: {sh.source_file} [{sh.sheet}]"
                  for sh in roster_sheets + payment_sheets if sh.reused and sh.source_file not in whole]
        notes += [f"工作表前{sh.rows_reused}行与上次相同，复用其检查结果 / first {sh.rows_reused} rows unchanged "
                  f"since last read, their checks reused: {sh.source_file} [{sh.sheet}]"
                  for sh in roster_sheets + payment_sheets if sh.rows_reused and not sh.reused]
        sheet_seconds = [
            {"kind": sh.kind, "file": sh.source_file, "sheet": sh.sheet,
             "read_s": None if sh.reused else sh.read_seconds,
             "check_s": None if sh.reused else sh.check_seconds,
             "rows_reused": 0 if sh.reused else sh.rows_reused}
            for sh in roster_sheets + payment_sheets
        ]

        counts = sheets.select(
            pl.col("rows_read").sum(), pl.col("accepted").sum(), pl.col("rejected").sum(),
            (pl.col("skipped_blank") + pl.col("skipped_footer") + pl.col("skipped_duplicate")).sum().alias("skipped"),
        ).row(0)
        finished = dt.datetime.now()
        run_row = {
            "run_id": run_id, "started_at": started, "finished_at": finished,
            "coverage_year": coverage_year, "region": region, "inputs": _inputs_json(sheets),
            "rows_read": counts[0], "rows_accepted": counts[1], "rows_rejected": counts[2], "rows_skipped": counts[3],
            "roster_accepted": night.roster_accepted, "payments_accepted": night.payments_accepted,
            "params_digest": params.digest(), "status": "completed", "message": "",
            "fingerprint": _fingerprint(sheets, params), "as_of_date": today,
        }
        frames = {
            "run_sheets": sheets.with_columns(pl.lit(coverage_year, dtype=pl.Int32).alias("coverage_year")),
            "rejected_rows": rejected,
            "subsidy_totals": night.totals,
        }

        def build(con) -> list:
            if not write_workbooks:
                return []
            with stage("生成报表 Excel"):
                return build_reports(con, run_id, coverage_year, out_dir, params, unmask=unmask)

        written: dict[str, tuple[int, int, int]] = {}
        with stage("写入数据库 DuckDB"):
            if writer is None:
                # the big tables' rows are handed over: publish lets each table go once written
                frames |= night.big_tables
                night.big_tables = {}
                staged = publish(db_path, run_row, frames, coverage_year, before_commit=build, written=written,
                                 previous=previous)
            else:
                staged = writer.finish(run_row, frames, before_commit=build, written=written)
    checkpoint("after_commit")
    shutil.rmtree(scratch, ignore_errors=True)  # (kept during a night in partitions without the cache)
    reports = publish_reports(staged)
    return RunResult(
        run_id=run_id, coverage_year=coverage_year, region=region, db_path=db_path, reports=reports,
        sheets=sheets, rejected=rejected, duplicates=duplicates, determinations=night.determinations,
        reconciliation=night.reconciliation, unmatched=night.unmatched, totals=night.totals,
        other_year_payments=night.other_years, warnings=warnings, notes=notes, sheet_seconds=sheet_seconds,
        written=written, partitions=n_parts, figures=night.figures,
    )
