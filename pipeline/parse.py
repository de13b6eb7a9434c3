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

# GB 11643-1999: weights of the first 17 digits and the check character of
# (sum mod 11).
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# Excel's day 0 for serial dates (the 1900 system, after its 1900-02-29 bug).
_EXCEL_EPOCH = pl.date(1899, 12, 30)
_SERIAL_MAX = 2958465  # 9999-12-31



# Invisible characters that Excel/WPS exports carry and that break matching.
_INVISIBLE = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\u2060\ufeff]"


def normalise_text(expr: pl.Expr) -> pl.Expr:
    """Full-width -> half-width, invisible characters removed, trimmed; empty text becomes null."""
    out = expr.str.replace_many(_FULL, _HALF).str.replace_all(_INVISIBLE, "").str.strip_chars()
    return pl.when(out == "").then(None).otherwise(out)


# Any character normalise_text would change besides surrounding whitespace.
_NEEDS_MAPPING = "[\uff01-\uff5e\u3000" + _INVISIBLE[1:-1] + "]"


def normalise_columns(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """`normalise_text` on every column, the same result at a fraction of the cost: a column with no
    full-width or invisible character anywhere (most are) only needs trimming."""
    needs = frame.select(pl.col(c).str.contains(_NEEDS_MAPPING).any() for c in columns).row(0)
    trimmed = {c: pl.col(c).str.strip_chars() for c, need in zip(columns, needs) if not need}
    return frame.with_columns(
        *[normalise_text(pl.col(c)).alias(c) for c, need in zip(columns, needs) if need],
        *[pl.when(e == "").then(None).otherwise(e).alias(c) for c, e in trimmed.items()],
    )


def normalise_id(expr: pl.Expr) -> pl.Expr:
    """ID text as the GB 11643 form: no whitespace anywhere, x -> X (RULES.md §6)."""
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
    """Normalised date text -> Date, or null.

    Accepts the forms of CONTRACT.md (yyyy-mm-dd, yyyy/mm/dd, yyyy.mm.dd,
    yyyymmdd, yyyy年m月d日, with 1- or 2-digit month/day where separated),
    what calamine renders for a real Excel date (`yyyy-mm-dd 00:00:00`) and a
    bare Excel serial number (e.g. 36526 for 2000-01-01). Day-first forms such as 15/10/2025 are
    ambiguous and stay null (rejected, never guessed). A handful of passes
    over the column, whatever the mix of forms (this runs on every row).
    """
    separated = (
        expr.str.replace(r"[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?$", "")
        .str.replace_many(["/", ".", "年", "月", "日"], ["-", "-", "-", "-", ""])
    )
    year_first = separated.str.contains(r"^\d{4}-\d{1,2}-\d{1,2}$").fill_null(False)
    compact = expr.str.contains(r"^\d{8}$").fill_null(False)
    serial = expr.str.extract(r"^(\d{1,7})(?:\.0+)?$", 1).cast(pl.Int64, strict=False)
    return (
        pl.when(year_first).then(separated.str.to_date("%Y-%m-%d", strict=False))
        # an 8-digit run is yyyymmdd, never a serial (serials stay below 3,000,000)
        .when(compact).then(expr.str.to_date("%Y%m%d", strict=False))
        .when(serial.is_between(1, _SERIAL_MAX)).then(_EXCEL_EPOCH + pl.duration(days=serial))
        .otherwise(pl.lit(None, dtype=pl.Date))
        .cast(pl.Date)
    )


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


def parse_year(expr: pl.Expr) -> pl.Expr:
    """费款所属期 (`yyyy`, `yyyy年`, `yyyy-01-01..yyyy-12-31`, an Excel date) -> Int32, or null.

    The first and the last four-digit year in the text must be the same: a
    period that spans two years cannot be booked to one coverage year.
    """
    year = r"((?:19|20)\d{2})"
    first = expr.str.extract(r"^" + year + r"(?:[^\d]|$)", 1)
    last = expr.str.extract(r".*(?:^|[^\d])" + year + r"(?:[^\d]|$)", 1)
    looks = expr.str.contains(r"^[\d\s年月日./\-~～至到:]+$").fill_null(False)
    return pl.when(looks & (first == last)).then(first.cast(pl.Int32, strict=False)).otherwise(None)


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
    """人员身份 text -> list of tokens, split on 、 , ， ; ； | / or whitespace (RULES.md §1).

    Runs after `normalise_text`, so ， and ； already read as , and ;.
    """
    return (
        expr.fill_null("")
        .str.replace_all(r"[、,;|/\s]+", "\x1f")
        .str.split("\x1f")
        .list.eval(pl.element().filter(pl.element() != ""))
    )
