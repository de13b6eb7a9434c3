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
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.errors import MedinsError, SampleArgumentError
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
        where = (log_dir or Path("out")) / "medins-error.log"
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            from pipeline.io.masking import mask_ids_in_text

            where.write_text(mask_ids_in_text(traceback.format_exc()) or "", encoding="utf-8")
            os.chmod(where, 0o600)
            hint = f"详情见 / details in {where}"
        except OSError:
            hint = ""
        from pipeline.io.masking import mask_ids_in_text

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
    subsidy_list: Annotated[
        list[str] | None,
        typer.Option(
            "--subsidy-list",
            metavar="FILE",
            help="资助参保对象名单 of another department: file, directory or glob; repeatable",
        ),
    ] = None,
    db: Annotated[Path, typer.Option(help="DuckDB output")] = Path("out/medins.duckdb"),
    out: Annotated[Path, typer.Option(help="directory for the Excel reports")] = Path("out"),
    unmask: Annotated[bool, typer.Option(help="show full ID numbers in the Excel reports")] = False,
    skip_bad_files: Annotated[
        bool, typer.Option(help="go on without unreadable files (listed in the summary)")
    ] = False,
    parse_memory_gb: Annotated[float, typer.Option(help="memory limit of each workbook parser")] = 6.0,
    parse_timeout: Annotated[float, typer.Option(help="seconds one workbook may take to parse")] = 900.0,
    reparse: Annotated[bool, typer.Option(help="parse every file again even when its sha256 was seen before")] = False,
) -> None:
    """Run the nightly job for one coverage year (no file arguments: sample_data/)."""
    from pipeline.io.isolate import ReadLimits
    from pipeline.run import run_night
    from pipeline.settings import RunSettings

    timer = _StageTimer()
    settings = RunSettings(
        coverage_year,
        region,
        tuple(roster or ()),
        tuple(payments or ()),
        db,
        out,
        subsidy_lists=tuple(subsidy_list or ()),
        unmask=unmask,
        step=timer.step,
        skip_bad_files=skip_bad_files,
        use_cache=not reparse,
        read_limits=ReadLimits(memory_bytes=int(parse_memory_gb * 1024**3), timeout_seconds=parse_timeout),
    )
    result = _guarded(lambda: run_night(settings), out)
    _print_summary(result, list(timer.seconds.items()))


def _yuan(fen: int | None) -> str:
    return "—" if fen is None else f"{fen / 100:,.2f}"


def _print_summary(result, timings: list[tuple[str, float]]) -> None:
    sheets = result.sheets
    read = int(sheets["rows_read"].sum())
    accepted = int(sheets["accepted"].sum())
    rejected = int(sheets["rejected"].sum())
    skipped = int((sheets["skipped_blank"] + sheets["skipped_footer"] + sheets["skipped_duplicate"]).sum())
    figures = result.figures
    t = Table(title=f"medins {result.coverage_year} ({result.region}) run {result.run_id}", show_header=False)
    t.add_column("", style="bold")
    t.add_column("", justify="right")
    t.add_row("读入行 rows read", f"{read:,}")
    t.add_row("接受 accepted", f"{accepted:,}")
    t.add_row("未通过校验 rejected", f"{rejected:,}")
    t.add_row("跳过 skipped (blank/footer/duplicate)", f"{skipped:,}")
    t.add_row("参保人数 enrolled", f"{figures['enrolled']:,} / {figures['persons']:,}")
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
    console.print("耗时 / timings: " + ", ".join(f"{n} {s:.2f}s" for n, s in timings), highlight=False, soft_wrap=True)
    console.print(f"数据库 / database: {result.db_path}", highlight=False)
    if any(kept for kept, _, _ in result.written.values()):
        console.print(
            "数据库增量写入 / rows changed since the last run of this year: "
            + "; ".join(
                f"{table} 保留 kept {kept:,}, 写入 written {added:,}, 删除 deleted {gone:,}"
                for table, (kept, added, gone) in result.written.items()
            ),
            highlight=False,
            soft_wrap=True,
        )
    for p in result.reports:
        console.print(f"报表 / report: {p}", highlight=False)


@app.command()
def sample(
    rows: Annotated[int, typer.Option(help="roster rows")] = 300,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same files)")] = 1,
    coverage_year: Annotated[int, typer.Option("--coverage-year", "-y")] = 2026,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("sample_data/2026"),
    payment_rows: Annotated[int | None, typer.Option(help="payment rows (default: about one per roster row)")] = None,
    roster_files: Annotated[int, typer.Option(help="number of roster workbooks")] = 1,
) -> None:
    """Write deterministic, realistically messy sample workbooks."""

    def body():
        return _sample_tool().main_sample(
            rows, seed, coverage_year, out, payment_rows=payment_rows, roster_files=roster_files
        )

    console.print(_guarded(body, out), markup=False, highlight=False, soft_wrap=True)


def _sample_tool():
    """tools/sample (a development tool beside the package, not installed with it): found in the
    checkout the package runs from."""
    try:
        import tools.sample as sample_tool
    except ImportError:
        root = Path(__file__).resolve().parents[1]
        if not (root / "tools" / "sample").is_dir():
            raise SampleArgumentError(
                "样例生成器是开发工具，请在源代码目录中运行 / the sample generator is a "
                "development tool: run it from a checkout (python -m tools.sample)"
            ) from None
        sys.path.insert(0, str(root))
        import tools.sample as sample_tool
    return sample_tool


@app.command(short_help="Why a person got their tier, amounts and benefit dates.")
def explain(
    id_number: Annotated[str, typer.Argument(help="证件号码")],
    coverage_year: Annotated[int, typer.Option("--coverage-year", "-y")] = 2026,
    db: Annotated[Path, typer.Option(help="DuckDB of the last run")] = Path("out/medins.duckdb"),
) -> None:
    """Why a person got their tier, amounts and benefit dates (for a clerk on the phone)."""
    from pipeline.explain import explain_person

    text = _guarded(lambda: explain_person(db, coverage_year, id_number))
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
