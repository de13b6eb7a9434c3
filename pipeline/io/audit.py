"""The night's totals checked against its persons, in the database, before the commit (docs/RULES.md §8).

`subsidy_totals` is computed in polars from each partition's township sums
(pipeline/totals.py). This check recomputes its township and grand-total
figures of all tiers in SQL from tonight's per-person rows (`determinations`
joined with `reconciliation`), another engine and another path, and compares
every figure exactly; it also checks that the fiscal figures are the
enrolled count times the year's amounts, and central + local = fiscal. A
difference stops the night (TotalsError, exit code 4) before anything is
published.
"""

from __future__ import annotations

import duckdb

from pipeline.errors import TotalsError
from pipeline.params import Params

_FIGURES = (
    "roster_count",
    "enrolled_count",
    "participation_subsidy_total",
    "individual_due_total",
    "individual_collected_total",
)


def _persons_sql() -> str:
    """Tonight's persons with what the totals need, one row each."""
    return """
        SELECT d.county, d.township, d.enrolled, r.individual_due, r.net_paid, r.subsidy_applied
        FROM determinations d JOIN reconciliation r
          ON r.coverage_year = d.coverage_year AND r.id_number = d.id_number AND r.run_id = d.run_id
        WHERE d.coverage_year = $year AND d.run_id = $run"""


def _expected_sql(group: str) -> str:
    return f"""
        SELECT {group}count(*) AS roster_count, count(*) FILTER (WHERE enrolled) AS enrolled_count,
               coalesce(sum(subsidy_applied) FILTER (WHERE enrolled), 0) AS participation_subsidy_total,
               coalesce(sum(individual_due), 0) AS individual_due_total,
               coalesce(sum(net_paid), 0) AS individual_collected_total
        FROM persons {"GROUP BY ALL" if group else ""}"""


def check_totals_against_persons(
    con: duckdb.DuckDBPyConnection, coverage_year: int, run_id: str, params: Params
) -> None:
    """Raise TotalsError naming the first figure of `subsidy_totals` (tier all, per township and the
    grand total) that differs from the same figure summed over tonight's persons."""
    differs = " OR ".join(f"e.{f} IS DISTINCT FROM g.{f}" for f in _FIGURES)
    stored = f"SELECT county, township, {', '.join(_FIGURES)} FROM subsidy_totals WHERE coverage_year = $year AND run_id = $run AND tier = 'all'"
    bad = con.execute(
        f"""
        WITH persons AS ({_persons_sql()}),
             e AS ({_expected_sql("county, township, ")} UNION ALL
                   SELECT '合计', '合计', * FROM ({_expected_sql("")}) WHERE roster_count > 0),
             g AS ({stored} AND level IN ('township', 'total'))
        SELECT coalesce(e.county, g.county), coalesce(e.township, g.township),
               {", ".join(f"e.{f}, g.{f}" for f in _FIGURES)}
        FROM e FULL OUTER JOIN g ON e.county = g.county AND e.township = g.township
        WHERE {differs} LIMIT 1""",
        {"year": coverage_year, "run": run_id},
    ).fetchone()
    if bad:
        county, township, *pairs = bad
        figure = next(f for f, (e, g) in zip(_FIGURES, zip(pairs[::2], pairs[1::2])) if e != g)
        expected, got = pairs[2 * _FIGURES.index(figure)], pairs[2 * _FIGURES.index(figure) + 1]
        raise TotalsError(
            f"财政补助合计与人员明细不符 / subsidy totals do not add up from the persons: {county} {township} "
            f"{figure}: {got} in subsidy_totals, {expected} summed over the persons"
        )
    _check_per_head(con, coverage_year, run_id, params)


def _check_per_head(con: duckdb.DuckDBPyConnection, coverage_year: int, run_id: str, params: Params) -> None:
    """fiscal = enrolled x fiscal per head, central + local = fiscal, critical illness = enrolled x its
    amount, on every row (the amounts of policy_params/; NULL where the notice gives none)."""
    fiscal = params.fiscal_per_capita_yuan.value
    critical = params.critical_illness_per_capita_yuan.value
    bad = con.execute(
        """
        SELECT level, county, township, tier FROM subsidy_totals
        WHERE coverage_year = $year AND run_id = $run AND (
              fiscal_per_capita_total IS DISTINCT FROM enrolled_count * $fiscal
           OR (central_share_total IS NOT NULL
               AND central_share_total + local_share_total IS DISTINCT FROM fiscal_per_capita_total)
           OR critical_illness_total IS DISTINCT FROM enrolled_count * $critical)
        LIMIT 1""",
        {"year": coverage_year, "run": run_id, "fiscal": fiscal, "critical": critical},
    ).fetchone()
    if bad:
        raise TotalsError(
            f"财政补助金额与参保人数不符 / a fiscal figure is not the enrolled count times the year's amount: {bad}"
        )
