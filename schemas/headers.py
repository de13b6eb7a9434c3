"""The header maps of schemas/headers.toml, loaded once."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HEADERS_PATH = Path(__file__).resolve().parent / "headers.toml"
KINDS = ("roster", "payments")


def normalise_header(text: str) -> str:
    """A header cell as the maps spell it: half-width, no whitespace, no '*' marker."""
    text = unicodedata.normalize("NFKC", str(text))
    text = re.sub(r"\s+", "", text)
    return text.strip("*")


@dataclass(frozen=True)
class Field:
    name: str
    aliases: tuple[str, ...]
    required: bool
    required_from_year: int | None

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

    def alias_to_field(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in self.fields:
            for a in f.aliases:
                out.setdefault(normalise_header(a), f.name)
        return out

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    def header_of(self, name: str) -> str:
        return self.field(name).header


@lru_cache(maxsize=None)
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
    )
