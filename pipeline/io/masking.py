"""Masking of ID numbers (证件号码) in the Excel reports.

docs/CONTRACT.md "Outputs": IDs in the workbooks read `360222********1234` unless
`--unmask` is given; the DuckDB file keeps them in full. An ID never shows
more than 10 of its characters.
"""

from __future__ import annotations

import re

import polars as pl

# A run of 15-18 digits (the last may be X) not touching other digits: a 15- or
# 18-character ID, or one a clerk mistyped by a digit or two. `\d` also matches
# full-width digits, which rejected raw values may hold. Longer runs (the
# 20-digit 电子税票号码) are left alone.
_ID_LIKE = re.compile(r"(?<!\d)\d{14,17}[\dXx](?!\d)")


def mask_id(id_number: str | None) -> str | None:
    """`360222199001011234` -> `360222********1234`; other lengths keep at most
    the first 3 and last 2 characters, and never more than a third of the value."""
    if id_number is None:
        return None
    value = id_number.strip()
    n = len(value)
    if n == 18:
        return f"{value[:6]}{'*' * 8}{value[-4:]}"
    head = min(3, n // 3)
    tail = min(2, n // 4)
    return value[:head] + "*" * (n - head - tail) + (value[n - tail :] if tail else "")


def mask_ids_in_text(text: str | None) -> str | None:
    """Mask every ID-like run of digits inside free text (a raw cell value, a reason)."""
    if text is None or not _ID_LIKE.search(text):
        return text
    return _ID_LIKE.sub(lambda m: mask_id(m.group()) or "", text)


# --- the same masking on a whole polars column (the exception lists) ----------------

_PLAIN_ID = r"^[0-9A-Za-z]{18}$"
# Every match of _ID_LIKE has 14 digits in a row, each an ASCII digit or a non-ASCII (Unicode)
# digit: a text without 14 such characters in a row is left as it is without asking Python.
_MAY_HOLD_ID = r"[0-9\x{80}-\x{10FFFF}]{14}"


def _distinct_in_python(expr: pl.Expr, needs: pl.Expr, function) -> pl.Expr:
    """`function` applied once per distinct value among the (few) rows where `needs` holds; the other
    rows as they are."""
    return pl.struct(expr.alias("value"), needs.alias("needs")).map_batches(
        lambda s: _map_distinct(s.struct.field("value"), s.struct.field("needs"), function), return_dtype=pl.Utf8
    )


def _map_distinct(values: pl.Series, needs: pl.Series, function) -> pl.Series:
    distinct = values.filter(needs).drop_nulls().unique().to_list()
    if not distinct:
        return values
    mapped = values.replace_strict(distinct, [function(v) for v in distinct], default=None, return_dtype=pl.Utf8)
    return mapped.zip_with(needs & values.is_in(distinct), values)


def mask_id_expr(expr: pl.Expr) -> pl.Expr:
    """`mask_id` on every value of a column: an 18-character ID vectorised, anything else (rare:
    a rejected raw value under an ID header) through mask_id itself, once per distinct value."""
    plain = expr.str.contains(_PLAIN_ID).fill_null(False)
    return (
        pl.when(expr.is_null())
        .then(None)
        .when(plain)
        .then(pl.concat_str([expr.str.slice(0, 6), pl.lit("*" * 8), expr.str.slice(14, 4)]))
        .otherwise(_distinct_in_python(expr, ~plain, mask_id))
    )


def mask_ids_in_text_expr(expr: pl.Expr) -> pl.Expr:
    """`mask_ids_in_text` on every value of a column; only texts that may hold an ID go through it."""
    return _distinct_in_python(expr, expr.str.contains(_MAY_HOLD_ID).fill_null(False), mask_ids_in_text)
