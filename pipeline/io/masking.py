"""Masking of ID numbers (证件号码) in the Excel reports.

CONTRACT.md "Outputs": IDs in the workbooks read `360222********1234` unless
`--unmask` is given; the DuckDB file keeps them in full. An ID never shows
more than 10 of its characters.
"""

from __future__ import annotations

import re

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
    return value[:head] + "*" * (n - head - tail) + (value[n - tail:] if tail else "")


def mask_ids_in_text(text: str | None) -> str | None:
    """Mask every ID-like run of digits inside free text (a raw cell value, a reason)."""
    if text is None or not _ID_LIKE.search(text):
        return text
    return _ID_LIKE.sub(lambda m: mask_id(m.group()), text)
