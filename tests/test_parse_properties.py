"""Property tests of the text parsers (pipeline/parse.py): any text in, a value or null out, never an error."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import check_digit
from pipeline.parse import (
    id_birth_date,
    id_checksum_ok,
    id_format_ok,
    normalise_columns,
    normalise_id,
    normalise_text,
    parse_amount_fen,
    parse_date,
    parse_year,
)

ANY_TEXT = st.lists(st.one_of(st.text(max_size=30), st.none()), min_size=1, max_size=40)
DIGITISH = st.text(alphabet="0123456789０１２３４５６７８９xX -/.年月日元,¥\u3000", max_size=24)
SETTINGS = settings(max_examples=100, deadline=None)


def apply(expr, values: Sequence[str | None]) -> list:
    return pl.DataFrame({"s": values}, schema={"s": pl.Utf8}).select(expr(pl.col("s")).alias("v"))["v"].to_list()


@SETTINGS
@given(ANY_TEXT)
def test_normalise_text_is_idempotent_and_never_raises(values):
    once = apply(normalise_text, values)
    assert apply(normalise_text, once) == once
    assert all(v is None or (v == v.strip() and v != "") for v in once)


CELL = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.text(alphabet="ａＡ１　 \t\u200b\ufeff\x01-张三", max_size=8),
    st.sampled_from(["2025-10-15 00:00:00", " 2025-10-15 00:00:00 ", "２０２５-10-15 00:00:00", "x 00:00:00", ""]),
)


@SETTINGS
@given(st.lists(st.tuples(CELL, CELL, CELL), min_size=1, max_size=30))
def test_normalise_columns_is_normalise_text_of_every_cell(rows):
    """The columns' shortcut (only the cells with a character to map are mapped) gives what
    `normalise_text` gives on every cell, and a date cell without calamine's midnight."""
    frame = pl.DataFrame(rows, schema={c: pl.Utf8 for c in "abc"}, orient="row")
    got = normalise_columns(frame, ["a", "b", "c"])
    midnight = r"^(\d{4}-\d{2}-\d{2}) 00:00:00$"
    for c in "abc":
        want = apply(lambda e: normalise_text(e).str.replace(midnight, "$1"), frame[c].to_list())
        assert got[c].to_list() == want, c


@SETTINGS
@given(st.lists(st.one_of(DIGITISH, st.text(max_size=20), st.none()), min_size=1, max_size=40))
def test_parse_date_gives_a_date_or_null(values):
    got = apply(lambda e: parse_date(normalise_text(e)), values)
    assert all(v is None or isinstance(v, dt.date) for v in got)


@SETTINGS
@given(
    st.dates(min_value=dt.date(1900, 3, 1), max_value=dt.date(2100, 12, 31)),
    st.sampled_from(
        [
            "{y}-{m:02d}-{d:02d}",
            "{y}/{m}/{d}",
            "{y}.{m:02d}.{d:02d}",
            "{y}{m:02d}{d:02d}",
            "{y}年{m}月{d}日",
            "{y}-{m:02d}-{d:02d} 00:00:00",
        ]
    ),
)
def test_every_contract_date_form_round_trips(date, form):
    text = form.format(y=date.year, m=date.month, d=date.day)
    assert apply(lambda e: parse_date(normalise_text(e)), [text]) == [date]


@SETTINGS
@given(st.dates(min_value=dt.date(1927, 5, 18), max_value=dt.date(2100, 12, 31)))
def test_excel_serial_numbers_are_dates(date):
    """A 5-digit serial (10000 = 1927-05-18 .. 99999) is a date (docs/RULES.md §6)."""
    serial = (date - dt.date(1899, 12, 30)).days
    assert apply(lambda e: parse_date(normalise_text(e)), [str(serial), f"{serial}.0"]) == [date, date]


@SETTINGS
@given(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2030, 12, 31)).filter(lambda d: d.day > 12))
def test_day_first_dates_are_rejected_not_guessed(date):
    for text in (f"{date.day}/{date.month}/{date.year}", f"{date.day:02d}-{date.month:02d}-{date.year}"):
        assert apply(lambda e: parse_date(normalise_text(e)), [text]) == [None]


@SETTINGS
@given(st.lists(st.one_of(DIGITISH, st.text(max_size=15), st.none()), min_size=1, max_size=40))
def test_parse_amount_gives_whole_fen_or_null(values):
    got = apply(lambda e: parse_amount_fen(normalise_text(e)), values)
    assert all(v is None or isinstance(v, int) for v in got)


@SETTINGS
@given(st.integers(min_value=-10_000_000, max_value=10_000_000))
def test_amount_forms_round_trip(fen):
    yuan = f"{abs(fen) // 100}.{abs(fen) % 100:02d}"
    sign = "-" if fen < 0 else ""
    thousands = f"{abs(fen) // 100:,}.{abs(fen) % 100:02d}"
    texts = [f"{sign}{yuan}", f"{sign}{yuan}元", f"{sign}{thousands}", f"{sign}¥{yuan}"]
    assert apply(lambda e: parse_amount_fen(normalise_text(e)), texts) == [fen] * 4


# fewer examples: the parser's plan alone takes about 0.2 s to build and run, whatever the rows
@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(DIGITISH, st.text(max_size=25), st.none()), min_size=1, max_size=40))
def test_parse_year_is_a_plausible_year_or_null(values):
    # normalised first, as the pipeline does (a column of normalised text, then the parser)
    got = apply(parse_year, apply(normalise_text, values))
    assert all(v is None or 1900 <= v <= 2099 for v in got)


@SETTINGS
@given(
    st.lists(
        st.one_of(DIGITISH, st.text(alphabet="0123456789X", min_size=17, max_size=19), st.none()),
        min_size=1,
        max_size=40,
    )
)
def test_accepted_ids_are_exactly_the_valid_ones(values):
    frame = pl.DataFrame({"s": values}, schema={"s": pl.Utf8}).select(
        normalise_id(normalise_text(pl.col("s"))).alias("id")
    )
    frame = frame.with_columns(
        ok=id_format_ok(pl.col("id")) & id_checksum_ok(pl.col("id")),
        birth=id_birth_date(pl.col("id")),
    )
    for value, ok in zip(frame["id"].to_list(), frame["ok"].to_list()):
        expected = (
            value is not None and bool(re.fullmatch(r"\d{17}[\dX]", value)) and check_digit(value[:17]) == value[17]
        )
        assert ok == expected
    # normalising twice changes nothing
    again = frame.select(normalise_id(normalise_text(pl.col("id"))).alias("id"))["id"].to_list()
    assert again == frame["id"].to_list()


@SETTINGS
@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2026, 11, 1)), st.integers(0, 999))
def test_valid_ids_in_any_dress_are_read_back(birth, seq):
    body = f"360222{birth:%Y%m%d}{seq:03d}"
    pid = body + check_digit(body)
    dressed = [
        pid.lower(),
        f"  {pid} ",
        pid.translate(str.maketrans("0123456789X", "０１２３４５６７８９ｘ")),
        f"\u3000{pid}\u3000",
    ]
    frame = pl.DataFrame({"s": dressed}).select(normalise_id(normalise_text(pl.col("s"))).alias("id"))
    assert frame["id"].to_list() == [pid] * 4
    assert frame.select(id_checksum_ok(pl.col("id")).all()).item()
    assert frame.select(id_birth_date(pl.col("id")))["id"].to_list() == [birth] * 4


@SETTINGS
@given(
    st.lists(st.one_of(st.text(max_size=12), st.none()), min_size=1, max_size=30),
    st.lists(st.one_of(DIGITISH, st.none()), min_size=1, max_size=30),
)
def test_normalise_columns_is_normalise_text_on_every_column(a, b):
    from pipeline.parse import normalise_columns

    n = min(len(a), len(b))
    frame = pl.DataFrame({"a": a[:n], "b": b[:n]}, schema={"a": pl.Utf8, "b": pl.Utf8})
    expected = frame.select(normalise_text(pl.col("a")).alias("a"), normalise_text(pl.col("b")).alias("b"))
    assert normalise_columns(frame, ["a", "b"]).equals(expected)
