"""`medins explain`: one person's determination, rule by rule, from the last run's database.

The person's validated roster row and payments are read back from DuckDB and
put through the same rule expressions as the nightly run, one row only, so
every candidate rule can be shown with its outcome, not just the winner.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipeline.errors import InputFileError, PersonNotFound
from pipeline.io.masking import mask_id
from pipeline.io.store import query_frame
from pipeline.params import load_params
from pipeline.parse import normalise_id
from pipeline.rules import with_enrolment
from pipeline.rules.benefit_start import candidates
from pipeline.rules.tier import TIER_NAMES

RULE_NAMES = {
    "in_collection_period": "集中征缴期内缴费", "late_waiting": "征缴期后缴费, 设等待期",
    "subsidized_no_waiting": "资助参保对象不设等待期", "continuous_before_year": "未断保, 1月1日前缴费",
    "continuous_in_period": "未断保, 1月1日至征缴期末缴费", "lapsed_before_year": "断保, 1月1日前缴费",
    "lapsed_in_year": "断保, 1月1日后缴费", "continuous_after_period": "未断保, 征缴期后缴费 [interp]",
    "special_status": "医疗救助对象/宗教教职人员", "special_event": "特殊情形",
    "newborn_from_birth": "新生儿自出生之日起", "newborn_next_day": "新生儿登记(缴费)次日起",
    "not_enrolled": "未参保",
}


def _fmt(value) -> str:
    return "—" if value is None else str(value)


def explain_person(db_path: Path, coverage_year: int, id_number: str) -> str:
    if not db_path.exists():
        raise InputFileError(f"找不到数据库，请先运行 medins run / database not found, run `medins run` first: {db_path}")
    import duckdb

    wanted = pl.select(normalise_id(pl.lit(id_number))).item()
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        resident = query_frame(
            con,
            "SELECT * FROM residents WHERE coverage_year = ? AND id_number = ?", [coverage_year, wanted]
        )
        payments = query_frame(
            con,
            "SELECT id_number, name, CAST(round(amount * 100) AS BIGINT) AS amount_fen, paid_on, coverage_year,"
            " ticket_no, channel, source_file, sheet, row_number FROM payments"
            " WHERE run_coverage_year = ? AND id_number = ? ORDER BY paid_on, ticket_no",
            [coverage_year, wanted],
        )
        det = query_frame(
            con,
            "SELECT * FROM determinations WHERE coverage_year = ? AND id_number = ?", [coverage_year, wanted]
        )
        recon = query_frame(
            con,
            "SELECT * FROM reconciliation WHERE coverage_year = ? AND id_number = ?", [coverage_year, wanted]
        )
        rejected = query_frame(
            con,
            "SELECT source_file, sheet, row_number, \"column\", raw_value, reason FROM rejected_rows"
            " WHERE coverage_year = ? AND id_number = ? ORDER BY source_file, sheet, row_number, \"column\"",
            [coverage_year, wanted]
        )
        run = query_frame(
            con, "SELECT run_id, region, finished_at FROM runs WHERE coverage_year = ? ORDER BY finished_at DESC LIMIT 1",
            [coverage_year],
        ).rows()
    finally:
        con.close()

    masked = mask_id(wanted)
    lines: list[str] = []
    if resident.height == 0:
        if rejected.height:
            lines.append(f"{masked}: 花名册中该人员的行未通过校验 / roster row rejected:")
            lines += [f"  {r['source_file']} [{r['sheet']}] 第{r['row_number']}行 {r['column']}: {r['reason']}"
                      for r in rejected.to_dicts()]
            return "\n".join(lines)
        raise PersonNotFound(f"{coverage_year}年度花名册中没有此证件号码 / not on the {coverage_year} roster: {masked}")

    region = run[0][1] if run else "jiangxi"
    params = load_params(coverage_year, region)
    person = resident.with_columns(
        pl.col("identity_labels").fill_null("").str.split("、").list.eval(pl.element().filter(pl.element() != ""))
    )
    frame = with_enrolment(person.lazy(), payments.lazy(), params)
    cands = candidates(params)
    frame = frame.with_columns(
        *[c.rule_id.alias(f"__rule_{i}") for i, c in enumerate(cands)],
        *[c.start.alias(f"__start_{i}") for i, c in enumerate(cands)],
        *[c.waiting_end.alias(f"__wait_{i}") for i, c in enumerate(cands)],
    )
    p = frame.collect().row(0, named=True)
    d = det.row(0, named=True) if det.height else {}
    r = recon.row(0, named=True) if recon.height else {}

    lines += [
        f"{p['name']} {masked}  {coverage_year}年度  ({p['county']} {p['township']} {_fmt(p['village'])})",
        f"来源 / source: {p['source_file']} [{p['sheet']}] 第{p['row_number']}行; run {run[0][0] if run else '—'}",
        "",
        "输入 / inputs:",
        f"  出生日期 {p['birth_date']} (1月1日年龄 {p['age']}); 人员身份 {p['identity_labels'] and '、'.join(p['identity_labels']) or '—'}",
        f"  上年度参保 {_fmt(p['prev_year_insured'])}; 参保登记日期 {_fmt(p['registered_on'])}; "
        f"资助认定日期 {_fmt(p['subsidy_identified_on'])}; 特殊情形 {_fmt(p['special_event'])} {_fmt(p['special_event_date'])}",
        f"  缴费 / payments for {coverage_year}:",
    ]
    year_payments = payments.filter(pl.col("coverage_year") == coverage_year)
    if year_payments.height == 0:
        lines.append("    (无 / none)")
    running = 0
    for pay in year_payments.to_dicts():
        running += pay["amount_fen"]
        lines.append(f"    {pay['paid_on']}  {pay['amount_fen'] / 100:>9.2f}  累计 {running / 100:>9.2f}  票号 {pay['ticket_no']}")
    lines += [
        "",
        f"资助类别 / tier: {TIER_NAMES[p['tier']]} ({p['tier']}) — {p['tier_basis']}",
        f"个人应缴 {p['individual_due_fen'] / 100:.2f} 元, 财政资助 {p['subsidy_amount_fen'] / 100:.2f} 元 "
        f"({params.individual_standard_yuan.cite})",
        f"实缴净额 {p['net_paid_fen'] / 100:.2f} 元 → {'已参保' if p['enrolled'] else '未参保'}; "
        f"参保日期 d = {_fmt(p['enrolled_on'])}",
        "",
        "待遇起始规则 / rules considered (earliest start wins; ties: no waiting first):",
    ]
    for i, _ in enumerate(cands):
        rid, start, wait = p[f"__rule_{i}"], p[f"__start_{i}"], p[f"__wait_{i}"]
        if not p["enrolled"]:
            outcome = "不适用 (未参保)"
        elif start is None:
            outcome = "不适用 / does not apply"
        else:
            outcome = f"起始 {start}" + (f", 等待期至 {wait}" if wait else ", 无等待期")
        lines.append(f"  - {RULE_NAMES.get(rid, rid)} [{rid}]: {outcome}")
        if start is not None and p["enrolled"]:
            lines.append(f"      依据: {params.basis(rid) or '—'}")
    lines += [
        "",
        f"结论 / result: 规则 {d.get('rule_id')}; 等待期满 {_fmt(d.get('waiting_end'))}; "
        f"待遇享受期 {_fmt(d.get('benefit_start'))} 至 {_fmt(d.get('benefit_end'))}",
        f"  {d.get('rule_basis')}",
    ]
    if r:
        lines.append(f"对账 / reconciliation: {r['status']}, 差额 {r['amount_diff']} 元"
                     + (f" — {r['refund_basis']}" if r.get("refund_basis") else ""))
    return "\n".join(lines)
