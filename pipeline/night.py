"""A night between reading and writing: a sequence of partitions of residents, each settled,
determined, reconciled and handed to the writer (docs/INTERNALS.md).

An ordinary night is one partition. A night whose rosters hold more than
pipeline/partition.ONE_PIECE_ROWS rows runs in partitions of residents: a
person's roster rows and payments always fall in the same one (a hash of the
ID), so every rule sees the whole person; each partition's rows are written
before the next is made, and what the night reports at the end (conservation,
totals, the summary, the subsidy lists' progress) is summed over partitions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipeline.conservation import NO_LINES, conservation
from pipeline.faults import checkpoint
from pipeline.io.excel_in import SheetRead, empty_read
from pipeline.io.isolate import sheet_rejected, sheet_scan
from pipeline.io.store import NightWriter
from pipeline.params import Params
from pipeline.partition import payment_partition, roster_partition, shared_tickets
from pipeline.reconcile import reconcile, unmatched_payments
from pipeline.rules import determine
from pipeline.settings import Stage
from pipeline.totals import totals_from_township_sums, township_sums
from pipeline.validate import REJECTED_SCHEMA, Checked, Validated, check_sheet, settle_payments, settle_roster
from pipeline.vocabulary import STATUSES
from schemas.headers import load_header_map

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


@dataclass
class Partition:
    roster: list[Checked]
    payments: list[Checked]


def _with_rows(sheets: list[SheetRead]) -> list[SheetRead]:
    return [s for s in sheets if s.data is not None or s.data_path is not None]


def _checked(frames: list[pl.DataFrame], kind: str, params: Params) -> list[Checked]:
    """Checked rows of one partition (the sheets' rejected lines are gathered once, outside)."""
    if frames:
        return [Checked(parsed=f, rejected=NO_LINES) for f in frames]
    # no sheet of this kind read: the same columns, no rows
    empty = SheetRead(kind=kind, source_file="", sha256="", sheet="", data=empty_read(load_header_map(kind)))
    return [
        Checked(parsed=check_sheet(empty, params, load_header_map(kind), params.year_start).parsed, rejected=NO_LINES)
    ]


def partitions(sheets: Sheets, n_parts: int, scratch: Path, params: Params) -> Iterator[Partition]:
    """The night's partitions: one, of every sheet's rows as read; or each sheet cut once into
    per-partition IPC files in `scratch` (one sheet in memory at a time) and read back per partition."""
    roster, payments = _with_rows(sheets.roster), _with_rows(sheets.payments)
    if n_parts == 1:
        yield Partition(
            _checked([sheet_scan(s).collect() for s in roster], "roster", params),
            _checked([sheet_scan(s).collect() for s in payments], "payments", params),
        )
        return
    shared = shared_tickets([sheet_scan(s) for s in payments])
    roster_files = _split(roster, roster_partition(n_parts), scratch / "partitions", "roster")
    payment_files = _split(payments, payment_partition(n_parts, shared), scratch / "partitions", "payments")
    for part in range(n_parts):
        yield Partition(
            _checked([pl.read_ipc(f) for f in roster_files.get(part, [])], "roster", params),
            _checked([pl.read_ipc(f) for f in payment_files.get(part, [])], "payments", params),
        )


def _split(sheets: list[SheetRead], part: pl.Expr, where: Path, kind: str) -> dict[int, list[Path]]:
    """Each sheet's checked rows cut into its partitions' IPC files; the files of each partition."""
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
    other_years: int = 0
    roster_accepted: int = 0
    payments_accepted: int = 0
    figures: dict[str, int] = field(default_factory=dict)
    # a night in one piece keeps its per-person frames (tests, `medins explain` read them); in partitions none
    determinations: pl.DataFrame | None = None
    reconciliation: pl.DataFrame | None = None
    listed: pl.DataFrame | None = None  # the outcomes of the listed persons (pipeline/subsidy_lists.py)


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


def run_partitions(
    sheets: Sheets,
    params: Params,
    writer: NightWriter,
    stage: Stage | None,
    n_parts: int,
    scratch: Path,
    list_rows: pl.DataFrame,
) -> Night:
    """Settle -> determine -> reconcile -> write, partition by partition (docs/INTERNALS.md).
    `list_rows`: the in-force rows of the subsidy lists (docs/RULES.md §9)."""

    def timed(name: str):
        return stage(name) if stage else nullcontext()

    year = params.coverage_year
    roster_map, payment_map = load_header_map("roster"), load_header_map("payments")
    with timed("校验 validate"):
        sheet_lines = pl.concat(
            [
                NO_LINES,
                *[
                    sheet_rejected(s).select(REJECTED_SCHEMA.keys())
                    for s in _with_rows(sheets.roster + sheets.payments)
                ],
            ]
        )
        rejected_roster = sheet_lines.filter(pl.col("kind") == "roster")
    sums, kept = _Sums(), {}
    for part in partitions(sheets, n_parts, scratch, params):
        with timed("校验 validate"):
            rv, pv = settle_roster(part.roster, roster_map), settle_payments(part.payments, payment_map)
            sums.add_settled(rv, pv)
        checkpoint("after_validate")
        with timed("认定 determine"):
            determinations = determine(rv.accepted, pv.accepted, params, list_rows)
        with timed("对账 reconcile"):
            reconciliation = reconcile(determinations, params)
            unmatched = unmatched_payments(pv.accepted, rv.accepted, pl.concat([rejected_roster, rv.rejected]), params)
            sums.other_years += pv.accepted.filter(pl.col("coverage_year") != year).height
        sums.townships.append(township_sums(reconciliation, params))
        sums.add_figures(summary_figures(determinations, reconciliation))
        sums.unmatched.append(unmatched)
        sums.listed.append(
            determinations.join(list_rows.select("id_number").unique(), on="id_number", how="semi").select(
                LISTED_COLUMNS
            )
        )
        with timed("写入数据库 DuckDB"):
            writer.add("residents", rv.accepted.with_columns(pl.col("identity_labels").list.join("、")))
            writer.add("payments", pv.accepted.with_columns(pl.lit(year, dtype=pl.Int32).alias("run_coverage_year")))
            writer.add("determinations", determinations)
            writer.add("reconciliation", reconciliation)
            writer.add("unmatched_payments", unmatched)
        if n_parts == 1:
            kept = {"determinations": determinations, "reconciliation": reconciliation}
        del rv, pv, determinations, reconciliation, unmatched
    return _close(sheets, sheet_lines, sums, params, kept)


def _close(sheets: Sheets, sheet_lines: pl.DataFrame, sums: _Sums, params: Params, kept: dict) -> Night:
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
    unmatched = pl.concat(sums.unmatched).sort("source_file", "sheet", "row_number")
    return Night(
        sheets=counts,
        rejected=lines.with_columns(pl.lit(params.coverage_year, dtype=pl.Int32).alias("coverage_year")),
        duplicates=duplicates,
        unmatched=unmatched,
        totals=totals_from_township_sums(sums.townships, params),
        other_years=sums.other_years,
        figures=sums.figures,
        roster_accepted=int(accepted.join(_kind_files(sheets.roster), on=["source_file", "sheet"])["accepted"].sum()),
        payments_accepted=int(
            accepted.join(_kind_files(sheets.payments), on=["source_file", "sheet"])["accepted"].sum()
        ),
        determinations=kept.get("determinations"),
        reconciliation=kept.get("reconciliation"),
        listed=pl.concat(sums.listed) if sums.listed else None,
    )


def _kind_files(sheets: list[SheetRead]) -> pl.DataFrame:
    return pl.DataFrame(
        {"source_file": [s.source_file for s in sheets], "sheet": [s.sheet for s in sheets]},
        schema={"source_file": pl.Utf8, "sheet": pl.Utf8},
    ).unique()
