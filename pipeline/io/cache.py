"""The cache of checked sheets: a sheet read before (the same bytes) is not parsed or checked again.

An entry is one sheet's checked rows and rejected lines (Arrow IPC) with a
manifest, under `<db dir>/.medins-cache/<key>/`. The key names everything the
rows depend on: the sheet's bytes (for .xlsx the sheet's own XML and every
other part of the file but the other sheets and docProps/, so an export that
grew in one sheet is parsed in that sheet only; for other formats the whole
file), the kind, year, region and parameters, the installed code (a digest of
every file of the package) and the versions of the libraries that parse and
check (polars, fastexcel, pandera, DuckDB). An entry is used
only while "today" lies in the window where its date checks give the same
answers (`today_from`, `today_until`). Entries unused for CACHE_KEEP_DAYS are
removed; the cache holds ID numbers, so it is owner-only like everything else.
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

from pipeline.io.grids import sheet_members

CACHE_DIR_NAME = ".medins-cache"
CACHE_KEEP_DAYS = 14
_ROOT = Path(__file__).resolve().parents[2]
_PACKAGES = ("pipeline", "schemas", "policy_params")
_LIBRARIES = ("polars", "fastexcel", "pandera", "duckdb")


@functools.cache
def code_digest() -> str:
    """sha256 over every file of the installed packages and the parsing libraries' versions."""
    h = hashlib.sha256()
    for package in _PACKAGES:
        for path in sorted((_ROOT / package).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".toml"):
                h.update(str(path.relative_to(_ROOT)).encode() + b"\0" + path.read_bytes())
    for library in _LIBRARIES:
        h.update(f"{library}=={importlib.metadata.version(library)}\0".encode())
    return h.hexdigest()[:16]


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


def entry_key(sheet_digest: str, kind: str, coverage_year: int, region: str, params_digest: str) -> str:
    return f"{sheet_digest}-{kind}-{coverage_year}-{region}-{params_digest[:12]}-{code_digest()}"


def _covers(manifest: list[dict], today: dt.date) -> bool:
    """The entry's checks gave the same result for this "today" (dates compared with it)."""
    for meta in manifest:
        since, until = meta.get("today_from"), meta.get("today_until")
        if (since and today < dt.date.fromisoformat(since)) or (until and today >= dt.date.fromisoformat(until)):
            return False
    return True


def find(cache_dir: Path, key: str, today: dt.date) -> tuple[Path, list[dict]] | None:
    """The entry and its manifest, when there is one that holds for `today`."""
    entry = cache_dir / key
    try:
        manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (entry, manifest) if _covers(manifest, today) else None


def store(cache_dir: Path, key: str, out_dir: Path, manifest: list[dict]) -> Path:
    """Move a parser child's files (named in the manifest) into the cache under `key`."""
    entry = cache_dir / key
    staging = cache_dir / f".{entry.name}.{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=True)
    for meta in manifest:
        for part in ("data_file", "rejected_file"):
            if meta.get(part):
                os.replace(out_dir / meta[part], staging / meta[part])
    (staging / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    shutil.rmtree(entry, ignore_errors=True)
    os.replace(staging, entry)
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
