"""Errors of the machine, told apart from problems of an input file.

A full disk, a folder that cannot be written or an input removed while it was
read are not damaged files: the message names what happened and where, so the
clerk frees space or fixes a permission instead of exporting a roster again.
`kind_of` classifies an exception by its errno, or by its text where a native
library gives only text (DuckDB: "Could not write file …: No space left on
device"; polars and calamine: "… (os error 28)"). `writing_to` turns such an
error raised while writing into a folder into NoSpaceError (exit 9) or
NoPermissionError (exit 10); pipeline/io/isolate.py does the same for its
parser children, pipeline/io/excel_out/processes.py for the workbook processes
and pipeline/io/store.py for the database.

"约需 / about M MB needed" is an estimate and is said as one (`night_needs`):
on the file system of the folder that filled up, what a night adds at its peak,
in multiples of the inputs' total size S (measured on the sample data and the
1M benchmark, rounded up): the parsed rows as Arrow text (parser scratch,
moved into the cache) about 4 S, tonight's rows in the database beside the
year's previous ones until the commit removes them about 3 S plus 4 MB of
tables, the workbooks with xlsxwriter's temporary sheet files about 2 S; and
the night's private copy of the published database, its size exactly.
"""

from __future__ import annotations

import errno
import getpass
import math
import os
import pwd
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import MedinsError, NoPermissionError, NoSpaceError

NO_SPACE, NO_PERMISSION, GONE = "no_space", "no_permission", "gone"
_ERRNOS = {
    errno.ENOSPC: NO_SPACE,
    errno.EDQUOT: NO_SPACE,
    errno.EACCES: NO_PERMISSION,
    errno.EPERM: NO_PERMISSION,
    errno.EROFS: NO_PERMISSION,
    errno.ENOENT: GONE,
    errno.ESTALE: GONE,
}
_TEXTS = (
    (NO_SPACE, ("no space left on device", "disk quota exceeded", "(os error 28)", "(os error 122)")),
    (NO_PERMISSION, ("permission denied", "read-only file system", "(os error 13)", "(os error 30)")),
    (GONE, ("no such file or directory", "stale file handle", "(os error 2)", "(os error 116)")),
)
MB = 1024**2
# the estimate's multiples of the inputs' size (module docstring)
PARSED_ROWS_PER_INPUT_BYTE = 4
DATABASE_ROWS_PER_INPUT_BYTE = 3
DATABASE_TABLES_BYTES = 4 * MB
WORKBOOKS_PER_INPUT_BYTE = 2


def kind_of(e: BaseException) -> str | None:
    """NO_SPACE, NO_PERMISSION or GONE when `e` (or what it was raised from) is that error of the
    machine; None otherwise (a damaged file, a bug)."""
    seen: BaseException | None = e
    for _ in range(5):  # an error wrapped by a library (xlsxwriter's FileCreateError) keeps its cause
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno in _ERRNOS:
            return _ERRNOS[seen.errno]
        text = str(seen).lower()
        for kind, words in _TEXTS:
            if any(word in text for word in words):
                return kind
        seen = seen.__cause__ or seen.__context__
    return None


def _existing(folder: Path) -> Path:
    """The folder, or its nearest ancestor that exists (a folder not made yet is on its parent's disk)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(_existing(folder)).free


def _mb(size: int) -> str:
    """Megabytes, one decimal under 10 (a nearly full disk does not read as "0 MB")."""
    return f"{size / MB:.1f}" if size < 10 * MB else f"{size // MB}"


def no_space_message(folder: str, what_zh: str, what_en: str, needed: int | None) -> str:
    """The line of NoSpaceError, the free space measured now."""
    try:
        free = _mb(free_bytes(Path(folder)))
    except OSError:
        free = "?"
    need_zh = f"，约需 {math.ceil(needed / MB)} MB" if needed else ""
    need_en = f", about {math.ceil(needed / MB)} MB needed" if needed else ""
    return (
        f"磁盘空间不足（可用 {free} MB{need_zh}；{what_zh}时），本次未发布，已发布的文件未改动 / no space left on "
        f"device: {folder} (free {free} MB{need_en}) while writing {what_en}; the night was not published, the "
        "published files are untouched"
    )


def _permission(folder: Path) -> tuple[str, str]:
    """How the folder may be written, in Chinese and English: read-only, or its mode, owner and our user."""
    where = _existing(folder)
    try:
        st = where.stat()
        if os.statvfs(where).f_flag & os.ST_RDONLY:
            return "文件系统只读", "read-only file system"
    except OSError as e:
        return f"无法查看（{e.strerror}）", f"cannot stat it: {e.strerror}"
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    mode = stat.filemode(st.st_mode)
    try:
        me = f"{getpass.getuser()} (uid {os.getuid()})"
    except (KeyError, OSError):
        me = f"uid {os.getuid()}"
    return f"权限 {mode}，属主 {owner}，运行用户 {me}", f"permission {mode}, owner {owner}, running as {me}"


def no_permission(folder: Path, what_zh: str, what_en: str) -> NoPermissionError:
    zh, en = _permission(folder)
    return NoPermissionError(
        f"没有写入权限（{what_zh}）：{folder}，{zh}；本次未发布，已发布的文件未改动 / cannot write {what_en} in "
        f"{folder}: {en}; the night was not published, the published files are untouched"
    )


def write_error(e: BaseException, folder: Path, what_zh: str, what_en: str) -> MedinsError | None:
    """The typed error for `e` raised while writing into `folder`; None when it is not a full disk or a
    permission (the caller decides)."""
    kind = kind_of(e)
    if kind == NO_SPACE:
        return NoSpaceError(str(folder), what_zh, what_en)
    if kind == NO_PERMISSION:
        return no_permission(folder, what_zh, what_en)
    return None


@contextmanager
def writing_to(folder: Path, what_zh: str, what_en: str) -> Iterator[None]:
    """A full disk or a missing permission while the block writes into `folder`: its typed error."""
    try:
        yield
    except MedinsError:
        raise
    except Exception as e:
        typed = write_error(e, folder, what_zh, what_en)
        if typed is None:
            raise
        raise typed from None


def night_needs(folder: Path, inputs_bytes: int, db_path: Path, out_dir: Path) -> int:
    """About how many bytes a night adds at its peak on the file system of `folder` (module docstring)."""

    def device(path: Path) -> int:
        try:
            return _existing(path).stat().st_dev
        except OSError:
            return -1

    here = device(folder)
    published = db_path.stat().st_size if db_path.exists() else 0
    parts = (
        (out_dir, (PARSED_ROWS_PER_INPUT_BYTE + WORKBOOKS_PER_INPUT_BYTE) * inputs_bytes),
        (db_path.parent, published + DATABASE_ROWS_PER_INPUT_BYTE * inputs_bytes + DATABASE_TABLES_BYTES),
    )
    return sum(size for where, size in parts if device(where) == here)
