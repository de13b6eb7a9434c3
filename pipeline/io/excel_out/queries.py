"""What the workbooks read from DuckDB: the run, the lists, the figures (one SQL per question)."""

from __future__ import annotations

import datetime as dt
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl

from pipeline.errors import ReportError
from pipeline.io.excel_out.cells import excel_date_sql
from pipeline.io.masking import mask_id_expr
from pipeline.params import Params
from pipeline.vocabulary import REFUND_BASIS_NAMES, STATUS_NAMES, UNMATCHED_REASON_NAMES
from schemas.headers import HEADERS_PATH

# Per-year result tables the reports read; all must hold the reported run's rows.
REPORTED_TABLES = ("determinations", "reconciliation", "unmatched_payments", "rejected_rows", "subsidy_totals")
# the columns of determinations the workbooks read (the summary's and the chart's counts)
DETERMINATION_COLUMNS = ("coverage_year", "county", "township", "enrolled")
STATUS_CHANGE_MISSING = {"previous": "(上次无此人)", "current": "(已不在花名册)"}


def money(expr: str) -> str:
    return f"CAST({expr} AS DOUBLE)"


def fen(expr: str) -> str:
    """A DECIMAL(14,2) amount as integer fen (exact), for the lists."""
    return f"CAST({expr} * 100 AS BIGINT)"


def fetch(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def fetch_frame(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> pl.DataFrame:
    """A list's rows as a polars frame (through Arrow: no Python object per cell)."""
    return con.sql(sql, params=list(params) or None).pl()


@dataclass(frozen=True)
class Run:
    run_id: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    coverage_year: int | None
    region: str | None
    rows_read: int | None
    rows_accepted: int | None
    rows_rejected: int | None
    rows_skipped: int | None
    status: str | None
    fingerprint: str | None
    as_of_date: dt.date | None

    @property
    def created(self) -> dt.datetime:
        """The workbooks' creation time: the data date, so two runs on the same inputs and day give
        byte-identical workbooks (the run's exact times stay in DuckDB `runs`)."""
        if self.as_of_date is not None:
            return dt.datetime.combine(self.as_of_date, dt.time())
        if self.started_at is not None:
            return self.started_at.replace(microsecond=0, tzinfo=None)
        return dt.datetime(self.coverage_year or 2000, 1, 1)


def read_run(con: duckdb.DuckDBPyConnection, run_id: str, coverage_year: int) -> Run:
    rows = fetch(
        con,
        """
        SELECT run_id, started_at, finished_at, coverage_year, region,
               rows_read, rows_accepted, rows_rejected, rows_skipped, status, fingerprint, as_of_date
        FROM runs WHERE run_id = ?""",
        [run_id],
    )
    if not rows:
        raise ReportError(f"找不到运行记录 {run_id} / no run '{run_id}' in table runs; run `medins run` first")
    run = Run(*rows[0])
    if run.coverage_year is not None and run.coverage_year != coverage_year:
        raise ReportError(
            f"运行 {run_id} 属于{run.coverage_year}年度，不是{coverage_year}年度 / run "
            f"'{run_id}' is for coverage year {run.coverage_year}, not {coverage_year}"
        )
    for table in REPORTED_TABLES:
        other = fetch(
            con,
            f"SELECT count(*) FROM {table} WHERE coverage_year = ? AND run_id IS DISTINCT FROM ?",
            [coverage_year, run_id],
        )[0][0]
        if other:
            raise ReportError(
                f"{table} 中{coverage_year}年度有{other}行属于其他运行 / table {table} holds {other} "
                f"row(s) of another run for coverage year {coverage_year}, not of '{run_id}'; "
                f"rerun `medins run --coverage-year {coverage_year}`"
            )
    return run


def _coded(column: str, texts: dict[str, str]) -> tuple[str, list[str]]:
    """SQL showing a code column as its text (a code not in `texts` as it is), and its parameters."""
    whens = " ".join("WHEN ? THEN ?" for _ in texts)
    return f"CASE {column} {whens} ELSE {column} END", [v for pair in texts.items() for v in pair]


def person_list(con: duckdb.DuckDBPyConnection, coverage_year: int, status: str, params: Params) -> pl.DataFrame:
    """Persons of one status with their roster phone, sorted by place, and where their amount due
    comes from (docs/RULES.md §2): a refund's basis code as the year's clause (rule_basis of the same
    key), else the clause of the tier's amount."""
    basis = "CASE r.tier WHEN 'full' THEN ? WHEN 'fixed' THEN ? ELSE ? END"
    refund, refund_texts = _coded("r.refund_basis", {code: params.basis(code) for code in REFUND_BASIS_NAMES})
    return fetch_frame(
        con,
        f"""
        SELECT r.name, res.phone, r.id_number, r.county, r.township, r.village, r.tier,
               {fen("r.individual_due")} AS individual_due, {fen("r.net_paid")} AS net_paid,
               {fen("r.amount_diff")} AS amount_diff, r.n_payments,
               {excel_date_sql("r.last_paid_on")} AS last_paid_on, COALESCE({refund}, {basis}) AS basis
        FROM reconciliation r
        LEFT JOIN residents res ON res.coverage_year = r.coverage_year AND res.id_number = r.id_number
        WHERE r.coverage_year = ? AND r.status = ?
        ORDER BY r.county, r.township, r.village, r.name, r.id_number""",
        [
            *refund_texts,
            params.full_subsidy_yuan.cite,
            params.fixed_subsidy_yuan.cite,
            params.individual_standard_yuan.cite,
            coverage_year,
            status,
        ],
    )


def person_list_size(con: duckdb.DuckDBPyConnection, coverage_year: int, status: str) -> tuple[int, int]:
    """How many persons of one status, in how many townships (as `person_list` groups them)."""
    return _size(con, "reconciliation WHERE coverage_year = ? AND status = ?", [coverage_year, status])


def _size(con: duckdb.DuckDBPyConnection, rows: str, params: Sequence[Any]) -> tuple[int, int]:
    n, places = fetch(
        con,
        f"SELECT coalesce(sum(n), 0), count(*) FROM (SELECT count(*) AS n FROM {rows} GROUP BY county, township)",
        params,
    )[0]
    return int(n), int(places)


def has_phone(con: duckdb.DuckDBPyConnection, coverage_year: int, table: str = "residents") -> bool:
    """A row of the year in `table` (residents: the accepted roster rows; not_renewed) has a phone: its
    lists show the column."""
    assert table in ("residents", "not_renewed")
    return bool(
        fetch(
            con,
            f"SELECT EXISTS (SELECT 1 FROM {table} WHERE coverage_year = ? AND trim(phone) <> '')",
            [coverage_year],
        )[0][0]
    )


def unmatched(con: duckdb.DuckDBPyConnection, coverage_year: int) -> pl.DataFrame:
    """Unmatched payments, the reason code by its name (schemas/vocabulary.toml [unmatched_reasons])."""
    reason, reason_names = _coded("reason", UNMATCHED_REASON_NAMES)
    return fetch_frame(
        con,
        f"""
        SELECT name, id_number, {fen("amount")} AS amount, {excel_date_sql("paid_on")} AS paid_on, ticket_no,
               {reason} AS reason, source_file, sheet, row_number
        FROM unmatched_payments WHERE coverage_year = ?
        ORDER BY source_file, sheet, row_number, ticket_no""",
        [*reason_names, coverage_year],
    )


def _id_column_names() -> frozenset[str]:
    """Headers (and the field name) under which a rejected raw value is an ID number."""
    with HEADERS_PATH.open("rb") as f:
        data = tomllib.load(f)
    names = {"id_number"}
    for section in data.values():
        names.update(section.get("fields", {}).get("id_number", {}).get("aliases", []))
    return frozenset(names)


def _is_id_column(column: str | None, id_columns: frozenset[str]) -> bool:
    """`证件号码`, `证件号码*` (a template's required marker), `公民身份号码 ` ... or `id_number`."""
    if not column:
        return False
    name = unicodedata.normalize("NFKC", column).strip().rstrip("*").strip()
    return name in id_columns or "证件号" in name or "身份证" in name or "身份号码" in name


def rejected_rows(con: duckdb.DuckDBPyConnection, coverage_year: int, unmask: bool) -> pl.DataFrame:
    rows = fetch_frame(
        con,
        """
        SELECT kind, source_file, sheet, row_number, "column", raw_value, reason, id_number
        FROM rejected_rows WHERE coverage_year = ?
        ORDER BY source_file, sheet, row_number, "column", raw_value""",
        [coverage_year],
    )
    if unmask:
        return rows
    # A raw value under an ID header is masked whole (it may be a mangled ID the free-text pattern
    # would not recognise, such as 3.60222199001012E+17); the list then masks the other raw values
    # as free text, which leaves a masked ID as it is.
    id_columns = _id_column_names()
    under_id = [h for h in rows["column"].drop_nulls().unique().to_list() if _is_id_column(h, id_columns)]
    return rows.with_columns(
        pl.when(pl.col("column").is_in(under_id))
        .then(mask_id_expr(pl.col("raw_value")))
        .otherwise(pl.col("raw_value"))
        .alias("raw_value")
    )


def status_changes(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    rows = fetch_frame(
        con,
        f"""
        SELECT name, id_number, county, township, previous_status, status,
               {fen("previous_amount_diff")} AS previous_amount_diff, {fen("amount_diff")} AS amount_diff,
               previous_run_id
        FROM status_changes WHERE run_id = ?
        ORDER BY county, township, name, id_number""",
        [run_id],
    )
    return rows.with_columns(
        pl.col(column).replace(STATUS_NAMES).fill_null(STATUS_CHANGE_MISSING[which])
        for column, which in (("previous_status", "previous"), ("status", "current"))
    )


def summary_figures(con: duckdb.DuckDBPyConnection, coverage_year: int) -> dict[str, Any]:
    roster, enrolled = fetch(
        con,
        """
        SELECT count(*), count(*) FILTER (WHERE enrolled)
        FROM determinations WHERE coverage_year = ?""",
        [coverage_year],
    )[0]
    by_status = dict(
        fetch(
            con, "SELECT status, count(*) FROM reconciliation WHERE coverage_year = ? GROUP BY status", [coverage_year]
        )
    )
    due, collected, refund, outstanding = fetch(
        con,
        f"""
        SELECT {money("coalesce(sum(individual_due), 0)")}, {money("coalesce(sum(net_paid), 0)")},
               {money("coalesce(sum(amount_diff) FILTER (WHERE status = 'overpaid'), 0)")},
               {money("coalesce(sum(amount_diff) FILTER (WHERE status IN ('underpaid', 'unpaid')), 0)")}
        FROM reconciliation WHERE coverage_year = ?""",
        [coverage_year],
    )[0]
    n_unmatched, unmatched_amount = fetch(
        con,
        f"""
        SELECT count(*), {money("coalesce(sum(amount), 0)")}
        FROM unmatched_payments WHERE coverage_year = ?""",
        [coverage_year],
    )[0]
    return {
        "roster": roster,
        "enrolled": enrolled,
        "by_status": by_status,
        "due": due,
        "collected": collected,
        "refund": refund,
        "outstanding": outstanding,
        "n_unmatched": n_unmatched,
        "unmatched_amount": unmatched_amount,
    }


def township_enrolment(con: duckdb.DuckDBPyConnection, coverage_year: int) -> list[tuple]:
    return fetch(
        con,
        """
        SELECT county, township, count(*), count(*) FILTER (WHERE enrolled)
        FROM determinations WHERE coverage_year = ?
        GROUP BY county, township ORDER BY county, township""",
        [coverage_year],
    )


def county_money(con: duckdb.DuckDBPyConnection, coverage_year: int) -> list[tuple]:
    return fetch(
        con,
        f"""
        SELECT county, {money("sum(individual_due)")}, {money("sum(net_paid)")},
               {money("coalesce(sum(amount_diff) FILTER (WHERE status = 'overpaid'), 0)")},
               {money("coalesce(sum(amount_diff) FILTER (WHERE status IN ('underpaid', 'unpaid')), 0)")}
        FROM reconciliation WHERE coverage_year = ?
        GROUP BY county ORDER BY county""",
        [coverage_year],
    )


def subsidy_rows(con: duckdb.DuckDBPyConnection, coverage_year: int, tier_order: Sequence[str]) -> list[tuple]:
    """The fiscal table's rows: the grand total first, then each county's subtotal over its townships."""
    tier_rank = " ".join(f"WHEN '{t}' THEN {i}" for i, t in enumerate(tier_order))
    return fetch(
        con,
        f"""
        SELECT level, county, township, tier, roster_count, enrolled_count,
               coalesce(enrolment_rate, enrolled_count / nullif(roster_count, 0)),
               {money("fiscal_per_capita_total")}, {money("central_share_total")},
               {money("local_share_total")}, {money("participation_subsidy_total")},
               {money("critical_illness_total")}, {money("individual_due_total")},
               {money("individual_collected_total")}
        FROM subsidy_totals WHERE coverage_year = ?
        ORDER BY CASE level WHEN 'total' THEN 0 ELSE 1 END, county,
                 CASE level WHEN 'county' THEN 0 ELSE 1 END, township,
                 CASE tier {tier_rank} ELSE 9 END, tier""",
        [coverage_year],
    )


def has_lists(con: duckdb.DuckDBPyConnection, coverage_year: int) -> bool:
    """The night was given subsidy lists (a row of them, accepted or rejected)."""
    return (
        fetch(
            con,
            "SELECT (SELECT count(*) FROM subsidy_list_rows WHERE coverage_year = ?) + "
            "(SELECT count(*) FROM rejected_rows WHERE coverage_year = ? AND kind = 'subsidy_list')",
            [coverage_year, coverage_year],
        )[0][0]
        > 0
    )


def subsidy_progress(con: duckdb.DuckDBPyConnection, coverage_year: int, group: str) -> pl.DataFrame:
    """Progress rows, township by township with its county subtotal, then the total; in each place the
    group 农村低收入人口和脱贫人口 first, then the labels."""
    return fetch_frame(
        con,
        """
        SELECT level, coalesce(county, '合计'), coalesce(township, CASE level WHEN 'county' THEN '小计' ELSE '合计' END),
               label, listed, on_roster, enrolled, enrolment_rate, target_rate
        FROM subsidy_progress WHERE coverage_year = ?
        ORDER BY CASE level WHEN 'total' THEN 1 ELSE 0 END, county, CASE level WHEN 'township' THEN 0 ELSE 1 END,
                 township, CASE WHEN label = ? THEN 0 ELSE 1 END, label""",
        [coverage_year, group],
    )


def subsidy_not_enrolled(con: duckdb.DuckDBPyConnection, coverage_year: int) -> pl.DataFrame:
    """Listed persons not enrolled, with their roster phone where they have an accepted roster row."""
    return fetch_frame(
        con,
        """
        SELECT s.name, res.phone, s.id_number, s.county, s.township, s.village, s.identity_labels, s.department,
               s.reason
        FROM subsidy_not_enrolled s
        LEFT JOIN residents res ON res.coverage_year = s.coverage_year AND res.id_number = s.id_number
        WHERE s.coverage_year = ?
        ORDER BY s.county, s.township, s.village, s.reason, s.name, s.id_number""",
        [coverage_year],
    )


def subsidy_not_enrolled_size(con: duckdb.DuckDBPyConnection, coverage_year: int) -> tuple[int, int]:
    return _size(con, "subsidy_not_enrolled WHERE coverage_year = ?", [coverage_year])
