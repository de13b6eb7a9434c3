"""The three Excel workbooks the bureau reads in the morning (docs/CONTRACT.md "Outputs").

- 催缴名单_{Y}.xlsx: the lists a township clerk phones from, one sheet each: 未缴,
  少缴, when the night had subsidy lists 资助对象未参保, when year Y-1 has a run
  上年参保未续保; with the roster's 联系电话 next to the name when the year's
  roster has phone numbers; then 说明, the clauses of the amounts due.
- 对账报告_{Y}.xlsx: a summary with key figures, charts and the list of lists
  (naming the phone lists' workbook), 征缴进度, then 多缴应退费, 无登记缴费,
  校验未通过, 较上次变化 and, when the night had subsidy lists, 资助对象参保进展.
- 财政补助资金测算表_{Y}.xlsx: the totals of docs/RULES.md §8, the grand total
  first, then each county's subtotal over its townships and tiers, and the
  parameters with their citations.

Each is built in its own process (processes.py; WORKBOOKS, the largest first):
xlsxwriter writes one cell at a time in Python, so the night builds them side
by side. Everything is read from the DuckDB tables of `pipeline.io.tables` and
written through xlsxwriter's public API (`constant_memory`: rows go to disk as
they are written). IDs are masked unless `unmask=True`. Text is always written
as text (a name such as `=HYPERLINK(...)` stays a name). The same run gives
byte-identical files: the workbook's creation time is the data date. Each file
is written to `.{name}.tmp` and moved into place only when all are complete.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb
import polars as pl
from xlsxwriter import Workbook

from pipeline.errors import ReportError
from pipeline.faults import disk_full
from pipeline.io.excel_out import collection, progress, queries
from pipeline.io.excel_out.cells import (
    EXCEL_CELL_MAX_CHARS,
    EXCEL_MAX_DATA_ROWS,
    TRUNCATION_MARKER,
    Column,
    Formats,
    Stats,
    display_width,
    make_formats,
)
from pipeline.io.excel_out.fiscal import write_fiscal_workbook
from pipeline.io.excel_out.lists import sheet_names, sheet_parts, write_list
from pipeline.io.excel_out.queries import Run
from pipeline.io.excel_out.summary import ListEntry, add_charts, write_chart_data, write_summary
from pipeline.params import Params
from pipeline.vocabulary import TIER_NAMES, region_name

__all__ = [
    "EXCEL_CELL_MAX_CHARS",
    "TIER_NAMES",
    "TRUNCATION_MARKER",
    "WORKBOOKS",
    "WORKBOOK_FILES",
    "ReportError",
    "build_reports",
    "build_workbook",
    "discard_reports",
    "display_width",
    "publish_reports",
    "write_reports",
]

PHONE_LISTS = "催缴名单_{year}.xlsx"
RECONCILIATION_REPORT = "对账报告_{year}.xlsx"
FISCAL_REPORT = "财政补助资金测算表_{year}.xlsx"

# The columns of the lists, in order: the printed ones first (README "The workbooks" says why these);
# a width is the widest a text column grows, a longer text wraps inside it.
NAME = Column("姓名", "text", "name", 12)
PHONE = Column("联系电话", "free", "phone", 24)  # shown in full; "free": an ID typed into it is masked
ID = Column("证件号码", "id", "id_number", 20)
TOWNSHIP = Column("乡镇(街道)", "text", "township", 14)
VILLAGE = Column("村(社区)", "text", "village", 14)
TIER = Column("资助类别", "tier", "tier", 12)
DUE = Column("应缴金额", "money", "individual_due")
PAID = Column("实缴金额", "money", "net_paid")
LAST_PAID = Column("最后缴费日期", "date", "last_paid_on")
# The clause of an amount due is one of three, named by the tier: the phone lists' 说明 sheet gives
# them once (`_write_legend`) instead of on every row.
UNPAID_COLUMNS = (NAME, PHONE, ID, TOWNSHIP, VILLAGE, TIER, DUE)
UNDERPAID_COLUMNS = (
    NAME, PHONE, ID, TOWNSHIP, VILLAGE, TIER, DUE, PAID, Column("差额", "money", "amount_diff"), LAST_PAID,
)  # fmt: skip
NOT_ENROLLED_COLUMNS = (
    NAME, PHONE, ID, TOWNSHIP, VILLAGE, Column("身份类别", "text", "identity_labels", 20),
    Column("认定部门", "text", "department", 20), Column("原因", "reason", "reason", 20),
)  # fmt: skip
NOT_RENEWED_COLUMNS = (NAME, PHONE, ID, TOWNSHIP, VILLAGE, Column("原因", "text", "reason", 20))
OVERPAID_COLUMNS = (
    NAME, ID, TOWNSHIP, VILLAGE, TIER, DUE, PAID, Column("应退金额", "money", "amount_diff"), LAST_PAID,
    Column("依据", "free", "basis", 36),
)  # fmt: skip
UNMATCHED_COLUMNS = (
    NAME, ID, Column("缴费金额", "money", "amount"), Column("缴费日期", "date", "paid_on"),
    Column("电子税票号码", "text", "ticket_no", 22), Column("原因", "free", "reason", 28),
    Column("文件", "text", "source_file", 26), Column("工作表", "text", "sheet", 14),
    Column("行号", "count", "row_number"),
)  # fmt: skip
REJECTED_COLUMNS = (
    Column("数据来源", "kind", "kind", 18), Column("文件", "text", "source_file", 26),
    Column("工作表", "text", "sheet", 14), Column("行号", "count", "row_number"), Column("列", "text", "column", 14),
    Column("原始值", "free", "raw_value", 24), Column("原因", "free", "reason", 36), ID,
)  # fmt: skip
STATUS_CHANGE_COLUMNS = (
    NAME, ID, TOWNSHIP, Column("上次状态", "status_change", "previous_status", 16),
    Column("本次状态", "status_change", "status", 16), Column("上次差额", "money", "previous_amount_diff"),
    Column("本次差额", "money", "amount_diff"), Column("上次运行编号", "text", "previous_run_id", 30),
)  # fmt: skip


@dataclass(frozen=True)
class _ListSpec:
    name: str
    title: str
    columns: tuple[Column, ...]
    rows: Callable[[], pl.DataFrame]
    grouped: bool = False  # persons by township: heading rows, a page per large township
    size: Callable[[], tuple[int, int]] | None = None  # (rows, townships): how the summary names its sheets


@dataclass(frozen=True)
class _Night:
    """What every workbook of the night is built from."""

    con: duckdb.DuckDBPyConnection
    run: Run
    coverage_year: int
    params: Params
    unmask: bool
    max_rows_per_sheet: int

    @property
    def place(self) -> str:
        return region_name(self.run.region or self.params.region)

    @property
    def data_date(self) -> dt.date:
        return self.run.created.date()

    def title(self, name: str) -> str:
        """A list's page title: place, year, list, data date."""
        return f"{self.place}{self.coverage_year}年度 {name} 数据日期{self.run.as_of_date or ''}"


def _parts_dir(path: Path) -> Path:
    """xlsxwriter's temporary sheet files of the workbook at `path`: its own folder, removed with it."""
    return path.with_name(path.name + ".parts")


def _open_workbook(path: Path, run: Run, title: str, params: Params) -> tuple[Workbook, BinaryIO]:
    path.unlink(missing_ok=True)
    _parts_dir(path).mkdir(mode=0o700, exist_ok=True)
    handle = open(path, "wb", opener=lambda p, flags: os.open(p, flags, 0o600))
    wb = Workbook(
        handle,
        {
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
            # rows go to temporary files as they are written, beside the workbook (owner-only: they hold IDs)
            "constant_memory": True,
            "tmpdir": str(_parts_dir(path)),
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


def _phone_specs(night: _Night) -> list[_ListSpec]:
    """The lists a township clerk phones from (催缴名单), with 联系电话 when the year's roster has
    phone numbers. A further phone list is one more spec here (the summary lists it too)."""
    con, year, params = night.con, night.coverage_year, night.params
    phone = queries.has_phone(con, year)

    def shown(columns: tuple[Column, ...]) -> tuple[Column, ...]:
        return columns if phone else tuple(c for c in columns if c is not PHONE)

    specs = [
        _ListSpec(
            "未缴",
            night.title("未缴名单"),
            shown(UNPAID_COLUMNS),
            lambda: queries.person_list(con, year, "unpaid", params),
            grouped=True,
            size=lambda: queries.person_list_size(con, year, "unpaid"),
        ),
        _ListSpec(
            "少缴",
            night.title("少缴名单"),
            shown(UNDERPAID_COLUMNS),
            lambda: queries.person_list(con, year, "underpaid", params),
            grouped=True,
            size=lambda: queries.person_list_size(con, year, "underpaid"),
        ),
    ]
    if queries.has_lists(con, year):
        specs.append(
            _ListSpec(
                "资助对象未参保",
                night.title("资助参保对象未参保名单"),
                shown(NOT_ENROLLED_COLUMNS),
                lambda: queries.subsidy_not_enrolled(con, year),
                grouped=True,
                size=lambda: queries.subsidy_not_enrolled_size(con, year),
            )
        )
    if collection.has_previous_year(con, year, night.data_date):  # docs/RULES.md §10: against Y-1's run
        with_phone = queries.has_phone(con, year, "not_renewed")
        specs.append(
            _ListSpec(
                collection.LIST_SHEET,
                night.title("上年参保未续保名单"),
                NOT_RENEWED_COLUMNS if with_phone else tuple(c for c in NOT_RENEWED_COLUMNS if c is not PHONE),
                lambda: collection.not_renewed_rows(con, year),
                grouped=True,
                size=lambda: collection.not_renewed_size(con, year),
            )
        )
    return specs


def _report_specs(night: _Night) -> list[_ListSpec]:
    con, year, params = night.con, night.coverage_year, night.params
    return [
        _ListSpec(
            "多缴应退费",
            night.title("多缴应退费名单"),
            OVERPAID_COLUMNS,
            lambda: queries.person_list(con, year, "overpaid", params),
            grouped=True,
        ),
        _ListSpec("无登记缴费", night.title("无登记缴费"), UNMATCHED_COLUMNS, lambda: queries.unmatched(con, year)),
        _ListSpec(
            "校验未通过",
            night.title("校验未通过的行"),
            REJECTED_COLUMNS,
            lambda: queries.rejected_rows(con, year, night.unmask),
        ),
        _ListSpec(
            "较上次变化",
            night.title("对账状态较上次变化"),
            STATUS_CHANGE_COLUMNS,
            lambda: queries.status_changes(con, night.run.run_id),
            grouped=True,
        ),
    ]


def _write_lists(wb: Workbook, fmts: Formats, stats: Stats, night: _Night, specs: list[_ListSpec]) -> list[ListEntry]:
    """Each list on its own sheet(s), one after the other (a list's rows are dropped once written)."""
    entries = []
    for spec in specs:
        rows = spec.rows()
        sheets = write_list(
            wb,
            fmts,
            spec.name,
            spec.columns,
            rows,
            unmask=night.unmask,
            max_rows_per_sheet=night.max_rows_per_sheet,
            stats=stats,
            title=spec.title,
            grouped=spec.grouped,
        )
        entries.append(ListEntry(spec.name, sheets, rows.height))
        del rows
    return entries


def _write_legend(wb: Workbook, fmts: Formats, night: _Night) -> None:
    """说明: where each tier's amount due comes from (docs/RULES.md §2), said once for every list."""
    p = night.params
    ws = wb.add_worksheet("说明")
    ws.write_string(0, 0, f"{night.coverage_year}年度 个人应缴金额的依据", fmts.title)
    ws.write_row(2, 0, ("资助类别", "个人应缴(元)", "依据"), fmts.header)
    standard = p.fen("individual_standard_yuan") or 0
    subsidies = {"full": p.fen("full_subsidy_yuan") or 0, "fixed": p.fen("fixed_subsidy_yuan") or 0, "none": 0}
    cites = {
        "full": p.full_subsidy_yuan.cite,
        "fixed": p.fixed_subsidy_yuan.cite,
        "none": p.individual_standard_yuan.cite,
    }
    for r, tier in enumerate(("full", "fixed", "none"), 3):
        ws.write_string(r, 0, TIER_NAMES[tier])
        ws.write_number(r, 1, (standard - subsidies[tier]) / 100, fmts.number["money"])
        ws.write_string(r, 2, cites[tier], fmts.wrap)
    ws.set_column(0, 1, 14)
    ws.set_column(2, 2, 80)
    ws.set_landscape()
    ws.set_paper(9)


def _write_phone_workbook(path: Path, night: _Night) -> None:
    """催缴名单: the phone lists, each its own sheet, no summary; and 说明, the clauses of the amounts due."""
    wb, handle = _open_workbook(path, night.run, f"{night.coverage_year}年度城乡居民医保催缴名单", night.params)
    try:
        fmts = make_formats(wb)
        _write_lists(wb, fmts, Stats(), night, _phone_specs(night))
        _write_legend(wb, fmts, night)
        wb.close()
    finally:
        handle.close()


def _phone_entries(night: _Night) -> list[ListEntry]:
    """Where the phone lists are, for the summary: their workbook, sheets and rows, counted here."""
    workbook = PHONE_LISTS.format(year=night.coverage_year)
    entries = []
    for spec in _phone_specs(night):
        n, townships = spec.size() if spec.size else (0, 0)
        parts = sheet_parts(n, townships, night.max_rows_per_sheet)
        entries.append(ListEntry(spec.name, sheet_names(spec.name, len(parts)), n, workbook))
    return entries


def _write_reconciliation_workbook(path: Path, night: _Night) -> None:
    con, year, params = night.con, night.coverage_year, night.params
    wb, handle = _open_workbook(path, night.run, f"{year}年度城乡居民医保缴费对账报告", params)
    try:
        fmts, stats = make_formats(wb), Stats()
        summary = wb.add_worksheet("汇总")
        snapshot = collection.read_snapshot(con, year, night.data_date)
        collection.write_collection_progress(wb, fmts, con, snapshot, params, night.title("征缴进度"))
        lists = _write_lists(wb, fmts, stats, night, _report_specs(night))
        if queries.has_lists(con, year):  # the subsidy lists' progress (who to reach: the phone lists)
            group = params.groups[0].name if params.groups else ""
            progress.write_progress(
                wb, fmts, queries.subsidy_progress(con, year, group), params, night.title("资助参保对象参保进展")
            )
        figures = queries.summary_figures(con, year)
        ranges, label_col = write_chart_data(wb, fmts, con, year, figures)
        entries = _phone_entries(night) + lists
        free_row = write_summary(summary, fmts, night.run, year, params, figures, entries, stats, night.unmask)
        add_charts(wb, summary, ranges, label_col, max(free_row, 35))
        summary.activate()
        wb.close()
    finally:
        handle.close()


def _write_fiscal(path: Path, night: _Night) -> None:
    wb, handle = _open_workbook(
        path, night.run, f"{night.coverage_year}年度城乡居民医保财政补助资金测算表", night.params
    )
    try:
        write_fiscal_workbook(
            wb, make_formats(wb), night.con, night.run, night.coverage_year, night.params, night.place
        )
        wb.close()
    finally:
        handle.close()


WORKBOOKS = ("phone", "reconciliation", "fiscal")  # the largest first: the night starts it first
WORKBOOK_FILES = {"phone": PHONE_LISTS, "reconciliation": RECONCILIATION_REPORT, "fiscal": FISCAL_REPORT}


def _finals(out_dir: Path, coverage_year: int) -> dict[str, Path]:
    return {which: out_dir / WORKBOOK_FILES[which].format(year=coverage_year) for which in WORKBOOKS}


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
    if not 2 <= max_rows_per_sheet <= EXCEL_MAX_DATA_ROWS:  # a heading row and a person
        raise ValueError(f"max_rows_per_sheet must be 2..{EXCEL_MAX_DATA_ROWS}, got {max_rows_per_sheet}")
    run = queries.read_run(con, run_id, coverage_year)
    night = _Night(con, run, coverage_year, params, unmask, max_rows_per_sheet)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = _finals(out_dir, coverage_year)[which]
    temp = out_dir / f".{final.name}.tmp"
    try:
        if which == "phone":
            _write_phone_workbook(temp, night)
        elif which == "reconciliation":
            _write_reconciliation_workbook(temp, night)
        else:
            _write_fiscal(temp, night)
        disk_full("workbook", temp)
        os.chmod(temp, 0o600)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(_parts_dir(temp), ignore_errors=True)  # what xlsxwriter left when it failed
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
