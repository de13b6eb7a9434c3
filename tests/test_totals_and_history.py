"""Subsidy totals (docs/RULES.md §8), unmatched payments, history of runs and re-run identity."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import polars as pl
import pytest

from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, run_night, write_workbook
from ingest_cases import run
from pipeline.errors import TotalsError

TODAY = dt.date(2026, 11, 23)


def person(n, township, labels=None, county="浮梁县", prev="是", registered="2025-10-20"):
    pid = make_id("360222" if county == "浮梁县" else "360281", dt.date(1970 + n, 3, 1), n)
    return pid, [n, f"人{n}", pid, county, township, "某村", labels, prev, None, None, registered, None]


def pay(n, pid, amount, paid_on="2025-11-01", year="2026"):
    return [n, f"人{n}", pid, amount, paid_on, year, f"3360000000000000{n:04d}", "微信"]


@pytest.fixture
def night(tmp_path):
    """Two counties, three townships; 2026 (central share 60 %, Jingdezhen critical illness 100)."""
    people = [
        person(1, "浮梁镇"),  # none, pays 400 -> enrolled
        person(2, "浮梁镇"),  # none, pays 300 -> underpaid, not enrolled
        person(3, "浮梁镇", "城乡低保对象"),  # fixed, pays 80 -> enrolled
        person(4, "鹅湖镇", "特困供养人员"),  # full, due 0 -> enrolled
        person(5, "鹅湖镇"),  # none, unpaid
        person(6, "洎阳街道", "孤儿", county="乐平市"),  # full
        person(7, "洎阳街道", county="乐平市"),  # none, pays 400 + 400 -> overpaid 400
    ]
    ids = {n: pid for n, (pid, _) in enumerate(people, start=1)}
    roster = write_workbook(tmp_path / "roster.xlsx", {"S": [ROSTER_HEADER] + [row for _, row in people]})
    stranger = make_id("360203", dt.date(1980, 2, 2), 9)
    payments = write_workbook(
        tmp_path / "payments.xlsx",
        {
            "S": [
                PAYMENT_HEADER,
                pay(1, ids[1], 400),
                pay(2, ids[2], 300),
                pay(3, ids[3], 80),
                pay(7, ids[7], 400),
                pay(8, ids[7], 400, paid_on="2025-11-02"),
                pay(9, stranger, 400),
                pay(10, ids[1], 400, year="2025"),
            ]
        },
    )
    return tmp_path, roster, payments, ids, stranger


def test_totals_by_county_township_tier_and_grand_total(night):
    tmp_path, roster, payments, _ids, _ = night
    run(tmp_path, roster, payments)
    con = duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True)
    total = con.execute(
        "SELECT roster_count, enrolled_count, fiscal_per_capita_total, central_share_total, local_share_total,"
        " participation_subsidy_total, critical_illness_total, individual_due_total, individual_collected_total"
        " FROM subsidy_totals WHERE level = 'total' AND tier = 'all'"
    ).fetchall()
    # enrolled: persons 1, 3, 4, 6, 7 = 5; fiscal 5 x 700 = 3500; central 60 % = 2100; local 1400;
    # participation subsidy: fixed 320 + full 400 + full 400 = 1120; critical illness 5 x 100 = 500;
    # due: 400+400+80+0+400+0+400 = 1680; collected: 400+300+80+800 = 1580 (the 2025 payment is not Y's)
    assert total == [
        (
            7,
            5,
            Decimal("3500.00"),
            Decimal("2100.00"),
            Decimal("1400.00"),
            Decimal("1120.00"),
            Decimal("500.00"),
            Decimal("1680.00"),
            Decimal("1580.00"),
        )
    ]
    townships = con.execute(
        "SELECT county, township, roster_count, enrolled_count, enrolment_rate FROM subsidy_totals"
        " WHERE level = 'township' AND tier = 'all' ORDER BY county, township"
    ).fetchall()
    assert townships == [
        ("乐平市", "洎阳街道", 2, 2, 1.0),
        ("浮梁县", "浮梁镇", 3, 2, 2 / 3),
        ("浮梁县", "鹅湖镇", 2, 1, 0.5),
    ]
    by_tier = con.execute(
        "SELECT tier, enrolled_count, participation_subsidy_total FROM subsidy_totals"
        " WHERE level = 'total' AND tier <> 'all' ORDER BY tier"
    ).fetchall()
    assert by_tier == [("fixed", 1, Decimal("320.00")), ("full", 2, Decimal("800.00")), ("none", 2, Decimal("0.00"))]
    con.close()


def _tampered(column: str, township: str, delta: int):
    """A bug in the township sums (pipeline/totals.py) that every level inherits alike: one figure of one
    township changed in its tier "none" and "all" rows, so townships, counties, the grand total and
    the tiers still add up among themselves, and only a count over the persons tells."""
    import pipeline.night
    from pipeline.totals import township_sums

    def tampered(reconciliation, params):
        sums = township_sums(reconciliation, params)
        hit = (pl.col("township") == township) & pl.col("tier").is_in(["none", "all"])
        return sums.with_columns(pl.when(hit).then(pl.col(column) + delta).otherwise(pl.col(column)).alias(column))

    return pipeline.night, "township_sums", tampered


@pytest.mark.parametrize(
    "column, delta, figure",
    [
        ("enrolled_count", 1, "enrolled_count"),
        ("individual_collected_total_fen", 1, "individual_collected_total"),
        ("fiscal_per_capita_total_fen", 100, "fiscal"),
    ],
)
def test_totals_that_do_not_add_up_from_the_persons_stop_the_night(night, monkeypatch, column, delta, figure):
    """The totals are checked in the database against tonight's persons (pipeline/io/audit.py): one
    figure off by one unit stops the night with exit code 4, and nothing is published."""
    tmp_path, roster, payments, *_ = night
    run(tmp_path, roster, payments)
    before = (tmp_path / "m.duckdb").read_bytes()
    monkeypatch.setattr(*_tampered(column, "浮梁镇", delta))
    with pytest.raises(TotalsError, match=figure) as stopped:
        run(tmp_path, roster, payments)
    assert stopped.value.exit_code == 4
    assert (tmp_path / "m.duckdb").read_bytes() == before


def test_years_without_a_central_share_report_no_split(tmp_path):
    pid, row = person(1, "浮梁镇", prev=None)
    roster = write_workbook(tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, row]})
    payments = write_workbook(tmp_path / "p.xlsx", {"S": [PAYMENT_HEADER, pay(1, pid, 400, year="2025")]})
    run_night(
        2025,
        "jiangxi",
        [str(roster)],
        [str(payments)],
        tmp_path / "m.duckdb",
        tmp_path,
        as_of=TODAY,
        write_workbooks=False,
    )
    con = duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True)
    got = con.execute(
        "SELECT fiscal_per_capita_total, central_share_total, local_share_total, critical_illness_total"
        " FROM subsidy_totals WHERE level = 'total' AND tier = 'all'"
    ).fetchall()
    con.close()
    # 2025: fiscal 670, critical illness 107 per head (10 % of 1070), no central share given
    assert got == [(Decimal("670.00"), None, None, Decimal("107.00"))]


def test_unmatched_payments_with_their_reason(night):
    tmp_path, roster, payments, _ids, stranger = night
    result = run(tmp_path, roster, payments)
    assert result.unmatched.select("id_number", "amount_fen", "reason").rows() == [(stranger, 40000, "not_on_roster")]
    assert result.other_year_payments == 1


def test_payment_of_a_rejected_roster_row_says_so(tmp_path):
    pid, row = person(1, "浮梁镇", labels="特困供养人")  # unknown label: the roster row is rejected
    roster = write_workbook(tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, row, person(2, "浮梁镇")[1]]})
    payments = write_workbook(tmp_path / "p.xlsx", {"S": [PAYMENT_HEADER, pay(1, pid, 400)]})
    result = run(tmp_path, roster, payments)
    assert result.unmatched.select("id_number", "reason").rows() == [(pid, "roster_rejected")]


def _tables(db) -> dict[str, list]:
    con = duckdb.connect(str(db), read_only=True)
    out = {}
    for table in (
        "residents",
        "payments",
        "rejected_rows",
        "determinations",
        "reconciliation",
        "unmatched_payments",
        "subsidy_totals",
        "run_sheets",
    ):
        # what differs by design between two runs on the same bytes: the run, and that the second reused the first
        cols = [
            c[0]
            for c in con.execute(f"DESCRIBE {table}").fetchall()
            if c[0] not in ("run_id", "reused", "checks_reused")
        ]
        out[table] = con.execute(
            f"SELECT {', '.join(chr(34) + c + chr(34) for c in cols)} FROM {table} ORDER BY ALL"
        ).fetchall()
    con.close()
    return out


def test_rerun_with_identical_inputs_gives_identical_tables(night):
    tmp_path, roster, payments, *_ = night
    run(tmp_path, roster, payments)
    first = _tables(tmp_path / "m.duckdb")
    second = run(tmp_path, roster, payments)
    assert _tables(tmp_path / "m.duckdb") == first
    assert second.sheets["reused"].all()


def test_status_changes_since_the_previous_run(night):
    tmp_path, roster, payments, ids, _ = night
    first = run(tmp_path, roster, payments)
    # next night: person 2 pays the missing 100, person 5 pays 400
    more = write_workbook(
        tmp_path / "payments2.xlsx",
        {"S": [PAYMENT_HEADER, pay(20, ids[2], 100, paid_on="2025-12-01"), pay(21, ids[5], 400, paid_on="2025-12-02")]},
    )
    second = run_night(
        2026,
        "jingdezhen",
        [str(roster)],
        [str(payments), str(more)],
        tmp_path / "m.duckdb",
        tmp_path,
        as_of=TODAY,
        write_workbooks=False,
    )
    con = duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True)
    changes = con.execute(
        "SELECT run_id, previous_run_id, id_number, previous_status, status, previous_amount_diff,"
        " amount_diff FROM status_changes ORDER BY id_number"
    ).fetchall()
    runs = con.execute("SELECT count(*) FROM runs").fetchall()
    con.close()
    assert runs == [(2,)]
    assert sorted(changes, key=lambda c: c[2]) == sorted(
        [
            (second.run_id, first.run_id, ids[2], "underpaid", "paid_in_full", Decimal("100.00"), Decimal("0.00")),
            (second.run_id, first.run_id, ids[5], "unpaid", "paid_in_full", Decimal("400.00"), Decimal("0.00")),
        ],
        key=lambda c: c[2],
    )
