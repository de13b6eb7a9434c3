"""Named points where a test may break the run (fault injection), and nothing else.

`MEDINS_FAULT_AT=<name>` makes the process SIGKILL itself on reaching that
point, exactly as a power cut would (or, at CHILD_POINTS, as the system's
out-of-memory killer would); the robustness tests use it to prove that every
point leaves the previous outputs intact.
`MEDINS_FAULT_ENOSPC=<name>` makes the write at that point fail as a full
disk does (OSError ENOSPC); read in the parser and workbook processes too, so
tests/test_machine.py reaches every write of a night. Unset, each costs a
dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

# Each a distinct moment of a night, in order: inputs read; rows checked; the night's rows written, the
# COMMIT not yet issued; COMMIT done, the copy not yet checkpointed; the workbooks built, nothing
# published; the old file kept as .previous, the copy not yet renamed; the database published, the
# workbooks not yet.
POINTS = ("after_read", "after_check", "before_commit", "commit", "after_workbooks", "publish", "after_publish")
# In a parser child, in a workbook process: the child alone is killed, as the system's out-of-memory killer does.
CHILD_POINTS = ("in_parser", "in_workbook")
# The writes of a night, in order: a parser child's rows (scratch), moving them into the cache, the
# private copy of the database, the night's rows into it, a partitioned night's rows (spill), a workbook.
WRITES = ("scratch", "cache", "database_copy", "database_write", "spill", "workbook")


def checkpoint(name: str) -> None:
    if os.environ.get("MEDINS_FAULT_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def disk_full(name: str, path: Path | str) -> None:
    if os.environ.get("MEDINS_FAULT_ENOSPC") == name:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
