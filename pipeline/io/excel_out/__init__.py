"""The two Excel workbooks the bureau reads in the morning (docs/CONTRACT.md "Outputs").

- 对账报告_{Y}.xlsx: a summary with key figures and charts, then one sheet per
  exception list (少缴, 未缴, 多缴应退费, 无登记缴费, 校验未通过, 较上次变化), with the
  columns a clerk needs to phone the person; when the night had subsidy lists,
  also 资助对象参保进展 and 资助对象未参保.
- 财政补助资金测算表_{Y}.xlsx: the totals of docs/RULES.md §8 by county, township
  and tier, with county subtotals, the grand total and the parameters with
  their citations.

Everything is read from the DuckDB tables of `pipeline.io.tables` and written
through xlsxwriter's public API (`constant_memory`: rows go to disk as they are
written). IDs are masked unless `unmask=True`. Text is always written as text
(a name such as `=HYPERLINK(...)` stays a name). The same run gives
byte-identical files: the workbook's creation time is the data date. Each file
is written to `.{name}.tmp` and moved into place only when both are complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb
import polars as pl
from xlsxwriter import Workbook

from pipeline.errors import ReportError
from pipeline.io.excel_out import collection, progress, queries
from pipeline.io.excel_out.cells import (
    EXCEL_CELL_MAX_CHARS,
    EXCEL_MAX_DATA_ROWS,
    TRUNCATION_MARKER,
    Column,
    Stats,
    display_width,
    make_formats,
)
from pipeline.io.excel_out.fiscal import write_fiscal_workbook
from pipeline.io.excel_out.lists import write_list
from pipeline.io.excel_out.queries import Run
from pipeline.io.excel_out.summary import add_charts, write_chart_data, write_summary
from pipeline.params import Params
from pipeline.vocabulary import TIER_NAMES, region_name

__all__ = [
    "EXCEL_CELL_MAX_CHARS",
    "TIER_NAMES",
    "TRUNCATION_MARKER",
    "WORKBOOKS",
    "ReportError",
    "build_reports",
    "build_workbook",
    "discard_reports",
    "display_width",
    "publish_reports",
    "write_reports",
]

RECONCILIATION_REPORT = "对账报告_{year}.xlsx"
FISCAL_REPORT = "财政补助资金测算表_{year}.xlsx"


def person_columns(diff_header: str) -> tuple[Column, ...]:
    return (
        Column("姓名", "text"),
        Column("证件号码", "id"),
        Column("县(市、区)", "text"),
        Column("乡镇(街道)", "text"),
        Column("村(社区)", "text"),
        Column("资助类别", "tier"),
        Column("应缴金额", "money"),
        Column("实缴金额", "money"),
        Column(diff_header, "money"),
        Column("缴费笔数", "count"),
        Column("最后缴费日期", "date"),
        Column("依据", "free"),
    )


UNMATCHED_COLUMNS = (
    Column("姓名", "text"),
    Column("证件号码", "id"),
    Column("缴费金额", "money"),
    Column("缴费日期", "date"),
    Column("电子税票号码", "text"),
    Column("原因", "free"),
    Column("文件", "text"),
    Column("工作表", "text"),
    Column("行号", "count"),
)
REJECTED_COLUMNS = (
    Column("数据来源", "kind"),
    Column("文件", "text"),
    Column("工作表", "text"),
    Column("行号", "count"),
    Column("列", "text"),
    Column("原始值", "free"),
    Column("原因", "free"),
    Column("证件号码", "id"),
)
STATUS_CHANGE_COLUMNS = (
    Column("姓名", "text"),
    Column("证件号码", "id"),
    Column("县(市、区)", "text"),
    Column("乡镇(街道)", "text"),
    Column("上次状态", "status_change"),
    Column("本次状态", "status_change"),
    Column("上次差额", "money"),
    Column("本次差额", "money"),
    Column("上次运行编号", "text"),
)
NOT_ENROLLED_COLUMNS = (
    Column("姓名", "text"),
    Column("证件号码", "id"),
    Column("县(市、区)", "text"),
    Column("乡镇(街道)", "text"),
    Column("村(社区)", "text"),
    Column("身份类别", "text"),
    Column("认定部门", "text"),
    Column("原因", "reason"),
)


@dataclass(frozen=True)
class _ListSpec:
    name: str
    title: str
    columns: tuple[Column, ...]
    rows: Callable[[], pl.DataFrame]


def _open_workbook(path: Path, run: Run, title: str, params: Params) -> tuple[Workbook, BinaryIO]:
    path.unlink(missing_ok=True)
    handle = open(path, "wb", opener=lambda p, flags: os.open(p, flags, 0o600))
    wb = Workbook(
        handle,
        {
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
            # rows go to temporary files as they are written, in the output folder (owner-only: they hold IDs)
            "constant_memory": True,
            "tmpdir": str(path.parent),
        },
    )
    wb.set_properties(
        {
            "title": title,
            "subject": f"{run.coverage_year}年度城乡居民基本医疗保险",
            "author": "medins",
            "company": region_name(params.region),
            "comments": f"数据批次 fingerprint: {run.fingerprint}",
            "created": run.created,
        }
    )
    return wb, handle


def _list_specs(
    con: duckdb.DuckDBPyConnection, run: Run, coverage_year: int, params: Params, unmask: bool, place: str, date: str
) -> list[_ListSpec]:
    def title(name: str) -> str:
        return f"{place}{coverage_year}年度 {name} 数据日期{date}"

    specs = [
        _ListSpec(
            "少缴",
            title("少缴名单"),
            person_columns("差额"),
            lambda: queries.person_list(con, coverage_year, "underpaid", params),
        ),
        _ListSpec(
            "未缴",
            title("未缴名单"),
            person_columns("差额"),
            lambda: queries.person_list(con, coverage_year, "unpaid", params),
        ),
        _ListSpec(
            "多缴应退费",
            title("多缴应退费名单"),
            person_columns("应退金额"),
            lambda: queries.person_list(con, coverage_year, "overpaid", params),
        ),
        _ListSpec("无登记缴费", title("无登记缴费"), UNMATCHED_COLUMNS, lambda: queries.unmatched(con, coverage_year)),
        _ListSpec(
            "校验未通过",
            title("校验未通过的行"),
            REJECTED_COLUMNS,
            lambda: queries.rejected_rows(con, coverage_year, unmask),
        ),
        _ListSpec(
            "较上次变化",
            title("对账状态较上次变化"),
            STATUS_CHANGE_COLUMNS,
            lambda: queries.status_changes(con, run.run_id),
        ),
    ]
    return specs


def _write_reconciliation_workbook(
    path: Path,
    con: duckdb.DuckDBPyConnection,
    run: Run,
    coverage_year: int,
    params: Params,
    unmask: bool,
    max_rows_per_sheet: int,
) -> None:
    wb, handle = _open_workbook(path, run, f"{coverage_year}年度城乡居民医保缴费对账报告", params)
    place, date = region_name(run.region or params.region), f"{run.as_of_date or ''}"
    try:
        fmts, stats = make_formats(wb), Stats()
        summary = wb.add_worksheet("汇总")
        snapshot = collection.read_snapshot(con, coverage_year, run.created.date())
        collection.write_collection_progress(
            wb, fmts, con, snapshot, params, f"{place}{coverage_year}年度 征缴进度 数据日期{date}"
        )
        lists = []
        for spec in _list_specs(con, run, coverage_year, params, unmask, place, date):
            rows = spec.rows()
            sheets = write_list(
                wb,
                fmts,
                spec.name,
                spec.columns,
                rows,
                unmask=unmask,
                max_rows_per_sheet=max_rows_per_sheet,
                stats=stats,
                title=spec.title,
            )
            lists.append((spec.name, sheets, rows.height))
            del rows
        if queries.has_lists(con, coverage_year):  # the subsidy lists' progress, and who to reach
            group = params.groups[0].name if params.groups else ""
            progress.write_progress(
                wb,
                fmts,
                queries.subsidy_progress(con, coverage_year, group),
                params,
                f"{place}{coverage_year}年度 资助参保对象参保进展 数据日期{date}",
            )
            rows = queries.subsidy_not_enrolled(con, coverage_year)
            sheets = write_list(
                wb,
                fmts,
                "资助对象未参保",
                NOT_ENROLLED_COLUMNS,
                rows,
                unmask=unmask,
                max_rows_per_sheet=max_rows_per_sheet,
                stats=stats,
                title=f"{place}{coverage_year}年度 资助参保对象未参保名单 数据日期{date}",
            )
            lists.append(("资助对象未参保", sheets, rows.height))
        if snapshot.prev_run_id is not None:  # against the database's run for Y-1 (none: no list)
            lists.append(
                collection.write_not_renewed(
                    wb,
                    fmts,
                    con,
                    coverage_year,
                    unmask=unmask,
                    max_rows_per_sheet=max_rows_per_sheet,
                    stats=stats,
                    title=f"{place}{coverage_year}年度 上年参保未续保名单 数据日期{date}",
                )
            )
        figures = queries.summary_figures(con, coverage_year)
        ranges, label_col = write_chart_data(wb, fmts, con, coverage_year, figures)
        free_row = write_summary(summary, fmts, run, coverage_year, params, figures, lists, stats, unmask)
        add_charts(wb, summary, ranges, label_col, max(free_row, 35))
        summary.activate()
        wb.close()
    finally:
        handle.close()


def _write_fiscal(path: Path, con: duckdb.DuckDBPyConnection, run: Run, coverage_year: int, params: Params) -> None:
    wb, handle = _open_workbook(path, run, f"{coverage_year}年度城乡居民医保财政补助资金测算表", params)
    try:
        write_fiscal_workbook(
            wb, make_formats(wb), con, run, coverage_year, params, region_name(run.region or params.region)
        )
        wb.close()
    finally:
        handle.close()


def _finals(out_dir: Path, coverage_year: int) -> dict[str, Path]:
    return {
        "reconciliation": out_dir / RECONCILIATION_REPORT.format(year=coverage_year),
        "fiscal": out_dir / FISCAL_REPORT.format(year=coverage_year),
    }


WORKBOOKS = ("reconciliation", "fiscal")  # the largest first: the night starts it first


def build_workbook(
    which: str,
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    coverage_year: int,
    out_dir: Path,
    params: Params,
    *,
    unmask: bool = False,
    max_rows_per_sheet: int = EXCEL_MAX_DATA_ROWS,
) -> tuple[Path, Path]:
    """Write one workbook (`which`, one of WORKBOOKS) to a hidden `.{name}.tmp` file (mode 0600) from
    the run's rows in the database; return (temp, final). Nothing a person opens changes until
    `publish_reports`."""
    if not 1 <= max_rows_per_sheet <= EXCEL_MAX_DATA_ROWS:
        raise ValueError(f"max_rows_per_sheet must be 1..{EXCEL_MAX_DATA_ROWS}, got {max_rows_per_sheet}")
    run = queries.read_run(con, run_id, coverage_year)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = _finals(out_dir, coverage_year)[which]
    temp = out_dir / f".{final.name}.tmp"
    try:
        if which == "reconciliation":
            _write_reconciliation_workbook(temp, con, run, coverage_year, params, unmask, max_rows_per_sheet)
        else:
            _write_fiscal(temp, con, run, coverage_year, params)
        os.chmod(temp, 0o600)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp, final


def build_reports(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    coverage_year: int,
    out_dir: Path,
    params: Params,
    *,
    unmask: bool = False,
    max_rows_per_sheet: int = EXCEL_MAX_DATA_ROWS,
) -> list[tuple[Path, Path]]:
    """Every workbook, one after the other, from an open connection; (temp, final) pairs."""
    staged: list[tuple[Path, Path]] = []
    try:
        for which in WORKBOOKS:
            staged.append(
                build_workbook(
                    which,
                    con,
                    run_id,
                    coverage_year,
                    out_dir,
                    params,
                    unmask=unmask,
                    max_rows_per_sheet=max_rows_per_sheet,
                )
            )
    except BaseException:
        discard_reports(staged)
        raise
    return staged


def publish_reports(staged: list[tuple[Path, Path]]) -> list[Path]:
    """Move built workbooks onto their final names (an atomic rename each)."""
    for temp, final in staged:
        os.replace(temp, final)
    return [final for _, final in staged]


def discard_reports(staged: list[tuple[Path, Path]]) -> None:
    for temp, _ in staged:
        temp.unlink(missing_ok=True)


def write_reports(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    coverage_year: int,
    out_dir: Path,
    params: Params,
    *,
    unmask: bool = False,
    max_rows_per_sheet: int = EXCEL_MAX_DATA_ROWS,
) -> list[Path]:
    """Write every workbook into `out_dir`; return their paths."""
    return publish_reports(
        build_reports(con, run_id, coverage_year, out_dir, params, unmask=unmask, max_rows_per_sheet=max_rows_per_sheet)
    )
