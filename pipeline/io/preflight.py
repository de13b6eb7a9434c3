"""Look at an input file before any parser does: name its format, refuse what cannot be read.

Formats are told apart by their first bytes and container, never by the file
name (docs/CONTRACT.md "Inputs"):
- a zip holding `xl/workbook.xml` is .xlsx/.xlsm, `xl/workbook.bin` .xlsb, an
  OpenDocument `mimetype` .ods; the zip must open (a truncated download has no
  central directory), and the unpacked size of every part and of the whole is
  capped (a 3 MB zip bomb unpacks to 3 GB), as is every .xlsx sheet's declared
  dimension (one cell at XFD1048576 makes calamine allocate the whole rectangle
  and die);
- an OLE compound file is an old .xls when it holds a `Workbook` (or BIFF5
  `Book`) stream; one holding `EncryptionInfo` is a password-protected
  workbook, a `Workbook` stream that opens with FILEPASS an encrypted .xls;
  any other compound file (a WPS .et, a Word file) is refused;
- an HTML page or an Excel 2003 XML file (what web systems call an "Excel
  export") is refused with what to do;
- other text that decodes as UTF-8 or GB18030 is delimited text (CSV).

The parser then still runs in a child process with a memory limit and a
timeout (pipeline/io/isolate.py) for whatever these checks cannot see.
"""

from __future__ import annotations

import codecs
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputFileError

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\s+ref="([A-Z]+)(\d+)(?::([A-Z]+)(\d+))?"')
_BIFF_BOF, _BIFF_FILEPASS = 0x0809, 0x002F
_OLE_END_OF_CHAIN = 0xFFFFFFFE
_DAMAGED = ("文件已损坏或不完整，请重新导出或重新下载", "file is truncated or damaged: export or download it again")


@dataclass(frozen=True)
class Limits:
    """Caps for one input file; generous for a province's real exports."""

    max_member_bytes: int = 2 * 1024**3  # one unpacked XML part
    max_total_bytes: int = 4 * 1024**3  # the whole unpacked workbook
    max_ratio: int = 200  # unpacked / packed, for members over `ratio_floor_bytes`
    ratio_floor_bytes: int = 64 * 1024**2
    max_sheet_cells: int = 60_000_000  # declared rows x columns of one sheet
    max_sheet_columns: int = 1_000


def _refuse(what: str, english: str, path: Path) -> InputFileError:
    return InputFileError(f"{what} / {english}: {path}")


def _column_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n


def check_file(path: Path, limits: Limits = Limits()) -> str:
    """The file's format (xlsx, xlsb, ods, xls or csv); InputFileError naming what is wrong otherwise."""
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
        return _check_ole(path)
    if head.startswith(EMPTY_ZIP_MAGIC):
        raise _refuse("文件是空的压缩包，不是表格", "empty zip, not a spreadsheet", path)
    if head.startswith(ZIP_MAGIC):
        return _check_zip(path, limits)
    return _check_text(path, head)


# --- text ------------------------------------------------------------------------------


def _check_text(path: Path, head: bytes) -> str:
    stripped = head.lstrip(b"\xef\xbb\xbf\xff\xfe\xfe\xff \t\r\n").lower()
    if b"urn:schemas-microsoft-com:office:spreadsheet" in head or (
        stripped.startswith(b"<?xml") and b"<workbook" in stripped
    ):
        raise _refuse(
            "文件是Excel 2003 XML表格，请用Excel或WPS打开后另存为 .xlsx",
            "Excel 2003 XML spreadsheet: open it in Excel or WPS and save it as .xlsx",
            path,
        )
    if re.match(rb"<(!doctype\s+html|html|table|meta|head|body|\?xml)", stripped[:40]):
        raise _refuse(
            "文件是网页(HTML)表格，不是Excel工作簿（网上系统常这样“导出Excel”），请用Excel或WPS打开后另存为 .xlsx",
            'HTML page, not a workbook (a web system\'s "Excel export"): open it in Excel or WPS and save it as .xlsx',
            path,
        )
    for encoding in ("utf-8", "gb18030"):
        try:  # incremental: a character cut at the 4096th byte is not an error
            codecs.getincrementaldecoder(encoding)().decode(head, final=False)
            return "csv"
        except UnicodeDecodeError:
            pass
    raise _refuse(
        "文件不是表格（不是Excel/WPS工作簿，也不是CSV文本）", "not a spreadsheet (no workbook, no CSV text)", path
    )


# --- OLE compound files (.xls) ---------------------------------------------------------


def _ole_streams(data: bytes) -> dict[str, tuple[int, int]]:
    """Stream name -> (first sector, size) from an OLE compound file's directory (MS-CFB)."""
    sector = 1 << struct.unpack_from("<H", data, 30)[0]
    n_fat, first_dir = struct.unpack_from("<I", data, 44)[0], struct.unpack_from("<I", data, 48)[0]
    fat_sectors = [s for s in struct.unpack_from("<109I", data, 76)[:n_fat] if s < _OLE_END_OF_CHAIN]

    def at(s: int) -> int:
        return 512 + s * sector

    fat: list[int] = []
    for s in fat_sectors:
        chunk = data[at(s) : at(s) + sector]
        if len(chunk) < sector:
            raise ValueError("FAT beyond the end of the file")
        fat.extend(struct.unpack(f"<{sector // 4}I", chunk))
    streams: dict[str, tuple[int, int]] = {}
    s, seen = first_dir, set()
    while s < _OLE_END_OF_CHAIN and s not in seen:
        seen.add(s)
        block = data[at(s) : at(s) + sector]
        if len(block) < sector:
            raise ValueError("directory beyond the end of the file")
        for off in range(0, sector, 128):
            name_len = struct.unpack_from("<H", block, off + 64)[0]
            name = block[off : off + max(name_len - 2, 0)].decode("utf-16-le", "replace")
            start, size = struct.unpack_from("<I", block, off + 116)[0], struct.unpack_from("<I", block, off + 120)[0]
            if name:
                streams[name] = (start, size)
        s = fat[s] if s < len(fat) else _OLE_END_OF_CHAIN
    return streams


def _check_ole(path: Path) -> str:
    data = path.read_bytes()
    try:
        streams = _ole_streams(data)
    except (ValueError, struct.error):
        streams = None
    if streams is None and "EncryptionInfo".encode("utf-16-le") in data[: 8 * 1024**2]:
        streams = {"EncryptionInfo": (0, 0)}  # a directory we cannot walk, but the name is there
    if streams is None:
        raise _refuse(*_DAMAGED, path)
    if "EncryptionInfo" in streams or "EncryptedPackage" in streams:
        raise _refuse(
            "工作簿设置了打开密码，请取消密码后另存为 .xlsx",
            "workbook is password-protected, remove the password and save as .xlsx",
            path,
        )
    book = streams.get("Workbook") or streams.get("Book")
    if book is None:
        raise _refuse(
            "文件不是Excel工作簿（可能是WPS表格的 .et 格式或其他Office文档），请用WPS或Excel另存为 .xlsx",
            "not an Excel workbook (perhaps a WPS .et spreadsheet or another Office file): save it as "
            ".xlsx in WPS or Excel",
            path,
        )
    sector = 1 << struct.unpack_from("<H", data, 30)[0]
    start, size = book
    if size >= 4096:  # in regular sectors: its first records are readable directly
        begin = 512 + start * sector
        if begin + size > len(data) + sector:
            raise _refuse(*_DAMAGED, path)
        first_type, first_len = struct.unpack_from("<HH", data, begin) if begin + 4 <= len(data) else (0, 0)
        if first_type == _BIFF_BOF and begin + 8 + first_len <= len(data):
            if struct.unpack_from("<H", data, begin + 4 + first_len)[0] == _BIFF_FILEPASS:
                raise _refuse(
                    "工作簿设置了打开密码，请取消密码后另存为 .xlsx",
                    "workbook is password-protected, remove the password and save as .xlsx",
                    path,
                )
    return "xls"


# --- zip containers (.xlsx, .xlsb, .ods) -----------------------------------------------


def _check_zip(path: Path, limits: Limits) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "xl/workbook.xml" in names:
                fmt = "xlsx"
            elif "xl/workbook.bin" in names:
                fmt = "xlsb"
            elif "mimetype" in names and z.read("mimetype").startswith(
                b"application/vnd.oasis.opendocument.spreadsheet"
            ):
                fmt = "ods"
            else:
                raise _refuse(
                    "压缩包中没有 Excel 工作簿或 .ods 表格",
                    "zip holds no Excel workbook (xl/workbook.xml, xl/workbook.bin) or OpenDocument spreadsheet",
                    path,
                )
            _check_sizes(path, z, limits)
            if fmt == "xlsx":
                for info in z.infolist():
                    if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"):
                        _check_dimension(path, z, info.filename, limits)
            return fmt
    except zipfile.BadZipFile:
        raise _refuse(*_DAMAGED, path) from None
    except (OSError, EOFError, NotImplementedError, RuntimeError) as e:
        raise InputFileError(f"{_DAMAGED[0]} / {_DAMAGED[1]}: {path} ({type(e).__name__})") from None


def _check_sizes(path: Path, z: zipfile.ZipFile, limits: Limits) -> None:
    total = 0
    for info in z.infolist():
        if info.flag_bits & 0x1:
            raise InputFileError(f"工作簿已加密 / workbook part is encrypted: {path}")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.max_member_bytes or (
            info.file_size > limits.ratio_floor_bytes and ratio > limits.max_ratio
        ):
            raise InputFileError(
                f"工作簿解压后过大（{info.filename} {info.file_size / 1024**2:,.0f} MB），疑似压缩炸弹 / "
                f"too large when unpacked ({info.filename}): {path}"
            )
    if total > limits.max_total_bytes:
        raise InputFileError(f"工作簿解压后过大（{total / 1024**2:,.0f} MB）/ too large when unpacked: {path}")


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
