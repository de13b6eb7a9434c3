"""Rows held in memory or in an Arrow IPC file: where they are changes memory use, nothing else.

A night in one piece keeps its rows in memory; a night in partitions
(pipeline/partition.py) writes each piece to its scratch folder and reads it
back when its partition comes. Everything else handles `Rows` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.faults import disk_full


@dataclass(frozen=True)
class Rows:
    """A frame of rows: `frame` in memory, or `path` to an Arrow IPC file holding it."""

    frame: pl.DataFrame | None = None
    path: Path | None = None

    @staticmethod
    def kept(frame: pl.DataFrame, spill_to: Path | None) -> Rows:
        """The frame in memory, or written to `spill_to` (an .arrow path) and let go."""
        if spill_to is None:
            return Rows(frame=frame)
        spill_to.parent.mkdir(parents=True, exist_ok=True)
        disk_full("spill", spill_to)
        frame.write_ipc(spill_to)
        return Rows(path=spill_to)

    def scan(self) -> pl.LazyFrame:
        if self.frame is not None:
            return self.frame.lazy()
        if self.path is None:
            raise ValueError("Rows without a frame or a path")
        return pl.scan_ipc(self.path)

    def load(self) -> pl.DataFrame:
        if self.frame is not None:
            return self.frame
        if self.path is None:
            raise ValueError("Rows without a frame or a path")
        return pl.read_ipc(self.path)
