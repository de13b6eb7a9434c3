"""Look at an input file before any parser does, and refuse hostile or broken ones with a reason.

What is checked, in order, reading only what is needed:
- it exists, is readable and is not empty;
- its first bytes: an OLE/CFB container is an old .xls or a password-protected
  workbook (told apart by the EncryptionInfo stream); text, CSV or HTML renamed
  to .xlsx is named as such; anything else that is not a zip is not an .xlsx;
- the zip opens (a truncated download has no central directory) and holds a
  workbook (`xl/workbook.xml`);
- the unpacked size of every member and of the whole is capped (a 3 MB zip
  bomb unpacks to 3 GB), as is the compression ratio of large members;
- every sheet's declared dimension (`<dimension ref="A1:XFD1048576"/>`): one cell
  at XFD1048576 makes calamine allocate the whole rectangle and the process
  dies outright, so absurd rectangles are refused here.

The parser then still runs in a child process with a memory limit and a
timeout (pipeline/io/isolate.py) for whatever these checks cannot see.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputFileError

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\s+ref="([A-Z]+)(\d+)(?::([A-Z]+)(\d+))?"')


@dataclass(frozen=True)
class Limits:
    """Caps for one input file; generous for a province's real exports."""

    max_member_bytes: int = 2 * 1024**3        # one unpacked XML part
    max_total_bytes: int = 4 * 1024**3         # the whole unpacked workbook
    max_ratio: int = 200                       # unpacked / packed, for members over `ratio_floor_bytes`
    ratio_floor_bytes: int = 64 * 1024**2
    max_sheet_cells: int = 60_000_000          # declared rows x columns of one sheet
    max_sheet_columns: int = 1_000


def _column_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n


def _kind_of_text(head: bytes) -> str | None:
    """'HTML', 'CSV/文本' or None for bytes that do not look like text."""
    stripped = head.lstrip(b"\xef\xbb\xbf\xff\xfe\xfe\xff \t\r\n")
    if stripped[:1] == b"<" and re.match(rb"<(!doctype|html|\?xml|table|meta)", stripped[:20].lower()):
        return "HTML/XML"
    try:
        head.decode("utf-8")
        return "CSV/文本"
    except UnicodeDecodeError:
        pass
    try:
        head.decode("gb18030")
        return "CSV/文本"
    except UnicodeDecodeError:
        return None


def check_file(path: Path, limits: Limits = Limits()) -> None:
    """Raise InputFileError naming what is wrong with `path`; return quietly for a plausible .xlsx."""
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except IsADirectoryError:
        raise InputFileError(f"这是目录不是文件 / is a directory, not a file: {path}") from None
    except OSError as e:
        raise InputFileError(f"无法读取文件 / cannot read file: {path} ({e.strerror})") from None
    if not head:
        raise InputFileError(f"文件是空的 / file is empty: {path}")
    if head.startswith(OLE_MAGIC):
        with path.open("rb") as f:
            body = f.read(8 * 1024**2)
        if ENCRYPTION_INFO in body:
            raise InputFileError(
                f"工作簿设置了打开密码，请取消密码后另存为 .xlsx / workbook is password-protected, "
                f"remove the password and save as .xlsx: {path}"
            )
        raise InputFileError(
            f"文件是旧版 .xls 格式，请用 Excel 或 WPS 另存为 .xlsx / old .xls workbook, save it as .xlsx: {path}"
        )
    if head.startswith(EMPTY_ZIP_MAGIC):
        raise InputFileError(f"文件是空的压缩包，不是 .xlsx 工作簿 / empty zip, not an .xlsx workbook: {path}")
    if not head.startswith(ZIP_MAGIC):
        kind = _kind_of_text(head)
        if kind:
            raise InputFileError(
                f"文件是{kind}内容，只是扩展名为 .xlsx，请在 Excel 中另存为 .xlsx / "
                f"{'HTML' if kind.startswith('HTML') else 'text/CSV'} file renamed to .xlsx, save it as .xlsx: {path}"
            )
        raise InputFileError(f"文件不是 .xlsx 工作簿 / not an .xlsx workbook: {path}")
    try:
        with zipfile.ZipFile(path) as z:
            _check_zip(path, z, limits)
    except zipfile.BadZipFile:
        raise InputFileError(f"文件已损坏或不完整 / workbook is truncated or damaged: {path}") from None
    except (OSError, EOFError, NotImplementedError, RuntimeError) as e:
        raise InputFileError(f"文件已损坏或不完整 / workbook is truncated or damaged: {path} ({type(e).__name__})") from None


def _check_zip(path: Path, z: zipfile.ZipFile, limits: Limits) -> None:
    infos = z.infolist()
    names = {i.filename for i in infos}
    if "xl/workbook.xml" not in names:
        raise InputFileError(f"压缩包中没有 Excel 工作簿 / zip holds no Excel workbook (xl/workbook.xml): {path}")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise InputFileError(f"工作簿已加密 / workbook part is encrypted: {path}")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if (info.file_size > limits.max_member_bytes
                or (info.file_size > limits.ratio_floor_bytes and ratio > limits.max_ratio)):
            raise InputFileError(
                f"工作簿解压后过大（{info.filename} {info.file_size / 1024**2:,.0f} MB），疑似压缩炸弹 / "
                f"too large when unpacked ({info.filename}): {path}"
            )
    if total > limits.max_total_bytes:
        raise InputFileError(
            f"工作簿解压后过大（{total / 1024**2:,.0f} MB）/ too large when unpacked: {path}"
        )
    for info in infos:
        if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"):
            _check_dimension(path, z, info.filename, limits)


def _check_dimension(path: Path, z: zipfile.ZipFile, member: str, limits: Limits) -> None:
    with z.open(member) as f:
        head = f.read(8192)
    m = _DIMENSION.search(head)
    if not m:
        return
    first_col, first_row = _column_number(m.group(1).decode()), int(m.group(2))
    last_col = _column_number(m.group(3).decode()) if m.group(3) else first_col
    last_row = int(m.group(4)) if m.group(4) else first_row
    # calamine allocates from the first used cell to the last: the rectangle is what costs memory
    rows, cols = last_row - min(first_row, last_row) + 1, last_col - min(first_col, last_col) + 1
    if cols > limits.max_sheet_columns or rows * cols > limits.max_sheet_cells:
        ref = m.group(0).decode(errors="replace").split('"')[1]
        raise InputFileError(
            f"工作表范围异常（{ref}，{rows:,}行×{cols:,}列），请删除表格末尾的空行空列后另存 / "
            f"sheet dimensions absurd ({member} {ref}): {path}"
        )
