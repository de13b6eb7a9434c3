"""The DuckDB tables of CONTRACT.md ("Outputs"), with the extra columns we add.

Money is DECIMAL(14,2) yuan (exact); inside polars it is integer fen.
Every result table carries run_id and coverage_year; a run replaces the rows
of its coverage year only.
"""

from __future__ import annotations

MONEY = "DECIMAL(14,2)"

# The last two columns of the tables a run rewrites only where rows changed (DIFFED_TABLES below):
# row_hash is a hash of the row apart from run_id, key_hash of its key (the line, or the person);
# the next run keeps a row whose two hashes come again (pipeline/io/store.py).
HASHES = "row_hash UBIGINT,\n        key_hash UBIGINT"

# Text columns holding few distinct values (file and sheet names, places, categories, rule texts).
# They are handed to DuckDB dictionary-encoded: at 1M rows the write takes about a third less.
LOW_CARDINALITY = frozenset({
    "source_file", "sheet", "kind", "county", "township", "village", "tier", "identity_labels", "rule_id",
    "rule_basis", "refund_basis", "status", "previous_status", "reason", "column", "channel", "id_type",
    "residence_basis", "special_event", "level",
})

DDL: dict[str, str] = {
    "runs": """
        run_id VARCHAR PRIMARY KEY,
        started_at TIMESTAMP,
        finished_at TIMESTAMP,
        coverage_year INTEGER,
        region VARCHAR,
        inputs VARCHAR,            -- JSON: [{kind, file, sha256, sheets: [{sheet, header_row, rows_read, accepted, rejected, skipped_blank, skipped_footer, skipped_duplicate}]}]
        rows_read INTEGER,
        rows_accepted INTEGER,
        rows_rejected INTEGER,
        rows_skipped INTEGER,
        roster_accepted INTEGER,
        payments_accepted INTEGER,
        params_digest VARCHAR,
        status VARCHAR,            -- completed / failed
        message VARCHAR,
        fingerprint VARCHAR,       -- sha256 of the inputs' sha256s, region, year and params digest
        as_of_date DATE            -- the day the run judged "today" (future birth dates etc.)
    """,
    "run_sheets": """
        run_id VARCHAR,
        coverage_year INTEGER,
        kind VARCHAR,              -- roster / payments
        source_file VARCHAR,
        sha256 VARCHAR,
        sheet VARCHAR,
        header_row INTEGER,        -- as Excel shows it; NULL: no header found
        rows_read INTEGER,
        accepted INTEGER,
        rejected INTEGER,
        skipped_blank INTEGER,
        skipped_footer INTEGER,
        skipped_duplicate INTEGER,
        note VARCHAR,
        reused BOOLEAN,            -- rows reused from an earlier read of the same sheet (its parts byte for byte), not parsed again
        rows_reused INTEGER        -- rows whose checks were reused: all when reused; else the first rows, the same XML bytes as an earlier version's
    """,
    "residents": f"""
        run_id VARCHAR,
        coverage_year INTEGER,
        source_file VARCHAR,
        sheet VARCHAR,
        row_number INTEGER,
        name VARCHAR,
        id_number VARCHAR,
        id_type VARCHAR,
        birth_date DATE,
        county VARCHAR,
        township VARCHAR,
        village VARCHAR,
        residence_basis VARCHAR,
        identity_labels VARCHAR,   -- canonical labels joined by '、'
        subsidy_identified_on DATE,
        prev_year_insured BOOLEAN,
        special_event VARCHAR,
        special_event_date DATE,
        registered_on DATE,
        extra_columns VARCHAR,     -- JSON of unknown extra columns, kept as read
        {HASHES}
    """,
    "payments": f"""
        run_id VARCHAR,
        run_coverage_year INTEGER, -- the coverage year of the run that read it
        coverage_year INTEGER,     -- the payment's own 费款所属期
        source_file VARCHAR,
        sheet VARCHAR,
        row_number INTEGER,
        id_number VARCHAR,
        name VARCHAR,
        amount {MONEY},
        paid_on DATE,
        ticket_no VARCHAR,
        channel VARCHAR,
        extra_columns VARCHAR,
        {HASHES}
    """,
    "rejected_rows": """
        run_id VARCHAR,
        coverage_year INTEGER,
        kind VARCHAR,              -- roster / payments
        source_file VARCHAR,
        sheet VARCHAR,
        row_number INTEGER,        -- as Excel shows it
        "column" VARCHAR,
        raw_value VARCHAR,
        reason VARCHAR,
        id_number VARCHAR          -- normalised ID where one could be read
    """,
    "determinations": f"""
        run_id VARCHAR,
        coverage_year INTEGER,
        id_number VARCHAR,
        name VARCHAR,
        county VARCHAR,
        township VARCHAR,
        village VARCHAR,
        tier VARCHAR,              -- full / fixed / none
        identity_labels VARCHAR,
        age INTEGER,               -- whole years on 1 January of the coverage year
        individual_due {MONEY},
        subsidy_amount {MONEY},
        enrolled BOOLEAN,
        enrolled_on DATE,
        waiting_end DATE,
        benefit_start DATE,
        benefit_end DATE,
        rule_id VARCHAR,
        rule_basis VARCHAR,
        source_file VARCHAR,
        sheet VARCHAR,
        row_number INTEGER,
        {HASHES}
    """,
    "reconciliation": f"""
        run_id VARCHAR,
        coverage_year INTEGER,
        id_number VARCHAR,
        name VARCHAR,
        county VARCHAR,
        township VARCHAR,
        village VARCHAR,
        tier VARCHAR,
        individual_due {MONEY},
        net_paid {MONEY},
        n_payments INTEGER,
        status VARCHAR,            -- subsidized / unpaid / underpaid / overpaid / paid_in_full
        amount_diff {MONEY},
        last_paid_on DATE,
        subsidy_identified_on DATE,
        refund_basis VARCHAR,
        {HASHES}
    """,
    "unmatched_payments": f"""
        run_id VARCHAR,
        coverage_year INTEGER,
        id_number VARCHAR,
        name VARCHAR,
        amount {MONEY},
        paid_on DATE,
        ticket_no VARCHAR,
        reason VARCHAR,
        source_file VARCHAR,
        sheet VARCHAR,
        row_number INTEGER
    """,
    "subsidy_totals": f"""
        run_id VARCHAR,
        coverage_year INTEGER,
        level VARCHAR,             -- township / county / total
        county VARCHAR,            -- '合计' on the grand-total rows
        township VARCHAR,          -- '小计' on county rows, '合计' on total rows
        tier VARCHAR,              -- full / fixed / none / all
        roster_count INTEGER,
        enrolled_count INTEGER,
        enrolment_rate DOUBLE,
        fiscal_per_capita_total {MONEY},
        central_share_total {MONEY},
        local_share_total {MONEY},
        participation_subsidy_total {MONEY},
        critical_illness_total {MONEY},
        individual_due_total {MONEY},
        individual_collected_total {MONEY}
    """,
    "status_changes": f"""
        run_id VARCHAR,
        coverage_year INTEGER,
        id_number VARCHAR,
        name VARCHAR,
        county VARCHAR,
        township VARCHAR,
        previous_run_id VARCHAR,
        previous_status VARCHAR,   -- NULL: not in the previous run
        status VARCHAR,            -- NULL: no longer on the roster
        previous_amount_diff {MONEY},
        amount_diff {MONEY}
    """,
}

# The big tables a run rewrites only where rows changed, each with the column naming the coverage
# year its rows belong to. A night where only the payments changed keeps the unchanged rows.
DIFFED_TABLES = {
    "residents": "coverage_year", "payments": "run_coverage_year",
    "determinations": "coverage_year", "reconciliation": "coverage_year",
}
# The columns that name one row of each of them (hashed into key_hash): the line of the input file,
# or the person.
ROW_KEYS = {
    "residents": ("source_file", "sheet", "row_number"),
    "payments": ("source_file", "sheet", "row_number"),
    "determinations": ("id_number",),
    "reconciliation": ("id_number",),
}

# Tables whose rows belong to one coverage year and are replaced by its next run.
PER_YEAR_TABLES = (
    "run_sheets", "residents", "rejected_rows", "determinations",
    "reconciliation", "unmatched_payments", "subsidy_totals",
)
