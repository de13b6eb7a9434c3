"""征缴进度 and 未续保: the night's collection-progress snapshot and last year's insured not yet
renewed (docs/RULES.md §10), computed by DuckDB inside the night's transaction.

Tonight's figures come from tonight's rows of the coverage year Y (still beside the previous run's
rows when this runs: every query names tonight's run); last year's from the Y-1 determinations the
database holds, which tonight never touches: those of the last completed Y-1 run, so the same
whatever the time the night took its lock. A snapshot keeps its figures: a later Y-1 run does not
recompute it.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from pipeline.io.tables import TABLES

# tonight's roster persons of Y (one accepted row each) with their Y place
_TONIGHT = """
    SELECT d.id_number, d.county, d.township, d.enrolled, r.individual_due, r.net_paid
    FROM determinations d
    JOIN reconciliation r ON r.coverage_year = d.coverage_year AND r.run_id = d.run_id AND r.id_number = d.id_number
    WHERE d.coverage_year = $year AND d.run_id = $run"""
# last year's insured with their Y-1 place (none without a Y-1 run)
_LAST_YEAR = """
    SELECT id_number, county, township FROM determinations
    WHERE coverage_year = $year - 1 AND enrolled AND $prev_run IS NOT NULL"""

_SNAPSHOT = f"""
    WITH y AS ({_TONIGHT}),
         p AS ({_LAST_YEAR}),
         here AS (  -- by the Y place: the roster's figures and the newly enrolled
            SELECT y.county, y.township, count(*) AS roster_count, count(*) FILTER (WHERE y.enrolled) AS enrolled_count,
                   sum(y.individual_due) AS due, sum(y.net_paid) AS collected,
                   count(*) FILTER (WHERE y.enrolled AND p.id_number IS NULL) AS new_enrolled
            FROM y LEFT JOIN p ON p.id_number = y.id_number GROUP BY y.county, y.township),
         there AS (  -- by the Y-1 place: last year's insured and those of them enrolled tonight
            SELECT p.county, p.township, count(*) AS prev_enrolled, count(*) FILTER (WHERE y.enrolled) AS renewed
            FROM p LEFT JOIN y ON y.id_number = p.id_number GROUP BY p.county, p.township),
         town AS (
            SELECT coalesce(h.county, t.county) AS county, coalesce(h.township, t.township) AS township,
                   coalesce(h.roster_count, 0) AS roster_count, coalesce(h.enrolled_count, 0) AS enrolled_count,
                   coalesce(h.due, 0) AS due, coalesce(h.collected, 0) AS collected,
                   coalesce(t.prev_enrolled, 0) AS prev_enrolled, coalesce(t.renewed, 0) AS renewed,
                   coalesce(h.new_enrolled, 0) AS new_enrolled
            FROM here h FULL OUTER JOIN there t
              ON t.county IS NOT DISTINCT FROM h.county AND t.township IS NOT DISTINCT FROM h.township),
         levels AS (
            SELECT 'township' AS level, county, township, roster_count, enrolled_count, due, collected,
                   prev_enrolled, renewed, new_enrolled FROM town
            UNION ALL
            SELECT 'county', county, NULL, sum(roster_count), sum(enrolled_count), sum(due), sum(collected),
                   sum(prev_enrolled), sum(renewed), sum(new_enrolled) FROM town GROUP BY county
            UNION ALL
            SELECT 'total', NULL, NULL, coalesce(sum(roster_count), 0), coalesce(sum(enrolled_count), 0),
                   coalesce(sum(due), 0), coalesce(sum(collected), 0), coalesce(sum(prev_enrolled), 0),
                   coalesce(sum(renewed), 0), coalesce(sum(new_enrolled), 0) FROM town)
    SELECT $year, $date, $run, $prev_run, level, county, township, roster_count, enrolled_count, due, collected,
           CASE WHEN $prev_run IS NOT NULL THEN prev_enrolled END,
           CASE WHEN $prev_run IS NOT NULL THEN renewed END,
           CASE WHEN $prev_run IS NOT NULL THEN new_enrolled END,
           CASE WHEN $prev_run IS NOT NULL AND prev_enrolled > 0 THEN renewed / prev_enrolled END
    FROM levels"""

_NOT_RENEWED = """
    SELECT $run, $year, p.id_number, p.name, p.county, p.township, p.village,
           coalesce(nullif(trim(ry.phone), ''), nullif(trim(rp.phone), '')),
           CASE WHEN r.status IS NOT NULL THEN r.status
                WHEN EXISTS (SELECT 1 FROM rejected_rows x
                             WHERE x.coverage_year = $year AND x.run_id = $run AND x.kind = 'roster'
                               AND x.id_number = p.id_number) THEN 'roster_rejected'
                ELSE 'not_on_roster' END
    FROM determinations p
    LEFT JOIN determinations y ON y.coverage_year = $year AND y.run_id = $run AND y.id_number = p.id_number
    LEFT JOIN reconciliation r ON r.coverage_year = $year AND r.run_id = $run AND r.id_number = p.id_number
    LEFT JOIN residents ry ON ry.coverage_year = $year AND ry.run_id = $run AND ry.id_number = p.id_number
    LEFT JOIN residents rp ON rp.coverage_year = $year - 1 AND rp.id_number = p.id_number
    WHERE p.coverage_year = $year - 1 AND p.enrolled AND $prev_run IS NOT NULL AND NOT coalesce(y.enrolled, false)"""


def last_year_run(con: duckdb.DuckDBPyConnection, coverage_year: int) -> str | None:
    """The run whose Y-1 results the database holds: the last completed run of Y-1 (None: no run)."""
    row = con.execute(
        """
        SELECT run_id FROM runs WHERE coverage_year = ? AND status = 'completed'
        ORDER BY finished_at DESC, run_id DESC LIMIT 1""",
        [coverage_year - 1],
    ).fetchone()
    return str(row[0]) if row else None


def insert_progress(con: duckdb.DuckDBPyConnection, coverage_year: int, data_date: dt.date, run_id: str) -> None:
    """Tonight's snapshot in place of any of the same (year, data date), and tonight's not-renewed
    rows beside the year's previous ones (which the night's writer deletes with the other per-year
    rows). Runs inside the night's transaction, after tonight's per-person rows are inserted."""
    values = {"year": coverage_year, "date": data_date, "run": run_id, "prev_run": last_year_run(con, coverage_year)}
    con.execute("DELETE FROM collection_progress WHERE coverage_year = ? AND data_date = ?", [coverage_year, data_date])
    columns = ", ".join(f'"{c}"' for c in TABLES["collection_progress"].column_names)
    con.execute(f"INSERT INTO collection_progress ({columns}) {_SNAPSHOT}", values)
    columns = ", ".join(f'"{c}"' for c in TABLES["not_renewed"].column_names)
    con.execute(
        f"INSERT INTO not_renewed ({columns}) {_NOT_RENEWED}", {k: values[k] for k in ("year", "run", "prev_run")}
    )
