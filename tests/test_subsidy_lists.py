"""A whole night with the other departments' subsidy lists (docs/RULES.md §9, docs/CONTRACT.md Outputs).

One small county night of 2026 (region jiangxi, run date 2026-11-23): a roster of
two townships, the tax bureau's payments, and two list files, 民政's and
乡村振兴's. Every listed person below is one case of §9; the expected rows of
`subsidy_not_enrolled` and `subsidy_progress` are worked out by hand from the
table of people (the arithmetic is in the comments), never read off the product.

Lists carry no county column (as the departments send them): a listed person
without an accepted roster row takes the township and village of their first
in-force list row, ordered by (source_file, sheet, row_number), and county 未知.
A second, 2025 night over the same lists shows the group's 99 % target.
The nights are built once for the module (a few seconds).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from builders import PAYMENT_HEADER, ROSTER_HEADER, Person, run_night, with_wrong_check_digit, write_workbook
from pipeline.run import RunResult
from subsidy_night import (
    CHEN,
    CHU_LISTED,
    COUNTY,
    DONGFENG,
    EHU,
    FENG,
    FULIANG,
    GROUP,
    JIANG,
    LI,
    LOW,
    MINZHENG,
    MINZHENG_FILE,
    MINZHENG_ROWS,
    MINZHENG_SHEET,
    PAYMENTS,
    QIAN,
    ROSTER,
    SHEN,
    SUN,
    TAOSHU,
    TODAY,
    UNKNOWN,
    WANG,
    WEI,
    WU,
    XIANGCUN,
    XIANGCUN_FILE,
    XIANGCUN_ROWS,
    XIANGCUN_SHEET,
    ZHAO,
    ZHENG,
    ZHOU,
)


@dataclass(frozen=True)
class Night:
    db: Path
    result: RunResult
    db_2025: Path


def _write_inputs(base: Path, roster: list[list], payments: list[list]) -> tuple[Path, Path, list[str]]:
    base.mkdir(parents=True, exist_ok=True)
    roster_file = write_workbook(base / "roster.xlsx", {"花名册": roster})
    payments_file = write_workbook(base / "payments.xlsx", {"缴费明细": payments})
    lists = [
        write_workbook(base / MINZHENG_FILE, {MINZHENG_SHEET: MINZHENG_ROWS}),
        write_workbook(base / XIANGCUN_FILE, {XIANGCUN_SHEET: XIANGCUN_ROWS}),
    ]
    return roster_file, payments_file, [str(p) for p in lists]


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Night:
    """The 2026 night, and a 2025 night over the same lists with a one-person roster (孙三, unpaid)."""
    base = tmp_path_factory.mktemp("lists")
    roster, payments, lists = _write_inputs(base / "in", ROSTER, PAYMENTS)
    db = base / "out" / "medins.duckdb"
    result = run_night(
        2026,
        "jiangxi",
        [str(roster)],
        [str(payments)],
        db,
        base / "out",
        subsidy_lists=lists,
        as_of=TODAY,
        write_workbooks=False,
    )
    # 2025 needs no 上年度参保: that cell is left empty
    roster_25, payments_25, lists_25 = _write_inputs(
        base / "in_2025",
        [
            ROSTER_HEADER,
            [1, SUN.name, SUN.id_number, COUNTY, FULIANG, DONGFENG, None, None, None, None, "2024-10-20", None],
        ],
        [PAYMENT_HEADER],
    )
    db_2025 = base / "out_2025" / "medins.duckdb"
    run_night(
        2025,
        "jiangxi",
        [str(roster_25)],
        [str(payments_25)],
        db_2025,
        base / "out_2025",
        subsidy_lists=lists_25,
        as_of=TODAY,
        write_workbooks=False,
    )
    return Night(db=db, result=result, db_2025=db_2025)


def _query(db: Path, sql: str, *params) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _name(path: str) -> str:
    return Path(path).name


# --------------------------------------------------------------------------- the list rows


def test_each_accepted_list_row_is_kept_with_whether_it_is_in_force_for_2026(night):
    # in force: identified empty or <= 2026-12-31, and ended empty or >= 2026-01-01.
    # 吴六's row ended 2025-12-31 < YS: not in force. 周五's 乡村振兴 row ends 2026-06-30 >= YS: in force.
    # 沈十四's "202511" is 2025-11-01 (yyyymm: the first of the month). Aliases come out canonical.
    rows = _query(
        night.db,
        "SELECT source_file, sheet, row_number, id_number, identity_labels, identified_on, ended_on,"
        " department, in_force FROM subsidy_list_rows WHERE coverage_year = 2026",
    )
    d = dt.date
    assert sorted((_name(f), *rest) for f, *rest in rows) == [
        (MINZHENG_FILE, MINZHENG_SHEET, 2, ZHAO.id_number, LOW, d(2025, 8, 1), None, MINZHENG, True),
        (MINZHENG_FILE, MINZHENG_SHEET, 3, QIAN.id_number, "特困供养人员", d(2025, 3, 1), None, MINZHENG, True),
        (MINZHENG_FILE, MINZHENG_SHEET, 4, CHU_LISTED.id_number, LOW, d(2025, 3, 1), None, MINZHENG, True),
        (MINZHENG_FILE, MINZHENG_SHEET, 5, SUN.id_number, LOW, d(2025, 9, 1), None, MINZHENG, True),
        (MINZHENG_FILE, MINZHENG_SHEET, 7, ZHOU.id_number, LOW, d(2025, 9, 1), None, MINZHENG, True),
        (MINZHENG_FILE, MINZHENG_SHEET, 8, WU.id_number, LOW, d(2024, 5, 1), d(2025, 12, 31), MINZHENG, False),
        (MINZHENG_FILE, MINZHENG_SHEET, 11, ZHENG.id_number, LOW, d(2025, 7, 1), None, MINZHENG, True),
        (MINZHENG_FILE, MINZHENG_SHEET, 12, WANG.id_number, "烈士子女", d(2025, 5, 1), None, "退役军人事务局", True),
        (MINZHENG_FILE, MINZHENG_SHEET, 13, WEI.id_number, "医疗救助对象", d(2025, 4, 1), None, MINZHENG, True),
        (MINZHENG_FILE, MINZHENG_SHEET, 14, JIANG.id_number, LOW, d(2026, 5, 1), None, MINZHENG, True),
        (MINZHENG_FILE, MINZHENG_SHEET, 15, SHEN.id_number, LOW, d(2025, 11, 1), None, MINZHENG, True),
        (MINZHENG_FILE, MINZHENG_SHEET, 16, ZHAO.id_number, "烈士子女", d(2025, 5, 1), None, "退役军人事务局", True),
        (XIANGCUN_FILE, XIANGCUN_SHEET, 2, LI.id_number, "防止返贫监测对象", d(2025, 4, 1), None, XIANGCUN, True),
        (XIANGCUN_FILE, XIANGCUN_SHEET, 3, ZHENG.id_number, "脱贫不稳定人口", d(2024, 11, 1), None, XIANGCUN, True),
        (
            XIANGCUN_FILE,
            XIANGCUN_SHEET,
            4,
            ZHOU.id_number,
            "边缘易致贫人口",
            d(2025, 10, 1),
            d(2026, 6, 30),
            XIANGCUN,
            True,
        ),
    ]
    # the night's ListFacts hold the same: 15 accepted, 14 of them in force
    assert night.result.lists.rows.height == 15
    assert sorted(night.result.lists.in_force["row_number"].to_list()) == [
        2,
        2,
        3,
        3,
        4,
        4,
        5,
        7,
        11,
        12,
        13,
        14,
        15,
        16,
    ]


def test_bad_list_rows_are_rejected_with_their_reason_and_the_rest_kept(night):
    # 民政 row 9: 低保户 is no label nor alias -> the whole row goes (docs/RULES.md §9, §1 "Unknown labels");
    # row 10: 退出时间 2025-03-01 before 纳入资助时间 2025-06-01.
    rows = _query(
        night.db,
        'SELECT source_file, sheet, row_number, "column", raw_value, reason, id_number'
        " FROM rejected_rows WHERE coverage_year = 2026 AND kind = 'subsidy_list'",
    )
    assert sorted((_name(f), *rest) for f, *rest in rows) == [
        (
            MINZHENG_FILE,
            MINZHENG_SHEET,
            9,
            "身份类别",
            "低保户",
            "身份类别“低保户”中有政策参数未列出的类别“低保户”（是否为：低保对象、城乡低保对象？），请核对写法",
            FENG.id_number,
        ),
        (MINZHENG_FILE, MINZHENG_SHEET, 10, "退出时间", "2025-03-01", "退出时间早于纳入时间", CHEN.id_number),
    ]
    # the two roster rows the listed persons 钱二 and 褚二 lost (the setting of `roster_rejected` below)
    roster = _query(
        night.db,
        'SELECT row_number, "column", raw_value FROM rejected_rows'
        " WHERE coverage_year = 2026 AND kind = 'roster' ORDER BY row_number",
    )
    assert roster == [(8, "参保登记日期", "2025"), (9, "证件号码", with_wrong_check_digit(CHU_LISTED.id_number))]


def test_every_list_sheet_conserves_its_rows(night):
    # 民政: 15 rows read = 12 accepted + 2 rejected (rows 9, 10) + 1 exact duplicate (row 6, a copy of row 5);
    # 乡村振兴: 3 read = 3 accepted.
    sheets = _query(
        night.db,
        "SELECT source_file, sheet, rows_read, accepted, rejected, skipped_blank, skipped_footer,"
        " skipped_duplicate FROM run_sheets WHERE coverage_year = 2026 AND kind = 'subsidy_list'",
    )
    assert sorted((_name(f), *rest) for f, *rest in sheets) == [
        (MINZHENG_FILE, MINZHENG_SHEET, 15, 12, 2, 0, 0, 1),
        (XIANGCUN_FILE, XIANGCUN_SHEET, 3, 3, 0, 0, 0, 0),
    ]
    for _, _, read, accepted, rejected, blank, footer, duplicate in sheets:
        assert read == accepted + rejected + blank + footer + duplicate
    # and the counts are those of the rows the tables hold
    kept = _query(night.db, "SELECT sheet, count(*) FROM subsidy_list_rows WHERE coverage_year = 2026 GROUP BY sheet")
    assert dict(kept) == {MINZHENG_SHEET: 12, XIANGCUN_SHEET: 3}
    assert night.result.lists.duplicates.select("sheet", "row_number").rows() == [(MINZHENG_SHEET, 6)]


# --------------------------------------------------------------------------- who is not enrolled


def test_listed_persons_not_enrolled_with_where_to_find_them_and_why(night):
    # listed = an in-force row with a label that gives full/fixed at their age, or a 医疗救助对象 label.
    # Not listed: 吴六 (row not in force), 冯七 and 陈八 (rows rejected), 王十一 (烈士子女 at 40 gives none),
    # 韩十五 (特困 on the roster only). Enrolled, so not here: 周五, 卫十二, 蒋十三, 沈十四.
    # 钱二: only a rejected roster row -> roster_rejected. 褚二: the roster row has another number (bad
    # check digit), so no roster row, accepted or rejected, carries the listed ID -> not_on_roster.
    # Not on the roster: place from the first in-force list row by (source_file, sheet, row): county 未知.
    # 郑九: 民政 row 11 (list_a, 浮梁镇) comes before 乡村振兴 row 3 (list_b, 鹅湖镇); labels and departments
    # of both rows, in that order. 赵一's 烈士子女 row (at 54 it gives nothing) still names its label and
    # department: identity_labels and department are those of all their in-force rows. Their place is that
    # of row 2 (鹅湖镇), not of row 16 (浮梁镇): row numbers are ordered as numbers, not as text.
    rows = _query(
        night.db,
        "SELECT id_number, name, county, township, village, identity_labels, department, reason"
        " FROM subsidy_not_enrolled WHERE coverage_year = 2026",
    )
    assert sorted(rows) == sorted(
        [
            (
                ZHAO.id_number,
                "赵一",
                UNKNOWN,
                EHU,
                TAOSHU,
                f"{LOW}、烈士子女",
                f"{MINZHENG}、退役军人事务局",
                "not_on_roster",
            ),
            (QIAN.id_number, "钱二", UNKNOWN, FULIANG, DONGFENG, "特困供养人员", MINZHENG, "roster_rejected"),
            (CHU_LISTED.id_number, "褚二", UNKNOWN, FULIANG, DONGFENG, LOW, MINZHENG, "not_on_roster"),
            (SUN.id_number, "孙三", COUNTY, FULIANG, DONGFENG, LOW, MINZHENG, "not_enrolled"),  # unpaid
            (LI.id_number, "李四", COUNTY, FULIANG, DONGFENG, "防止返贫监测对象", XIANGCUN, "not_enrolled"),  # 50 of 80
            (
                ZHENG.id_number,
                "郑九",
                UNKNOWN,
                FULIANG,
                DONGFENG,
                f"{LOW}、脱贫不稳定人口",
                f"{MINZHENG}、{XIANGCUN}",
                "not_on_roster",
            ),
        ]
    )


# --------------------------------------------------------------------------- progress


# (level, county, township, label): (listed, on_roster, enrolled). Persons by place and label:
#   未知/鹅湖镇  赵一 低保 (and 烈士子女 at 54, which makes nobody listed: no 烈士子女 row anywhere)
#   未知/浮梁镇  钱二 特困; 褚二 低保; 郑九 低保 + 脱贫不稳定人口
#   浮梁县/浮梁镇 孙三 低保 (unpaid); 李四 防止返贫监测对象 (underpaid); 蒋十三 低保 (enrolled)
#   浮梁县/鹅湖镇 周五 低保 + 边缘易致贫人口 (enrolled); 卫十二 医疗救助对象 (enrolled); 沈十四 低保 (enrolled)
# The group 农村低收入人口和脱贫人口 counts each holder of 特困/低保/返贫致贫/脱贫不稳定/边缘易致贫/防止返贫监测
# once: everyone above but 卫十二 (医疗救助对象 is not in it).
PROGRESS_2026 = {
    ("township", UNKNOWN, EHU, LOW): (1, 0, 0),
    ("township", UNKNOWN, FULIANG, "特困供养人员"): (1, 0, 0),
    ("township", UNKNOWN, FULIANG, LOW): (2, 0, 0),  # 褚二, 郑九
    ("township", UNKNOWN, FULIANG, "脱贫不稳定人口"): (1, 0, 0),
    ("township", COUNTY, FULIANG, LOW): (2, 2, 1),  # 孙三, 蒋十三
    ("township", COUNTY, FULIANG, "防止返贫监测对象"): (1, 1, 0),
    ("township", COUNTY, EHU, LOW): (2, 2, 2),  # 周五, 沈十四
    ("township", COUNTY, EHU, "边缘易致贫人口"): (1, 1, 1),
    ("township", COUNTY, EHU, "医疗救助对象"): (1, 1, 1),
    ("township", UNKNOWN, EHU, GROUP): (1, 0, 0),  # 赵一
    ("township", UNKNOWN, FULIANG, GROUP): (3, 0, 0),  # 钱二, 褚二, 郑九 (once, with two labels)
    ("township", COUNTY, FULIANG, GROUP): (3, 3, 1),  # 孙三, 李四, 蒋十三
    ("township", COUNTY, EHU, GROUP): (2, 2, 2),  # 周五 (once), 沈十四
    ("county", UNKNOWN, None, LOW): (3, 0, 0),  # 1 + 2
    ("county", UNKNOWN, None, "特困供养人员"): (1, 0, 0),
    ("county", UNKNOWN, None, "脱贫不稳定人口"): (1, 0, 0),
    ("county", COUNTY, None, LOW): (4, 4, 3),  # 2 + 2, enrolled 1 + 2
    ("county", COUNTY, None, "防止返贫监测对象"): (1, 1, 0),
    ("county", COUNTY, None, "边缘易致贫人口"): (1, 1, 1),
    ("county", COUNTY, None, "医疗救助对象"): (1, 1, 1),
    ("county", UNKNOWN, None, GROUP): (4, 0, 0),  # 1 + 3
    ("county", COUNTY, None, GROUP): (5, 5, 3),  # 3 + 2, enrolled 1 + 2
    ("total", None, None, LOW): (7, 4, 3),  # 3 + 4
    ("total", None, None, "特困供养人员"): (1, 0, 0),
    ("total", None, None, "脱贫不稳定人口"): (1, 0, 0),
    ("total", None, None, "防止返贫监测对象"): (1, 1, 0),
    ("total", None, None, "边缘易致贫人口"): (1, 1, 1),
    ("total", None, None, "医疗救助对象"): (1, 1, 1),
    ("total", None, None, GROUP): (9, 5, 3),  # 4 + 5
}


def test_progress_by_township_county_and_total_per_label_and_for_the_group(night):
    # enrolment_rate = enrolled / listed, not rounded; target_rate: none for a label, and none for the
    # group in 2026 (赣医保发〔2025〕12号 (三) names the group without a number)
    rows = _query(
        night.db,
        "SELECT level, county, township, label, listed, on_roster, enrolled, enrolment_rate,"
        " target_rate FROM subsidy_progress WHERE coverage_year = 2026",
    )
    expected = [
        (*key, listed, on_roster, enrolled, enrolled / listed, None)
        for key, (listed, on_roster, enrolled) in PROGRESS_2026.items()
    ]
    assert sorted(rows, key=repr) == sorted(expected, key=repr)


def test_the_group_target_is_99_percent_in_2025(night):
    # 2025 (赣医保发〔2024〕7号 (十一) 不低于99%), same lists, roster: 孙三 only (unpaid).
    # In force for 2025: 吴六's row (ended 2025-12-31 >= 2025-01-01) now is; 蒋十三's (identified 2026-05-01 >
    # 2025-12-31) is not. Group members: 赵一, 周五, 吴六, 沈十四 (未知/鹅湖镇, first rows in 鹅湖镇);
    # 钱二, 褚二, 郑九, 李四 (未知/浮梁镇); 孙三 (浮梁县/浮梁镇, on the roster) -> 9 listed, 1 on roster, 0 enrolled.
    in_force = _query(
        night.db_2025,
        "SELECT id_number, in_force FROM subsidy_list_rows WHERE coverage_year = 2025 AND id_number IN (?, ?)",
        WU.id_number,
        JIANG.id_number,
    )
    assert sorted(in_force) == sorted([(WU.id_number, True), (JIANG.id_number, False)])
    groups = _query(
        night.db_2025,
        "SELECT level, county, township, listed, on_roster, enrolled, enrolment_rate,"
        " target_rate FROM subsidy_progress WHERE coverage_year = 2025 AND label = ?",
        GROUP,
    )
    assert sorted(groups, key=repr) == sorted(
        [
            ("township", COUNTY, FULIANG, 1, 1, 0, 0.0, 0.99),
            ("township", UNKNOWN, EHU, 4, 0, 0, 0.0, 0.99),
            ("township", UNKNOWN, FULIANG, 4, 0, 0, 0.0, 0.99),
            ("county", COUNTY, None, 1, 1, 0, 0.0, 0.99),
            ("county", UNKNOWN, None, 8, 0, 0, 0.0, 0.99),
            ("total", None, None, 9, 1, 0, 0.0, 0.99),
        ],
        key=repr,
    )
    label_targets = _query(
        night.db_2025,
        "SELECT DISTINCT target_rate FROM subsidy_progress WHERE coverage_year = 2025 AND label <> ?",
        GROUP,
    )
    assert label_targets == [(None,)]


# --------------------------------------------------------------------------- fiscal totals


def test_participation_subsidy_is_what_the_subsidy_applied_to_enrolled_persons(night):
    # enrolled and subsidy_applied (docs/RULES.md §5): 周五 fixed 320; 卫十二 none 0; 蒋十三 fixed but identified
    # 2026-05-01 after CE with 400 paid -> 0; 沈十四 fixed, identified 2025-11-01 -> 320 (and 320 back);
    # 韩十五 full 400; 杨十六 none 0. Total 320 + 0 + 0 + 320 + 400 + 0 = 1040
    # (浮梁镇: 蒋十三 0 + 韩十五 400 = 400; 鹅湖镇: 320 + 0 + 320 + 0 = 640).
    applied = dict(
        _query(
            night.db,
            "SELECT name, subsidy_applied FROM reconciliation WHERE coverage_year = 2026"
            " AND name IN ('周五', '蒋十三', '沈十四')",
        )
    )
    assert applied == {"周五": Decimal("320.00"), "蒋十三": Decimal("0.00"), "沈十四": Decimal("320.00")}
    total = _query(
        night.db,
        "SELECT participation_subsidy_total FROM subsidy_totals"
        " WHERE coverage_year = 2026 AND level = 'total' AND tier = 'all'",
    )
    assert total == [(Decimal("1040.00"),)]
    by_place_and_tier = _query(
        night.db,
        """
        WITH enrolled AS (
            SELECT r.county, r.township, r.tier, r.subsidy_applied FROM reconciliation r
            JOIN determinations d ON d.coverage_year = r.coverage_year AND d.id_number = r.id_number
            WHERE r.coverage_year = 2026 AND d.enrolled)
        SELECT t.level, t.county, t.township, t.tier, t.participation_subsidy_total,
               (SELECT coalesce(sum(e.subsidy_applied), 0) FROM enrolled e
                 WHERE (t.level = 'total' OR e.county = t.county)
                   AND (t.level <> 'township' OR e.township = t.township)
                   AND (t.tier = 'all' OR e.tier = t.tier)) AS applied
        FROM subsidy_totals t WHERE t.coverage_year = 2026""",
    )
    # rows per tier all/fixed/full/none: 浮梁镇 4, 鹅湖镇 3 (nobody full), county 4, total 4 = 15
    assert len(by_place_and_tier) == 15
    wrong = [row for row in by_place_and_tier if row[4] != row[5]]
    assert not wrong, f"participation_subsidy_total differs from the sum of subsidy_applied: {wrong}"
    township = dict(
        _query(
            night.db,
            "SELECT township, participation_subsidy_total FROM subsidy_totals"
            " WHERE coverage_year = 2026 AND level = 'township' AND tier = 'all'",
        )
    )
    assert township == {FULIANG: Decimal("400.00"), EHU: Decimal("640.00")}


TOTALS = (
    "roster_count",
    "enrolled_count",
    "fiscal_per_capita_total",
    "central_share_total",
    "local_share_total",
    "participation_subsidy_total",
    "individual_due_total",
    "individual_collected_total",
)


@pytest.mark.parametrize("tier", ["all", "full", "fixed", "none"])
def test_townships_add_up_to_the_county_and_counties_to_the_total(night, tier):
    sums = ", ".join(f"sum({c})" for c in TOTALS)
    townships = _query(
        night.db,
        f"SELECT county, {sums} FROM subsidy_totals WHERE coverage_year = 2026"
        f" AND level = 'township' AND tier = ? GROUP BY county",
        tier,
    )
    counties = _query(
        night.db,
        f"SELECT county, {', '.join(TOTALS)} FROM subsidy_totals WHERE coverage_year = 2026"
        f" AND level = 'county' AND tier = ?",
        tier,
    )
    assert sorted(townships) == sorted(counties)
    county_sum = _query(
        night.db,
        f"SELECT {sums} FROM subsidy_totals WHERE coverage_year = 2026 AND level = 'county' AND tier = ?",
        tier,
    )
    total = _query(
        night.db,
        f"SELECT {', '.join(TOTALS)} FROM subsidy_totals WHERE coverage_year = 2026 AND level = 'total' AND tier = ?",
        tier,
    )
    assert county_sum == total


# --------------------------------------------------------------------------- medins explain


def _explain(night: Night, person: Person) -> str:
    from pipeline.cli import app

    result = CliRunner().invoke(app, ["explain", "-y", "2026", "--db", str(night.db), person.id_number])
    assert result.exit_code == 0, result.output
    return result.output


def _line(output: str, *parts: str) -> str:
    found = [line for line in output.splitlines() if all(part in line for part in parts)]
    assert len(found) == 1, f"expected one line with {parts} in:\n{output}"
    return found[0]


def test_explain_shows_the_list_file_and_row_a_label_came_from_and_the_identification_date(night):
    # 蒋十三: no roster label; 城乡低保对象 from 民政's file, sheet 民政, row 14, identified 2026-05-01 (after CE)
    out = _explain(night, JIANG)
    line = _line(out, LOW, MINZHENG_FILE)
    assert f"[{MINZHENG_SHEET}] 第14行" in line and MINZHENG in line and "2026-05-01" in line
    assert "2026-05-01" in _line(out, "资助认定日期")


def test_explain_of_a_person_on_two_lists_shows_both_rows_and_the_earliest_qualifying_date(night):
    # 周五: 城乡低保对象 (民政 row 7, 2025-09-01) and 边缘易致贫人口 (乡村振兴 row 4, 2025-10-01 to 2026-06-30):
    # both give fixed at 49 -> the identification date is the earlier, 2025-09-01
    out = _explain(night, ZHOU)
    assert f"[{MINZHENG_SHEET}] 第7行" in _line(out, LOW, MINZHENG_FILE)
    assert f"[{XIANGCUN_SHEET}] 第4行" in _line(out, "边缘易致贫人口", XIANGCUN_FILE)
    identified = _line(out, "资助认定日期")
    assert "2025-09-01" in identified and "2025-10-01" not in identified
