"""What one night is asked to do: every setting of a run in one frozen object."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.io.isolate import ReadLimits

SAMPLE_DIR = Path("sample_data")
# file-name stems of the inputs a night reads from sample_data/<Y>/ when given no files
SAMPLE_KINDS = {"roster": "roster*", "payments": "payments*", "subsidy_list": "subsidy_list*"}

Stage = Callable[[str], AbstractContextManager[object]]


@dataclass(frozen=True)
class RunSettings:
    """One run of `medins run` (docs/CONTRACT.md "The command").

    `roster`, `payments`, `subsidy_lists`: files, folders or globs (none of the
    first two: sample_data/<Y>/). `today`: the run date the dates are judged
    against (default: the local date when the run starts). `step`: a context
    manager per stage name, for timings and progress. `partition_rows`: for
    tests, one piece up to that many roster rows, else partitions of that size
    (default: pipeline/partition.py).
    """

    coverage_year: int
    region: str
    roster: tuple[str, ...] | list[str]
    payments: tuple[str, ...] | list[str]
    db_path: Path
    out_dir: Path
    subsidy_lists: tuple[str, ...] | list[str] = ()
    unmask: bool = False
    today: dt.date | None = None
    step: Stage | None = field(default=None, compare=False)
    write_workbooks: bool = True
    read_limits: ReadLimits = field(default_factory=ReadLimits)
    skip_bad_files: bool = False
    use_cache: bool = True
    partition_rows: int | None = None

    def input_specs(self) -> dict[str, list[str]]:
        """Per kind, what to read; no roster and no payments: the sample data of the year."""
        if not self.roster and not self.payments:
            base = SAMPLE_DIR / str(self.coverage_year)
            if not base.is_dir():
                base = SAMPLE_DIR
            found = {
                kind: sorted(str(p) for p in base.glob(pattern) if p.is_file() and not p.name.startswith((".", "~$")))
                for kind, pattern in SAMPLE_KINDS.items()
            }
            return {
                "roster": found["roster"] or [str(base / "roster*")],
                "payments": found["payments"] or [str(base / "payments*")],
                "subsidy_list": list(self.subsidy_lists) or found["subsidy_list"],
            }
        return {"roster": list(self.roster), "payments": list(self.payments), "subsidy_list": list(self.subsidy_lists)}
