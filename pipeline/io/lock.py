"""One run at a time per database: an advisory lock beside the DuckDB file."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import RunLockedError


@contextmanager
def run_lock(db_path: Path):
    """Hold `<db>.lock` for the whole run; a second run exits at once naming the holder's pid."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = db_path.with_name(db_path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise RunLockedError(
                f"另一个运行（pid {holder}）正在使用 {db_path} / another run (pid {holder}) is using {db_path}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
