"""The command line. The one place where errors become messages and exit codes."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.errors import MedinsError, RunArgumentError
from pipeline.params import PARAMS_DIR_ENV, default_params_dir
from pipeline.vocabulary import STATUS_NAMES, STATUSES

# Help in click's plain layout (rich_markup_mode=None): it wraps at the terminal's width (80 at most)
# and never cuts an option name short, as rich's table does in 80 columns.
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="medins: 城乡居民医保 nightly determination, reconciliation and fiscal-subsidy reports.",
)
console = Console(stderr=False)
err_console = Console(stderr=True)
INTERNAL_ERROR_EXIT = 70
DB_NAME = "medins.duckdb"


def _fail(message: str, code: int) -> None:
    err_console.print(f"错误 / error: {message}", style="bold red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _guarded(fn, log_dir: Path | None = None):
    """Run a command body; typed errors -> one line + exit code, bugs -> one line + log file."""
    try:
        return fn()
    except MedinsError as e:
        _fail(str(e), e.exit_code)
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _fail("已中断 / interrupted", 130)
    except Exception as e:  # a bug: keep the traceback out of the operator's face, but on disk
        from pipeline.io.masking import mask_ids_in_text

        where = (log_dir or Path("out")) / "medins-error.log"
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_text(mask_ids_in_text(traceback.format_exc()) or "", encoding="utf-8")
            os.chmod(where, 0o600)
            hint = f"详情见 / details in {where}"
        except OSError:
            hint = ""
        _fail(
            mask_ids_in_text(f"内部错误 / internal error: {type(e).__name__}: {e}. {hint}") or "", INTERNAL_ERROR_EXIT
        )


class _StageTimer:
    """Seconds per stage, summed over a night's partitions; a spinner for the outermost stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.active: list[str] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        self.active.append(name)
        try:
            if len(self.active) == 1:
                with console.status(f"{name} …", spinner="dots"):
                    yield
            else:
                yield
        finally:
            self.active.pop()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


# run's two longest options, named so that its signature stays a list of one line an option
SubsidyListOption = Annotated[
    list[str] | None,
    typer.Option(
        "--subsidy-list",
        metavar="FILE",
        help="资助参保对象名单 of another department: file, directory or glob; repeatable",
    ),
]
ParseMemoryOption = Annotated[
    float,
    typer.Option(
        "--parse-memory-limit",
        "--parse-memory-gb",  # the earlier name, kept for existing cron lines
        metavar="GB",
        help="memory limit of each input parser, in GB",
    ),
]


@app.command(short_help="Run the nightly job for one coverage year.")
def run(
    coverage_year: Annotated[int, typer.Option("--coverage-year", "-y", help="待遇年度, e.g. 2026")],
    region: Annotated[str, typer.Option(help="jiangxi (default), jingdezhen, yichun")] = "jiangxi",
    roster: Annotated[
        list[str] | None, typer.Option(metavar="FILE", help="花名册: file, directory or glob; repeatable")
    ] = None,
    payments: Annotated[
        list[str] | None, typer.Option(metavar="FILE", help="缴费明细: file, directory or glob; repeatable")
    ] = None,
    subsidy_list: SubsidyListOption = None,
    db: Annotated[Path | None, typer.Option(help="DuckDB output (default: medins.duckdb in the --out folder)")] = None,
    out: Annotated[Path, typer.Option(help="folder for the workbooks and, by default, the database")] = Path("out"),
    as_of: Annotated[
        datetime | None,
        typer.Option("--as-of", formats=["%Y-%m-%d"], help="data date of the exports, YYYY-MM-DD (default: today)"),
    ] = None,
    wait: Annotated[float, typer.Option(help="minutes to wait for another run's lock")] = 0.0,
    unmask: Annotated[bool, typer.Option(help="show full ID numbers in the Excel reports")] = False,
    skip_bad_files: Annotated[
        bool, typer.Option(help="go on without unreadable files (listed in the summary)")
    ] = False,
    parse_memory_limit: ParseMemoryOption = 6.0,
    parse_timeout: Annotated[float, typer.Option(help="seconds one workbook may take to parse")] = 900.0,
    reparse: Annotated[bool, typer.Option(help="parse every file again even when its sha256 was seen before")] = False,
) -> None:
    """Run the nightly job for one coverage year."""
    from pipeline.io.isolate import ReadLimits
    from pipeline.run import run_night
    from pipeline.settings import RunSettings

    timer = _StageTimer()

    def body():
        settings = RunSettings(
            coverage_year,
            region,
            tuple(roster or ()),
            tuple(payments or ()),
            _database(db, out),
            out,
            subsidy_lists=tuple(subsidy_list or ()),
            unmask=unmask,
            as_of=_data_date(as_of),
            step=timer.step,
            skip_bad_files=skip_bad_files,
            use_cache=not reparse,
            read_limits=ReadLimits(memory_bytes=int(parse_memory_limit * 1024**3), timeout_seconds=parse_timeout),
            wait_minutes=wait,
            say=lambda line: console.print(f"信息 / info: {line}", markup=False, highlight=False, soft_wrap=True),
        )
        return run_night(settings)

    started = time.perf_counter()
    result = _guarded(body, out)
    _print_summary(result, list(timer.seconds.items()), time.perf_counter() - started)


def _data_date(as_of: datetime | None) -> date | None:
    """--as-of as a date; a data date after today is refused (docs/RULES.md §10)."""
    if as_of is None:
        return None
    if as_of.date() > date.today():
        raise RunArgumentError(
            f"--as-of {as_of.date()} 晚于今天，数据日期不能是将来 / --as-of {as_of.date()} is after today: the data "
            "date is the date the exports reflect"
        )
    return as_of.date()


def _database(db: Path | None, out: Path) -> Path:
    """--db, else medins.duckdb in the --out folder. Where that file does not exist but
    out/medins.duckdb under the working folder does (an earlier version's default), stop and say which
    to use, so an upgrade never starts an empty history."""
    if db is not None:
        return db
    default = out / DB_NAME
    legacy = Path("out") / DB_NAME
    if not default.exists() and legacy.exists() and legacy.resolve() != default.resolve():
        raise RunArgumentError(
            f"{default} 不存在，但 {legacy} 存在：请用 --db {legacy} 指定，或把它移到 {out} / {default} does not exist "
            f"but {legacy} does: pass --db {legacy}, or move it into {out}"
        )
    return default


def _yuan(fen: int | None) -> str:
    return "—" if fen is None else f"{fen / 100:,.2f}"


def _print_summary(result, timings: list[tuple[str, float]], wall: float) -> None:
    counts, figures = result.counts, result.figures
    t = Table(title=f"medins {result.coverage_year} ({result.region}) run {result.run_id}", show_header=False)
    t.add_column("", style="bold")
    t.add_column("", justify="right")
    t.add_row("数据日期 data date", f"{result.data_date}")
    t.add_row("读入行 rows read", f"{counts['rows_read']:,}")
    t.add_row("接受 accepted", f"{counts['rows_accepted']:,}")
    t.add_row("未通过校验 rejected", f"{counts['rows_rejected']:,}")
    t.add_row("跳过 skipped (blank/footer/duplicate)", f"{counts['rows_skipped']:,}")
    if counts["list_rows_read"]:
        t.add_row(
            "  其中资助参保对象名单 of which subsidy lists",
            f"{counts['list_rows_read']:,} / {counts['subsidy_list_accepted']:,}",
        )
    t.add_row("参保人数 enrolled", f"{figures['enrolled']:,} / {figures['persons']:,}")
    renewal = result.renewal()
    if renewal is not None:
        t.add_row("上年参保已续保 renewed of last year's insured", f"{renewal[0]:,} / {renewal[1]:,}")
    for s in STATUSES:
        t.add_row(f"  {STATUS_NAMES[s]} {s}", f"{figures[s]:,}")
    t.add_row("无登记缴费 unmatched payments", f"{result.unmatched.height:,}")
    if result.other_year_payments:
        t.add_row("其他年度缴费 other-year payments (kept, not reconciled)", f"{result.other_year_payments:,}")
    t.add_row("个人应缴 due (yuan)", _yuan(figures["due_fen"]))
    t.add_row("实缴净额 collected (yuan)", _yuan(figures["collected_fen"]))
    t.add_row("应退 to refund (yuan)", _yuan(figures["refund_fen"]))
    t.add_row("欠缴 outstanding (yuan)", _yuan(figures["outstanding_fen"]))
    console.print(t)
    for n in result.notes:
        console.print(f"信息 / info: {n}", markup=False, highlight=False, soft_wrap=True)
    for w in result.warnings[:20]:
        console.print(f"提示 / warning: {w}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    if len(result.warnings) > 20:
        console.print(f"[yellow]… {len(result.warnings) - 20} more warnings[/]")
    other = wall - sum(s for _, s in timings)
    console.print(
        "耗时 / timings: "
        + ", ".join(f"{n} {s:.2f}s" for n, s in [*timings, ("其他 other", other)])
        + f" = 合计 total {wall:.2f}s",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"数据库 / database: {result.db_path}", highlight=False)
    for p in result.reports:
        console.print(f"报表 / report: {p}", highlight=False)


@app.command(short_help="Why a person got their tier, amounts and benefit dates.")
def explain(
    id_number: Annotated[str, typer.Argument(help="证件号码, or as a workbook masks it (then with --name)")],
    coverage_year: Annotated[int, typer.Option("--coverage-year", "-y")] = 2026,
    name: Annotated[str | None, typer.Option(help="姓名: finds the person of a masked ID")] = None,
    db: Annotated[Path | None, typer.Option(help="DuckDB of the last run (default: medins.duckdb in --out)")] = None,
    out: Annotated[Path, typer.Option(help="the folder `medins run --out` wrote to")] = Path("out"),
) -> None:
    """Why a person got their tier, amounts and benefit dates (for a clerk on the phone).

    A person without an accepted roster row: the rejected roster row and the year's
    payments that match nobody. The first line says so when today's policy parameters
    are not the ones the run used.
    """
    from pipeline.explain import explain_person

    text = _guarded(lambda: explain_person(_database(db, out), coverage_year, id_number, name), out)
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _print_version(value: bool) -> None:
    if value:
        try:
            version = importlib.metadata.version("medins")
        except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
            version = "unknown (not installed)"
        console.print(f"medins {version}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    pass


params_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="政策参数 / policy parameters: add a new coverage year (docs/NEW-YEAR.md).",
    short_help="政策参数 / policy parameters of a new year.",
)
app.add_typer(params_app, name="params")
ParamsDir = Annotated[
    Path | None,
    typer.Option(help=f"policy_params folder [default: the installed one, or ${PARAMS_DIR_ENV}]", show_default=False),
]


@params_app.command("new", short_help="Write YEAR.toml from the latest year, unconfirmed.")
def params_new(
    year: Annotated[int, typer.Argument(metavar="YEAR", help="待遇年度, e.g. 2027")],
    params_dir: ParamsDir = None,
) -> None:
    """Write policy_params/YEAR.toml from the latest year, every value unconfirmed and uncited.

    Never overwrites a year. A region's overrides of the latest year are added to its file
    for YEAR the same way.
    """
    from pipeline.new_year import write_new_year

    base = params_dir or default_params_dir()
    written = _guarded(lambda: write_new_year(year, base, dt.date.today()))
    for path in written:
        console.print(f"已写出 / written: {path}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"下一步 / next: 对照{year}年度的通知逐项填写 / check each value against the {year} notice, "
        f"then `medins params check {year}` (docs/NEW-YEAR.md)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@params_app.command("check", short_help="List the values of YEAR still unconfirmed or uncited.")
def params_check(
    year: Annotated[int, typer.Argument(metavar="YEAR", help="待遇年度, e.g. 2027")],
    region: Annotated[str | None, typer.Option(help="only this region's overrides [default: all]")] = None,
    params_dir: ParamsDir = None,
) -> None:
    """List the values of YEAR still unconfirmed or uncited, one line each.

    Exit code 0 when every value is confirmed and cited (and the year loads for every
    region); 3 when some are not, or a value is malformed.
    """
    from pipeline.new_year import check_year, open_items_error

    base = params_dir or default_params_dir()

    def body() -> None:
        items = check_year(year, region, base)
        for item in items:
            console.print(item.line(), markup=False, highlight=False, soft_wrap=True)
        if items:
            raise open_items_error(year, items)

    _guarded(body)
    console.print(
        f"{year}年度的政策参数均已确认并注明出处 / coverage year {year}: every value is confirmed and cited",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
