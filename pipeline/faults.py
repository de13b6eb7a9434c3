"""Named points where a test may kill the run (fault injection), and nothing else.

`MEDINS_FAULT_AT=<name>` makes the process SIGKILL itself on reaching that
point, exactly as a power cut would; the robustness tests use it to prove
that every point leaves the previous outputs intact. Unset, it costs a
dictionary lookup.
"""

from __future__ import annotations

import os
import signal

# Each a distinct moment of a night, in order: inputs read; rows checked; the night's rows written, the
# COMMIT not yet issued; COMMIT done, the copy not yet checkpointed; the workbooks built, nothing
# published; the old file kept as .previous, the copy not yet renamed; the database published, the
# workbooks not yet.
POINTS = ("after_read", "after_check", "before_commit", "commit", "after_workbooks", "publish", "after_publish")


def checkpoint(name: str) -> None:
    if os.environ.get("MEDINS_FAULT_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
