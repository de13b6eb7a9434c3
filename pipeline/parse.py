"""Text -> values, as polars expressions (no per-row Python).

Every parser takes an expression of normalised text (see `normalise_text`)
and returns the typed value, or null where the text cannot be read. The
validation step compares "raw present" with "value null" to reject a row
with the column and the raw text, so a parser never raises.
"""

from __future__ import annotations

import polars as pl

# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space -> half-width.
_FULL = [chr(c) for c in range(0xFF01, 0xFF5F)] + ["\u3000"]
_HALF = [chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)] + [" "]

# GB 11643-1999: weights of the first 17 digits.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)

# Excel's day 0 for serial dates (the 1900 system, after its 1900-02-29 bug).
_EXCEL_EPOCH = pl.date(1899, 12, 30)


# Invisible characters that Excel/WPS exports carry and that break matching.
_INVISIBLE = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\u2060\ufeff]"


def normalise_text(expr: pl.Expr) -> pl.Expr:
    """Full-width -> half-width, invisible characters removed, trimmed; empty text becomes null."""
    out = expr.str.replace_many(_FULL, _HALF).str.replace_all(_INVISIBLE, "").str.strip_chars()
    return pl.when(out == "").then(None).otherwise(out)


# Any character normalise_text would change besides surrounding whitespace.
_NEEDS_MAPPING = "[\uff01-\uff5e\u3000" + _INVISIBLE[1:-1] + "]"


_MIDNIGHT = " 00:00:00"  # how calamine renders a date cell of .xlsx/.xls (an .ods or a CSV has none)


def normalise_columns(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """`normalise_text` on every column, the same result at a fraction of the cost: a cell with no
    full-width or invisible character (nearly all) only needs trimming, so only the cells that have
    one are mapped. A date cell reads as its date (`2025-10-15`, as every format writes it), not with
    calamine's midnight."""
    mapping = frame.select(pl.col(c).str.contains(_NEEDS_MAPPING).any().alias(f"m{i}") for i, c in enumerate(columns))
    trimmed = frame.with_columns(pl.col(columns).str.strip_chars())
    frame = trimmed.with_columns(
        _mapped(frame.get_column(c), trimmed.get_column(c)) for c, need in zip(columns, mapping.row(0)) if need
    )
    midnight = frame.select(pl.col(c).str.ends_with(_MIDNIGHT).any().alias(f"d{i}") for i, c in enumerate(columns))
    out = []
    for c, dated in zip(columns, midnight.row(0)):
        e = pl.col(c).str.replace(r"^(\d{4}-\d{2}-\d{2}) 00:00:00$", "$1") if dated else pl.col(c)
        out.append(pl.when(e == "").then(None).otherwise(e).alias(c))
    return frame.with_columns(out)


def _mapped(column: pl.Series, trimmed: pl.Series) -> pl.Series:
    """`trimmed` (the column trimmed) with `normalise_text` of the column in the cells holding a
    character it maps, the others as they are."""
    at = column.str.contains(_NEEDS_MAPPING).fill_null(False).arg_true()
    mapped = column.gather(at).to_frame().select(normalise_text(pl.col(column.name))).to_series()
    return trimmed.clone().scatter(at, mapped)


def normalise_id(expr: pl.Expr) -> pl.Expr:
    """ID text as the GB 11643 form: no whitespace anywhere, x -> X (docs/RULES.md §6)."""
    return expr.str.replace_all(r"\s+", "").str.to_uppercase()


def id_format_ok(expr: pl.Expr) -> pl.Expr:
    """17 digits then a digit or X."""
    return expr.str.contains(r"^\d{17}[\dX]$").fill_null(False)


def _id_weighted_sum(expr: pl.Expr) -> pl.Expr:
    """Σ digit × weight over the first 17 digits (GB 11643-1999). The digits are read once as an
    integer and taken apart arithmetically: one string pass instead of seventeen."""
    body = expr.str.slice(0, 17).str.to_integer(strict=False)
    return pl.sum_horizontal((body // (10 ** (16 - i))) % 10 * w for i, w in enumerate(_ID_WEIGHTS))


def id_checksum_ok(expr: pl.Expr) -> pl.Expr:
    """The 18th character is the check character (X standing for 10), compared as numbers."""
    last = expr.str.slice(17, 1)
    given = pl.when(last == "X").then(pl.lit(10, dtype=pl.Int64)).otherwise(last.cast(pl.Int64, strict=False))
    expected = (12 - _id_weighted_sum(expr) % 11) % 11
    return (given == expected).fill_null(False)


def id_birth_date(expr: pl.Expr) -> pl.Expr:
    """The birth date in positions 7-14 of an 18-digit ID (null if impossible)."""
    return expr.str.slice(6, 8).str.to_date("%Y%m%d", strict=False)


def parse_date(expr: pl.Expr) -> pl.Expr:
    """Normalised date text -> Date, or null (docs/RULES.md §6, docs/CONTRACT.md "Inputs").

    Accepts yyyy-mm-dd, yyyy/mm/dd, yyyy.mm.dd, yyyy年m月d日 (1- or 2-digit month
    and day where separated), what calamine renders for a real Excel date
    (`yyyy-mm-dd 00:00:00`), an 8-digit yyyymmdd and a 5-digit Excel serial
    number (10000-99999, a fraction gives the day of its integer part). A
    bare 4- or 6-digit number is a year or a year-month, never a date
    (`is_partial_date`); day-first forms such as 15/10/2025 are ambiguous:
    all of these stay null (rejected, never guessed).
    """
    separated = expr.str.replace(r"[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?$", "").str.replace_many(
        ["/", ".", "年", "月", "日"], ["-", "-", "-", "-", ""]
    )
    year_first = separated.str.contains(r"^\d{4}-\d{1,2}-\d{1,2}$").fill_null(False)
    compact = expr.str.contains(r"^\d{8}$").fill_null(False)
    serial = expr.str.extract(r"^(\d{5})(?:\.\d+)?$", 1).cast(pl.Int64, strict=False)
    return (
        pl.when(year_first)
        .then(separated.str.to_date("%Y-%m-%d", strict=False))
        .when(compact)
        .then(expr.str.to_date("%Y%m%d", strict=False))
        .when(serial.is_not_null())
        .then(_EXCEL_EPOCH + pl.duration(days=serial))
        .otherwise(pl.lit(None, dtype=pl.Date))
        .cast(pl.Date)
    )


def is_partial_date(expr: pl.Expr) -> pl.Expr:
    """A bare 4- or 6-digit number (`2025`, `202511`, as text or a number cell): a year or a
    year-month, which a date column must not take for a date (read as an Excel serial, 2025 would be
    1905-07-17)."""
    return expr.str.contains(r"^(?:\d{4}|\d{6})(?:\.0+)?$").fill_null(False)


def is_bare_year(expr: pl.Expr) -> pl.Expr:
    """A bare 4-digit number (`2025`): a year, never a date, not even where a month is enough."""
    return expr.str.contains(r"^\d{4}(?:\.0+)?$").fill_null(False)


def parse_month_start(expr: pl.Expr) -> pl.Expr:
    """`yyyymm`, `yyyy-mm`, `yyyy年m月` (text or number) -> the first day of that month, or null.
    Only where a month is enough (资助认定日期, the lists' 纳入资助时间 / 退出时间: docs/RULES.md §6)."""
    parts = expr.str.extract_groups(r"^(\d{4})(?:(0[1-9]|1[0-2])(?:\.0+)?|-(0?[1-9]|1[0-2])|年(0?[1-9]|1[0-2])月)$")
    month = pl.coalesce(parts.struct.field("2"), parts.struct.field("3"), parts.struct.field("4"))
    return pl.date(parts.struct.field("1").cast(pl.Int32, strict=False), month.cast(pl.Int8, strict=False), 1)


def parse_date_or_month(expr: pl.Expr) -> pl.Expr:
    """A date, or a month meaning its first day (`parse_month_start`)."""
    return pl.coalesce(parse_date(expr), parse_month_start(expr))


def parse_amount_fen(expr: pl.Expr) -> pl.Expr:
    """Amount text (`12`, `12.00元`, `1,234.50`, `-12`, `￥12`) -> integer fen, or null.

    A float artefact of an Excel formula (399.99999999999994) is rounded to the
    fen; anything finer than a fen that is not such an artefact stays null.
    """
    cleaned = expr.str.replace_all(r"[,\s元¥￥]|人民币", "")
    ok = cleaned.str.contains(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$").fill_null(False)
    value = pl.when(ok).then(cleaned).otherwise(None).cast(pl.Float64, strict=False)
    fen = (value * 100).round(0)
    exact = ((value * 100) - fen).abs() < 1e-4
    return pl.when(exact).then(fen.cast(pl.Int64, strict=False)).otherwise(None)


_YEAR = r"((?:19|20)\d{2})"


def _single_period_year(expr: pl.Expr) -> pl.Expr:
    """The year of one 费款所属期 form: yyyy, yyyy年, yyyy年度, yyyymm, yyyy-mm, yyyy.mm, yyyy年m月, or a
    full date (any form of `parse_date`, an Excel date included); null otherwise."""
    month = r"(?:0?[1-9]|1[0-2])"
    year_only = expr.str.extract(r"^" + _YEAR + r"(?:年度?|\.0+)?$", 1)
    year_month = expr.str.extract(r"^" + _YEAR + r"(?:(?:0[1-9]|1[0-2])|[-./]" + month + r"|年" + month + r"月)$", 1)
    date_year = parse_date(expr).dt.year().cast(pl.Utf8)
    year = pl.coalesce(year_only, year_month, date_year).cast(pl.Int32, strict=False)
    return pl.when(year.is_between(1900, 2099)).then(year)


_RANGE_WORDS = r"\s*(?:至|到|~|～|\.\.)\s*"  # `..` as well: what some exports write (not in the notices' list)


_MAX_DASH_SPLITS = 5  # `2026-01-01-2026-12-31` has five dashes; the split is at one of them


def period_bounds(expr: pl.Expr) -> pl.Expr:
    """费款所属期 text -> struct {first, last}: the years of its two ends (one form: both the same).

    A whole-string form (`2026-01`) is tried before splitting; a range splits on 至 到 ~ ～ (or `..`),
    else on the one `-` whose two sides are each a form (`202601-202612`, `2026-01-01-2026-12-31`,
    `202601-2026-12`). docs/RULES.md §6. Every candidate text (the whole, and the two sides of each
    split) goes through the single-form parser once, as one list.
    """
    words = expr.str.replace(_RANGE_WORDS, "\x1f").str.split_exact("\x1f", 1)
    sides = [words.struct.field("field_0"), words.struct.field("field_1")]
    for k in range(_MAX_DASH_SPLITS):  # split after the (k+1)-th dash
        parts = expr.str.extract_groups(r"^((?:[^-]*-){" + str(k) + r"}[^-]*?)\s*-\s*(.+)$")
        sides += [parts.struct.field("1"), parts.struct.field("2")]
    years = pl.concat_list(expr, *[side.str.strip_chars() for side in sides]).list.eval(
        _single_period_year(pl.element())
    )
    pairs = [(years.list.get(2 * i + 1), years.list.get(2 * i + 2)) for i in range(len(sides) // 2)]
    both = [first.is_not_null() & last.is_not_null() for first, last in pairs]
    return pl.struct(
        pl.coalesce(years.list.get(0), *[pl.when(ok).then(first) for ok, (first, _) in zip(both, pairs)]).alias(
            "first"
        ),
        pl.coalesce(years.list.get(0), *[pl.when(ok).then(last) for ok, (_, last) in zip(both, pairs)]).alias("last"),
    )


def parse_year(expr: pl.Expr) -> pl.Expr:
    """费款所属期 text -> the coverage year (both ends in one year), or null (`period_bounds`)."""
    bounds = period_bounds(expr)
    first, last = bounds.struct.field("first"), bounds.struct.field("last")
    return pl.when(first == last).then(first)


def parse_yes_no(expr: pl.Expr) -> pl.Expr:
    """上年度参保: 是/否, Y/N, 1/0 (and true/false of a Boolean cell) -> Boolean, or null."""
    lowered = expr.str.to_lowercase()
    return (
        pl.when(lowered.is_in(["是", "y", "yes", "1", "true", "1.0", "已参保"]))
        .then(True)
        .when(lowered.is_in(["否", "n", "no", "0", "false", "0.0", "未参保"]))
        .then(False)
        .otherwise(None)
    )


def split_labels(expr: pl.Expr) -> pl.Expr:
    """人员身份 text -> list of tokens, split on 、 , ， ; ； | / or whitespace (docs/RULES.md §1).

    Runs after `normalise_text`, so ， and ； already read as , and ;.
    """
    return (
        expr.fill_null("")
        .str.replace_all(r"[、,;|/\s]+", "\x1f")
        .str.split("\x1f")
        .list.eval(pl.element().filter(pl.element() != ""))
    )
