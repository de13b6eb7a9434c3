"""Rejection reasons that name the fix: an identity label (人员身份) or special event (特殊情形) that
policy_params/labels.toml does not list is shown with the accepted spellings closest to it
(docs/RULES.md §1 "Unknown labels": the row is still rejected, never corrected silently).

CJK spellings are compared with difflib's ratio (2 x the characters two texts share, in order,
over both lengths), once per distinct unknown text of a sheet, a handful, not per row.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from operator import itemgetter

import polars as pl

from pipeline.params import Params
from pipeline.parse import split_labels

HINT_MIN_RATIO = 0.5  # difflib's ratio: 2 x characters shared in order / both lengths (低保户 ~ 低保对象: 0.57)
HINT_NAMES = 2  # canonical names suggested at most


def closest_spellings(text: str, names: tuple[tuple[str, tuple[str, ...]], ...]) -> list[str]:
    """The accepted spellings closest to an unknown one: for each of the closest canonical names
    (labels.toml's label or event with its aliases), its spelling nearest to `text`, then the name."""
    scored = []
    for order, (name, aliases) in enumerate(names):
        ratio, spelling = max(
            ((SequenceMatcher(None, text, s).ratio(), s) for s in (name, *aliases)), key=itemgetter(0)
        )
        if ratio >= HINT_MIN_RATIO:
            scored.append((-ratio, order, spelling, name))
    out: dict[str, None] = {}  # ordered, without repeats (the nearest spelling may be the name itself)
    for *_, spelling, name in sorted(scored)[:HINT_NAMES]:
        out.update(dict.fromkeys((spelling, name)))
    return list(out)


def _hint(suggestions: list[str]) -> str:
    return f"（是否为：{'、'.join(suggestions)}？）" if suggestions else ""


def with_spelling_hints(rejected: pl.DataFrame, params: Params) -> pl.DataFrame:
    """{label_hint} / {event_hint} of the unknown-label and unknown-event reasons filled with the
    closest accepted spellings (“低保户”（是否为：低保对象、城乡低保对象？）), worked out once per
    distinct unknown text, not per row."""
    reason, raw = pl.col("reason"), pl.col("raw_value")
    is_label = reason.str.contains("{label_hint}", literal=True)
    is_event = reason.str.contains("{event_hint}", literal=True)
    aliases = params.label_aliases()
    unknown = split_labels(raw).list.eval(pl.element().filter(~pl.element().is_in(list(aliases))))
    label_texts = rejected.filter(is_label).select(unknown.explode().drop_nulls().unique()).to_series()
    labels = tuple((lab.name, lab.aliases) for lab in params.labels)
    label_hints = {t: f"“{t}”{_hint(closest_spellings(t, labels))}" for t in label_texts.to_list()}
    event_texts = rejected.filter(is_event).select(raw.drop_nulls().unique()).to_series()
    event_hints = {t: _hint(closest_spellings(t, params.event_types)) for t in event_texts.to_list()}
    label_hint = unknown.list.eval(pl.element().replace_strict(label_hints, default="", return_dtype=pl.Utf8))
    event_hint = raw.replace_strict(event_hints, default="", return_dtype=pl.Utf8)
    return rejected.with_columns(
        pl.when(is_label)
        .then(reason.str.replace("{label_hint}", label_hint.list.join("、"), literal=True))
        .when(is_event)
        .then(reason.str.replace("{event_hint}", event_hint, literal=True))
        .otherwise(reason)
        .alias("reason")
    )
