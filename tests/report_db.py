"""A small reconciled night written straight into DuckDB tables, for the workbook tests: five people
in two townships of one county, a payment matching nobody, rejected rows, a status change, the
fiscal totals; phones where a test adds them."""

from __future__ import annotations

import datetime as dt
import re

import duckdb

from builders import with_check_digit
from pipeline.io.tables import DDL

RUN_ID = "20260301T020000-a1b2"
FINGERPRINT = "0123456789abcdef"
STARTED_AT = dt.datetime(2026, 3, 1, 2, 0, 0)
FORMULA_NAME = '=HYPERLINK("http://x","y")'
FULL_ID = re.compile(r"(?<!\d)\d{17}[\dX](?!\d)")


ID_FULL = with_check_digit("36022219580304002")  # 王芳, 特困 -> subsidized
ID_PAID = with_check_digit("36022219850612003")  # 李强, paid 400 of 400
ID_UNDER = with_check_digit("36022219900101123")  # formula-looking name, paid 150 of 400
ID_UNPAID = with_check_digit("36022220010203004")  # 赵敏, 低保 fixed, paid nothing of 80
ID_OVER = with_check_digit("36022219770909005")  # 钱进, paid 800 of 400
ID_UNMATCHED = with_check_digit("36022219660101006")  # 孙丽, payment without roster row
ID_REJECTED = "360222199001011235"  # bad check digit, rejected as raw value
TICKET = "33601625010001234567"  # 20-digit 电子税票号码: not an ID
# the roster's 联系电话, as written: two numbers in one cell, a leading zero and a dash
PHONES = {ID_UNPAID: "0798-1234567、13800138000", ID_UNDER: "13912345678"}

#            name          id          township  village  tier    due  net  n  status        diff  last paid      enrolled
PEOPLE = [
    ("王芳", ID_FULL, "鹅湖镇", "桃岭村", "full", 0, 0, 0, "subsidized", 0, None, True),
    ("李强", ID_PAID, "鹅湖镇", "桃岭村", "none", 400, 400, 1, "paid_in_full", 0, dt.date(2025, 11, 2), True),
    (FORMULA_NAME, ID_UNDER, "鹅湖镇", "新村", "none", 400, 150, 1, "underpaid", 250, dt.date(2025, 12, 9), False),
    ("赵敏", ID_UNPAID, "瑶里镇", "瑶里村", "fixed", 80, 0, 0, "unpaid", 80, None, False),
    ("钱进", ID_OVER, "瑶里镇", "瑶里村", "none", 400, 800, 2, "overpaid", 400, dt.date(2026, 1, 5), True),
]


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    for name, ddl in DDL.items():
        con.execute(f"CREATE TABLE {name} ({ddl})")


def insert_person(con, year: int, person: tuple, run_id: str = RUN_ID) -> None:
    name, id_number, township, village, tier, due, net, n, status, diff, last_paid, enrolled = person
    subsidy = {"full": 400, "fixed": 320, "none": 0}[tier]
    con.execute(
        "INSERT INTO determinations (run_id, coverage_year, id_number, name, county, township, "
        "village, tier, individual_due, subsidy_amount, enrolled, rule_basis) "
        "VALUES (?, ?, ?, ?, '浮梁县', ?, ?, ?, ?, ?, ?, '赣医保发〔2025〕12号(八)1')",
        [run_id, year, id_number, name, township, village, tier, due, subsidy, enrolled],
    )
    con.execute(
        "INSERT INTO reconciliation (run_id, coverage_year, id_number, name, county, township, "
        "village, tier, individual_due, net_paid, n_payments, status, amount_diff, last_paid_on, "
        "refund_basis) VALUES (?, ?, ?, ?, '浮梁县', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            year,
            id_number,
            name,
            township,
            village,
            tier,
            due,
            net,
            n,
            status,
            diff,
            last_paid,
            "refund_overpaid" if status == "overpaid" else None,
        ],
    )


def add_resident(con, year: int, id_number: str, name: str, phone: str | None, run_id: str = RUN_ID) -> None:
    """The person's accepted roster row (residents), with the phone as the roster wrote it."""
    con.execute(
        "INSERT INTO residents (run_id, coverage_year, id_number, name, phone) VALUES (?, ?, ?, ?, ?)",
        [run_id, year, id_number, name, phone],
    )


def build_db(
    year: int,
    fiscal_per_head: int,
    central_share: float | None,
    critical_per_head: int | None,
    rejected_raw_values: tuple[str, ...] = (),
    phones: dict[str, str] | None = None,
):
    """Five people in two townships of one county; three are enrolled (王芳, 李强, 钱进); their roster
    rows with `phones` (PHONES unless given)."""
    con = duckdb.connect()
    create_tables(con)
    con.execute(
        "INSERT INTO runs (run_id, started_at, finished_at, coverage_year, region, rows_read, "
        "rows_accepted, rows_rejected, rows_skipped, status, fingerprint, as_of_date) "
        "VALUES (?, ?, ?, ?, 'jiangxi', 11, 7, 3, 1, 'completed', ?, ?)",
        [RUN_ID, STARTED_AT, STARTED_AT + dt.timedelta(minutes=3), year, FINGERPRINT, STARTED_AT.date()],
    )
    for person in PEOPLE:
        insert_person(con, year, person)
        add_resident(con, year, person[1], person[0], (PHONES if phones is None else phones).get(person[1]))
    con.execute(
        "INSERT INTO unmatched_payments VALUES (?, ?, ?, '孙丽', 400, DATE '2025-12-01', ?, "
        "'not_on_roster', '缴费明细.xlsx', 'Sheet1', 7)",
        [RUN_ID, year, ID_UNMATCHED, TICKET],
    )
    rejected = [
        ("roster", "花名册.xlsx", "鹅湖镇", 5, "证件号码", ID_REJECTED, "证件号码校验位错误", None),
        ("payments", "缴费明细.xlsx", "Sheet1", 9, "缴费金额", "+1", "缴费金额无法识别", ID_PAID),
        ("payments", "缴费明细.xlsx", "Sheet1", 10, "缴费渠道", "@x", "备注 -2", None),
    ] + [
        ("roster", "花名册.xlsx", "瑶里镇", 20 + i, "备注", v, "人员身份无法识别", None)
        for i, v in enumerate(rejected_raw_values)
    ]
    for row in rejected:
        con.execute("INSERT INTO rejected_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [RUN_ID, year, *row])
    con.execute(
        "INSERT INTO status_changes VALUES (?, ?, ?, ?, '浮梁县', '鹅湖镇', 'R-prev', 'unpaid', 'underpaid', 400, 250)",
        [RUN_ID, year, ID_UNDER, FORMULA_NAME],
    )

    def totals(level, county, township, roster, enrolled, participation, due, collected):
        # fiscal = enrolled x fiscal per head; central = fiscal x share; local = the rest
        fiscal = enrolled * fiscal_per_head
        central = None if central_share is None else round(fiscal * central_share, 2)
        local = None if central is None else fiscal - central
        critical = None if critical_per_head is None else enrolled * critical_per_head
        con.execute(
            "INSERT INTO subsidy_totals VALUES (?, ?, ?, ?, ?, 'all', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                RUN_ID,
                year,
                level,
                county,
                township,
                roster,
                enrolled,
                enrolled / roster,
                fiscal,
                central,
                local,
                participation,
                critical,
                due,
                collected,
            ],
        )

    totals("township", "浮梁县", "鹅湖镇", 3, 2, 400, 800, 550)  # 王芳 + 李强 enrolled
    totals("township", "浮梁县", "瑶里镇", 2, 1, 0, 480, 800)  # 钱进 enrolled
    totals("county", "浮梁县", "小计", 5, 3, 400, 1280, 1350)
    totals("total", "合计", "合计", 5, 3, 400, 1280, 1350)
    return con
