"""`medins explain`: one person's determination, rule by rule, from the last run's database, as a
clerk on the phone reads it.

The person's validated roster row, payments and in-force list rows are read
back from DuckDB and put through the same rule expressions as the nightly run,
one row only, so every candidate rule can be shown with its outcome and its
arithmetic, not just the winner. Every [interp-N.M] reading (docs/RULES.md) is
marked where it decides something.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.errors import ExplainArgumentError, PersonNotFound
from pipeline.io.masking import mask_id, mask_ids_in_text
from pipeline.io.store import query_frame, reading
from pipeline.params import Params, load_params
from pipeline.parse import normalise_id
from pipeline.rules import with_enrolment
from pipeline.rules.benefit_start import candidates
from pipeline.rules.enrolment import with_running_total
from pipeline.vocabulary import (
    KIND_NAMES,
    REFUND_BASIS_NAMES,
    RULE_NAMES,
    STATUS_NAMES,
    TIER_NAMES,
    UNMATCHED_REASON_NAMES,
)

INTERP_EARLIEST = "[interp-4.1 docs/RULES.md §4: 各规则取最早的待遇起始日]"
INTERP_ASSISTANCE = "[interp-1.1 docs/RULES.md §1: 该身份的资助属医疗救助分类资助参保，按医疗救助对象不设等待期]"
INTERP_AGE = "[interp-0.1 docs/RULES.md §0: 年龄按1月1日已满周岁计]"
INTERP_REFUND = "[interp-5.1 docs/RULES.md §5: 已参保按实缴净额不低于缴费标准认定，未核对是否已进入待遇享受期]"
TO_DO = {
    "not_on_roster": "处理 / what to do: 核对缴费记录上的证件号码和姓名；如确属本地参保人员，补入花名册后重新运行 / check the "
    "ID and name on the payment; if the person belongs on the roster, add them to it and run again",
    "roster_rejected": "处理 / what to do: 按上述原因改正花名册中该人员的行后重新运行 / correct the person's roster "
    "row as the reasons above say and run again",
}


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    return "—" if value is None else str(value)


def _yuan(fen: int | None) -> str:
    return "—" if fen is None else f"{fen / 100:.2f}"


@dataclass(frozen=True)
class _Run:
    """The run whose rows the database holds for the year (the latest: each night replaces the year's)."""

    run_id: str
    region: str
    params_digest: str | None


@dataclass
class _Person:
    """What the database holds of one person for one coverage year."""

    resident: pl.DataFrame
    payments: pl.DataFrame
    list_rows: pl.DataFrame
    determination: dict
    reconciliation: dict
    rejected: pl.DataFrame
    unmatched: pl.DataFrame


def _latest_run(con: duckdb.DuckDBPyConnection, db_path: Path, coverage_year: int) -> _Run:
    rows = con.execute(
        "SELECT run_id, region, params_digest FROM runs WHERE coverage_year = ? ORDER BY finished_at DESC LIMIT 1",
        [coverage_year],
    ).fetchall()
    if not rows:
        raise PersonNotFound(
            f"数据库中没有{coverage_year}年度的运行结果，请先运行 medins run / no run for coverage year "
            f"{coverage_year} in {db_path}: run `medins run --coverage-year {coverage_year}` first"
        )
    return _Run(*rows[0])


def _resolve(con: duckdb.DuckDBPyConnection, coverage_year: int, typed: str, name: str | None) -> str:
    """The full ID the clerk means: the ID as typed, or one masked as the workbooks show it
    (360222********1234) together with the name: the one person of the year (roster or unmatched
    payments) with that name whose ID begins and ends as shown."""
    text = pl.select(normalise_id(pl.lit(typed))).item()
    if "*" not in text:
        return text
    if not name or not name.strip():
        raise ExplainArgumentError(
            f"遮蔽的证件号码 {text} 须同时给出姓名：--name 姓名 / a masked ID needs the person's name: --name NAME"
        )
    wanted = re.sub(r"\s+", "", name)
    head, tail = text[: text.index("*")], text[text.rindex("*") + 1 :]
    found = [
        r[0]
        for r in con.execute(
            r"""SELECT DISTINCT id_number FROM (
                 SELECT id_number, name FROM residents WHERE coverage_year = $year
                 UNION ALL SELECT id_number, name FROM unmatched_payments WHERE coverage_year = $year)
               WHERE regexp_replace(name, '\s+', '', 'g') = $name AND starts_with(id_number, $head)
                 AND suffix(id_number, $tail) AND length(id_number) >= $shown ORDER BY id_number""",
            {"year": coverage_year, "name": wanted, "head": head, "tail": tail, "shown": len(head) + len(tail)},
        ).fetchall()
    ]
    if len(found) != 1:
        raise PersonNotFound(
            f"{coverage_year}年度花名册和无登记缴费中姓名为{wanted}、证件号码符合 {text} 的有{len(found)}人"
            + ("，请输入完整证件号码" if found else "")
            + f" / {len(found)} persons named {wanted} with an ID matching {text} in {coverage_year}"
            + (": type the full ID" if found else " (roster or unmatched payments)")
        )
    return str(found[0])


def _read(con: duckdb.DuckDBPyConnection, coverage_year: int, wanted: str) -> _Person:
    def frame(sql: str) -> pl.DataFrame:
        return query_frame(con, sql, [coverage_year, wanted])

    det = frame("SELECT * FROM determinations WHERE coverage_year = ? AND id_number = ?")
    recon = frame("SELECT * FROM reconciliation WHERE coverage_year = ? AND id_number = ?")
    return _Person(
        resident=frame("SELECT * FROM residents WHERE coverage_year = ? AND id_number = ?"),
        payments=frame(
            "SELECT id_number, name, CAST(round(amount * 100) AS BIGINT) AS amount_fen, paid_on, coverage_year,"
            " ticket_no, channel, source_file, sheet, row_number FROM payments"
            " WHERE run_coverage_year = ? AND id_number = ? ORDER BY paid_on, ticket_no"
        ),
        list_rows=frame(
            "SELECT id_number, identity_labels, identified_on, ended_on, department, source_file, sheet, row_number,"
            " in_force FROM subsidy_list_rows WHERE coverage_year = ? AND id_number = ?"
            " ORDER BY source_file, sheet, row_number"
        ),
        determination=det.row(0, named=True) if det.height else {},
        reconciliation=recon.row(0, named=True) if recon.height else {},
        rejected=frame(
            'SELECT kind, source_file, sheet, row_number, "column", raw_value, reason FROM rejected_rows'
            ' WHERE coverage_year = ? AND id_number = ? ORDER BY kind, source_file, sheet, row_number, "column"'
        ),
        unmatched=frame(
            "SELECT name, CAST(round(amount * 100) AS BIGINT) AS amount_fen, paid_on, ticket_no, reason, source_file,"
            " sheet, row_number FROM unmatched_payments WHERE coverage_year = ? AND id_number = ?"
            " ORDER BY paid_on, ticket_no, source_file, sheet, row_number"
        ),
    )


def _labels(text: pl.Expr) -> pl.Expr:
    return text.fill_null("").str.split("、").list.eval(pl.element().filter(pl.element() != ""))


def earlier_digest(params: Params) -> str:
    """The digest versions before issue 22 recorded in runs.params_digest: the values of `as_rows`
    and the labels only."""
    rows = [*params.as_rows(), {"labels": [lab.__dict__ for lab in params.labels]}]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False, sort_keys=True, default=str).encode()).hexdigest()


def _params_note(params: Params, run: _Run) -> list[str]:
    """The first line when today's parameters of the year are not known to be the ones the run used:
    the working below is redone with today's, the result line is the run's."""
    if run.params_digest == params.digest():
        return []
    year, region = params.coverage_year, params.region
    if run.params_digest == earlier_digest(params):
        return [
            f"注意 / note: 运行 {run.run_id} 由早期版本记录参数摘要，只能核对金额、日期、规则参数和身份类别，这些与今天的"
            f"{year}年度政策参数({region})相同 / run {run.run_id} was recorded by an earlier version whose digest "
            "covers the amounts, dates, models and labels only: those equal today's"
        ]
    return [
        f"注意 / note: 今天的{year}年度政策参数({region})与运行 {run.run_id} 所用的不同：以下计算按今天的参数重做，"
        f"可能与该次运行不同，“结论”一行是该次运行的结论 / today's policy parameters for {year} ({region}) differ "
        f"from those run {run.run_id} used: the working below is redone with today's and may differ from what "
        "the run decided; the 结论 / result line is the run's"
    ]


def explain_person(db_path: Path, coverage_year: int, id_number: str, name: str | None = None) -> str:
    with reading(db_path) as con:
        run = _latest_run(con, db_path, coverage_year)
        wanted = _resolve(con, coverage_year, id_number, name)
        person = _read(con, coverage_year, wanted)
    params = load_params(coverage_year, run.region)
    masked = mask_id(wanted) or ""
    note = _params_note(params, run)
    if person.resident.height == 0:
        return "\n".join([*note, *_not_on_roster(person, masked, coverage_year)])
    in_force = person.list_rows.filter("in_force").with_columns(_labels(pl.col("identity_labels")))
    frame = with_enrolment(
        person.resident.with_columns(_labels(pl.col("identity_labels"))).lazy(),
        person.payments.lazy(),
        params,
        in_force.drop("department", "in_force"),
    )
    cands = candidates(params)
    frame = frame.with_columns(
        *[
            e
            for i, c in enumerate(cands)
            for e in (c.rule_id.alias(f"__rule_{i}"), c.start.alias(f"__start_{i}"), c.waiting_end.alias(f"__wait_{i}"))
        ]
    )
    p = frame.collect().row(0, named=True)
    lines = [*note, *_heading(p, masked, coverage_year, run)]
    lines += _label_lines(p, person, params)
    lines += _amount_lines(p, person, params)
    lines += _rule_lines(p, cands, params)
    lines += _result_lines(person, params)
    return "\n".join(lines)


def _not_on_roster(person: _Person, masked: str, year: int) -> list[str]:
    """A person without an accepted roster row of the year: the rejected roster lines, the payments
    of the year that match nobody and the person's other rejected rows, with what to do; none of
    these: not found."""
    if not person.rejected.height and not person.unmatched.height:
        raise PersonNotFound(
            f"{year}年度花名册和本年度缴费中都没有此证件号码 / not on the {year} roster and no payment for {year}: "
            f"{masked}"
        )
    roster = person.rejected.filter(pl.col("kind") == "roster")
    if roster.height:
        lines = [f"{masked}: 花名册中该人员的行未通过校验 / roster row rejected:", *_rejected_lines(roster)]
    else:
        who = " ".join(str(v) for v in (person.unmatched["name"].drop_nulls().first(), masked) if v)
        lines = [f"{who}: {year}年度花名册中没有此证件号码 / not on the {year} roster"]
    if person.unmatched.height:
        lines.append(f"本年度无登记缴费（无法对账）/ payments for {year} matching no roster row:")
        lines += [
            f"  {'退费' if r['amount_fen'] < 0 else '缴费'} {r['paid_on']} {_yuan(r['amount_fen'])} 元 (票号 "
            f"{r['ticket_no']}) — {UNMATCHED_REASON_NAMES.get(r['reason'], r['reason'])}; {r['source_file']} "
            f"[{r['sheet']}] 第{r['row_number']}行"
            for r in person.unmatched.to_dicts()
        ]
    others = person.rejected.filter(pl.col("kind") != "roster")
    if others.height:
        lines += ["其他未通过校验的行 / other rejected rows:", *_rejected_lines(others, with_kind=True)]
    return [*lines, TO_DO["roster_rejected" if roster.height else "not_on_roster"]]


def _rejected_lines(rejected: pl.DataFrame, with_kind: bool = False) -> list[str]:
    return [
        f"  {KIND_NAMES.get(r['kind'], r['kind']) + ' ' if with_kind else ''}{r['source_file']} [{r['sheet']}] "
        f"第{r['row_number']}行 {r['column']}: {mask_ids_in_text(r['reason'])}"
        for r in rejected.to_dicts()
    ]


def _heading(p: dict, masked: str, year: int, run: _Run) -> list[str]:
    return [
        f"{p['name']} {masked}  {year}年度  ({p['county']} {p['township']} {_fmt(p['village'])})",
        f"来源 / source: {p['source_file']} [{p['sheet']}] 第{p['row_number']}行; run {run.run_id}",
        "",
        "输入 / inputs:",
        f"  出生日期 {p['birth_date']} (1月1日年龄 {p['age']} {INTERP_AGE})",
        f"  上年度参保 {_fmt(p['prev_year_insured'])}; 参保登记日期 {_fmt(p['registered_on'])}; "
        f"特殊情形 {_fmt(p['special_event'])} {_fmt(p['special_event_date'])}",
    ]


def _label_lines(p: dict, person: _Person, params: Params) -> list[str]:
    """Each label with where it came from, and the identification date used (docs/RULES.md §9)."""
    roster = p["roster_labels"] or []
    lines = ["", "人员身份 / labels:"]
    where = f"{p['source_file']} [{p['sheet']}] 第{p['row_number']}行"
    lines += [f"  {lab} — 花名册人员身份 ({where})" for lab in roster]
    for r in person.list_rows.to_dicts():
        state = "有效" if r["in_force"] else "本年度无效(纳入晚于年末或年初前已退出) [interp-9.1 docs/RULES.md §9]"
        lines.append(
            f"  {r['identity_labels']} — 名单 {r['source_file']} [{r['sheet']}] 第{r['row_number']}行"
            f" ({_fmt(r['department'])}), 纳入 {_fmt(r['identified_on'])}, 退出 {_fmt(r['ended_on'])}: {state}"
        )
    if not roster and not person.list_rows.height:
        lines.append("  (无)")
    assistance = [
        lab.name for lab in params.labels if lab.medical_assistance and lab.name in (p["identity_labels"] or [])
    ]
    if assistance:
        lines.append(
            f"  医疗救助对象: {'、'.join(assistance)} {INTERP_ASSISTANCE if assistance != ['医疗救助对象'] else ''}".rstrip()
        )
    ce = params.collection_end.value
    when = p["subsidy_identified_on"]
    lines.append(
        f"资助认定日期 / identified on: {_fmt(when)}"
        + (
            f" (晚于征缴期末 {ce})"
            if when and when > ce
            else " (征缴期内或未注明: 按期内认定)"
            if p["is_subsidized_object"]
            else ""
        )
    )
    return lines


def _amount_lines(p: dict, person: _Person, params: Params) -> list[str]:
    """Tier with its clause, the amount due with the clause of that amount, and how d comes about."""
    due, subsidy = p["individual_due_fen"], p["subsidy_amount_fen"]
    cite = {"full": params.full_subsidy_yuan.cite, "fixed": params.fixed_subsidy_yuan.cite}.get(
        p["tier"], params.individual_standard_yuan.cite
    )
    standard = params.fen("individual_standard_yuan")
    lines = [
        "",
        f"资助类别 / tier: {TIER_NAMES[p['tier']]} ({p['tier']}) — {p['tier_basis']}",
        f"个人应缴 {_yuan(due)} 元 = 缴费标准 {_yuan(standard)} − 资助 {_yuan(subsidy)}; 依据: {cite}",
    ]
    lines += _running_total_lines(due, person, params)
    if due == 0:
        return [*lines, f"应缴为0, 登记即参保: 参保日期 d = {_registration_arithmetic(p, params)}"]
    enrolled = "≥" if p["enrolled"] else "<"
    return [
        *lines,
        f"实缴净额 {_yuan(p['net_paid_fen'])} 元 {enrolled} 应缴 {_yuan(due)} 元 → "
        + (
            f"已参保; 参保日期 d = {p['enrolled_on']} (自该笔起累计不再低于应缴, docs/RULES.md §3)"
            if p["enrolled"]
            else "未参保"
        ),
    ]


def _registration_arithmetic(p: dict, params: Params) -> str:
    """d of a person who owes nothing: max(参保登记日期 or CS, birth) (docs/RULES.md §3)."""
    registered = p["registered_on"]
    first = f"参保登记日期 {registered}" if registered else f"征缴期开始 {params.collection_start.value}"
    empty = "" if registered else "参保登记日期未填, 取征缴期开始; "
    return f"max({first}, 出生 {p['birth_date']}) = {p['enrolled_on']} ({empty}不早于出生, docs/RULES.md §3)"


def _running_total_lines(due: int, person: _Person, params: Params) -> list[str]:
    """The payments of Y in the order §3 adds them up (paid_on, ticket_no as text), the running total
    row by row against the due, and the row from which on it never again drops below the due: the
    same `with_running_total` the night uses."""
    year = person.payments.filter(pl.col("coverage_year") == params.coverage_year)
    if year.height == 0:
        return ["  (本年度无缴费记录 / no payment for the year)"]
    rows = with_running_total(
        year.lazy().with_columns(pl.lit(0).alias("__p"), pl.lit(due, dtype=pl.Int64).alias("individual_due_fen"))
    ).collect()
    lines = ["  按缴费日期、票号排序逐笔累计 / running total (docs/RULES.md §3):"]
    for r in rows.to_dicts():
        kind = "退费" if r["amount_fen"] < 0 else "缴费"
        compare = "<" if r["running_fen"] < due else "≥"
        settles = " ← 自此累计不再低于应缴, d = 该笔缴费日期" if r["settles"] and due > 0 else ""
        lines.append(
            f"  {kind} {r['paid_on']} {_yuan(r['amount_fen'])} 元 (票号 {r['ticket_no']}) → "
            f"累计 {_yuan(r['running_fen'])} 元 {compare} 应缴 {_yuan(due)} 元{settles}"
        )
    return lines


def _newborn_gap(p: dict, params: Params) -> tuple[str, dt.date | None]:
    """How long after birth the newborn rule's date falls (2025: d, by payment; 2024 and 2026: r, by
    registration), against the window, in words: a negative gap is a registration before birth,
    which counts as within the window (docs/RULES.md §4)."""
    by_payment = params.newborn_model.value == "payment"
    day = p["enrolled_on"] if by_payment else (p["registered_on"] or p["enrolled_on"])
    what, window = ("参保" if by_payment else "登记"), params.newborn_window_days.value
    if day is None or p["birth_date"] is None:
        return "", day
    gap = (day - p["birth_date"]).days
    if gap < 0:
        return f"{what} {day} 早于出生 {p['birth_date']} {-gap}天, 视为{window}天内", day
    return f"出生 {p['birth_date']} 后第{gap}天{what} ({day}) {'≤' if gap <= window else '>'} {window}天", day


def _newborn_of_year(p: dict, params: Params) -> str:
    """2024: why the newborn rule is this year's (docs/RULES.md §4, 赣医保发〔2023〕9号 三(四))."""
    if params.newborn_model.value != "registration_only":
        return ""
    birth, r = p["birth_date"], p["registered_on"] or p["enrolled_on"]
    if birth.year == params.coverage_year:
        return f"出生于{params.coverage_year}年, "
    return f"出生于上年, 登记 {r} ≥ 征缴期开始 {params.collection_start.value}, "


def _arithmetic(rid: str, p: dict, start: dt.date | None, wait: dt.date | None, params: Params) -> str:
    """How the rule's date comes out of the person's dates (the Civil Code's counting, docs/RULES.md §0)."""
    d, ys, ce = p["enrolled_on"], params.year_start, params.collection_end.value
    months = params.waiting_months.value if params.waiting_months else None
    days = params.waiting_days.value if params.waiting_days else None
    gap, day = _newborn_gap(p, params)
    texts = {
        "in_collection_period": f"d = {d} ≤ 征缴期末 {ce} → {ys}",
        "late_waiting": f"{d} + {months}个月 = {wait}" if months else f"{d} + {days}天 = {wait}",
        "continuous_before_year": f"未断保, d = {d} < {ys} → {ys}",
        "continuous_in_period": f"未断保, {ys} ≤ d = {d} ≤ {ce} → {d} + 1天 = {start}",
        "lapsed_before_year": f"断保, d = {d} < {ys} → 等待期至 {wait}, {start} 起",
        "lapsed_in_year": f"断保, {d} + {months}个月 = {wait}",
        "continuous_after_period": f"未断保但 d = {d} > 征缴期末 {ce}: {d} + {months}个月 = {wait} [interp-4.3]",
        "subsidized_no_waiting": f"资助参保对象 → {ys}",
        "special_status": f"max({ys}, {d} + 1天) = {start}",
        "special_event": f"特殊情形日期 {p['special_event_date']} ≤ d = {d}, 在期限内 → max({ys}, {d} + 1天) = {start}",
        "newborn_from_birth": f"{_newborn_of_year(p, params)}{gap} → max(出生 {p['birth_date']}, {ys}) = {start}",
        "newborn_next_day": f"{gap} → max({ys}, {day} + 1天) = {start}",
    }
    return texts.get(rid, "")


def _why_not(rid: str, p: dict, params: Params) -> str:
    """Why the 2024 newborn rule does not apply to a child registered within the window: it is no
    child of the year (docs/RULES.md §4, 赣医保发〔2023〕9号 三(四))."""
    if rid != "newborn_from_birth" or params.newborn_model.value != "registration_only" or not p["birth_date"]:
        return ""
    gap, r = _newborn_gap(p, params)
    if r is None or (r - p["birth_date"]).days > params.newborn_window_days.value:
        return f" ({gap})" if gap else ""
    return (
        f" ({gap}, 但出生于{p['birth_date'].year}年, 非本年度出生且登记早于征缴期开始 "
        f"{params.collection_start.value}: 本年度按普通居民)"
    )


def _rule_lines(p: dict, cands: list, params: Params) -> list[str]:
    lines = ["", f"待遇起始规则 / rules considered (earliest start wins; ties: no waiting first) {INTERP_EARLIEST}:"]
    for i, _ in enumerate(cands):
        rid, start, wait = p[f"__rule_{i}"], p[f"__start_{i}"], p[f"__wait_{i}"]
        if not p["enrolled"]:
            outcome = "不适用 (未参保)"
        elif start is None:
            outcome = "不适用 / does not apply" + _why_not(rid, p, params)
        else:
            outcome = f"起始 {start}" + (f", 等待期至 {wait}" if wait else ", 无等待期")
        lines.append(f"  - {RULE_NAMES.get(rid, rid)} [{rid}]: {outcome}")
        if start is not None and p["enrolled"]:
            lines.append(f"      计算: {_arithmetic(rid, p, start, wait, params)}")
            lines.append(f"      依据: {params.basis(rid) or '—'}")
    return lines


def _result_lines(person: _Person, params: Params) -> list[str]:
    d, r = person.determination, person.reconciliation
    lines = [
        "",
        f"结论 / result: 规则 {d.get('rule_id')}; 等待期满 {_fmt(d.get('waiting_end'))}; "
        f"待遇享受期 {_fmt(d.get('benefit_start'))} 至 {_fmt(d.get('benefit_end'))}",
        f"  {d.get('rule_basis')}",
    ]
    if r:
        code = r.get("refund_basis")
        lines.append(
            f"对账 / reconciliation: {STATUS_NAMES.get(r['status'], r['status'])} ({r['status']}), "
            f"差额 {r['amount_diff']} 元; 资助参保实际支付 {r.get('subsidy_applied')} 元"
            + (f" — 退费依据 {REFUND_BASIS_NAMES[code]} [{code}]" if code in REFUND_BASIS_NAMES else "")
            + (f" — {code}" if code and code not in REFUND_BASIS_NAMES else "")  # a sentence of an earlier version
        )
        if code in REFUND_BASIS_NAMES:
            lines.append(f"  依据: {params.basis(code)}")
        if code == "refund_identified_after_period":
            lines.append(f"  {INTERP_REFUND}")
    return lines
