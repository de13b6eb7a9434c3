"""One run at a time per database: an advisory lock beside the DuckDB file.

Two cron lines for two coverage years started at the same minute (this
year's benefits and next year's collection) are the normal case in the
collection period: the second waits for the first (`wait_minutes`) instead of
failing, and says once that it waits, naming the other run.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import RunLockedError
from pipeline.io.machine import writing_to

_POLL_SECONDS = 1.0
_LOCK = ("写运行锁文件", "the run's lock file")


def _holder(fd: int) -> str:
    """`pid <n>, started <time>`, as the holding run wrote it."""
    return os.pread(fd, 200, 0).decode(errors="replace").strip() or "?"


@contextmanager
def run_lock(db_path: Path, wait_minutes: float = 0.0, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold `<db>.lock` for the whole run. Held by another run: wait up to `wait_minutes` for it
    (telling `say` once, with the other run's pid and start time), else stop naming the holder."""
    lock_path = db_path.with_name(db_path.name + ".lock")
    with writing_to(db_path.parent, *_LOCK):  # the first write of a night: a full disk or a folder not ours
        db_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_minutes * 60
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if time.monotonic() >= deadline:
                    waited = f"，已等待{wait_minutes:g}分钟" if wait_minutes else ""
                    raise RunLockedError(
                        f"另一个运行（{holder}）正在使用 {db_path}{waited} / another run ({holder}) is using "
                        f"{db_path}" + (f"; waited {wait_minutes:g} min" if wait_minutes else "; see --wait")
                    ) from None
                if not told and say is not None:
                    say(
                        f"等待另一个运行结束（{holder}），最多{wait_minutes:g}分钟 / waiting up to "
                        f"{wait_minutes:g} min for another run ({holder}) to finish"
                    )
                    told = True
                time.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        with writing_to(db_path.parent, *_LOCK):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, started {dt.datetime.now():%Y-%m-%d %H:%M:%S}".encode(), 0)
        yield
    finally:
        os.close(fd)
