"""The nightly job, step by step: read, check, settle -> determine -> reconcile -> write per
partition, the night's totals and the run in one commit, the workbooks from the committed
database, then the database and the workbooks published (docs/INTERNALS.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from pipeline.errors import InputFileError, NoSpaceError
from pipeline.faults import checkpoint
from pipeline.io import cache
from pipeline.io.audit import check_totals_against_persons
from pipeline.io.excel_in import SheetRead, expand_inputs, file_problem, sha256_of
from pipeline.io.excel_out import discard_reports, publish_reports
from pipeline.io.excel_out.processes import build_workbooks
from pipeline.io.isolate import TMP_PREFIX, ReadJob, clean_leftovers, read_isolated, start_forkserver
from pipeline.io.lock import run_lock
from pipeline.io.machine import night_needs, writing_to
from pipeline.io.store import (
    NightWriter,
    close_work,
    connect_work,
    prepare_work_copy,
    publish_database,
    query_frame,
    work_path,
    writing,
)
from pipeline.night import Night, NightPlan, Sheets, run_partitions
from pipeline.params import Params, load_params
from pipeline.partition import estimated_rows, partition_count
from pipeline.settings import RunSettings
from pipeline.subsidy_lists import ListFacts, list_facts, list_tables
from schemas.headers import load_header_map

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
    data_date: dt.date
    counts: dict[str, int] = field(default_factory=dict)  # rows read / accepted / rejected / skipped, as in runs
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # per sheet, measured in its parser child: seconds reading it (None: taken from the cache)
    sheet_seconds: list[dict] = field(default_factory=list)
    # per per-person table: rows kept from the year's previous run, rows written, rows deleted
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

    def table(self, name: str) -> pl.DataFrame:
        """A table of the published database, this run's coverage year (tests, explain)."""
        con = duckdb.connect(str(self.db_path), read_only=True)
        try:
            return query_frame(con, f"SELECT * FROM {name} WHERE coverage_year = ? ORDER BY ALL", [self.coverage_year])
        finally:
            con.close()

    def renewal(self) -> tuple[int, int] | None:
        """(renewed, last year's insured) in tonight's snapshot (docs/RULES.md §10); None without a run
        for the year before."""
        total = self.table("collection_progress").filter(
            (pl.col("data_date") == self.data_date) & (pl.col("level") == "total")
        )
        if total.height == 0 or total["prev_enrolled_count"][0] is None:
            return None
        return int(total["renewed_count"][0]), int(total["prev_enrolled_count"][0])


def run_night(settings: RunSettings) -> RunResult:
    """The nightly job, holding the database's run lock; temporary files of killed runs are cleaned
    first. Everything the run creates is owner-only (umask 077): the files hold ID numbers (PIPL)."""
    data_date = settings.as_of or dt.date.today()  # the date the command was started, before any wait
    previous_umask = os.umask(0o077)
    try:
        with run_lock(settings.db_path, settings.wait_minutes, settings.say):
            clean_leftovers(settings.out_dir)
            if settings.db_path.parent.resolve() != settings.out_dir.resolve():
                clean_leftovers(settings.db_path.parent)
            # the published database is copied to the night's private file while the inputs are read
            with ThreadPoolExecutor(max_workers=1) as copying:
                work = copying.submit(prepare_work_copy, settings.db_path)
                try:
                    return _night(settings, work, data_date)
                except BaseException:
                    wait([work])  # the copy done or failed before its file is removed
                    _discard(settings)
                    raise
    finally:
        os.umask(previous_umask)


def _discard(settings: RunSettings) -> None:
    """A night that failed leaves nothing of its own: its private database copy (and a WAL beside it),
    half-built workbooks, its scratch; the published files are not touched. As far as the machine lets
    it: the night's own error is what the operator must read, not one of removing a file."""
    with suppress(OSError):
        work_path(settings.db_path).unlink(missing_ok=True)
        clean_leftovers(settings.out_dir)
        if settings.db_path.parent.resolve() != settings.out_dir.resolve():
            clean_leftovers(settings.db_path.parent)


@contextmanager
def _space_estimate(settings: RunSettings, paths: list[tuple[str, Path]]) -> Iterator[None]:
    """A full disk's message says about how much the night needs there (pipeline/io/machine.py)."""
    try:
        yield
    except NoSpaceError as e:
        if e.needed is None:
            inputs = sum(_size(p) for _, p in paths)
            e.needed = night_needs(Path(e.folder), inputs, settings.db_path, settings.out_dir)
        raise


@dataclass(frozen=True)
class _Context:
    """One run: its settings, parameters, id and dates."""

    settings: RunSettings
    params: Params
    run_id: str
    started: dt.datetime
    data_date: dt.date

    @property
    def scratch(self) -> Path:
        return self.settings.out_dir / f"{TMP_PREFIX}{self.run_id}"


def _night(settings: RunSettings, work: Future, data_date: dt.date) -> RunResult:
    stage = settings.step
    with stage("准备 prepare"):
        started = dt.datetime.now()
        ctx = _Context(
            settings=settings,
            params=load_params(settings.coverage_year, settings.region),
            run_id=f"{started:%Y%m%dT%H%M%S}-{settings.coverage_year}-{uuid.uuid4().hex[:6]}",
            started=started,
            data_date=data_date,
        )
        paths = _input_paths(settings)
        n_parts = _partitions(settings, paths)
    with _space_estimate(settings, paths):
        try:
            with stage("读取 read"):
                sheets, skipped, reused = _read(ctx, paths)
            checkpoint("after_read")
            plan = NightPlan(ctx.params, data_date, n_parts, ctx.scratch, _cache_dir(settings))
            with stage("校验 check"):
                lists = list_facts(sheets.subsidy_list, plan)
            plan = dataclasses.replace(plan, list_rows=lists.in_force)
            night, written, staged = _write(ctx, work, sheets, lists, plan)
        finally:
            shutil.rmtree(ctx.scratch, ignore_errors=True)  # parsed sheets not cached, a partitioned night's rows
        with stage("发布 publish"):
            try:
                publish_database(settings.db_path, work.result())
            except BaseException:
                discard_reports(staged)  # the night is not published: neither are its workbooks
                raise
            checkpoint("after_publish")
            reports = publish_reports(staged)
    return RunResult(
        run_id=ctx.run_id,
        coverage_year=settings.coverage_year,
        region=settings.region,
        db_path=settings.db_path,
        reports=reports,
        night=night,
        lists=lists,
        data_date=data_date,
        counts=_counts(night, lists),
        written=written,
        partitions=n_parts,
        warnings=_warnings(night, lists, skipped),
        notes=_notes(sheets, reused),
        sheet_seconds=[_seconds(s) for s in sheets.all()],
    )


def _write(
    ctx: _Context, work: Future, sheets: Sheets, lists: ListFacts, plan: NightPlan
) -> tuple[Night, dict[str, tuple[int, int, int]], list[tuple[Path, Path]]]:
    """The partitions written into the night's copy of the database, then the night's small tables and
    the run in one commit, the copy checkpointed and closed; then the workbooks built from it."""
    settings, stage = ctx.settings, ctx.settings.step
    with stage("写入数据库 DuckDB"), writing(settings.db_path):
        con = connect_work(settings.db_path, work.result())
    try:
        writer = NightWriter(con, settings.coverage_year, ctx.run_id, settings.db_path, ctx.data_date)
        with writing_to(settings.out_dir, "写分区暂存文件", "a partition's rows (scratch)"):
            night = run_partitions(sheets, plan, writer, stage)  # its database writes say so themselves
        with stage("对账 reconcile"):
            frames = {
                "run_sheets": pl.concat([night.sheets, lists.sheets]).with_columns(
                    pl.lit(settings.coverage_year, dtype=pl.Int32).alias("coverage_year")
                ),
                "rejected_rows": pl.concat([night.rejected, lists.rejected]),
                "subsidy_totals": night.totals,
                **list_tables(lists, night, ctx.params),
            }
            run_row = _run_row(ctx, night, lists)
        with stage("写入数据库 DuckDB"), writing(settings.db_path):
            writer.finish(
                run_row,
                frames,
                audit=lambda con: check_totals_against_persons(con, settings.coverage_year, ctx.run_id, ctx.params),
            )
            close_work(con, work.result())
    except BaseException:
        con.close()
        raise
    staged: list[tuple[Path, Path]] = []
    if settings.write_workbooks:
        with stage("生成报表 Excel"):
            staged = build_workbooks(
                work.result(), ctx.run_id, settings.coverage_year, settings.out_dir, ctx.params, settings.unmask
            )
        checkpoint("after_workbooks")
    return night, writer.written, staged


def _seconds(sheet: SheetRead) -> dict:
    """Seconds reading a sheet in its parser child (None: taken from the cache)."""
    return {
        "kind": sheet.kind,
        "file": sheet.source_file,
        "sheet": sheet.sheet,
        "read_s": None if sheet.reused else sheet.read_seconds,
        "checks_reused": sheet.checks_reused,
    }


def _input_paths(settings: RunSettings) -> list[tuple[str, Path]]:
    specs = settings.input_specs()
    if not specs["roster"] or not specs["payments"]:
        raise InputFileError(
            "须同时提供花名册和缴费明细：--roster 文件或目录 --payments 文件或目录 / give both --roster and "
            "--payments (files, folders or globs)"
        )
    return [(kind, p) for kind in ("roster", "payments", "subsidy_list") for p in expand_inputs(specs[kind])]


def _partitions(settings: RunSettings, paths: list[tuple[str, Path]]) -> int:
    """How many partitions of residents the night runs in (pipeline/partition.py)."""
    roster_rows = sum(estimated_rows(p) for kind, p in paths if kind == "roster")
    if settings.partition_rows is None:
        return partition_count(roster_rows)
    return partition_count(roster_rows, settings.partition_rows, settings.partition_rows)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _job(kind: str, path: Path) -> ReadJob:
    """The file's sha256 (the cache key), and its size and time taken before it, so a file changed
    while read is found (pipeline/io/isolate.py); empty when unreadable, so the preflight says why."""
    try:
        st = path.stat()
        return ReadJob(path, kind, sha256_of(path), st.st_size, st.st_mtime_ns)
    except OSError:
        return ReadJob(path, kind)


def _read(ctx: _Context, paths: list[tuple[str, Path]]) -> tuple[Sheets, list, list]:
    """Every sheet of every input, read in the parser children (or taken from the cache); a file
    without a header row of its kind, or lacking a required column, is refused whole (docs/RULES.md
    §6), or skipped with `--skip-bad-files`; a night left without a roster or a payments file stops."""
    settings = ctx.settings
    limits = settings.read_limits
    start_forkserver()  # its imports meanwhile
    with ThreadPoolExecutor(max_workers=limits.workers) as pool:  # hashlib releases the GIL
        jobs = list(pool.map(lambda kp: _job(*kp), paths))
    cache_dir = _cache_dir(settings)
    per_job, skipped, reused = read_isolated(jobs, ctx.scratch, limits, settings.skip_bad_files, cache_dir)
    if cache_dir is not None:
        cache.prune(cache_dir)
    by_kind: dict[str, list] = {"roster": [], "payments": [], "subsidy_list": []}
    for job, sheets in zip(jobs, per_job):
        problem = (
            file_problem(job.path, load_header_map(job.kind), sheets, ctx.params.coverage_year) if sheets else None
        )
        if problem and not settings.skip_bad_files:
            raise InputFileError(problem)
        if problem:
            skipped.append((job, problem))
            continue
        by_kind[job.kind].extend(sheets)
    for kind, title in (("roster", "花名册"), ("payments", "缴费明细")):
        if not by_kind[kind]:
            raise InputFileError(
                f"没有可读的{title}文件，本次未运行 / no readable {kind} file is left (see the files skipped above)"
            )
    return Sheets(by_kind["roster"], by_kind["payments"], by_kind["subsidy_list"]), skipped, reused


def _cache_dir(settings: RunSettings) -> Path | None:
    """The cache of sheets read (and checked) before: beside the database; None with --reparse."""
    return settings.db_path.parent / cache.CACHE_DIR_NAME if settings.use_cache else None


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


def _counts(night: Night, lists: ListFacts) -> dict[str, int]:
    """The night's row counts over every input (the subsidy lists' rows included, and also apart):
    what `runs`, the workbook's summary and the console all say."""
    skipped = pl.col("skipped_blank") + pl.col("skipped_footer") + pl.col("skipped_duplicate")
    sheets = pl.concat([night.sheets, lists.sheets])
    row = sheets.select(
        pl.col("rows_read").sum(), pl.col("accepted").sum(), pl.col("rejected").sum(), skipped.sum()
    ).row(0)
    return {
        "rows_read": int(row[0]),
        "rows_accepted": int(row[1]),
        "rows_rejected": int(row[2]),
        "rows_skipped": int(row[3]),
        "roster_accepted": night.roster_accepted,
        "payments_accepted": night.payments_accepted,
        "subsidy_list_accepted": lists.rows.height,
        "list_rows_read": int(lists.sheets["rows_read"].sum()),
    }


def _run_row(ctx: _Context, night: Night, lists: ListFacts) -> dict:
    settings, params = ctx.settings, ctx.params
    sheets = pl.concat([night.sheets, lists.sheets])
    counts = _counts(night, lists)
    return {
        "run_id": ctx.run_id,
        "started_at": ctx.started,
        "finished_at": dt.datetime.now(),
        "coverage_year": settings.coverage_year,
        "region": settings.region,
        "inputs": _inputs_json(sheets),
        **{k: v for k, v in counts.items() if k != "list_rows_read"},
        "params_digest": params.digest(),
        "status": "completed",
        "message": "",
        "fingerprint": _fingerprint(sheets, params),
        "as_of_date": ctx.data_date,
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
    def checks(s: SheetRead) -> str:
        return "校验结果也相同 / checks too" if s.checks_reused else "已重新校验 / checked again"

    whole = {str(job.path) for job in reused}
    by_file: dict[str, list[SheetRead]] = {}
    for s in sheets.all():
        by_file.setdefault(s.source_file, []).append(s)
    notes = [
        f"文件未变，复用上次读取的行（{checks(by_file[str(job.path)][0])}）/ unchanged file, rows from the cache: {job.path}"
        for job in reused
        if str(job.path) in by_file
    ]
    notes += [
        f"工作表未变，复用上次读取的行（{checks(s)}）/ unchanged sheet, rows from the cache: {s.source_file} [{s.sheet}]"
        for s in sheets.all()
        if s.reused and s.source_file not in whole
    ]
    return notes
