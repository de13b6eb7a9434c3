"""The night's workbooks, built side by side: one process per workbook, each reading the night's
committed copy of the database read-only (pipeline/run.py).

xlsxwriter writes cell by cell in Python (about 7 µs a cell on one core), so
the workbooks are built in parallel processes forked from the parsers'
forkserver, each opening the database file on its own; the largest workbook
starts first.
"""

from __future__ import annotations

import signal
from contextlib import suppress
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import duckdb

from pipeline.errors import MedinsError, MemoryLimitError, ReportError
from pipeline.faults import checkpoint
from pipeline.io.excel_out import WORKBOOK_FILES, WORKBOOKS, build_workbook, discard_reports
from pipeline.io.machine import write_error
from pipeline.params import Params


def _build_child(send: Connection, which: str, db_path: str, run_id: str, *args: Any) -> None:
    """Runs in a workbook process: sends (True, (temp, final)) or (False, the error)."""
    result: tuple[bool, Any]
    checkpoint("in_workbook")
    try:
        con = duckdb.connect(db_path, read_only=True)
        try:
            result = (True, build_workbook(which, con, run_id, *args[:3], unmask=args[3]))
        finally:
            con.close()
    except MedinsError as e:
        result = (False, e)
    except BaseException as e:  # sent as text: not every library's exception crosses a pipe
        name = WORKBOOK_FILES[which].format(year=args[0])
        machines = write_error(e, Path(args[1]), f"生成报表{name}", f"the workbook {name}")
        result = (
            False,
            machines or ReportError(f"生成报表失败 / building the workbook {which} failed: {type(e).__name__}: {e}"),
        )
    with suppress(BrokenPipeError):  # the night was stopped meanwhile
        send.send(result)


def _stopped(exitcode: int | None) -> MedinsError:
    """A workbook process that died without a word: SIGKILL is most often the system out of memory."""
    if exitcode == -signal.SIGKILL:
        return MemoryLimitError(
            "生成报表的进程被系统终止（SIGKILL），多为内存耗尽 / a workbook process was killed (SIGKILL), most "
            "often by the system running out of memory"
        )
    return ReportError(f"生成报表的进程意外退出 / a workbook process stopped ({exitcode})")


def build_workbooks(
    db_path: Path, run_id: str, coverage_year: int, out_dir: Path, params: Params, unmask: bool
) -> list[tuple[Path, Path]]:
    """Every workbook of the run, each in its own process from the committed database file; the
    staged (temp, final) pairs, or the first error raised here (the others' files removed)."""
    from pipeline.io.isolate import child_context  # the forkserver of the parsers

    ctx = child_context()
    running = []
    for which in WORKBOOKS:
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_build_child,
            args=(send, which, str(db_path), run_id, coverage_year, out_dir, params, unmask),
            daemon=True,  # ends with this process
        )
        proc.start()
        send.close()
        running.append((receive, proc))
    results: list[tuple[bool, Any]] = []
    try:
        for receive, proc in running:
            try:
                results.append(receive.recv())
            except EOFError:
                proc.join()
                results.append((False, _stopped(proc.exitcode)))
            proc.join()
    finally:
        for _, proc in running:
            if proc.is_alive():
                proc.kill()
                proc.join()
    staged = [value for ok, value in results if ok]
    errors = [value for ok, value in results if not ok]
    if errors:
        discard_reports(staged)
        raise errors[0]
    return staged
