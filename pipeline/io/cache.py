"""The cache of sheets read before: a sheet with the same bytes is not parsed again.

An entry is what a parser child returned for one unit of work (an .xlsx
sheet, or a whole file of another format): each sheet's rows under the header
as text (Arrow IPC) and a manifest of its counts, under
`<db dir>/.medins-cache/<key>/`. The key names exactly what the reading
depends on: the unit's bytes (for an .xlsx sheet its own XML and every other
part of the file but the other sheets and docProps/, so an export that grew
in one sheet is parsed in that sheet only; for other formats the whole file),
the kind of input (its header map) and the reader's version
(`reader_version`: the reading code and the libraries that parse). No run
date, parameters or coverage year: the checks of pipeline/validate.py run on
the rows every night. Entries unused for CACHE_KEEP_DAYS are removed; the
cache holds ID numbers, so it is owner-only like everything else.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import struct
import time
import zipfile
from pathlib import Path

from pipeline.faults import disk_full
from pipeline.io.grids import sheet_members

CACHE_DIR_NAME = ".medins-cache"
CACHE_KEEP_DAYS = 14
_ROOT = Path(__file__).resolve().parents[2]
# What a parser child runs: the files whose text decides the rows it returns, and the libraries that
# parse (pipeline/io/isolate.py `_read_unit`). Named here, in one place.
READER_FILES = (
    "pipeline/io/grids.py",
    "pipeline/io/excel_in.py",
    "pipeline/io/preflight.py",
    "pipeline/io/rows.py",
    "pipeline/parse.py",
    "schemas/headers.py",
    "schemas/headers.toml",
)
READER_LIBRARIES = ("polars", "fastexcel")


def _code_digest(files: tuple[str, ...], libraries: tuple[str, ...]) -> str:
    """sha256 over the files (by name and content, from the checkout) and the libraries' versions."""
    h = hashlib.sha256()
    for name in files:
        h.update(name.encode() + b"\0" + (_ROOT / name).read_bytes())
    for library in libraries:
        h.update(f"{library}=={importlib.metadata.version(library)}\0".encode())
    return h.hexdigest()


@functools.cache
def reader_version() -> str:
    """The reader's files and the parsing libraries' versions, digested."""
    return _code_digest(READER_FILES, READER_LIBRARIES)[:16]


def _raw_member(f, info: zipfile.ZipInfo) -> bytes:
    """A zip member's stored (compressed) bytes, read without inflating them."""
    f.seek(info.header_offset)
    header = f.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    f.seek(info.header_offset + 30 + name_len + extra_len)
    return f.read(info.compress_size)


def xlsx_sheet_digests(path: Path) -> list[str]:
    """Per sheet of an .xlsx, in order, a digest of every part its rows are read from: its own XML and
    every other part except the other sheets' XML and docProps/ (the save time). Parts are hashed as
    stored, so nothing is inflated."""
    members = sheet_members(path)
    sheet_parts = {m for m in members.values() if m}
    common = hashlib.sha256()
    own: dict[str, str] = {}
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        for info in sorted(z.infolist(), key=lambda i: i.filename):
            if info.filename.startswith("docProps/"):
                continue
            h = common if info.filename not in sheet_parts else hashlib.sha256()
            h.update(f"{info.filename}\0{info.compress_type}\0{info.CRC}\0{info.file_size}\0".encode())
            h.update(_raw_member(f, info))
            if info.filename in sheet_parts:
                own[info.filename] = h.hexdigest()
    base = common.hexdigest()
    return [
        hashlib.sha256(f"{base}\0{name}\0{own.get(member or '', 'none')}".encode()).hexdigest()[:32]
        for name, member in members.items()
    ]


def unit_digests(path: Path, fmt: str, sha256: str, n_sheets: int) -> list[str] | None:
    """The cache digest of each unit of work: each sheet of an .xlsx, the whole file otherwise (None: the
    file cannot be looked into; every sheet is parsed)."""
    if fmt != "xlsx":
        return [f"{sha256[:32]}-all"]
    try:
        digests = xlsx_sheet_digests(path)
    except (OSError, ValueError, KeyError, SyntaxError, struct.error, zipfile.BadZipFile):
        return None
    return digests if len(digests) == n_sheets else None


def entry_key(unit_digest: str, kind: str) -> str:
    return f"{unit_digest}-{kind}-{reader_version()}"


def find(cache_dir: Path, key: str) -> tuple[Path, list[dict]] | None:
    """The entry and its manifest, when there is one."""
    entry = cache_dir / key
    try:
        manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return entry, manifest


def store(cache_dir: Path, key: str, out_dir: Path, manifest: list[dict]) -> Path:
    """Move a parser child's files (named in the manifest) into the cache under `key` (copied when the
    cache is on another file system); nothing half-stored is left when it fails."""
    entry = cache_dir / key
    staging = cache_dir / f".{entry.name}.{os.getpid()}"
    try:
        staging.mkdir(parents=True, exist_ok=True)
        disk_full("cache", staging)
        for meta in manifest:
            if meta.get("rows_file"):
                shutil.move(out_dir / meta["rows_file"], staging / meta["rows_file"])
        (staging / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(staging, entry)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return entry


def touch(entry: Path) -> None:
    os.utime(entry)


def prune(cache_dir: Path, keep_days: int = CACHE_KEEP_DAYS) -> None:
    """Forget entries not used for `keep_days` and half-written ones."""
    if not cache_dir.is_dir():
        return
    cutoff = time.time() - keep_days * 86400
    for entry in cache_dir.iterdir():
        if entry.name.startswith(".") or entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry, ignore_errors=True)


# --- checked sheets ---------------------------------------------------------------------------
# A sheet's checked rows and rejected lines, kept beside its rows in the sheet's entry, under a key of
# everything the checks read but the data date (pipeline/validate.py CHECK_FILES, CHECK_LIBRARIES,
# check_inputs), with the data dates they hold for. Only the latest key of a sheet is kept.
CHECKED_SUFFIX = ".checked"


@functools.cache
def _checks_code_version() -> str:
    from pipeline.validate import CHECK_FILES, CHECK_LIBRARIES

    return _code_digest(CHECK_FILES, CHECK_LIBRARIES)


def checks_key(check_inputs: dict) -> str:
    """The key of a sheet's checked rows: the checks' code and libraries and what they read of the
    parameters."""
    text = json.dumps([_checks_code_version(), check_inputs], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _checked_dir(rows_path: Path, key: str) -> Path:
    return rows_path.with_name(f"{rows_path.name}{CHECKED_SUFFIX}-{key}")


def find_checked(rows_path: Path, key: str, data_date: dt.date) -> tuple[Path, Path] | None:
    """(checked rows, rejected lines) of the sheet whose rows are `rows_path`, when kept under `key` and
    holding for `data_date`."""
    where = _checked_dir(rows_path, key)
    try:
        window = json.loads((where / "window.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    since, until = window.get("valid_from"), window.get("valid_until")
    if (since and data_date < dt.date.fromisoformat(since)) or (until and data_date >= dt.date.fromisoformat(until)):
        return None
    return where / "parsed.arrow", where / "rejected.arrow"


def store_checked(rows_path: Path, key: str, checked) -> None:
    """Keep a sheet's checks (pipeline.validate.Checked) beside its rows, replacing any kept under another
    key; a failure to keep them only costs the next night the checks."""
    where = _checked_dir(rows_path, key)
    for old in rows_path.parent.glob(f"{rows_path.name}{CHECKED_SUFFIX}-*"):
        shutil.rmtree(old, ignore_errors=True)
    staging = where.with_name(f".{where.name}.{os.getpid()}")
    try:
        staging.mkdir(parents=True, exist_ok=True)
        checked.parsed.write_ipc(staging / "parsed.arrow")
        checked.rejected.write_ipc(staging / "rejected.arrow")
        window = {
            k: (v.isoformat() if v else None)
            for k, v in (("valid_from", checked.valid_from), ("valid_until", checked.valid_until))
        }
        (staging / "window.json").write_text(json.dumps(window), encoding="utf-8")
        os.replace(staging, where)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
