"""Date arithmetic of the Civil Code (民法典 第二百零一、二百零二条), docs/RULES.md §0.

The start day is not counted; a period of N months ends on the same-numbered
day N months later, or on that month's last day if it has none (polars
`offset_by("Nmo")` clamps the same way: 30 November + 3 months = 28 February).
"""

from __future__ import annotations

import datetime as dt

import polars as pl


def add_months(expr: pl.Expr, months: int) -> pl.Expr:
    return expr.dt.offset_by(f"{months}mo")


def add_days(expr: pl.Expr, days: int) -> pl.Expr:
    return expr + pl.duration(days=days)


def next_day(expr: pl.Expr) -> pl.Expr:
    return add_days(expr, 1)


def days_between(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    """later - earlier in days (negative when `later` is earlier)."""
    return (later - earlier).dt.total_days()


def date_lit(value: dt.date) -> pl.Expr:
    return pl.lit(value, dtype=pl.Date)


NULL_DATE = pl.lit(None, dtype=pl.Date)
