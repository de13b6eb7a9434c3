"""`medins explain` reads issue 20's rules back as arithmetic a clerk can follow (docs/RULES.md §3, §4).

Three small nights (2024, 2025, 2026, region jiangxi, run date 2026-11-23) into one database; each
person below is one of the readings, and the test pins the lines `explain` prints for them. The
expected lines are worked out by hand from docs/RULES.md, never read off the product.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, roster_row, run_night, write_workbook

TODAY = dt.date(2026, 11, 23)


@dataclass(frozen=True)
class Person:
    name: str
    id_number: str


# 2026: paid 400 on 2025-11-01, refunded on 2025-11-20, paid again on 2026-01-05 (docs/RULES.md ex-3.3)
REPAID = Person("周重缴", make_id("360222", dt.date(1980, 5, 5), 1))
# 2025: a baby born 2025-08-07 with no 参保登记日期 (ex-3.1)
BABY = Person("吴新生", make_id("360222", dt.date(2025, 8, 7), 2))
# 2024: a 宗教教职人员's child born 2022-12-01, registered 2023-02-01 (62 days), paying 2024-07-31 (ex-4.19)
OLDER_CHILD = Person("郑两岁", make_id("360222", dt.date(2022, 12, 1), 3))
# 2025: registered 2025-03-01, born 2025-06-02: d = the birth date
REGISTERED_EARLY = Person("王早登", make_id("360222", dt.date(2025, 6, 2), 4))
# 2026: lapsed, registered 2026-04-20, born 2026-05-01 (ex-3.2, ex-4.23)
BORN_AFTER_REGISTERING = Person("冯后生", make_id("360222", dt.date(2026, 5, 1), 5))


def _payment(n: int, p: Person, amount: float, paid_on: str, year: int) -> list:
    return [n, p.name, p.id_number, amount, paid_on, str(year), f"3360000000000000{n:04d}", "微信"]


NIGHTS = {
    2024: (
        [
            roster_row(
                1, OLDER_CHILD.name, OLDER_CHILD.id_number, labels="宗教教职人员", prev=None, registered="2023-02-01"
            )
        ],
        [_payment(1, OLDER_CHILD, 380, "2024-07-31", 2024)],
    ),
    2025: (
        [
            roster_row(1, BABY.name, BABY.id_number, prev=None, registered=None),
            roster_row(2, REGISTERED_EARLY.name, REGISTERED_EARLY.id_number, prev=None, registered="2025-03-01"),
        ],
        [],
    ),
    2026: (
        [
            roster_row(1, REPAID.name, REPAID.id_number, prev="是", registered=None),
            roster_row(
                2, BORN_AFTER_REGISTERING.name, BORN_AFTER_REGISTERING.id_number, prev="否", registered="2026-04-20"
            ),
        ],
        [
            _payment(1, REPAID, 400, "2025-11-01", 2026),
            _payment(2, REPAID, -400, "2025-11-20", 2026),
            _payment(3, REPAID, 400, "2026-01-05", 2026),
        ],
    ),
}


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("explain")
    out, database = base / "out", base / "out" / "medins.duckdb"
    out.mkdir()
    for year, (roster, payments) in NIGHTS.items():
        roster_file = write_workbook(base / f"roster_{year}.xlsx", {"花名册": [ROSTER_HEADER, *roster]})
        payment_file = write_workbook(base / f"payments_{year}.xlsx", {"缴费": [PAYMENT_HEADER, *payments]})
        run_night(year, "jiangxi", [str(roster_file)], [str(payment_file)], database, out, as_of=TODAY)
    return database


def _explain(db: Path, year: int, person: Person) -> list[str]:
    from pipeline.cli import app

    result = CliRunner().invoke(app, ["explain", "-y", str(year), "--db", str(db), person.id_number])
    assert result.exit_code == 0, result.output
    return [line.strip() for line in result.output.splitlines()]


def test_explain_adds_up_a_refunded_and_repaid_persons_payments_row_by_row(db):
    # running 400 (>= 400), 0 (< 400), 400 (>= 400): the last row below the due is the refund, so the
    # third row settles, d = 2026-01-05; continuous, YS <= d <= CE -> d + 1 = 2026-01-06
    lines = _explain(db, 2026, REPAID)
    start = lines.index("按缴费日期、票号排序逐笔累计 / running total (docs/RULES.md §3):")
    assert lines[start + 1 : start + 4] == [
        "缴费 2025-11-01 400.00 元 (票号 33600000000000000001) → 累计 400.00 元 ≥ 应缴 400.00 元",
        "退费 2025-11-20 -400.00 元 (票号 33600000000000000002) → 累计 0.00 元 < 应缴 400.00 元",
        "缴费 2026-01-05 400.00 元 (票号 33600000000000000003) → 累计 400.00 元 ≥ 应缴 400.00 元"
        " ← 自此累计不再低于应缴, d = 该笔缴费日期",
    ]
    assert lines[start + 4] == (
        "实缴净额 400.00 元 ≥ 应缴 400.00 元 → 已参保; 参保日期 d = 2026-01-05 (自该笔起累计不再低于应缴, docs/RULES.md §3)"
    )
    assert "计算: 未断保, 2026-01-01 ≤ d = 2026-01-05 ≤ 2026-02-28 → 2026-01-05 + 1天 = 2026-01-06" in lines
    assert any(
        line.startswith("结论 / result: 规则 continuous_in_period;") and "2026-01-06 至 2026-12-31" in line
        for line in lines
    )


def test_explain_of_a_baby_born_after_the_collection_start_reads_as_the_max_of_the_two_dates(db):
    # no 参保登记日期: d = max(CS 2024-09-15, birth 2025-08-07) = 2025-08-07; newborn (2025, by d): 0 days
    # after birth <= 90 -> max(birth, YS) = 2025-08-07
    lines = _explain(db, 2025, BABY)
    assert (
        "应缴为0, 登记即参保: 参保日期 d = max(征缴期开始 2024-09-15, 出生 2025-08-07) = 2025-08-07"
        " (参保登记日期未填, 取征缴期开始; 不早于出生, docs/RULES.md §3)"
    ) in lines
    assert (
        "计算: 出生 2025-08-07 后第0天参保 (2025-08-07) ≤ 90天 → max(出生 2025-08-07, 2025-01-01) = 2025-08-07" in lines
    )
    assert not any("第-" in line for line in lines), "a negative day count is printed"


def test_explain_of_a_registration_before_birth_says_so_instead_of_a_negative_day(db):
    # registered 2025-03-01, born 2025-06-02: d = max(2025-03-01, 2025-06-02) = 2025-06-02
    lines = _explain(db, 2025, REGISTERED_EARLY)
    assert (
        "应缴为0, 登记即参保: 参保日期 d = max(参保登记日期 2025-03-01, 出生 2025-06-02) = 2025-06-02"
        " (不早于出生, docs/RULES.md §3)"
    ) in lines
    assert not any("第-" in line for line in lines), "a negative day count is printed"


def test_explain_of_a_baby_registered_before_birth_counts_the_gap_as_within_90_days(db):
    # r = 2026-04-20, 11 days before birth 2026-05-01: within 90 days -> max(birth, YS) = 2026-05-01;
    # d = max(2026-04-20, 2026-05-01) = 2026-05-01
    lines = _explain(db, 2026, BORN_AFTER_REGISTERING)
    assert (
        "应缴为0, 登记即参保: 参保日期 d = max(参保登记日期 2026-04-20, 出生 2026-05-01) = 2026-05-01"
        " (不早于出生, docs/RULES.md §3)"
    ) in lines
    assert (
        "计算: 登记 2026-04-20 早于出生 2026-05-01 11天, 视为90天内 → max(出生 2026-05-01, 2026-01-01) = 2026-05-01"
    ) in lines
    assert not any("第-" in line for line in lines), "a negative day count is printed"


def test_explain_says_why_the_2024_newborn_rule_leaves_out_a_child_born_two_years_before(db):
    # born 2022-12-01, registered 2023-02-01 (62 days), before CS 2023-09-15: no child of 2024;
    # 宗教教职人员, d = 2024-07-31 -> max(2024-01-01, 2024-08-01) = 2024-08-01
    lines = _explain(db, 2024, OLDER_CHILD)
    newborn = next(line for line in lines if "[newborn_from_birth]" in line)
    assert newborn.endswith(
        "不适用 / does not apply (出生 2022-12-01 后第62天登记 (2023-02-01) ≤ 90天, 但出生于2022年,"
        " 非本年度出生且登记早于征缴期开始 2023-09-15: 本年度按普通居民)"
    )
    assert "计算: max(2024-01-01, 2024-07-31 + 1天) = 2024-08-01" in lines
    assert any(
        line.startswith("结论 / result: 规则 special_status;") and "2024-08-01 至 2024-12-31" in line for line in lines
    )
