"""The nightly job, step by step: read, settle -> determine -> reconcile -> write per partition,
then the night's totals, the run, the workbooks, and the database published in one rename."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.errors import InputFileError, ReportError
from pipeline.faults import checkpoint
from pipeline.io import cache
from pipeline.io.excel_in import SheetRead, expand_inputs, sha256_of
from pipeline.io.excel_out import (
    build_reports,
    build_reports_from_files,
    discard_reports,
    publish_reports,
    save_report_tables,
)
from pipeline.io.isolate import TMP_PREFIX, ReadJob, child_context, clean_leftovers, read_isolated
from pipeline.io.lock import run_lock
from pipeline.io.store import (
    DiffedWriter,
    NightWriter,
    StagedWriter,
    close_work,
    connect_work,
    prepare_work_copy,
    publish_database,
    work_path,
    writing,
)
from pipeline.night import Night, Sheets, run_partitions
from pipeline.params import Params, load_params
from pipeline.partition import estimated_rows, partition_count
from pipeline.settings import RunSettings
from pipeline.subsidy_lists import ListFacts, list_facts, list_tables

LIBRARIES = ("polars", "pandera", "duckdb", "fastexcel", "xlsxwriter")


@dataclass
class RunResult:
    run_id: str
    coverage_year: int
    region: str
    db_path: Path
    reports: list[Path]
    night: Night
    lists: ListFacts
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # per sheet, measured in its parser child: seconds reading it and checking its rows (None: reused)
    sheet_seconds: list[dict] = field(default_factory=list)
    # per big table: rows kept unchanged, inserted, deleted by this run
    written: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    partitions: int = 1

    # the night's figures, as the summary and the tests read them
    @property
    def sheets(self) -> pl.DataFrame:
        return self.night.sheets

    @property
    def rejected(self) -> pl.DataFrame:
        return self.night.rejected

    @property
    def duplicates(self) -> pl.DataFrame:
        return self.night.duplicates

    @property
    def determinations(self) -> pl.DataFrame | None:
        return self.night.determinations

    @property
    def reconciliation(self) -> pl.DataFrame | None:
        return self.night.reconciliation

    @property
    def unmatched(self) -> pl.DataFrame:
        return self.night.unmatched

    @property
    def totals(self) -> pl.DataFrame:
        return self.night.totals

    @property
    def figures(self) -> dict[str, int]:
        return self.night.figures

    @property
    def other_year_payments(self) -> int:
        return self.night.other_years


def run_night(settings: RunSettings) -> RunResult:
    """The nightly job, holding the database's run lock; temporary files of killed runs are cleaned
    first. Everything the run creates is owner-only (umask 077): the files hold ID numbers (PIPL)."""
    previous_umask = os.umask(0o077)
    try:
        with run_lock(settings.db_path):
            clean_leftovers(settings.out_dir)
            if settings.db_path.parent.resolve() != settings.out_dir.resolve():
                clean_leftovers(settings.db_path.parent)
            # the published database is copied to the night's private file while the inputs are read
            with ThreadPoolExecutor(max_workers=1) as copying:
                work = copying.submit(prepare_work_copy, settings.db_path)
                try:
                    return _night(settings, work)
                except BaseException:
                    work_path(settings.db_path).unlink(missing_ok=True)
                    raise
    finally:
        os.umask(previous_umask)


def _stage(settings: RunSettings, name: str) -> AbstractContextManager[object]:
    return settings.step(name) if settings.step else nullcontext()


@dataclass(frozen=True)
class _Context:
    """One run: its settings, parameters, id and dates."""

    settings: RunSettings
    params: Params
    run_id: str
    started: dt.datetime
    today: dt.date

    @property
    def scratch(self) -> Path:
        return self.settings.out_dir / f"{TMP_PREFIX}{self.run_id}"


def _night(settings: RunSettings, work: Future) -> RunResult:
    started = dt.datetime.now()
    ctx = _Context(
        settings=settings,
        params=load_params(settings.coverage_year, settings.region),
        run_id=f"{started:%Y%m%dT%H%M%S}-{settings.coverage_year}-{uuid.uuid4().hex[:6]}",
        started=started,
        today=settings.today or started.date(),
    )
    with _stage(settings, "读取 read"):
        paths = _input_paths(settings)
        n_parts = _partitions(settings, paths)
        sheets, skipped, reused = _read(ctx, paths, lazy=n_parts > 1)
    checkpoint("after_read")
    lists = list_facts(sheets.subsidy_list, ctx.params)
    try:
        night, writer, staged = _write(ctx, work, sheets, lists, n_parts)
    finally:
        shutil.rmtree(ctx.scratch, ignore_errors=True)  # a partitioned night's sheets, the workbooks' rows
    checkpoint("after_commit")
    with _stage(settings, "发布 publish"):
        try:
            publish_database(settings.db_path, work.result())
        except BaseException:
            discard_reports(staged)  # the night is not published: neither are its workbooks
            raise
    checkpoint("after_publish")
    return RunResult(
        run_id=ctx.run_id,
        coverage_year=settings.coverage_year,
        region=settings.region,
        db_path=settings.db_path,
        reports=publish_reports(staged),
        night=night,
        lists=lists,
        written=writer.written,
        partitions=n_parts,
        warnings=_warnings(night, lists, skipped),
        notes=_notes(sheets, reused),
        sheet_seconds=[_seconds(s) for s in sheets.all()],
    )


def _write(
    ctx: _Context, work: Future, sheets: Sheets, lists: ListFacts, n_parts: int
) -> tuple[Night, NightWriter, list[tuple[Path, Path]]]:
    """The partitions written into the night's copy of the database, then the night's small tables and
    the run in one commit, the copy checkpointed and closed, ready to publish; and the workbooks."""
    settings = ctx.settings
    with writing(settings.db_path):
        con = connect_work(settings.db_path, work.result())
    try:
        writer = (DiffedWriter if n_parts == 1 else StagedWriter)(con, settings.coverage_year, ctx.run_id)
        night = run_partitions(sheets, ctx.params, writer, settings.step, n_parts, ctx.scratch, lists.in_force)
        frames = {
            "run_sheets": pl.concat([night.sheets, lists.sheets]).with_columns(
                pl.lit(settings.coverage_year, dtype=pl.Int32).alias("coverage_year")
            ),
            "rejected_rows": pl.concat([night.rejected, lists.rejected]),
            "subsidy_totals": night.totals,
            "status_changes": writer.status_changes(),
            **list_tables(lists, night, ctx.params),
        }
        run_row = _run_row(ctx, night, lists)
        staged = _write_with_workbooks(ctx, writer, frames, run_row)
        with writing(settings.db_path):
            close_work(con, work.result())
    except BaseException:
        con.close()
        raise
    return night, writer, staged


def _write_with_workbooks(
    ctx: _Context, writer: NightWriter, frames: dict[str, pl.DataFrame], run_row: dict
) -> list[tuple[Path, Path]]:
    """Commit the night into its copy of the database and build the workbooks from the same rows.

    A night in one piece saves the rows the workbooks read as Arrow IPC files and builds them in a
    child process while this one writes the database: xlsxwriter writes cell by cell in Python (about
    10 s of one core for 1.6 million cells at 1M + 1M), and the database write, on the other core,
    mostly hides behind it (docs/INTERNALS.md). A night in partitions keeps no per-person rows
    in memory and builds them from its committed copy.
    """
    settings = ctx.settings
    if not settings.write_workbooks or not isinstance(writer, DiffedWriter):
        with _stage(settings, "写入数据库 DuckDB"), writing(settings.db_path):
            writer.finish(run_row, frames)
        if not settings.write_workbooks:
            return []
        with _stage(settings, "生成报表 Excel"):
            return build_reports(
                writer.con, ctx.run_id, settings.coverage_year, settings.out_dir, ctx.params, unmask=settings.unmask
            )
    with _stage(settings, "生成报表 Excel"):
        tables = {**frames, **writer.report_frames(), "runs": pl.DataFrame([run_row])}
        files = save_report_tables(tables, ctx.scratch / "report_tables")
    receive, send = child_context().Pipe(duplex=False)
    builder = child_context().Process(
        target=_build_reports_child,
        args=(send, files, ctx.run_id, settings.coverage_year, settings.out_dir, ctx.params, settings.unmask),
        daemon=True,  # ends with this process; killed, it finishes its workbooks and exits
    )
    builder.start()
    send.close()
    try:
        with _stage(settings, "写入数据库 DuckDB"), writing(settings.db_path):
            writer.finish(run_row, frames)
    except BaseException:
        with suppress(Exception):
            discard_reports(_built(receive, builder))
        raise
    with _stage(settings, "生成报表 Excel"):  # what the workbooks still take once the database is written
        return _built(receive, builder)


def _build_reports_child(send: Connection, files: dict[str, str], run_id: str, *args: Any) -> None:
    """Runs in the workbook process: sends (True, the staged workbooks) or (False, the exception)."""
    try:
        result: tuple[bool, Any] = (True, build_reports_from_files(files, run_id, *args))
    except BaseException as e:
        result = (False, e)
    with suppress(BrokenPipeError):  # the night was stopped meanwhile
        send.send(result)


def _built(receive: Connection, builder: BaseProcess) -> list[tuple[Path, Path]]:
    """The workbook process's result: its staged workbooks, or its exception raised here."""
    try:
        ok, value = receive.recv()
    except EOFError:
        ok, value = (
            False,
            ReportError(f"生成报表的进程意外退出 / the workbook process stopped (exit code {builder.exitcode})"),
        )
    builder.join()
    if not ok:
        raise value
    return value


def _seconds(sheet: SheetRead) -> dict:
    """Seconds reading and checking a sheet in its parser child (None: taken from the cache)."""
    return {
        "kind": sheet.kind,
        "file": sheet.source_file,
        "sheet": sheet.sheet,
        "read_s": None if sheet.reused else sheet.read_seconds,
        "check_s": None if sheet.reused else sheet.check_seconds,
    }


def _input_paths(settings: RunSettings) -> list[tuple[str, Path]]:
    specs = settings.input_specs()
    if not specs["roster"] or not specs["payments"]:
        raise InputFileError(
            "须同时提供花名册和缴费明细 / give both --roster and --payments (or neither, for sample_data/)"
        )
    return [(kind, p) for kind in ("roster", "payments", "subsidy_list") for p in expand_inputs(specs[kind])]


def _partitions(settings: RunSettings, paths: list[tuple[str, Path]]) -> int:
    """How many partitions of residents the night runs in (pipeline/partition.py)."""
    roster_rows = sum(estimated_rows(p) for kind, p in paths if kind == "roster")
    if settings.partition_rows is None:
        return partition_count(roster_rows)
    return partition_count(roster_rows, settings.partition_rows, settings.partition_rows)


def _sha256_or_empty(path: Path) -> str:
    """The file's sha256 (the cache key); empty when unreadable, so the preflight says why."""
    try:
        return sha256_of(path)
    except OSError:
        return ""


def _read(ctx: _Context, paths: list[tuple[str, Path]], lazy: bool) -> tuple[Sheets, list, list]:
    """Every sheet of every input, read and checked in the parser children (or from the cache)."""
    settings, params, today, scratch = ctx.settings, ctx.params, ctx.today, ctx.scratch
    limits = settings.read_limits
    with ThreadPoolExecutor(max_workers=limits.workers) as pool:  # hashlib releases the GIL
        shas = list(pool.map(_sha256_or_empty, [p for _, p in paths]))
    jobs = [
        ReadJob(p, kind, settings.coverage_year, sha, settings.region, params.digest(), today)
        for (kind, p), sha in zip(paths, shas)
    ]
    cache_dir = settings.db_path.parent / cache.CACHE_DIR_NAME if settings.use_cache else None
    per_job, skipped, reused = read_isolated(jobs, scratch, limits, settings.skip_bad_files, cache_dir, lazy=lazy)
    if cache_dir is not None:
        cache.prune(cache_dir)
    by_kind: dict[str, list] = {"roster": [], "payments": [], "subsidy_list": []}
    for job, sheets in zip(jobs, per_job):
        by_kind[job.kind].extend(sheets)
    return Sheets(by_kind["roster"], by_kind["payments"], by_kind["subsidy_list"]), skipped, reused


def _fingerprint(sheets: pl.DataFrame, params: Params) -> str:
    """Same inputs and parameters, same fingerprint: it names the data a workbook was built from."""
    files = sorted(set(zip(sheets["kind"].to_list(), sheets["sha256"].to_list())))
    text = json.dumps([files, params.coverage_year, params.region, params.digest()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _inputs_json(sheets: pl.DataFrame) -> str:
    files = []
    for (kind, source, sha), group in sheets.group_by(["kind", "source_file", "sha256"], maintain_order=True):
        files.append(
            {
                "kind": kind,
                "file": source,
                "sha256": sha,
                "sheets": group.drop("kind", "source_file", "sha256").to_dicts(),
            }
        )
    return json.dumps(files, ensure_ascii=False, default=str)


def library_versions() -> str:
    return json.dumps({name: importlib.metadata.version(name) for name in LIBRARIES}, sort_keys=True)


def _run_row(ctx: _Context, night: Night, lists: ListFacts) -> dict:
    settings, params = ctx.settings, ctx.params
    sheets = pl.concat([night.sheets, lists.sheets])
    counts = sheets.select(
        pl.col("rows_read").sum(),
        pl.col("accepted").sum(),
        pl.col("rejected").sum(),
        (pl.col("skipped_blank") + pl.col("skipped_footer") + pl.col("skipped_duplicate")).sum().alias("skipped"),
    ).row(0)
    return {
        "run_id": ctx.run_id,
        "started_at": ctx.started,
        "finished_at": dt.datetime.now(),
        "coverage_year": settings.coverage_year,
        "region": settings.region,
        "inputs": _inputs_json(sheets),
        "rows_read": counts[0],
        "rows_accepted": counts[1],
        "rows_rejected": counts[2],
        "rows_skipped": counts[3],
        "roster_accepted": night.roster_accepted,
        "payments_accepted": night.payments_accepted,
        "subsidy_list_accepted": lists.rows.height,
        "params_digest": params.digest(),
        "status": "completed",
        "message": "",
        "fingerprint": _fingerprint(sheets, params),
        "as_of_date": ctx.today,
        "library_versions": library_versions(),
    }


def _warnings(night: Night, lists: ListFacts, skipped: list) -> list[str]:
    duplicates = pl.concat([night.duplicates, lists.duplicates])
    out = [
        f"{r['source_file']} [{r['sheet']}] 第{r['row_number']}行与{r['kept_at']}完全相同，已合并 / exact duplicate merged"
        for r in duplicates.head(50).to_dicts()
    ]
    sheets = pl.concat([night.sheets, lists.sheets])
    out += [f"{r['source_file']} [{r['sheet']}]: {r['note']}" for r in sheets.filter(pl.col("note") != "").to_dicts()]
    out += [f"已跳过文件 / skipped file: {message}" for _, message in skipped]
    return out


def _notes(sheets: Sheets, reused: list[ReadJob]) -> list[str]:
    whole = {str(job.path) for job in reused}
    notes = [f"文件未变（各工作表内容相同），复用上次解析结果 / unchanged file reused: {job.path}" for job in reused]
    notes += [
        f"工作表未变，复用上次解析结果 / unchanged sheet reused: {s.source_file} [{s.sheet}]"
        for s in sheets.all()
        if s.reused and s.source_file not in whole
    ]
    return notes
