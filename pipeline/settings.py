"""What one night is asked to do: every setting of a run in one frozen object."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.io.isolate import ReadLimits

Stage = Callable[[str], AbstractContextManager[object]]


@contextmanager
def _untimed(name: str) -> Iterator[None]:
    yield


@dataclass(frozen=True)
class RunSettings:
    """One run of `medins run` (docs/CONTRACT.md "The command").

    `roster`, `payments`, `subsidy_lists`: files, folders or globs. `as_of`: the
    data date D the night's exports reflect (docs/RULES.md §10; default: the
    local date when the run starts): the date of the night's progress snapshot
    and the "today" of the implausible-date checks of §6. `step`: a context
    manager per stage name, for timings and progress; `say`: tells the operator
    something now (that the run waits for another's lock). `partition_rows`: for
    tests, one piece up to that many roster rows, else partitions of that size
    (default: pipeline/partition.py). `wait_minutes`: how long to wait for
    another run's lock (0: stop at once).
    """

    coverage_year: int
    region: str
    roster: tuple[str, ...] | list[str]
    payments: tuple[str, ...] | list[str]
    db_path: Path
    out_dir: Path
    subsidy_lists: tuple[str, ...] | list[str] = ()
    unmask: bool = False
    as_of: dt.date | None = None
    step: Stage = field(default=_untimed, compare=False)
    write_workbooks: bool = True
    read_limits: ReadLimits = field(default_factory=ReadLimits)
    skip_bad_files: bool = False
    use_cache: bool = True
    partition_rows: int | None = None
    wait_minutes: float = 0.0
    say: Callable[[str], None] | None = field(default=None, compare=False)  # a line for the operator, now

    def input_specs(self) -> dict[str, list[str]]:
        return {"roster": list(self.roster), "payments": list(self.payments), "subsidy_list": list(self.subsidy_lists)}
