"""`medins explain` reads issue 20's rules back as arithmetic a clerk can follow (docs/RULES.md §3, §4).

Three small nights (2024, 2025, 2026, region jiangxi, run date 2026-11-23) into one database; each
person below is one of the readings, and the test pins the lines `explain` prints for them. The
expected lines are worked out by hand from docs/RULES.md, never read off the product.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, roster_row, run_night, write_workbook
from pipeline.explain import TO_DO, earlier_digest
from pipeline.io.masking import mask_id
from pipeline.io.tables import VIEWS
from pipeline.params import PARAMS_DIR, PARAMS_DIR_ENV, Cited, load_params
from pipeline.vocabulary import REFUND_BASIS_NAMES

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


# 2026: paid 450 against a due of 400: overpaid 50, refund basis refund_overpaid; a phone on the roster
OVERPAID = Person("钱多缴", make_id("360222", dt.date(1970, 3, 3), 6))
PHONE = "13900001111"
# 2026: pays 400 but is on no roster
STRANGER = Person("陈无名", make_id("360222", dt.date(1985, 7, 7), 7))
# 2026: a roster row with an unknown label (rejected), and a payment of 400
REJECTED = Person("李驳回", make_id("360222", dt.date(1988, 8, 8), 8))


def _twin(p: Person) -> Person:
    """Another person of the same name whose ID masks the same (the first 6 and last 4 characters)."""
    birth = dt.date(int(p.id_number[6:10]), int(p.id_number[10:12]), int(p.id_number[12:14]))
    seq = int(p.id_number[14:17])
    ids = (make_id("360222", birth + dt.timedelta(days=d), seq) for d in range(1, 40))
    return Person(p.name, next(i for i in ids if i[-4:] == p.id_number[-4:]))


# 2026: on no roster, one payment row rejected (an amount that is no number)
BAD_PAYMENT = Person("赵错款", make_id("360222", dt.date(1975, 5, 5), 10))
# 2026: two 张同名 whose IDs mask alike
SAME_NAME = Person("张同名", make_id("360222", dt.date(1990, 1, 1), 9))
SAME_NAME_TWIN = _twin(SAME_NAME)


def _payment(n: int, p: Person, amount: float | str, paid_on: str, year: int) -> list:
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
            [*roster_row(3, OVERPAID.name, OVERPAID.id_number, prev="是"), PHONE],
            roster_row(4, REJECTED.name, REJECTED.id_number, labels="特困供养人"),
            roster_row(5, SAME_NAME.name, SAME_NAME.id_number),
            roster_row(6, SAME_NAME_TWIN.name, SAME_NAME_TWIN.id_number),
        ],
        [
            _payment(1, REPAID, 400, "2025-11-01", 2026),
            _payment(2, REPAID, -400, "2025-11-20", 2026),
            _payment(3, REPAID, 400, "2026-01-05", 2026),
            _payment(4, OVERPAID, 450, "2025-11-02", 2026),
            _payment(5, STRANGER, 400, "2025-11-03", 2026),
            _payment(6, REJECTED, 400, "2025-11-04", 2026),
            _payment(7, BAD_PAYMENT, "四百", "2025-11-05", 2026),
        ],
    ),
}


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("explain")
    out, database = base / "out", base / "out" / "medins.duckdb"
    out.mkdir()
    for year, (roster, payments) in NIGHTS.items():
        roster_file = write_workbook(base / f"roster_{year}.xlsx", {"花名册": [[*ROSTER_HEADER, "联系电话"], *roster]})
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


# --- who the clerk means, and who has no roster row (issue 26) -----------------------------------


def _invoke(*args: str, env: dict[str, str] | None = None):
    from pipeline.cli import app

    return CliRunner().invoke(app, ["explain", "-y", "2026", *args], env=env)


def _lines(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [line.strip() for line in result.output.splitlines()]


def _error(result, code: int) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == code and len(lines) == 1, result.output
    return lines[0]


def test_explain_of_an_overpaid_person_names_the_refund_basis_code_and_the_clause_and_not_the_phone(db):
    lines = _lines(_invoke("--db", str(db), OVERPAID.id_number))
    assert (
        "对账 / reconciliation: 多缴应退费 (overpaid), 差额 50.00 元; 资助参保实际支付 0.00 元"
        " — 退费依据 实缴净额超过个人应缴, 多缴部分应退 [refund_overpaid]"
    ) in lines
    assert "依据: docs/RULES.md §5 实缴净额超过个人应缴金额, 多缴部分应退" in lines
    assert not any(PHONE in line for line in lines), "the phone belongs in the phone lists only"
    con = duckdb.connect(str(db), read_only=True)
    stored = con.execute(
        "SELECT refund_basis FROM reconciliation WHERE coverage_year = 2026 AND id_number = ?", [OVERPAID.id_number]
    ).fetchall()
    shown = con.execute('SELECT 退费依据 FROM "应退费人员" WHERE 姓名 = ?', [OVERPAID.name]).fetchall()
    con.close()
    assert stored == [("refund_overpaid",)] and shown == [("实缴净额超过个人应缴, 多缴部分应退",)]
    view = VIEWS["应退费人员"].sql  # the view says each code as schemas/vocabulary.toml names it
    assert all(f"WHEN '{code}' THEN '{name}'" in view for code, name in REFUND_BASIS_NAMES.items())


def test_explain_of_a_person_who_only_paid_shows_the_unmatched_payment_and_what_to_do(db):
    assert _lines(_invoke("--db", str(db), STRANGER.id_number)) == [
        f"陈无名 {mask_id(STRANGER.id_number)}: 2026年度花名册中没有此证件号码 / not on the 2026 roster",
        "本年度无登记缴费（无法对账）/ payments for 2026 matching no roster row:",
        "缴费 2025-11-03 400.00 元 (票号 33600000000000000005) — 花名册中无此证件号码的参保登记;"
        f" {db.parent.parent / 'payments_2026.xlsx'} [缴费] 第6行",
        "处理 / what to do: 核对缴费记录上的证件号码和姓名；如确属本地参保人员，补入花名册后重新运行 / check the ID and"
        " name on the payment; if the person belongs on the roster, add them to it and run again",
    ]


def test_explain_of_a_rejected_roster_row_shows_its_reasons_its_payments_and_what_to_do(db):
    lines = _lines(_invoke("--db", str(db), REJECTED.id_number))
    assert lines[0] == f"{mask_id(REJECTED.id_number)}: 花名册中该人员的行未通过校验 / roster row rejected:"
    assert lines[1].startswith(f"{db.parent.parent / 'roster_2026.xlsx'} [花名册] 第5行 人员身份: ")
    assert lines[2:] == [
        "本年度无登记缴费（无法对账）/ payments for 2026 matching no roster row:",
        "缴费 2025-11-04 400.00 元 (票号 33600000000000000006) — 花名册中该人员的行未通过校验（见“校验未通过”），"
        f"缴费暂无法对账; {db.parent.parent / 'payments_2026.xlsx'} [缴费] 第7行",
        "处理 / what to do: 按上述原因改正花名册中该人员的行后重新运行 / correct the person's roster row as the reasons"
        " above say and run again",
    ]


def test_explain_of_a_person_whose_only_payment_was_rejected_shows_that_row(db):
    lines = _lines(_invoke("--db", str(db), BAD_PAYMENT.id_number))
    assert lines[:2] == [
        f"{mask_id(BAD_PAYMENT.id_number)}: 2026年度花名册中没有此证件号码 / not on the 2026 roster",
        "其他未通过校验的行 / other rejected rows:",
    ]
    assert lines[2].startswith(f"税务缴费明细 {db.parent.parent / 'payments_2026.xlsx'} [缴费] 第8行 缴费金额: ")
    assert lines[3:] == [TO_DO["not_on_roster"]]


def test_a_masked_id_with_the_name_explains_the_same_as_the_full_id(db):
    full = _lines(_invoke("--db", str(db), REPAID.id_number))
    assert full[0].startswith(f"周重缴 {mask_id(REPAID.id_number)}  2026年度")  # no note: the run's parameters
    assert _lines(_invoke("--db", str(db), mask_id(REPAID.id_number) or "", "--name", "周重缴")) == full
    paid_only = _lines(_invoke("--db", str(db), STRANGER.id_number))
    assert _lines(_invoke("--db", str(db), mask_id(STRANGER.id_number) or "", "--name", "陈无名")) == paid_only


def test_a_masked_id_without_a_name_or_matching_no_one_or_two_is_refused_in_one_line(db):
    masked = mask_id(SAME_NAME.id_number) or ""
    assert masked == mask_id(SAME_NAME_TWIN.id_number)
    assert _error(_invoke("--db", str(db), masked), 2) == (
        f"错误 / error: 遮蔽的证件号码 {masked} 须同时给出姓名：--name 姓名 / a masked ID needs the person's name: --name"
        " NAME"
    )
    assert _error(_invoke("--db", str(db), masked, "--name", "张同名"), 6) == (
        f"错误 / error: 2026年度花名册和无登记缴费中姓名为张同名、证件号码符合 {masked} 的有2人，请输入完整证件号码"
        f" / 2 persons named 张同名 with an ID matching {masked} in 2026: type the full ID"
    )
    assert _error(_invoke("--db", str(db), masked, "--name", "王五"), 6) == (
        f"错误 / error: 2026年度花名册和无登记缴费中姓名为王五、证件号码符合 {masked} 的有0人"
        f" / 0 persons named 王五 with an ID matching {masked} in 2026 (roster or unmatched payments)"
    )


def test_an_id_neither_on_the_roster_nor_paying_is_not_found(db):
    unknown = make_id("360222", dt.date(1991, 1, 1), 99)
    assert _error(_invoke("--db", str(db), unknown), 6) == (
        f"错误 / error: 2026年度花名册和本年度缴费中都没有此证件号码 / not on the 2026 roster and no payment for 2026:"
        f" {mask_id(unknown)}"
    )


def test_explain_reads_the_database_in_the_out_folder_as_run_writes_it(db):
    assert _lines(_invoke("--out", str(db.parent), REPAID.id_number)) == _lines(
        _invoke("--db", str(db), REPAID.id_number)
    )


def test_a_damaged_database_is_refused_as_the_run_refuses_it(db, tmp_path):
    copied, previous = tmp_path / "medins.duckdb", tmp_path / "medins.duckdb.previous"
    shutil.copyfile(db, copied)
    shutil.copyfile(db, previous)
    os.truncate(copied, copied.stat().st_size // 2)
    assert _error(_invoke("--db", str(copied), REPAID.id_number), 7) == (
        f"错误 / error: 数据库文件已损坏（无法打开） / database file {copied} is damaged or not a DuckDB file; 上一次完好的"
        f"数据库是 {previous}，确认没有运行后执行 cp {previous} {copied} 恢复 / the last good copy is {previous}: with no"
        f" run going, `cp {previous} {copied}` restores it"
    )
    text = tmp_path / "text" / "medins.duckdb"
    text.parent.mkdir()
    text.write_text("身份证号,姓名\n", encoding="utf-8")
    assert _error(_invoke("--out", str(text.parent), REPAID.id_number), 7) == (
        f"错误 / error: 数据库文件已损坏或不是DuckDB数据库 / database file {text} is damaged or not a DuckDB file; "
        "没有可恢复的副本，移走该文件后重新运行将新建数据库 / no copy to restore: move the file away and the next run"
        " builds a new database"
    )


def test_a_database_another_program_holds_open_for_writing_is_said_to_be_in_use_not_damaged(db, tmp_path):
    copied = tmp_path / "medins.duckdb"
    shutil.copyfile(db, copied)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()",
            str(copied),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout and holder.stdout.readline() == "open\n"
        assert _error(_invoke("--db", str(copied), REPAID.id_number), 5) == (
            "错误 / error: 数据库正被其他程序以可写方式打开，请关闭后重试 / the database is open for writing in another "
            f"program: close it and try again: {copied}"
        )
    finally:
        holder.communicate("")


# --- the run's parameters (issue 22) ---------------------------------------------------------------


def _changed(value):
    """Another value of the same kind."""
    if value is None:
        return "x"
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "·"
    if isinstance(value, tuple):
        return value[:-1] if value else ("x",)
    if isinstance(value, Cited):
        return replace(value, cite=value.cite + "·")
    raise AssertionError(type(value))


def test_every_value_of_the_parameters_changes_their_digest():
    params = load_params(2026, "jingdezhen")
    same = [
        f.name
        for f in fields(params)
        if replace(params, **{f.name: _changed(getattr(params, f.name))}).digest() == params.digest()
    ]
    assert same == []
    first = replace(params.labels[0], age_rule="elderly")
    assert replace(params, labels=(first, *params.labels[1:])).digest() != params.digest()


def test_explain_says_first_when_todays_parameters_are_not_the_runs(db, tmp_path):
    # the age of the elderly (labels.toml [ages]) was outside the digest before issue 22
    shutil.copytree(PARAMS_DIR, tmp_path / "params")
    labels = tmp_path / "params" / "labels.toml"
    labels.write_text(labels.read_text(encoding="utf-8").replace("elderly_age = 60", "elderly_age = 65"), "utf-8")
    lines = _lines(_invoke("--db", str(db), REPAID.id_number, env={PARAMS_DIR_ENV: str(tmp_path / "params")}))
    run_id = _run_id(db)
    assert lines[0] == (
        f"注意 / note: 今天的2026年度政策参数(jiangxi)与运行 {run_id} 所用的不同：以下计算按今天的参数重做，可能与该次"
        "运行不同，“结论”一行是该次运行的结论 / today's policy parameters for 2026 (jiangxi) differ from those run"
        f" {run_id} used: the working below is redone with today's and may differ from what the run decided; the 结论"
        " / result line is the run's"
    )
    assert lines[1].startswith("周重缴 ")


def test_a_run_recorded_with_the_earlier_digest_is_checked_as_far_as_that_digest_goes(db, tmp_path):
    copied = tmp_path / "medins.duckdb"
    shutil.copyfile(db, copied)
    con = duckdb.connect(str(copied))
    con.execute("UPDATE runs SET params_digest = ? WHERE coverage_year = 2026", [earlier_digest(load_params(2026))])
    con.close()
    run_id = _run_id(db)
    assert _lines(_invoke("--db", str(copied), REPAID.id_number))[0] == (
        f"注意 / note: 运行 {run_id} 由早期版本记录参数摘要，只能核对金额、日期、规则参数和身份类别，这些与今天的2026年度"
        f"政策参数(jiangxi)相同 / run {run_id} was recorded by an earlier version whose digest covers the amounts,"
        " dates, models and labels only: those equal today's"
    )


def _run_id(db: Path) -> str:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT max(run_id) FROM runs WHERE coverage_year = 2026").fetchall()[0][0]
    finally:
        con.close()
