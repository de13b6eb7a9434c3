"""Named points where a test may kill the run (fault injection), and nothing else.

`MEDINS_FAULT_AT=<name>` makes the process SIGKILL itself on reaching that
point, exactly as a power cut would; the robustness tests use it to prove
that every point leaves the previous outputs intact. Unset, it costs a
dictionary lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after_read", "after_validate", "before_commit", "commit", "after_commit", "publish", "after_publish")


def checkpoint(name: str) -> None:
    if os.environ.get("MEDINS_FAULT_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
