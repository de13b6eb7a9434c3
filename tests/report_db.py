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


def insert(con: duckdb.DuckDBPyConnection, table: str, **values: object) -> None:
    """One row into `table`, each value under its column's name: a column added to schemas/tables.toml
    stays NULL here instead of shifting the values after it."""
    columns = ", ".join(f'"{c}"' for c in values)
    con.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(values))})", list(values.values()))


def insert_person(con: duckdb.DuckDBPyConnection, year: int, person: tuple, run_id: str = RUN_ID) -> None:
    name, id_number, township, village, tier, due, net, n, status, diff, last_paid, enrolled = person
    # the columns determinations and reconciliation share
    common = {"run_id": run_id, "coverage_year": year, "id_number": id_number, "name": name, "county": "浮梁县"}
    common |= {"township": township, "village": village, "tier": tier, "individual_due": due}
    subsidy = {"full": 400, "fixed": 320, "none": 0}[tier]
    basis = "赣医保发〔2025〕12号(八)1"
    insert(con, "determinations", **common, subsidy_amount=subsidy, enrolled=enrolled, rule_basis=basis)
    insert(
        con,
        "reconciliation",
        **common,
        net_paid=net,
        n_payments=n,
        status=status,
        amount_diff=diff,
        last_paid_on=last_paid,
        refund_basis="refund_overpaid" if status == "overpaid" else None,
    )


def add_resident(con, year: int, id_number: str, name: str, phone: str | None, run_id: str = RUN_ID) -> None:
    """The person's accepted roster row (residents), with the phone as the roster wrote it."""
    insert(con, "residents", run_id=run_id, coverage_year=year, id_number=id_number, name=name, phone=phone)


REJECTED_FIELDS = ("kind", "source_file", "sheet", "row_number", "column", "raw_value", "reason", "id_number")


def add_rejected(con: duckdb.DuckDBPyConnection, year: int, raw_values: tuple[str, ...]) -> None:
    """Three rejected lines, then one 人员身份无法识别 line for each of `raw_values`."""
    rejected = [
        ("roster", "花名册.xlsx", "鹅湖镇", 5, "证件号码", ID_REJECTED, "证件号码校验位错误", None),
        ("payments", "缴费明细.xlsx", "Sheet1", 9, "缴费金额", "+1", "缴费金额无法识别", ID_PAID),
        ("payments", "缴费明细.xlsx", "Sheet1", 10, "缴费渠道", "@x", "备注 -2", None),
    ] + [
        ("roster", "花名册.xlsx", "瑶里镇", 20 + i, "备注", v, "人员身份无法识别", None)
        for i, v in enumerate(raw_values)
    ]
    for row in rejected:
        insert(con, "rejected_rows", run_id=RUN_ID, coverage_year=year, **dict(zip(REJECTED_FIELDS, row, strict=True)))


def add_totals(
    con: duckdb.DuckDBPyConnection,
    year: int,
    fiscal_per_head: int,
    central_share: float | None,
    critical_per_head: int | None,
) -> None:
    """subsidy_totals (tier all) of the two townships, their county and the grand total."""

    def totals(level, county, township, roster, enrolled, participation, due, collected):
        # fiscal = enrolled x fiscal per head; central = fiscal x share; local = the rest
        fiscal = enrolled * fiscal_per_head
        central = None if central_share is None else round(fiscal * central_share, 2)
        insert(
            con,
            "subsidy_totals",
            run_id=RUN_ID,
            coverage_year=year,
            level=level,
            county=county,
            township=township,
            tier="all",
            roster_count=roster,
            enrolled_count=enrolled,
            enrolment_rate=enrolled / roster,
            fiscal_per_capita_total=fiscal,
            central_share_total=central,
            local_share_total=None if central is None else fiscal - central,
            participation_subsidy_total=participation,
            critical_illness_total=None if critical_per_head is None else enrolled * critical_per_head,
            individual_due_total=due,
            individual_collected_total=collected,
        )

    totals("township", "浮梁县", "鹅湖镇", 3, 2, 400, 800, 550)  # 王芳 + 李强 enrolled
    totals("township", "浮梁县", "瑶里镇", 2, 1, 0, 480, 800)  # 钱进 enrolled
    totals("county", "浮梁县", "小计", 5, 3, 400, 1280, 1350)
    totals("total", "合计", "合计", 5, 3, 400, 1280, 1350)


def add_run(con: duckdb.DuckDBPyConnection, year: int) -> None:
    """The night's row of `runs`: 11 rows read, 7 accepted, 3 rejected, 1 skipped."""
    insert(
        con,
        "runs",
        run_id=RUN_ID,
        started_at=STARTED_AT,
        finished_at=STARTED_AT + dt.timedelta(minutes=3),
        coverage_year=year,
        region="jiangxi",
        rows_read=11,
        rows_accepted=7,
        rows_rejected=3,
        rows_skipped=1,
        status="completed",
        fingerprint=FINGERPRINT,
        as_of_date=STARTED_AT.date(),
    )


def build_db(
    year: int,
    fiscal_per_head: int,
    central_share: float | None,
    critical_per_head: int | None,
    rejected_raw_values: tuple[str, ...] = (),
    phones: dict[str, str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Five people in two townships of one county; three are enrolled (王芳, 李强, 钱进); their roster
    rows with `phones` (PHONES unless given)."""
    con = duckdb.connect()
    create_tables(con)
    add_run(con, year)
    for person in PEOPLE:
        insert_person(con, year, person)
        add_resident(con, year, person[1], person[0], (PHONES if phones is None else phones).get(person[1]))
    insert(
        con,
        "unmatched_payments",
        run_id=RUN_ID,
        coverage_year=year,
        id_number=ID_UNMATCHED,
        name="孙丽",
        amount=400,
        paid_on=dt.date(2025, 12, 1),
        ticket_no=TICKET,
        reason="not_on_roster",
        source_file="缴费明细.xlsx",
        sheet="Sheet1",
        row_number=7,
    )
    add_rejected(con, year, rejected_raw_values)
    insert(
        con,
        "status_changes",
        run_id=RUN_ID,
        coverage_year=year,
        id_number=ID_UNDER,
        name=FORMULA_NAME,
        county="浮梁县",
        township="鹅湖镇",
        previous_run_id="R-prev",
        previous_status="unpaid",
        status="underpaid",
        previous_amount_diff=400,
        amount_diff=250,
    )
    add_totals(con, year, fiscal_per_head, central_share, critical_per_head)
    return con
