"""pandera (polars backend) models of the roster, the payments and the subsidy lists (docs/RULES.md §6, §9).

A model validates the parsed frame of one sheet (pipeline/validate.py), which
still holds each field's normalised text as `<field>__raw`. Every check is a
vectorised polars expression built from the column it belongs to (`key`);
a cell whose check gives null passes. A check's name is a reason code;
`REASONS` turns it into the sentence a clerk reads in `rejected_rows`. The
checks of one column are written so that at most one of them fails for a
given cell (the first problem is the one to fix).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from pipeline.parse import id_birth_date, id_checksum_ok, id_format_ok

# Reason code -> sentence; {header} is the column as written, {raw} the cell, {today} the run date;
# {label_hint} / {event_hint}: the closest accepted spellings (pipeline/hints.py).
REASONS: dict[str, str] = {
    "required": "{header}为空，此项必填",
    "id_numeric_cell": "证件号码被Excel存成了数字，末几位已丢失；请把该列设置为文本格式后重新录入",
    "id_format": "证件号码应为18位：17位数字加1位数字或X",
    "id_old_15": "15位旧身份证号码，请换成18位号码",
    "id_checksum": "证件号码校验位错误（GB 11643），请核对号码",
    "id_birth_date": "证件号码中的出生日期不存在或晚于今天",
    "date": "{header}“{raw}”不是可识别的日期（可用 2025-10-15、2025/10/15、2025.10.15、20251015、2025年10月15日）",
    "date_partial": "{header}“{raw}”只有年份或年月，不是完整日期；请填写年月日（如 2025-10-15）",
    "date_future": "{header}“{raw}”晚于运行日期{today}，不可能是将来的日期；请核对",
    "paid_too_early": "缴费日期“{raw}”早于费款所属期前两年的1月1日，不可能是为该年度缴费；请核对缴费日期或费款所属期",
    "paid_before_birth": "缴费日期早于出生日期",
    "birth_date_future": "出生日期晚于今天",
    "birth_date_mismatch": "出生日期与证件号码中的出生日期不一致",
    # the forms pipeline/parse.py parse_amount_fen reads
    "amount": "{header}“{raw}”不是可识别的金额（可写作 400、400.00、400元、￥400、1,000.00；退费写作 -400）",
    "amount_zero": "缴费金额为0",
    "year": "{header}“{raw}”不是可识别的年度（可用 2026、2026年、202601、2026-01-01、202601-202612）",
    "period_cross_year": "费款所属期跨年度（“{raw}”的起止不在同一年），无法确定待遇年度；请按年度分开",
    "yes_no": "{header}“{raw}”应为 是/否",
    "label_unknown": "{header}“{raw}”中有政策参数未列出的类别{label_hint}，请核对写法",
    "event_unknown": "特殊情形“{raw}”不是政策规定的情形{event_hint}",
    "event_date_missing": "填写了特殊情形但缺少特殊情形日期",
    "residence_unknown": "参保身份“{raw}”应为 本地户籍 或 居住证",
    "ticket_numeric_cell": "电子税票号码被Excel存成了数字，末几位已丢失；请把该列设置为文本格式后重新导出",
    "duplicate_conflict": "同一{header}在花名册中出现{raw}次且内容不一致，全部暂不处理，请核实后只保留一行",
    "ticket_conflict": "同一电子税票号码出现多次且内容不一致，全部暂不处理，请向税务核实",
    "list_end_before_start": "退出时间早于纳入时间",
}

Rule = Callable[[str], pl.Expr]


def raw(key: str) -> pl.Expr:
    return pl.col(f"{key}__raw")


def check(rule: Rule, code: str) -> pa.Check:
    """A pandera check from a rule: `rule(key)` is True where the cell of column `key` passes."""

    def run(data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(rule(data.key).fill_null(True))

    return pa.Check(run, error=code, name=code)


# --- rules, each a function of the column it checks ----------------------------------------


def required(key: str) -> pl.Expr:
    return raw(key).is_not_null()


def parsed_if_present(key: str) -> pl.Expr:
    return raw(key).is_null() | pl.col(key).is_not_null()


def not_partial(key: str) -> pl.Expr:
    return ~pl.col(f"{key}__partial")


def not_after(today: dt.date) -> Rule:
    return lambda key: pl.col(key) <= pl.lit(today)


def id_facts(id_expr: pl.Expr, key: str = "id_number") -> list[pl.Expr]:
    """Computed once in the parse step; the checks and the duplicate test read them."""
    return [
        id_format_ok(id_expr).alias(f"{key}__format_ok"),
        id_checksum_ok(id_expr).alias(f"{key}__checksum_ok"),
        id_birth_date(id_expr).alias(f"{key}__birth_date"),
        id_expr.str.contains(r"^\d{15}$").fill_null(False).alias(f"{key}__old_15"),
        # a number cell, or the text Excel writes for one (3.60222E+17): the ID is already lost
        (pl.col(f"{key}__numeric_cell") | raw(key).str.contains(r"^\d(?:\.\d+)?[eE]\+?\d+$").fill_null(False)).alias(
            f"{key}__as_number"
        ),
    ]


def id_trusted(key: str = "id_number") -> pl.Expr:
    """An ID that is well formed, passes its check digit and did not arrive as a number."""
    return pl.col(f"{key}__format_ok") & pl.col(f"{key}__checksum_ok") & ~pl.col(f"{key}__as_number")


def _id_checks(today: dt.date) -> list[pa.Check]:
    """In order of what to fix first; each excludes the cells an earlier one failed."""

    def facts(key: str) -> tuple[pl.Expr, ...]:
        return (
            raw(key).is_not_null(),
            pl.col(f"{key}__old_15"),
            pl.col(f"{key}__as_number"),
            pl.col(f"{key}__format_ok"),
            pl.col(f"{key}__checksum_ok"),
            pl.col(f"{key}__birth_date"),
        )

    def old(k: str) -> pl.Expr:
        present, old15, *_ = facts(k)
        return ~(present & old15)

    def number(k: str) -> pl.Expr:
        present, old15, as_number, *_ = facts(k)
        return ~present | old15 | ~as_number

    def fmt(k: str) -> pl.Expr:
        present, old15, as_number, ok, *_ = facts(k)
        return ~present | old15 | as_number | ok

    def checksum(k: str) -> pl.Expr:
        present, old15, as_number, ok, sum_ok, _ = facts(k)
        return ~present | old15 | as_number | ~ok | sum_ok

    def birth(k: str) -> pl.Expr:
        present, old15, as_number, ok, sum_ok, born = facts(k)
        plausible = born.is_not_null() & (born <= pl.lit(today)) & (born >= pl.date(1880, 1, 1))
        return ~present | old15 | as_number | ~ok | ~sum_ok | plausible

    return [
        check(required, "required"),
        check(old, "id_old_15"),
        check(number, "id_numeric_cell"),
        check(fmt, "id_format"),
        check(checksum, "id_checksum"),
        check(birth, "id_birth_date"),
    ]


def _date_column(today: dt.date | None = None, *, is_required: bool = False) -> pa.Column:
    """A date: required or not; a bare year (or, where a month is not enough, a year-month) refused
    with its own reason (`<field>__partial`, pipeline/validate.py); not after the run date where
    `today` is given (docs/RULES.md §6)."""
    checks = [check(required, "required")] if is_required else []
    checks.append(check(not_partial, "date_partial"))
    checks.append(check(lambda k: parsed_if_present(k) | pl.col(f"{k}__partial"), "date"))
    if today is not None:
        checks.append(check(not_after(today), "date_future"))
    return pa.Column(pl.Date, nullable=True, checks=checks)


def _text_column(is_required: bool) -> pa.Column:
    return pa.Column(pl.Utf8, nullable=True, checks=[check(required, "required")] if is_required else [])


def _labels_column() -> pa.Column:
    return pa.Column(
        pl.List(pl.Utf8),
        nullable=True,
        checks=[check(lambda k: pl.col(f"{k}__unknown").list.len() == 0, "label_unknown")],
    )


def roster_schema(coverage_year: int, prev_year_required: bool, today: dt.date) -> pa.DataFrameSchema:
    """The roster model for one coverage year (上年度参保 is required from 2026 on)."""
    prev_checks = [check(lambda k: parsed_if_present(k), "yes_no")]
    if prev_year_required:
        prev_checks.insert(0, check(required, "required"))
    return pa.DataFrameSchema(
        {
            "name": _text_column(True),
            "id_number": pa.Column(pl.Utf8, nullable=True, checks=_id_checks(today)),
            "id_type": _text_column(False),
            "birth_date": pa.Column(
                pl.Date,
                nullable=True,
                checks=[
                    *_date_column().checks,
                    check(lambda k: raw(k).is_null() | (pl.col(k) <= pl.lit(today)), "birth_date_future"),
                    # only against an ID that can be trusted: a numeric cell has lost its digits
                    check(
                        lambda k: (
                            raw(k).is_null()
                            | pl.col("id_number__birth_date").is_null()
                            | ~id_trusted()
                            | (pl.col(k) > pl.lit(today))  # already refused as a future date
                            | (pl.col(k) == pl.col("id_number__birth_date"))
                        ),
                        "birth_date_mismatch",
                    ),
                ],
            ),
            "county": _text_column(True),
            "township": _text_column(True),
            "village": _text_column(False),
            "residence_basis": pa.Column(
                pl.Utf8, nullable=True, checks=[check(parsed_if_present, "residence_unknown")]
            ),
            "identity_labels": _labels_column(),
            "subsidy_identified_on": _date_column(today),
            "prev_year_insured": pa.Column(pl.Boolean, nullable=True, checks=prev_checks),
            "special_event": pa.Column(pl.Utf8, nullable=True, checks=[check(parsed_if_present, "event_unknown")]),
            "special_event_date": pa.Column(
                pl.Date,
                nullable=True,
                checks=[
                    check(lambda k: raw("special_event").is_null() | raw(k).is_not_null(), "event_date_missing"),
                    *_date_column(today).checks,
                ],
            ),
            "registered_on": _date_column(today),
        },
        strict=False,
        name=f"roster_{coverage_year}",
    )


def _paid_on_column(today: dt.date) -> pa.Column:
    """缴费日期: a full date, not after the run date, not before the birth date in the row's own ID,
    not before 1 January two years before its 费款所属期 (docs/RULES.md §6)."""
    born = pl.col("id_number__birth_date")
    before_birth = (pl.col("paid_on") < born) & id_trusted()

    def not_before_birth(k: str) -> pl.Expr:
        return ~((pl.col(k) <= pl.lit(today)) & before_birth)

    def not_too_early(k: str) -> pl.Expr:
        earliest = pl.date(pl.col("coverage_year") - 2, 1, 1)
        return ~((pl.col(k) <= pl.lit(today)) & ~before_birth.fill_null(False) & (pl.col(k) < earliest))

    column = _date_column(today, is_required=True)
    return pa.Column(
        pl.Date,
        nullable=True,
        checks=[*column.checks, check(not_before_birth, "paid_before_birth"), check(not_too_early, "paid_too_early")],
    )


def _period_columns() -> dict[str, pa.Column]:
    """费款所属期 as one column, or as two (起 / 止, both required): docs/RULES.md §6."""

    def neither(k: str) -> pl.Expr:
        return required(k) | required("period_start") | required("period_end")

    def one_end(k: str) -> pl.Expr:
        return required(k) | required("coverage_year") | (raw("period_start").is_null() & raw("period_end").is_null())

    return {
        "coverage_year": pa.Column(
            pl.Int32,
            nullable=True,
            checks=[
                check(neither, "required"),
                check(lambda k: raw(k).is_null() | pl.col(k).is_not_null() | pl.col(f"{k}__cross_year"), "year"),
                check(lambda k: ~pl.col(f"{k}__cross_year"), "period_cross_year"),
            ],
        ),
        "period_start": pa.Column(pl.Utf8, nullable=True, checks=[check(one_end, "required")]),
        "period_end": pa.Column(pl.Utf8, nullable=True, checks=[check(one_end, "required")]),
    }


def payments_schema(today: dt.date) -> pa.DataFrameSchema:
    """The tax-bureau payment model."""
    return pa.DataFrameSchema(
        {
            "id_number": pa.Column(pl.Utf8, nullable=True, checks=_id_checks(today)),
            "name": _text_column(True),
            "amount_fen": pa.Column(
                pl.Int64,
                nullable=True,
                checks=[
                    check(lambda k: required("amount"), "required"),
                    check(lambda k: raw("amount").is_null() | pl.col(k).is_not_null(), "amount"),
                    check(lambda k: pl.col(k) != 0, "amount_zero"),
                ],
            ),
            "paid_on": _paid_on_column(today),
            **_period_columns(),
            "ticket_no": pa.Column(
                pl.Utf8,
                nullable=True,
                checks=[
                    check(required, "required"),
                    check(
                        lambda k: ~(pl.col(f"{k}__numeric_cell") & (pl.col(k).str.len_chars() >= 16)),
                        "ticket_numeric_cell",
                    ),
                ],
            ),
            "channel": _text_column(False),
        },
        strict=False,
        name="payments",
    )


def subsidy_list_schema(today: dt.date) -> pa.DataFrameSchema:
    """A row of another department's list (docs/RULES.md §9): the roster's checks of its cells, and
    退出时间 not before 纳入时间."""
    ended = _date_column(None)
    return pa.DataFrameSchema(
        {
            "id_number": pa.Column(pl.Utf8, nullable=True, checks=_id_checks(today)),
            "name": _text_column(True),
            "identity_labels": pa.Column(
                pl.List(pl.Utf8),
                nullable=True,
                checks=[
                    check(lambda k: raw(k).is_not_null(), "required"),
                    check(lambda k: raw(k).is_null() | (pl.col(f"{k}__unknown").list.len() == 0), "label_unknown"),
                ],
            ),
            "identified_on": _date_column(today),
            "ended_on": pa.Column(
                pl.Date,
                nullable=True,
                checks=[
                    *ended.checks,
                    check(lambda k: pl.col(k) >= pl.col("identified_on"), "list_end_before_start"),
                ],
            ),
            "department": _text_column(False),
        },
        strict=False,
        name="subsidy_list",
    )
