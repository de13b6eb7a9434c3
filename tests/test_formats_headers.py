"""Every header spelling the bureau's exports use (docs/CONTRACT.md "Inputs", schemas/headers.toml):
each alias of each field however it is decorated, cells that must or must not match, and any
NFKC-equivalent spelling."""

from __future__ import annotations

import tomllib
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formats_cases import (
    HEADERS_TOML,
)
from schemas.headers import load_header_map

HEADER_DATA = tomllib.loads(HEADERS_TOML.read_text(encoding="utf-8"))
ALIASES = [
    (kind, name, alias)
    for kind in ("roster", "payments", "subsidy_list")
    for name, spec in HEADER_DATA[kind]["fields"].items()
    for alias in spec["aliases"]
]
_FULL_WIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}


def decorated(alias: str) -> list[str]:
    """The ways clerks and exports write one header: full-width brackets and commas, spaces and line
    breaks inside, the `*` of a required field, a unit in brackets after it."""
    middle = len(alias) // 2
    return [
        alias,
        "".join(_FULL_WIDTH.get(ch, ch) for ch in alias),
        f" {alias[:middle]}\n{alias[middle:]} ",
        f"{alias[:middle]}\r\n{alias[middle:]}",
        "\u3000".join(alias),
        f"*{alias}",
        f"{alias}*",
        f"＊{alias}",
        f"{alias}（元）",
        f"{alias}(元)",
        f"*{alias[:middle]} {alias[middle:]}（人民币元）",
    ]


@pytest.mark.parametrize(("kind", "field", "alias"), ALIASES, ids=[f"{k}-{a}" for k, _, a in ALIASES])
def test_every_alias_of_every_field_is_recognised_however_it_is_written(kind, field, alias):
    header_map = load_header_map(kind)
    assert {spelling: header_map.field_of(spelling) for spelling in decorated(alias)} == {
        spelling: field for spelling in decorated(alias)
    }


@pytest.mark.parametrize(
    ("kind", "cell", "field"),
    [
        ("payments", "实缴金额(元)", "amount"),
        ("payments", "缴费金额（元）", "amount"),
        ("roster", "县(市、区)", "county"),  # a header name with brackets matches as it is
        ("roster", "县（市、区）", "county"),
        ("payments", "缴费总金额", None),  # includes the fiscal subsidy: never the amount
        ("payments", "票证号码", None),  # the paper ticket: never the electronic ticket number
        ("payments", "缴费总金额(元)", None),
    ],
)
def test_header_cells_that_must_or_must_not_match(kind, cell, field):
    assert load_header_map(kind).field_of(cell) == field


# NFKC-equivalent single characters of every character the aliases use (full-width forms, small
# forms, Kangxi radicals, compatibility ideographs, ...).
_PREIMAGES: dict[str, list[str]] = {}
for _code in [*range(0x80, 0x30000)]:
    _ch = chr(_code)
    _norm = unicodedata.normalize("NFKC", _ch)
    if len(_norm) == 1 and _norm != _ch:
        _PREIMAGES.setdefault(_norm, []).append(_ch)


@st.composite
def spelled(draw, alias: str) -> str:
    chars = [draw(st.sampled_from([ch, *_PREIMAGES.get(ch, [])])) for ch in alias]
    spaces = st.sampled_from(["", "", " ", "\n", "\r\n", "\t", "\u3000", "\u00a0"])
    body = "".join(draw(spaces) + ch for ch in chars) + draw(spaces)
    star = st.sampled_from(["", "*", "＊"])
    unit = draw(st.sampled_from(["", "(元)", "（元）", "（ 元 ）", "(人民币元)"]))
    return draw(star) + draw(spaces) + body + unit + draw(star)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(ALIASES).flatmap(lambda a: st.tuples(st.just(a), spelled(a[2]))))
def test_any_nfkc_equivalent_spelling_of_an_alias_finds_its_field(case):
    (kind, field, _), cell = case
    assert load_header_map(kind).field_of(cell) == field
