"""A night too big for memory in one piece runs in partitions of residents.

The rows of one person (every roster row and every payment under the ID
number) always fall in the same partition, by a hash of the ID: every rule of
docs/RULES.md is about one person, and the duplicate rule of the roster is keyed
by the ID. The one rule that crosses persons is the payments' duplicate rule,
keyed by 电子税票号码: a ticket number that appears under two different ID
numbers is a conflict (all its rows are rejected, docs/RULES.md §6), so the rows of
such tickets (found first: `shared_tickets`) all go to partition 0, where the
rule sees them together. The result is the same as one
piece; `tests/test_partitions.py` compares every table and workbook.
"""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path

import polars as pl

from pipeline.io.preflight import OLE_MAGIC

# Engineering figures, not policy numbers. In one piece a night takes about 1.5 GB of memory per
# million residents (benchmarks/README.md): up to ONE_PIECE_ROWS roster rows it runs in one piece
# (the fastest, and the only way with the incremental DuckDB write); above, in partitions of about
# PARTITION_ROWS, each near 0.7 GB.
ONE_PIECE_ROWS = 1_500_000
PARTITION_ROWS = 500_000
_ID_SEED, _TICKET_SEED = 7, 11  # any fixed seeds: the hashes are used within one run only


_DIMENSION = re.compile(rb'<dimension\s+ref="[A-Z]+\d+:?[A-Z]*(\d*)"')
# bytes per row of a zipped sheet that declares no dimension, and of an old .xls (a BIFF8 row of a
# dozen cells, each a LABELSST or NUMBER record of 14-18 bytes): planning figures only
_BYTES_PER_ROW = 60
_BYTES_PER_XLS_ROW = 150


def estimated_rows(path: Path) -> int:
    """About how many rows a file holds: an .xlsx sheet's <dimension> (the first bytes of its XML; for
    a sheet without one, its stored size / 60 bytes), an .xls file's size / 150 bytes, a text file's
    lines. Only a planning figure (how many partitions a night runs in), never a count of rows; 0 for
    an unreadable file."""
    try:
        if zipfile.is_zipfile(path):
            return _zipped_rows(path)
        with open(path, "rb") as f:
            if f.read(len(OLE_MAGIC)) == OLE_MAGIC:
                return path.stat().st_size // _BYTES_PER_XLS_ROW
            f.seek(0)
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return 0


def _zipped_rows(path: Path) -> int:
    total = 0
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"):
                with z.open(info) as f:
                    m = _DIMENSION.search(f.read(4096))
                total += int(m.group(1)) if m and m.group(1) else info.compress_size // _BYTES_PER_ROW
            elif info.filename == "content.xml":  # an .ods
                total += info.compress_size // _BYTES_PER_ROW
    return total


def partition_count(
    roster_rows: int, one_piece_rows: int = ONE_PIECE_ROWS, partition_rows: int = PARTITION_ROWS
) -> int:
    """How many partitions a night of about `roster_rows` roster rows runs in (1: one piece)."""
    if roster_rows <= one_piece_rows:
        return 1
    return max(2, math.ceil(roster_rows / max(1, partition_rows)))


def _id_part(n_parts: int) -> pl.Expr:
    """A hash of the ID modulo the partitions (with one partition every row is in it: no hash to make)."""
    if n_parts == 1:
        return pl.lit(0, dtype=pl.UInt32)
    return (pl.col("id_number").hash(seed=_ID_SEED) % n_parts).cast(pl.UInt32)


def roster_partition(n_parts: int) -> pl.Expr:
    """The partition of a checked roster row."""
    return _id_part(n_parts)


def shared_tickets(frames: list[pl.LazyFrame]) -> pl.Series:
    """The ticket numbers (of rows that take part in the duplicate rule) found under more than one ID
    number across all payment sheets. A hash of the ticket finds the numbers that repeat; only
    their rows are then compared as text, so the answer is exact."""
    if not frames:
        return pl.Series("ticket_no", [], dtype=pl.Utf8)
    keyed = [f.filter(pl.col("__key_ok").fill_null(False)) for f in frames]
    hashed = pl.concat([f.select(pl.col("ticket_no").hash(seed=_TICKET_SEED).alias("t")) for f in keyed])
    repeated = hashed.filter(pl.col("t").is_duplicated()).unique().collect()["t"].implode()
    rows = pl.concat(
        [
            f.filter(pl.col("ticket_no").hash(seed=_TICKET_SEED).is_in(repeated)).select("ticket_no", "id_number")
            for f in keyed
        ]
    )
    return (
        rows.group_by("ticket_no")
        .agg(pl.col("id_number").n_unique().alias("n"))
        .filter(pl.col("n") > 1)
        .collect()["ticket_no"]
    )


def payment_partition(n_parts: int, frames: list[pl.LazyFrame]) -> pl.Expr:
    """The partition of a checked payment row of `frames` (every payment sheet): its ID's, or 0 for a
    ticket shared by two IDs (`shared_tickets`; with one partition there is nothing to look for)."""
    if n_parts == 1:
        return _id_part(n_parts)
    shared_ticket = pl.col("__key_ok").fill_null(False) & pl.col("ticket_no").is_in(shared_tickets(frames).implode())
    return pl.when(shared_ticket).then(pl.lit(0, dtype=pl.UInt32)).otherwise(_id_part(n_parts))
