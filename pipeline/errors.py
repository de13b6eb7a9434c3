"""Typed errors of the library. `pipeline.cli` is the one place that turns them
into a one-line Chinese + English message and an exit code."""

from __future__ import annotations


class MedinsError(Exception):
    """Base: the run could not go on. The message is shown to the operator as is."""

    exit_code = 1


class InputFileError(MedinsError):
    """An input file is missing, unreadable, of a kind that cannot be read, or has no header row."""

    exit_code = 2


class ParamsError(MedinsError):
    """The policy parameters are missing or malformed."""

    exit_code = 3


class ConservationError(MedinsError):
    """Rows read != accepted + rejected + skipped: the pipeline lost a row."""

    exit_code = 4


class TotalsError(MedinsError):
    """Subsidy totals do not add up to the grand total."""

    exit_code = 4


class RunLockedError(MedinsError):
    """Another run is using the database."""

    exit_code = 5


class ReportError(MedinsError):
    """The reports cannot be written for the run asked for."""

    exit_code = 6


class PersonNotFound(MedinsError):
    """`medins explain`: no such person on the coverage year's roster."""

    exit_code = 6


class ExplainArgumentError(MedinsError):
    """`medins explain` was given an ID it cannot look up as given (a masked ID without --name)."""

    exit_code = 2


class DatabaseDamagedError(MedinsError):
    """The published database file is truncated, damaged or not a DuckDB file."""

    exit_code = 7


class DatabaseWriteError(MedinsError):
    """The night's database could not be written or published, for a reason of the machine other than a
    full disk or a missing permission (an I/O error of the disk, a folder removed meanwhile)."""

    exit_code = 8


class NoSpaceError(MedinsError):
    """No space left on the device where the night writes (parser scratch, cache, database, workbooks).

    Made by pipeline/io/machine.py. The free space is measured when the message is shown (after the
    night's scratch files are removed: what the operator has now); `needed` is the night's estimate
    (pipeline/io/machine.py `night_needs`), filled in by pipeline/run.py."""

    exit_code = 9

    def __init__(self, folder: str, what_zh: str, what_en: str, needed: int | None = None) -> None:
        super().__init__(folder, what_zh, what_en, needed)
        self.folder, self.what_zh, self.what_en, self.needed = folder, what_zh, what_en, needed

    def __str__(self) -> str:
        from pipeline.io.machine import no_space_message

        return no_space_message(self.folder, self.what_zh, self.what_en, self.needed)


class NoPermissionError(MedinsError):
    """A folder the night writes into cannot be written (permission, a read-only file system)."""

    exit_code = 10


class MemoryLimitError(MedinsError):
    """A parser (or a workbook process) ran out of memory: its limit reached, or killed by the system."""

    exit_code = 11


class InputChangedError(MedinsError):
    """An input file was removed or changed while the night read it."""

    exit_code = 12


class RunArgumentError(MedinsError):
    """`medins run` was given arguments it cannot run with (a data date after today, a database
    that is not where the history is)."""

    exit_code = 2


class ParamsUnconfirmedError(ParamsError):
    """A coverage year added with `medins params new` still has values not confirmed against its
    notice, or without a citation (docs/NEW-YEAR.md). `medins run` refuses the year; `medins params
    check` lists them."""

    exit_code = 3


class OutputSchemaError(MedinsError):
    """The night's rows of a table do not fit the field registry (schemas/tables.toml): a bug of ours."""

    exit_code = 4
