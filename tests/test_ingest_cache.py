"""Incremental nights: a sheet read once is not parsed again while its bytes and the reader are
unchanged (pipeline/io/cache.py), yet its rows are checked again every night against that night's
data date and parameters; what was reused is said in run_sheets."""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from builders import (
    PAYMENT_HEADER,
    ROSTER_HEADER,
    make_id,
    roster_row,
    write_workbook,
)
from ingest_cases import (
    TODAY,
    A,
    B,
    C,
    one_payment,
    pay_row,
    reasons,
    run,
)


def test_unchanged_files_are_reused_and_renamed_copies_keep_their_new_name(tmp_path):
    roster = write_workbook(
        tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A), roster_row(2, "李四", B)]}
    )
    payments = one_payment(tmp_path)
    first = run(tmp_path, roster, payments)
    assert first.notes == []
    first_determinations = first.table("determinations").drop("run_id")
    second = run(tmp_path, roster, payments)
    assert len(second.notes) == 2 and all("unchanged file, rows from the cache" in n for n in second.notes)
    assert second.table("determinations").drop("run_id").equals(first_determinations)
    # only the payments changed tonight: the roster is reused, the payments are parsed again
    more = write_workbook(tmp_path / "p2.xlsx", {"S": [PAYMENT_HEADER, pay_row(1, "张三", A), pay_row(2, "李四", B)]})
    third = run(tmp_path, roster, more)
    assert third.notes == [
        f"文件未变，复用上次读取的行（校验结果也相同 / checks too）/ unchanged file, rows from the cache: {roster}"
    ]
    assert third.table("determinations").filter(pl.col("enrolled")).height == 2
    # the same bytes under another name: rows carry the new name
    renamed = tmp_path / "花名册_复制.xlsx"
    renamed.write_bytes(roster.read_bytes())
    fourth = run(tmp_path, renamed, more)
    assert set(fourth.table("determinations")["source_file"]) == {str(renamed)}
    assert set(fourth.sheets.filter(pl.col("kind") == "roster")["source_file"]) == {str(renamed)}


def test_a_grown_payments_export_parses_only_the_sheet_that_changed(tmp_path):
    """The tax bureau's export of tonight is yesterday's with new lines in its last sheet, saved at
    another time: the unchanged sheet is reused, the grown one parsed; the rows are those of a
    fresh parse."""
    roster = write_workbook(
        tmp_path / "r.xlsx",
        {"S": [ROSTER_HEADER, roster_row(1, "张三", A), roster_row(2, "李四", B), roster_row(3, "王五", C)]},
    )
    october = [PAYMENT_HEADER, pay_row(1, "张三", A, 200)]
    november = [PAYMENT_HEADER, pay_row(2, "李四", B)]
    payments = tmp_path / "payments.xlsx"
    write_workbook(payments, {"10月": october, "11月": november}, inline_strings=True)
    run(tmp_path, roster, payments)
    write_workbook(
        payments,
        {"10月": october, "11月": [*november, pay_row(3, "王五", C)]},
        inline_strings=True,
        created=dt.datetime(2025, 1, 2),
    )
    grown = run(tmp_path, roster, payments)
    assert grown.notes == [
        f"文件未变，复用上次读取的行（校验结果也相同 / checks too）/ unchanged file, rows from the cache: {roster}",
        f"工作表未变，复用上次读取的行（校验结果也相同 / checks too）/ unchanged sheet, rows from the cache: {payments} [10月]",
    ]
    assert grown.sheets.select("kind", "sheet", "reused", "accepted").rows() == [
        ("roster", "S", True, 3),
        ("payments", "10月", True, 1),
        ("payments", "11月", False, 2),
    ]
    fresh = run(tmp_path, roster, payments, db="fresh.duckdb", use_cache=False)
    assert grown.table("determinations").drop("run_id").equals(fresh.table("determinations").drop("run_id"))
    assert grown.table("reconciliation").drop("run_id").equals(fresh.table("reconciliation").drop("run_id"))
    assert grown.table("reconciliation").filter(pl.col("id_number") == A)["status"].item() == "underpaid"


def test_a_sheet_whose_xml_is_the_same_but_whose_shared_strings_changed_is_parsed_again(tmp_path):
    """With a shared-string table the sheet XML holds only indexes into it: the same sheet XML can
    read as other text. The table is part of every sheet's digest."""
    roster = write_workbook(tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A)]})
    payments = tmp_path / "payments.xlsx"
    write_workbook(payments, {"S": [PAYMENT_HEADER, pay_row(1, "张三", A, paid_on="2025-11-01")]})
    first = run(tmp_path, roster, payments)
    first_paid = first.table("reconciliation")["last_paid_on"].to_list()
    write_workbook(payments, {"S": [PAYMENT_HEADER, pay_row(1, "张三", A, paid_on="2025-11-02")]})
    second = run(tmp_path, roster, payments)
    assert second.notes == [
        f"文件未变，复用上次读取的行（校验结果也相同 / checks too）/ unchanged file, rows from the cache: {roster}"
    ]
    assert first_paid == [dt.date(2025, 11, 1)]
    assert second.table("reconciliation")["last_paid_on"].to_list() == [dt.date(2025, 11, 2)]


def test_cached_rows_are_checked_again_against_each_nights_data_date(tmp_path):
    """The cache holds the rows as read, never their checks: a sheet taken from the cache is checked
    again every night, against that night's data date (a birth date in an ID that has come)."""
    born_later = make_id("360281", dt.date(2026, 11, 25), 7)  # two days after TODAY
    roster = write_workbook(
        tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A), roster_row(2, "新生", born_later)]}
    )
    payments = one_payment(tmp_path)

    def night(today):
        return run(tmp_path, roster, payments, as_of=today)

    def reused(result):
        return sorted(n.rsplit(": ", 1)[1] for n in result.notes)

    first = night(TODAY)
    assert reasons(first) == [(3, "证件号码", "证件号码中的出生日期不存在或晚于今天")]
    next_day = night(TODAY + dt.timedelta(days=1))  # still before the birth: the same answer
    assert reused(next_day) == sorted([str(roster), str(payments)])
    assert reasons(next_day) == reasons(first)
    birthday = night(dt.date(2026, 11, 25))  # the birth date has come: the cached rows, now accepted
    assert reused(birthday) == sorted([str(roster), str(payments)])
    assert reasons(birthday) == [] and birthday.table("determinations").height == 2
    # a data date before a birth date accepted so far (A's, 1990-05-01) rejects it, from the cache too
    early = night(dt.date(1990, 4, 30))
    assert reused(early) == sorted([str(roster), str(payments)])
    assert (2, "证件号码", "证件号码中的出生日期不存在或晚于今天") in reasons(early)


def test_run_sheets_say_which_files_were_reused_and_an_older_database_gains_the_column(tmp_path):
    roster = write_workbook(tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A)]})
    # a database made before run_sheets had `reused`
    old = duckdb.connect(str(tmp_path / "m.duckdb"))
    old.execute(
        "CREATE TABLE run_sheets (run_id VARCHAR, coverage_year INTEGER, kind VARCHAR, source_file VARCHAR, "
        "sha256 VARCHAR, sheet VARCHAR, header_row INTEGER, rows_read INTEGER, accepted INTEGER, "
        "rejected INTEGER, skipped_blank INTEGER, skipped_footer INTEGER, skipped_duplicate INTEGER, "
        "note VARCHAR)"
    )
    old.execute("INSERT INTO run_sheets (run_id, coverage_year) VALUES ('older', 2025)")
    old.close()
    first = run(tmp_path, roster)
    second = run(
        tmp_path,
        roster,
        write_workbook(tmp_path / "p2.xlsx", {"S": [PAYMENT_HEADER, pay_row(1, "张三", A)], "S2": [PAYMENT_HEADER]}),
    )
    con = duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True)
    rows = con.execute("SELECT run_id, kind, sheet, reused FROM run_sheets").fetchall()
    assert sorted(rows, key=str) == sorted(
        [
            ("older", None, None, None),  # another year's rows stay; the first run's 2026 rows were replaced
            (second.run_id, "roster", "S", True),
            (second.run_id, "payments", "S", False),
            (second.run_id, "payments", "S2", False),
        ],
        key=str,
    )
    assert con.execute(
        "SELECT kind, bool_and(reused) FROM run_sheets WHERE run_id = ? GROUP BY kind ORDER BY kind", [second.run_id]
    ).fetchall() == [("payments", False), ("roster", True)]
    assert not first.sheets["reused"].any()


def test_a_damaged_cache_entry_is_parsed_again(tmp_path):
    roster = write_workbook(
        tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A), roster_row(2, "李四", B)]}
    )
    payments = one_payment(tmp_path)
    first = run(tmp_path, roster, payments)
    first_determinations = first.table("determinations").drop("run_id")
    for arrow in (tmp_path / ".medins-cache").rglob("*.arrow"):
        arrow.write_bytes(b"not arrow")
    second = run(tmp_path, roster, payments)
    assert second.notes == [] and not any(second.sheets["reused"])
    assert second.table("determinations").drop("run_id").equals(first_determinations)
    third = run(tmp_path, roster, payments)  # the entries were written again
    assert len(third.notes) == 2 and all(third.sheets["reused"])


def test_a_parameter_changed_between_two_nights_judges_the_cached_rows_under_the_new_value(tmp_path, monkeypatch):
    """The cache keeps the rows as read, keyed by the sheets' bytes and the reader, never by the
    parameters: with the same files and another individual standard the next night parses nothing
    and every row is judged under the new value (a 400-yuan payment now leaves 20 yuan to refund)."""
    import dataclasses

    import pipeline.run
    from pipeline.params import Cited, load_params

    roster = write_workbook(tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A)]})
    payments = one_payment(tmp_path)  # 张三 pays 400 for 2026
    first = run(tmp_path, roster, payments)
    assert first.table("reconciliation").select("status", "amount_diff").rows() == [("paid_in_full", 0)]

    def lower_standard(year: int, region: str):
        params = load_params(year, region)
        return dataclasses.replace(params, individual_standard_yuan=Cited(380, "a test's own standard"))

    monkeypatch.setattr(pipeline.run, "load_params", lower_standard)
    second = run(tmp_path, roster, payments)
    assert [s["read_s"] for s in second.sheet_seconds] == [None, None]  # no sheet parsed again
    assert all(second.sheets["reused"])
    # due 380 (the standard 380, no subsidy); paid 400: 20 yuan over
    assert second.table("reconciliation").select("individual_due", "status", "amount_diff").rows() == [
        (380, "overpaid", 20)
    ]


def test_checks_kept_in_the_cache_are_redone_when_a_spelling_they_read_changes(tmp_path, monkeypatch):
    """Checks are kept beside a sheet's rows under what they read (pipeline/validate.py check_inputs):
    the same parameters again reuse them; a label spelling added to the parameters checks the sheet
    again, and the row once rejected for "低保户" is accepted."""
    import dataclasses

    import pipeline.run
    from pipeline.params import load_params

    roster = write_workbook(tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A, labels="低保户")]})
    payments = one_payment(tmp_path)
    first = run(tmp_path, roster, payments)
    assert [r[1:] for r in reasons(first)] == [
        ("人员身份", "人员身份“低保户”中有政策参数未列出的类别“低保户”（是否为：低保对象、城乡低保对象？），请核对写法")
    ]
    again = run(tmp_path, roster, payments)
    assert again.sheets["checks_reused"].to_list() == [True, True] and reasons(again) == reasons(first)

    def with_alias(year: int, region: str):
        params = load_params(year, region)
        labels = tuple(
            dataclasses.replace(lab, aliases=(*lab.aliases, "低保户")) if lab.name == "城乡低保对象" else lab
            for lab in params.labels
        )
        return dataclasses.replace(params, labels=labels)

    monkeypatch.setattr(pipeline.run, "load_params", with_alias)
    third = run(tmp_path, roster, payments)
    roster_sheet = third.sheets.filter(pl.col("kind") == "roster")
    assert roster_sheet.select("reused", "checks_reused").rows() == [
        (True, False)
    ]  # read from the cache, checked again
    assert reasons(third) == [] and third.table("determinations")["identity_labels"].to_list() == ["城乡低保对象"]


def test_a_reason_naming_the_data_date_names_tonights_when_the_checks_come_from_the_cache(tmp_path):
    """A payment dated after the data date is rejected naming that date; the next night, still before
    the payment's date, reuses the sheet's checks and names its own data date."""
    roster = write_workbook(tmp_path / "r.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", A)]})
    rows = [PAYMENT_HEADER, pay_row(1, "张三", A, paid_on="2026-12-01")]
    payments = write_workbook(tmp_path / "p.xlsx", {"S": rows})

    def night(day: dt.date):
        return run(tmp_path, roster, payments, as_of=day)

    future = "缴费日期“2026-12-01”晚于运行日期{}，不可能是将来的日期；请核对"
    first = night(dt.date(2026, 11, 23))
    assert reasons(first) == [(2, "缴费日期", future.format("2026-11-23"))]
    second = night(dt.date(2026, 11, 24))
    assert second.sheets["checks_reused"].to_list() == [True, True]
    assert reasons(second) == [(2, "缴费日期", future.format("2026-11-24"))]
