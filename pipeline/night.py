"""A night between reading and writing: check every sheet, then a sequence of partitions of
residents, each settled, determined, reconciled and handed to the writer (docs/INTERNALS.md).

An ordinary night is one partition. A night whose rosters hold more than
pipeline/partition.ONE_PIECE_ROWS rows runs in several: a person's roster
rows and payments always fall in the same one (a hash of the ID), so every
rule sees the whole person. The only difference is where the rows wait for
their partition (`Rows`: in memory, or in the night's scratch folder);
everything else runs the same way, and what the night reports at the end
(conservation, totals, the summary, the lists' outcomes) is summed over the
partitions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipeline.conservation import NO_LINES, conservation
from pipeline.faults import checkpoint
from pipeline.io import cache
from pipeline.io.excel_in import SheetRead, empty_read
from pipeline.io.rows import Rows
from pipeline.io.store import NightWriter
from pipeline.params import Params
from pipeline.partition import payment_partition, roster_partition
from pipeline.reconcile import reconcile, unmatched_payments
from pipeline.rules import determine
from pipeline.rules.lists import no_list_rows
from pipeline.settings import Stage
from pipeline.totals import totals_from_township_sums, township_sums
from pipeline.validate import (
    REJECTED_SCHEMA,
    Checked,
    Validated,
    check_inputs,
    check_sheet,
    settle_payments,
    settle_roster,
    with_data_date,
)
from pipeline.vocabulary import STATUSES
from schemas.headers import load_header_map

CHECK_THREADS = 2  # sheets checked at a time (at most two in memory; 2 cores measured: 2.06 s -> 1.50 s at 1M + 1M)
# what the lists' progress needs of a listed person found on the roster (pipeline/subsidy_lists.py)
LISTED_COLUMNS = ("id_number", "name", "county", "township", "village", "birth_date", "enrolled")


@dataclass
class Sheets:
    """The sheets the night read, by kind."""

    roster: list[SheetRead]
    payments: list[SheetRead]
    subsidy_list: list[SheetRead] = field(default_factory=list)

    def all(self) -> list[SheetRead]:
        return self.roster + self.payments + self.subsidy_list


def with_rows(sheets: list[SheetRead]) -> list[SheetRead]:
    return [s for s in sheets if s.rows is not None]


@dataclass
class CheckedSheets:
    """One kind's sheets after the row checks: each sheet's checked rows and all their rejected lines."""

    rows: list[Rows]
    rejected: pl.DataFrame


def _checked(sheet: SheetRead, plan: NightPlan, key: str | None) -> Checked:
    """A sheet's checks, from its entry in the cache when they were kept there under `key` for a data
    date like tonight's (the file name restamped: the entry is named by the bytes), else made now
    and kept there for the next night."""
    assert sheet.rows is not None
    rows_path = sheet.rows.path
    in_cache = key is not None and rows_path is not None and plan.cache_dir in rows_path.parents
    kept = cache.find_checked(rows_path, key, plan.data_date) if in_cache and rows_path and key else None
    if kept is not None:
        try:
            here = pl.lit(sheet.source_file).alias("source_file")
            parsed, rejected = (pl.read_ipc(p).with_columns(here) for p in kept)
            sheet.checks_reused = True
            return Checked(parsed=parsed, rejected=with_data_date(rejected, plan.data_date))
        except (OSError, pl.exceptions.PolarsError):  # a damaged entry: checked again
            pass
    header_map = load_header_map(sheet.kind)
    checked = check_sheet(sheet, sheet.rows.load(), plan.params, header_map, plan.data_date, dated=False)
    if in_cache and rows_path and key:
        cache.store_checked(rows_path, key, checked)
    return dataclasses.replace(checked, rejected=with_data_date(checked.rejected, plan.data_date))


def check_sheets(sheets: list[SheetRead], kind: str, plan: NightPlan) -> CheckedSheets:
    """The row checks of docs/RULES.md §6 on each sheet's rows as read, one sheet in memory at a time
    per thread (a night in partitions keeps the checked rows in its scratch folder till their
    partition comes); the checks of an unchanged sheet come from the cache when nothing they read
    changed (pipeline/validate.py CHECK_FILES, check_inputs) and the data date is on the same side of
    every date they compared."""
    spill = plan.scratch / "partitions" if plan.n_parts > 1 else None
    key = cache.checks_key(check_inputs(plan.params)) if plan.cache_dir is not None else None

    def checked(i: int, sheet: SheetRead) -> tuple[Rows, pl.DataFrame]:
        c = _checked(sheet, plan, key)
        kept = Rows.kept(c.parsed, spill / f"checked-{kind}{i}.arrow" if spill else None)
        return kept, c.rejected.select(REJECTED_SCHEMA.keys())

    # two sheets at a time: polars releases the GIL, and one sheet's checks alone leave a core idle
    with ThreadPoolExecutor(max_workers=CHECK_THREADS) as pool:
        done = list(pool.map(lambda js: checked(*js), enumerate(with_rows(sheets))))
    rows = [r for r, _ in done]
    lines = [NO_LINES, *[sheet_lines for _, sheet_lines in done]]
    if not rows:  # no sheet of this kind holds rows: the same columns, none
        empty, header_map = SheetRead(kind=kind, source_file="", sha256="", sheet=""), load_header_map(kind)
        parsed = check_sheet(empty, empty_read(header_map), plan.params, header_map, plan.data_date).parsed
        rows.append(Rows(frame=parsed))
    return CheckedSheets(rows=rows, rejected=pl.concat(lines))


def _pieces(checked: list[Rows], part: pl.Expr, n_parts: int, spill: Path | None, kind: str) -> list[list[Rows]]:
    """Each sheet's checked rows cut into the partitions: `pieces[p]` holds partition p's rows of
    every sheet (one sheet in memory at a time; `checked` is emptied, each sheet let go once cut). In
    one piece, the checked rows themselves."""
    if n_parts == 1:
        return [checked]
    none = Rows(frame=checked[0].scan().head(0).collect())  # a partition no row of this kind falls in
    pieces: list[list[Rows]] = [[] for _ in range(n_parts)]
    for i in range(len(checked)):
        frame = checked[i].load().with_columns(part.alias("__part"))
        for (p,), piece in frame.partition_by("__part", as_dict=True, include_key=False).items():
            pieces[p].append(Rows.kept(piece, spill / f"{kind}{i}-p{p}.arrow" if spill else None))
        del frame
    checked.clear()
    return [p or [none] for p in pieces]


@dataclass
class Partition:
    roster: list[Checked]
    payments: list[Checked]


def partitions(roster: CheckedSheets, payments: CheckedSheets, n_parts: int, spill: Path | None) -> Iterator[Partition]:
    """The night's partitions of residents: a person's roster rows and payments in the same one; the
    rows of a ticket number found under two ID numbers all in partition 0, where the duplicate rule
    sees them together (pipeline/partition.py)."""
    roster_pieces = _pieces(roster.rows, roster_partition(n_parts), n_parts, spill, "roster")
    payment_part = payment_partition(n_parts, [r.scan() for r in payments.rows])
    payment_pieces = _pieces(payments.rows, payment_part, n_parts, spill, "payments")
    for p in range(n_parts):
        yield Partition(roster=_taken(roster_pieces, p), payments=_taken(payment_pieces, p))


def _taken(pieces: list[list[Rows]], p: int) -> list[Checked]:
    """Partition p's rows, loaded, and let go of here (the list is emptied in place: in one piece it is
    the night's list of checked rows), so that they are freed once the partition is settled."""
    rows = list(pieces[p])
    pieces[p].clear()
    return [Checked(parsed=r.load(), rejected=NO_LINES) for r in rows]


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
    return {
        "persons": determinations.height,
        "enrolled": int(determinations["enrolled"].sum()),
        **{k: int(v or 0) for k, v in row.items()},
    }


@dataclass
class Night:
    """What the steps between reading and writing made of the night."""

    sheets: pl.DataFrame  # per file and sheet: the counts of run_sheets
    rejected: pl.DataFrame
    duplicates: pl.DataFrame
    unmatched: pl.DataFrame
    totals: pl.DataFrame
    listed: pl.DataFrame  # the outcomes of the persons on the subsidy lists (pipeline/subsidy_lists.py)
    other_years: int = 0
    roster_accepted: int = 0
    payments_accepted: int = 0
    figures: dict[str, int] = field(default_factory=dict)


@dataclass
class _Sums:
    """What the partitions add up to."""

    accepted: list[pl.DataFrame] = field(default_factory=list)
    conflicts: list[pl.DataFrame] = field(default_factory=list)
    duplicates: list[pl.DataFrame] = field(default_factory=list)
    townships: list[pl.DataFrame] = field(default_factory=list)
    unmatched: list[pl.DataFrame] = field(default_factory=list)
    listed: list[pl.DataFrame] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)
    other_years: int = 0

    def add_settled(self, *validated: Validated) -> None:
        for v in validated:
            self.accepted.append(v.accepted.group_by("source_file", "sheet").agg(pl.len().alias("accepted")))
            self.conflicts.append(v.rejected)
            self.duplicates.append(v.duplicates.select("source_file", "sheet", "row_number", "kept_at"))

    def add_figures(self, figures: dict[str, int]) -> None:
        self.figures = {k: self.figures.get(k, 0) + v for k, v in figures.items()}


@dataclass(frozen=True)
class NightPlan:
    """How the night runs: its parameters, data date, partitions, scratch folder and cache folder
    (None: no cache), and the in-force rows of the subsidy lists (docs/RULES.md §9)."""

    params: Params
    data_date: dt.date
    n_parts: int
    scratch: Path
    cache_dir: Path | None
    list_rows: pl.DataFrame = field(default_factory=no_list_rows)


def run_partitions(sheets: Sheets, plan: NightPlan, writer: NightWriter, stage: Stage) -> Night:
    """Check -> settle -> determine -> reconcile -> write, partition by partition (docs/INTERNALS.md)."""
    params, year = plan.params, plan.params.coverage_year
    spill = plan.scratch / "partitions" if plan.n_parts > 1 else None  # where a partition's rows wait
    with stage("校验 check"):
        roster = check_sheets(sheets.roster, "roster", plan)
        payments = check_sheets(sheets.payments, "payments", plan)
    checkpoint("after_check")
    sheet_lines = pl.concat([roster.rejected, payments.rejected])
    rejected_roster = roster.rejected
    roster_map, payment_map = load_header_map("roster"), load_header_map("payments")
    sums = _Sums()
    for part in partitions(roster, payments, plan.n_parts, spill):
        with stage("校验 check"):
            rv, pv = settle_roster(part.roster, roster_map), settle_payments(part.payments, payment_map)
            sums.add_settled(rv, pv)
            del part  # the checked rows: from here on only the settled ones are kept
        with stage("认定 determine"):
            determinations = determine(rv.accepted, pv.accepted, params, plan.list_rows)
        with stage("对账 reconcile"):
            reconciliation = reconcile(determinations, params)
            unmatched = unmatched_payments(pv.accepted, rv.accepted, pl.concat([rejected_roster, rv.rejected]), params)
            sums.other_years += pv.accepted.filter(pl.col("coverage_year") != year).height
            sums.townships.append(township_sums(reconciliation, params))
            sums.add_figures(summary_figures(determinations, reconciliation))
            sums.unmatched.append(unmatched)
            sums.listed.append(
                determinations.join(plan.list_rows.select("id_number").unique(), on="id_number", how="semi").select(
                    LISTED_COLUMNS
                )
            )
        with stage("写入数据库 DuckDB"):
            writer.add("residents", rv.accepted.with_columns(pl.col("identity_labels").list.join("、")))
            writer.add("payments", pv.accepted.with_columns(pl.lit(year, dtype=pl.Int32).alias("run_coverage_year")))
            writer.add("determinations", determinations)
            writer.add("reconciliation", reconciliation)
            writer.add("unmatched_payments", unmatched)
        del rv, pv, determinations, reconciliation, unmatched
    with stage("对账 reconcile"):
        return _close(sheets, sheet_lines, sums, params)


def _close(sheets: Sheets, sheet_lines: pl.DataFrame, sums: _Sums, params: Params) -> Night:
    """What the partitions add up to, conservation asserted."""
    lines = pl.concat([sheet_lines, *[c.select(REJECTED_SCHEMA.keys()) for c in sums.conflicts]])
    duplicates = pl.concat(
        [
            pl.DataFrame(schema={"source_file": pl.Utf8, "sheet": pl.Utf8, "row_number": pl.Int32, "kept_at": pl.Utf8}),
            *sums.duplicates,
        ]
    )
    accepted = (
        pl.concat(
            [pl.DataFrame(schema={"source_file": pl.Utf8, "sheet": pl.Utf8, "accepted": pl.UInt32}), *sums.accepted]
        )
        .group_by("source_file", "sheet")
        .agg(pl.col("accepted").sum())
    )
    counts = conservation(sheets.roster + sheets.payments, accepted, lines, duplicates)
    return Night(
        sheets=counts,
        rejected=lines.with_columns(pl.lit(params.coverage_year, dtype=pl.Int32).alias("coverage_year")),
        duplicates=duplicates,
        unmatched=pl.concat(sums.unmatched).sort("source_file", "sheet", "row_number"),
        totals=totals_from_township_sums(sums.townships, params),
        listed=pl.concat(sums.listed),
        other_years=sums.other_years,
        figures=sums.figures,
        roster_accepted=_accepted_of(accepted, sheets.roster),
        payments_accepted=_accepted_of(accepted, sheets.payments),
    )


def _accepted_of(accepted: pl.DataFrame, sheets: list[SheetRead]) -> int:
    files = pl.DataFrame(
        {"source_file": [s.source_file for s in sheets], "sheet": [s.sheet for s in sheets]},
        schema={"source_file": pl.Utf8, "sheet": pl.Utf8},
    ).unique()
    return int(accepted.join(files, on=["source_file", "sheet"])["accepted"].sum())
