"""The header maps of schemas/headers.toml, loaded once (docs/CONTRACT.md "Inputs")."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HEADERS_PATH = Path(__file__).resolve().parent / "headers.toml"
KINDS = ("roster", "payments", "subsidy_list")
_TRAILING_BRACKETS = re.compile(r"\([^()]*\)$")


def normalise_header(text: object) -> str:
    """A header cell as the maps spell it: NFKC (half-width), no whitespace (line breaks included),
    no leading or trailing '*' (a required-field mark)."""
    text = unicodedata.normalize("NFKC", str(text))
    return re.sub(r"\s+", "", text).strip("*")


@dataclass(frozen=True)
class Field:
    name: str
    aliases: tuple[str, ...]
    required: bool
    required_from_year: int | None
    or_fields: tuple[str, ...] = ()

    @property
    def header(self) -> str:
        """The canonical Chinese header, as clerks know it."""
        return self.aliases[0]

    def is_required(self, coverage_year: int) -> bool:
        if self.required:
            return True
        return self.required_from_year is not None and coverage_year >= self.required_from_year


@dataclass(frozen=True)
class HeaderMap:
    kind: str
    title: str
    fields: tuple[Field, ...]
    header_scan_rows: int
    min_header_matches: int
    ignore: frozenset[str]
    footer_prefixes: tuple[str, ...]
    values: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def alias_to_field(self) -> dict[str, str]:
        return dict(self._aliases())

    @cache  # noqa: B019 - the map is frozen and loaded once per kind
    def _aliases(self) -> tuple[tuple[str, str], ...]:
        out: dict[str, str] = {}
        for f in self.fields:
            for a in f.aliases:
                out.setdefault(normalise_header(a), f.name)
        return tuple(out.items())

    @cache  # noqa: B019
    def _ranks(self) -> dict[str, int]:
        return {normalise_header(a): i for f in self.fields for i, a in enumerate(f.aliases)}

    def _spelling(self, cell: object) -> str | None:
        """The alias spelling a header cell matches: as it is, else without one trailing bracket group
        (实缴金额(元) -> 实缴金额)."""
        norm = normalise_header(cell)
        aliases = self.alias_to_field()
        if norm in aliases:
            return norm
        shorter = _TRAILING_BRACKETS.sub("", norm)
        return shorter if shorter != norm and shorter in aliases else None

    def field_of(self, cell: object) -> str | None:
        spelling = self._spelling(cell)
        return None if spelling is None else self.alias_to_field()[spelling]

    def alias_rank(self, cell: object) -> int:
        """Position of the matched alias in its field's list (0: the canonical header)."""
        spelling = self._spelling(cell)
        return self._ranks().get(spelling, 99) if spelling else 99

    def is_ignored(self, cell: object) -> bool:
        return normalise_header(cell) in self.ignore

    def has_field(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    def header_of(self, name: str) -> str:
        return self.field(name).header

    def missing_required(self, seen: set[str], coverage_year: int) -> tuple[str, ...]:
        """Required fields without a column (a field standing in through its `or_fields` is present)."""
        return tuple(
            f.name
            for f in self.fields
            if f.is_required(coverage_year) and f.name not in seen and not (f.or_fields and set(f.or_fields) <= seen)
        )

    def value_aliases(self, name: str) -> dict[str, str]:
        """Spelling -> value kept, for a coded column (证件类型 `01` -> 居民身份证; 户籍 -> 本地户籍)."""
        return dict(dict(self.values).get(name, ()))


def match_header(cell: object, header_map: HeaderMap) -> str | None:
    """The field a header cell names, or None."""
    return None if cell is None else header_map.field_of(cell)


@cache
def load_header_map(kind: str) -> HeaderMap:
    with HEADERS_PATH.open("rb") as f:
        data = tomllib.load(f)
    section = data[kind]
    fields = tuple(
        Field(
            name=name,
            aliases=tuple(raw["aliases"]),
            required=bool(raw.get("required", False)),
            required_from_year=raw.get("required_from_year"),
            or_fields=tuple(raw.get("or_fields", ())),
        )
        for name, raw in section["fields"].items()
    )
    return HeaderMap(
        kind=kind,
        title=section["title"],
        fields=fields,
        header_scan_rows=int(section["header_scan_rows"]),
        min_header_matches=int(section["min_header_matches"]),
        ignore=frozenset(normalise_header(a) for a in data["ignore"]["aliases"]),
        footer_prefixes=tuple(unicodedata.normalize("NFKC", p) for p in data["footer"]["prefixes"]),
        values=tuple((name, tuple(spellings.items())) for name, spellings in data.get("values", {}).items()),
    )
