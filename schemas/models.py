"""pandera (polars backend) models of the roster and the payments (RULES.md §6).

Every check is a vectorised polars expression over the parsed frame, which
still holds each field's normalised text as `<field>__raw`. A check's `error`
is a reason code; `REASONS` turns it into the sentence a clerk reads in
`rejected_rows`. Checks of one column are written so that at most one of
them fails for a given cell (the first problem is the one to fix).
"""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from pipeline.parse import id_birth_date, id_checksum_ok, id_format_ok

# Reason code -> sentence; {header} is the column as written, {raw} the cell.
REASONS: dict[str, str] = {
    "required": "{header}为空，此项必填",
    "id_numeric_cell": "证件号码被Excel存成了数字，末几位已丢失；请把该列设置为文本格式后重新录入",
    "id_format": "证件号码应为18位：17位数字加1位数字或X",
    "id_checksum": "证件号码校验位错误（GB 11643），请核对号码",
    "id_birth_date": "证件号码中的出生日期不存在或晚于今天",
    "date": "{header}“{raw}”不是可识别的日期（可用 2025-10-15、2025/10/15、2025.10.15、20251015、2025年10月15日）",
    "birth_date_future": "出生日期晚于今天",
    "birth_date_mismatch": "出生日期与证件号码中的出生日期不一致",
    "amount": "{header}“{raw}”不是可识别的金额",
    "amount_zero": "缴费金额为0",
    "year": "{header}“{raw}”不是可识别的年度（可用 2026、2026年、2026-01-01..2026-12-31）",
    "yes_no": "{header}“{raw}”应为 是/否",
    "label_unknown": "人员身份“{raw}”中有政策参数未列出的类别，请核对写法",
    "event_unknown": "特殊情形“{raw}”不是政策规定的情形",
    "event_date_missing": "填写了特殊情形但缺少特殊情形日期",
    "residence_unknown": "参保身份“{raw}”应为 本地户籍 或 居住证",
    "ticket_numeric_cell": "电子税票号码被Excel存成了数字，末几位已丢失；请把该列设置为文本格式后重新导出",
    "duplicate_conflict": "同一{header}在花名册中出现{raw}次且内容不一致，全部暂不处理，请核实后只保留一行",
    "ticket_conflict": "同一电子税票号码出现多次且内容不一致，全部暂不处理，请向税务核实",
}


def _raw(key: str) -> pl.Expr:
    return pl.col(f"{key}__raw")


def _check(expr_fn, code: str) -> pa.Check:
    """A vectorised column check: expr_fn(key) -> Boolean expression, null counts as pass."""

    def passes(key: str) -> pl.Expr:
        return expr_fn(key).fill_null(True)

    def run(data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(passes(data.key))

    check = pa.Check(run, error=code, name=code)
    check.passes = passes  # the same test as an expression, for one-pass evaluation (pipeline/validate.py)
    return check


def required(key: str) -> pl.Expr:
    return _raw(key).is_not_null()


def _parsed_if_present(key: str) -> pl.Expr:
    return _raw(key).is_null() | pl.col(key).is_not_null()


def id_facts(id_expr: pl.Expr) -> list[pl.Expr]:
    """Computed once in the parse step; the checks and the duplicate test read them."""
    return [
        id_format_ok(id_expr).alias("id_number__format_ok"),
        id_checksum_ok(id_expr).alias("id_number__checksum_ok"),
        id_birth_date(id_expr).alias("id_number__birth_date"),
    ]


def id_trusted() -> pl.Expr:
    """An ID that is well formed, passes its check digit and did not arrive as an Excel number."""
    return (pl.col("id_number__format_ok") & pl.col("id_number__checksum_ok")
            & ~pl.col("id_number__numeric_cell"))


def _id_checks(today: dt.date, numeric_code: str = "id_numeric_cell") -> list[pa.Check]:
    numeric = pl.col("id_number__numeric_cell")
    fmt = pl.col("id_number__format_ok")
    checksum = pl.col("id_number__checksum_ok")
    birth = pl.col("id_number__birth_date")
    present = _raw("id_number").is_not_null()
    return [
        _check(lambda k: present, "required"),
        _check(lambda k: ~(present & numeric), numeric_code),
        _check(lambda k: ~present | numeric | fmt, "id_format"),
        _check(lambda k: ~present | numeric | ~fmt | checksum, "id_checksum"),
        _check(
            lambda k: ~present | numeric | ~fmt | ~checksum
            | (birth.is_not_null() & (birth <= pl.lit(today)) & (birth >= pl.date(1880, 1, 1))),
            "id_birth_date",
        ),
    ]


def _date_column(required_field: bool = False) -> pa.Column:
    checks = [_check(_parsed_if_present, "date")]
    if required_field:
        checks.insert(0, _check(required, "required"))
    return pa.Column(pl.Date, nullable=True, checks=checks)


def _text_column(required_field: bool) -> pa.Column:
    return pa.Column(pl.Utf8, nullable=True, checks=[_check(required, "required")] if required_field else [])


def roster_schema(coverage_year: int, prev_year_required: bool, today: dt.date) -> pa.DataFrameSchema:
    """The roster model for one coverage year (上年度参保 is required from 2026 on)."""
    prev_checks = [_check(_parsed_if_present, "yes_no")]
    if prev_year_required:
        prev_checks.insert(0, _check(required, "required"))
    birth_from_id = pl.col("id_number__birth_date")
    trusted = id_trusted()
    return pa.DataFrameSchema(
        {
            "name": _text_column(True),
            "id_number": pa.Column(pl.Utf8, nullable=True, checks=_id_checks(today)),
            "id_type": _text_column(False),
            "birth_date": pa.Column(pl.Date, nullable=True, checks=[
                _check(_parsed_if_present, "date"),
                _check(lambda k: _raw(k).is_null() | (pl.col(k) <= pl.lit(today)), "birth_date_future"),
                # only against an ID that can be trusted: a numeric cell has lost its digits
                _check(lambda k: _raw(k).is_null() | birth_from_id.is_null() | ~trusted
                       | (pl.col(k) == birth_from_id), "birth_date_mismatch"),
            ]),
            "county": _text_column(True),
            "township": _text_column(True),
            "village": _text_column(False),
            "residence_basis": pa.Column(pl.Utf8, nullable=True,
                                         checks=[_check(_parsed_if_present, "residence_unknown")]),
            "identity_labels": pa.Column(pl.List(pl.Utf8), nullable=True, checks=[
                _check(lambda k: pl.col("identity_labels__unknown").list.len() == 0, "label_unknown"),
            ]),
            "subsidy_identified_on": _date_column(),
            "prev_year_insured": pa.Column(pl.Boolean, nullable=True, checks=prev_checks),
            "special_event": pa.Column(pl.Utf8, nullable=True, checks=[_check(_parsed_if_present, "event_unknown")]),
            "special_event_date": pa.Column(pl.Date, nullable=True, checks=[
                _check(lambda k: _raw("special_event").is_null() | _raw(k).is_not_null(), "event_date_missing"),
                _check(_parsed_if_present, "date"),
            ]),
            "registered_on": _date_column(),
        },
        strict=False,
        name=f"roster_{coverage_year}",
    )


def payments_schema(today: dt.date) -> pa.DataFrameSchema:
    """The tax-bureau payment model."""
    ticket_numeric = pl.col("ticket_no__numeric_cell") & (pl.col("ticket_no").str.len_chars() >= 16)
    return pa.DataFrameSchema(
        {
            "id_number": pa.Column(pl.Utf8, nullable=True, checks=_id_checks(today)),
            "name": _text_column(True),
            "amount_fen": pa.Column(pl.Int64, nullable=True, checks=[
                _check(lambda k: _raw("amount").is_not_null(), "required"),
                _check(lambda k: _raw("amount").is_null() | pl.col(k).is_not_null(), "amount"),
                _check(lambda k: pl.col(k) != 0, "amount_zero"),
            ]),
            "paid_on": _date_column(required_field=True),
            "coverage_year": pa.Column(pl.Int32, nullable=True, checks=[
                _check(required, "required"),
                _check(_parsed_if_present, "year"),
            ]),
            "ticket_no": pa.Column(pl.Utf8, nullable=True, checks=[
                _check(required, "required"),
                _check(lambda k: ~ticket_numeric, "ticket_numeric_cell"),
            ]),
            "channel": _text_column(False),
        },
        strict=False,
        name="payments",
    )
