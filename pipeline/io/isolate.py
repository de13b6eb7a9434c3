"""Parse each workbook in a child process: a memory limit, a timeout, and the cores in parallel.

calamine is native code: a hostile sheet can make it allocate hundreds of GB
and kill the process without a Python exception. Each workbook is therefore
read in its own child (forked from a forkserver that has the reader
preloaded, so a child starts in milliseconds) under RLIMIT_AS and a wall-clock
timeout; several children run at once, one per core. A child hands its
sheets back as Arrow IPC files in a private temporary directory. A child
that dies, overruns or raises becomes an InputFileError naming the file.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import multiprocessing as mp
from multiprocessing import forkserver
import os
import resource
import shutil
import struct
import time
import traceback
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing.connection import wait
from pathlib import Path

import polars as pl

from pipeline.errors import InputFileError
from pipeline.io.excel_in import (
    PrefixHint,
    PrefixRequest,
    SheetRead,
    read_workbook,
    require_a_header,
    sheet_members,
)
from pipeline.io.masking import mask_ids_in_text
from pipeline.io.preflight import check_file
from pipeline.params import load_params
from pipeline.validate import Checked, check_sheet
from schemas.headers import load_header_map

TMP_PREFIX = ".medins-tmp-"
CACHE_DIR_NAME = ".medins-cache"
CACHE_KEEP_DAYS = 14
# Versions of one sheet of one file (a growing export) kept: tonight's and the one before it, so a
# re-run of yesterday's file is still read from the cache.
CACHE_KEEP_VERSIONS = 2
_ROOT = Path(__file__).resolve().parents[2]
# The code and data that decide which rows come out of a file's bytes, and how they are checked.
_READER_SOURCES = ("pipeline/io/excel_in.py", "pipeline/parse.py", "pipeline/validate.py", "schemas/models.py",
                   "schemas/headers.py", "schemas/headers.toml")


@functools.cache
def _reader_digest() -> str:
    h = hashlib.sha256()
    for name in _READER_SOURCES:
        h.update((_ROOT / name).read_bytes())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class ReadJob:
    path: Path
    kind: str
    coverage_year: int
    sha256: str = ""
    region: str = ""
    params_digest: str = ""
    today: dt.date = dt.date.min

    def cache_key(self, sheet_digest: str) -> str:
        """Same sheet bytes (`parts_digests`), reader, checks, header maps and parameters: the same rows
        and reasons come out (within the entry's window of "today", checked on reuse)."""
        return (f"{sheet_digest}-{self.kind}-{self.coverage_year}-{self.region}-{self.params_digest[:12]}-"
                f"{_reader_digest()}")

    def lineage(self, sheet: str) -> str:
        """Names the sheets of this name read under the same reader, checks, header maps and
        parameters: a new version of a sheet looks among them for rows it shares (first those of the
        same file path, else any: an export named by its date is another path every night)."""
        text = "\0".join([sheet, self.cache_key("")])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _raw_member(f, info: zipfile.ZipInfo) -> bytes:
    """A zip member's stored (compressed) bytes, read without inflating them."""
    f.seek(info.header_offset)
    header = f.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    f.seek(info.header_offset + 30 + name_len + extra_len)
    return f.read(info.compress_size)


def parts_digests(path: Path) -> tuple[str, list[str]]:
    """The digest of the parts other than the sheets, and per sheet, in workbook order, a digest of
    every part of the file its rows are read from.

    That is the sheet's own XML and every other part (workbook, shared strings,
    styles, relationships ...) except the other sheets' XML and docProps/
    (document metadata such as the save time, which the reader never looks
    at). A sheet whose digest was seen before gives the same rows, so a night
    whose payments export only grew in its last sheet parses that sheet only.
    The parts are hashed as stored (compressed), so nothing is inflated; the
    same content compressed differently only costs a parse.
    """
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
    return base[:32], [hashlib.sha256(f"{base}\0{name}\0{own.get(member or '', 'none')}".encode()).hexdigest()[:32]
                       for name, member in members.items()]


@dataclass(frozen=True)
class ReadLimits:
    memory_bytes: int = 6 * 1024**3
    timeout_seconds: float = 900.0
    workers: int = max(1, min(os.cpu_count() or 1, 8))


_context = None


def _ctx():
    global _context
    if _context is None:
        _context = mp.get_context("forkserver")
        _context.set_forkserver_preload(["pipeline.io.isolate"])  # the reader, the checks (pandera), params
    return _context


def _window_edge(cached: str | None, tonight: dt.date | None, pick) -> dt.date | None:
    """One edge of the "today" window where both the cached rows' checks and tonight's hold
    (`pick`: max for its start, min for its end; None is unbounded)."""
    dates = [d for d in (cached and dt.date.fromisoformat(cached), tonight) if d is not None]
    return pick(dates) if dates else None


def _with_reused_rows(sheet: SheetRead, hint: PrefixHint, checked: Checked) -> Checked:
    """The checked rows of the sheet's rows after `reused_through`, with those through it taken from
    the previous version's cache entry (the same XML bytes, header and other parts: the same checked
    rows and rejected lines). The "today" window is where both hold."""
    through = pl.col("row_number") <= sheet.reused_through
    entry = Path(hint.entry)
    parsed = pl.scan_ipc(entry / hint.data_file).filter(through).collect()
    rejected = pl.scan_ipc(entry / hint.rejected_file).filter(through).collect()
    return Checked(parsed=pl.concat([parsed, checked.parsed], how="vertical"),
                   rejected=pl.concat([rejected, checked.rejected], how="vertical"),
                   today_from=_window_edge(hint.today_from, checked.today_from, max),
                   today_until=_window_edge(hint.today_until, checked.today_until, min))


def _read_and_check(job: ReadJob, sheet_index: int, header_map, params, prefix: PrefixRequest | None,
                    started: float) -> list[tuple[SheetRead, Checked | None]]:
    """The sheet read and its rows checked (the rows shared with the previous version, when a hint
    names one, taken from its cache entry; if that entry cannot be read, the sheet is read whole)."""
    sheets = read_workbook(job.path, header_map, job.coverage_year, sha256=job.sha256 or None,
                           only_sheet=sheet_index, checked=True, prefix=prefix)
    out = []
    for sheet in sheets:
        sheet.read_seconds = round(time.perf_counter() - started, 3)
        checked = None
        if sheet.data is not None:
            checked_at = time.perf_counter()
            checked = check_sheet(sheet, params, header_map, job.today)
            if sheet.reused_through:
                assert prefix is not None and prefix.hint is not None
                try:
                    checked = _with_reused_rows(sheet, prefix.hint, checked)
                except (OSError, ValueError, pl.exceptions.PolarsError):
                    return _read_and_check(job, sheet_index, header_map, params, PrefixRequest(prefix.common),
                                           started)
            sheet.check_seconds = round(time.perf_counter() - checked_at, 3)
        out.append((sheet, checked))
    return out


def _child(job: ReadJob, sheet_index: int, out_base: str, memory_bytes: int,
           prefix: PrefixRequest | None = None, lineage: str = "") -> None:
    """Runs in the child: read one sheet of a workbook and check its rows; write them as IPC with a
    JSON manifest. The row-level checks run here, so they use the cores in parallel and are cached.
    `prefix`: record the sheet's row checkpoints, and reuse the rows it shares with its hint."""
    err = os.open(out_base + ".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(err, 2)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        started = time.perf_counter()
        header_map = load_header_map(job.kind)
        params = load_params(job.coverage_year, job.region)
        manifest = []
        for i, (sheet, checked) in enumerate(_read_and_check(job, sheet_index, header_map, params, prefix,
                                                             started)):
            if checked is not None:
                sheet.today_from = checked.today_from and checked.today_from.isoformat()
                sheet.today_until = checked.today_until and checked.today_until.isoformat()
            meta = asdict(sheet)
            meta.pop("data")
            meta.pop("rejected")
            meta["missing_required"] = list(sheet.missing_required)
            meta["lineage"] = lineage
            meta["source_path"] = os.path.abspath(job.path)
            if checked is not None:
                meta["data_file"] = f"{Path(out_base).name}.{i}.arrow"
                meta["rejected_file"] = f"{Path(out_base).name}.{i}.rejected.arrow"
                checked.parsed.write_ipc(f"{out_base}.{i}.arrow")
                checked.rejected.write_ipc(f"{out_base}.{i}.rejected.arrow")
            manifest.append(meta)
        result = {"ok": True, "sheets": manifest}
    except InputFileError as e:
        result = {"ok": False, "message": str(e)}
    except MemoryError:
        result = {"ok": False, "memory": True}
    except Exception as e:  # a bug of ours, not a damaged file: the parent reports it as one
        result = {"ok": False, "internal": mask_ids_in_text("".join(traceback.format_exception(e)))}
    with open(out_base + ".json.tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)
    os.replace(out_base + ".json.tmp", out_base + ".json")


def _load(out_base: str) -> dict | None:
    try:
        with open(out_base + ".json", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _sheets_from(manifest: list[dict], base: Path, job: ReadJob, reused: bool = False,
                 lazy: bool = False) -> list[SheetRead]:
    """Sheets back from IPC files; file name and sha256 are re-stamped with this run's file.
    `lazy`: the frames stay in the files (`data_path`, `rejected_path`; see `sheet_scan`)."""
    out = []
    for meta in manifest:
        meta = dict(meta)
        data_file = meta.pop("data_file", None)
        rejected_file = meta.pop("rejected_file", None)
        meta["missing_required"] = tuple(meta["missing_required"])
        meta.pop("lineage", None)
        meta.pop("source_path", None)
        meta["source_file"] = str(job.path)
        meta["sha256"] = job.sha256
        meta["reused"] = reused
        sheet = SheetRead(**meta)
        if data_file:
            sheet.data_path, sheet.rejected_path = str(base / data_file), str(base / rejected_file)
            if lazy:
                pl.read_ipc_schema(sheet.data_path)  # a damaged file is found now, not in a later step
                pl.read_ipc_schema(sheet.rejected_path)
            else:
                sheet.data, sheet.rejected = sheet_scan(sheet).collect(), sheet_rejected(sheet)
                sheet.data_path = sheet.rejected_path = None
        out.append(sheet)
    return out


def sheet_scan(sheet: SheetRead) -> pl.LazyFrame:
    """A sheet's checked rows, whether read eagerly or lazily (`data_path`)."""
    if sheet.data_path is None:
        assert sheet.data is not None
        return sheet.data.lazy()
    return pl.scan_ipc(sheet.data_path).with_columns(
        pl.lit(sheet.source_file).alias("source_file"))


def sheet_rejected(sheet: SheetRead) -> pl.DataFrame:
    """A sheet's rejected lines, whether read eagerly or lazily (`rejected_path`)."""
    if sheet.rejected_path is None:
        assert sheet.rejected is not None
        return sheet.rejected
    return pl.read_ipc(sheet.rejected_path).with_columns(
        pl.lit(sheet.source_file).alias("source_file"))


def _covers(manifest: list[dict], today: dt.date) -> bool:
    """The entry's checks gave the same result for this "today" (birth dates compared with it)."""
    for meta in manifest:
        since, until = meta.get("today_from"), meta.get("today_until")
        if (since and today < dt.date.fromisoformat(since)) or (until and today >= dt.date.fromisoformat(until)):
            return False
    return True


def _store_in_cache(cache_dir: Path, job: ReadJob, digest: str, out_base: str, manifest: list[dict]) -> Path:
    """Move a child's output into the cache under the sheet's key; returns the entry directory."""
    entry = cache_dir / job.cache_key(digest)
    staging = cache_dir / f".{entry.name}.{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=True)
    for meta in manifest:
        for part in ("data_file", "rejected_file"):
            if meta.get(part):
                os.replace(Path(out_base).parent / meta[part], staging / meta[part])
    (staging / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    shutil.rmtree(entry, ignore_errors=True)
    os.replace(staging, entry)
    return entry


def _cache_entry(cache_dir: Path | None, job: ReadJob, digest: str | None) -> tuple[Path, list[dict]] | None:
    """The sheet's cache entry and manifest, when there is one that holds for the job's "today"."""
    if cache_dir is None or not job.sha256 or digest is None:
        return None
    entry = cache_dir / job.cache_key(digest)
    try:
        manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (entry, manifest) if _covers(manifest, job.today) else None


def _entries(cache_dir: Path) -> Iterator[tuple[Path, list[dict], float]]:
    """The cache's entries with their manifests and when each was last used (unreadable ones left out)."""
    for entry in cache_dir.iterdir() if cache_dir.is_dir() else []:
        if entry.name.startswith("."):
            continue
        try:
            manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
            used = entry.stat().st_mtime
        except (OSError, ValueError):
            continue
        yield entry, manifest, used


def _prefix_hints(cache_dir: Path, today: dt.date) -> dict[str, list[tuple[float, str, PrefixHint]]]:
    """Per sheet lineage (`ReadJob.lineage`), the cache entries of that lineage that hold for "today",
    as (last used, file path, hint): what a new version of the sheet may share rows with."""
    found: dict[str, list[tuple[float, str, PrefixHint]]] = {}
    for entry, manifest, used in _entries(cache_dir):
        if len(manifest) != 1 or not _covers(manifest, today):
            continue
        meta = manifest[0]
        lineage, prefix = meta.get("lineage"), meta.get("prefix")
        if not lineage or not prefix or not meta.get("data_file"):
            continue
        found.setdefault(lineage, []).append((used, meta.get("source_path", ""), PrefixHint(
            entry=str(entry), data_file=meta["data_file"], rejected_file=meta["rejected_file"],
            first_row=prefix["first_row"], header_row=prefix["header_row"],
            header_cells=tuple(prefix["header_cells"]), common=prefix["common"],
            checkpoints=tuple(tuple(cp) for cp in prefix["checkpoints"]),
            today_from=meta.get("today_from"), today_until=meta.get("today_until"))))
    return found


def _hint_for(hints: dict[str, list[tuple[float, str, PrefixHint]]], lineage: str, path: Path) -> PrefixHint | None:
    """The most recently used entry of the lineage read from the same file path, else from any path.
    Only a guess at which entry shares the most rows: what is reused is checked byte for byte."""
    candidates = hints.get(lineage, [])
    same_path = [c for c in candidates if c[1] == os.path.abspath(path)]
    best = max(same_path or candidates, key=lambda c: c[0], default=None)
    return best[2] if best is not None else None


def _from_cache(entry: Path, manifest: list[dict], job: ReadJob, lazy: bool = False) -> list[SheetRead] | None:
    """The entry's sheets; None when its files cannot be read (the sheet is then parsed)."""
    try:
        sheets = _sheets_from(manifest, entry, job, reused=True, lazy=lazy)
        os.utime(entry)
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return None
    return sheets


def prune_cache(cache_dir: Path, keep_days: int = CACHE_KEEP_DAYS, keep_versions: int = CACHE_KEEP_VERSIONS) -> None:
    """Forget sheets not seen for `keep_days`, and all but the `keep_versions` most recently used
    versions of one sheet of one file (the cache holds ID numbers: keep it small)."""
    if not cache_dir.is_dir():
        return
    cutoff = time.time() - keep_days * 86400
    for entry in cache_dir.iterdir():
        if entry.name.startswith(".") or entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry, ignore_errors=True)
    versions: dict[tuple[str, str], list[tuple[float, Path]]] = {}
    for entry, manifest, used in _entries(cache_dir):
        meta = manifest[0] if len(manifest) == 1 else {}
        if meta.get("lineage") and meta.get("source_path"):
            versions.setdefault((meta["lineage"], meta["source_path"]), []).append((used, entry))
    for found in versions.values():
        for _, entry in sorted(found, reverse=True)[keep_versions:]:
            shutil.rmtree(entry, ignore_errors=True)


def _failure(job: ReadJob, exitcode: int | None, limits: ReadLimits, timed_out: bool, memory: bool) -> str:
    if timed_out:
        return (f"解析超时（超过{limits.timeout_seconds:.0f}秒）/ parsing took longer than "
                f"{limits.timeout_seconds:.0f} s: {job.path}")
    if memory:
        return (f"解析时内存超过上限（{limits.memory_bytes / 1024**3:.0f} GB），工作表可能异常 / "
                f"parser ran out of memory ({limits.memory_bytes / 1024**3:.0f} GB limit): {job.path}")
    return (f"解析程序崩溃（退出码 {exitcode}），文件可能损坏或内存超限 / parser crashed "
            f"(exit {exitcode}), damaged file or memory limit: {job.path}")


def read_isolated(jobs: list[ReadJob], tmp_dir: Path, limits: ReadLimits = ReadLimits(),
                  skip_bad_files: bool = False, cache_dir: Path | None = None, lazy: bool = False,
                  ) -> tuple[list[list[SheetRead]], list[tuple[ReadJob, str]], list[ReadJob]]:
    """Read every sheet of every job's workbook in children, or from the cache when the same sheet
    (`parts_digests`) was read before; sheets are the unit of work, so one big file does not hold up
    the other core.

    Returns (sheets per job in order, skipped files with reasons, jobs whose
    every sheet came from the cache). A sheet taken from the cache has
    `reused` set. A bad file stops everything (InputFileError) unless
    `skip_bad_files`. `lazy`: the sheets' frames stay in their IPC files (in the
    cache, or in `tmp_dir`, which the caller then removes).
    """
    sheets_of: list[dict[int, list[SheetRead]]] = [{} for _ in jobs]
    n_sheets: list[int] = [0] * len(jobs)
    skipped: dict[int, str] = {}
    pending: list[tuple[int, int]] = []
    hits: dict[tuple[int, int], tuple[Path, list[dict]]] = {}
    digests: list[list[str | None]] = [[] for _ in jobs]
    commons: list[str | None] = [None] * len(jobs)
    names: list[list[str]] = [[] for _ in jobs]

    def fail(j: int, message: str) -> None:
        if not skip_bad_files:
            raise InputFileError(message)
        skipped.setdefault(j, message)

    _ctx()
    forkserver.ensure_running()  # the parsers' forkserver imports its modules while the files are hashed
    if cache_dir is not None:  # hashing releases the GIL: the files' digests side by side
        with ThreadPoolExecutor(max_workers=limits.workers) as pool:
            found = list(pool.map(_digests_of, jobs))
    else:
        found = [None] * len(jobs)
    for j, job in enumerate(jobs):
        try:
            check_file(job.path)  # pure Python: refuse the hostile file before any child touches it
            names[j] = list(sheet_members(job.path))
            n_sheets[j] = len(names[j])
        except InputFileError as e:
            fail(j, str(e))
            continue
        except (OSError, ValueError, KeyError, SyntaxError, zipfile.BadZipFile) as e:
            fail(j, f"无法读取工作簿 / cannot read workbook: {job.path} ({type(e).__name__})")
            continue
        usable = found[j] is not None and len(found[j][1]) == n_sheets[j]
        digests[j] = list(found[j][1]) if usable else [None] * n_sheets[j]
        commons[j] = found[j][0] if usable else None
        for k in range(n_sheets[j]):
            hit = _cache_entry(cache_dir, job, digests[j][k])
            if hit is None:
                pending.append((j, k))
            else:
                hits[(j, k)] = hit

    # a sheet read anew records its row checkpoints, and one whose earlier version is in the cache
    # takes the rows both share from it (excel_in.PrefixHint)
    hints = _prefix_hints(cache_dir, jobs[0].today) if cache_dir is not None and pending else {}
    requests: dict[tuple[int, int], tuple[PrefixRequest, str]] = {}
    for j, k in pending:
        if commons[j] is not None and jobs[j].sha256:
            lineage = jobs[j].lineage(names[j][k])
            requests[(j, k)] = (PrefixRequest(commons[j], _hint_for(hints, lineage, jobs[j].path)), lineage)

    # the cached sheets are loaded while the children parse the others (reading IPC releases the GIL)
    with ThreadPoolExecutor(max_workers=1) as loader:
        loading = loader.submit(lambda: {key: _from_cache(*hit, jobs[key[0]], lazy) for key, hit in hits.items()})
        if pending:
            _run_children(jobs, pending, tmp_dir, limits, cache_dir, digests, sheets_of, fail, lazy, requests)
        unreadable = []
        for (j, k), sheets in loading.result().items():
            if sheets is None:
                unreadable.append((j, k))
            else:
                sheets_of[j][k] = sheets
    from_cache = set(hits) - set(unreadable)
    if unreadable:  # a damaged cache entry: parse the sheet after all
        _run_children(jobs, unreadable, tmp_dir, limits, cache_dir, digests, sheets_of, fail, lazy,
                      {key: (PrefixRequest(commons[key[0]]), jobs[key[0]].lineage(names[key[0]][key[1]]))
                       for key in unreadable if commons[key[0]] is not None})
    reused = [job for j, job in enumerate(jobs)
              if j not in skipped and n_sheets[j] and all((j, k) in from_cache for k in range(n_sheets[j]))]

    out: list[list[SheetRead]] = []
    for j, job in enumerate(jobs):
        if j in skipped:
            out.append([])
            continue
        sheets = [s for k in range(n_sheets[j]) for s in sheets_of[j].get(k, [])]
        try:
            require_a_header(job.path, load_header_map(job.kind), sheets)
        except InputFileError as e:
            fail(j, str(e))
            out.append([])
            continue
        out.append(sheets)
    return out, [(jobs[j], m) for j, m in sorted(skipped.items())], reused


def _digests_of(job: ReadJob) -> tuple[str, list[str]] | None:
    """The digest of the parts other than sheets and the sheets' cache digests (`parts_digests`);
    None (parse every sheet) when the zip cannot be read that way (the preflight then says why, or
    the child does)."""
    try:
        return parts_digests(job.path)
    except (OSError, ValueError, KeyError, SyntaxError, struct.error, zipfile.BadZipFile):
        return None


def _run_children(jobs, pending, tmp_dir, limits, cache_dir, digests, sheets_of, fail, lazy=False,
                  requests=None) -> None:
    """Parse the `pending` (job, sheet) pairs in children (the list is consumed). The scratch
    directory is removed at the end unless the sheets stay in it (`lazy`). `requests`: per pair,
    the child's PrefixRequest and the sheet's lineage."""
    requests = requests or {}
    ctx = _ctx()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    running: dict[tuple[int, int], tuple[mp.process.BaseProcess, float, str]] = {}
    failed: set[int] = set()
    try:
        while pending or running:
            while pending and len(running) < limits.workers:
                j, k = pending.pop(0)
                if j in failed:
                    continue
                out_base = str(tmp_dir / f"job{j}-s{k}")
                prefix, lineage = requests.get((j, k), (None, ""))
                proc = ctx.Process(target=_child, args=(jobs[j], k, out_base, limits.memory_bytes, prefix, lineage),
                                   daemon=True)
                proc.start()
                running[(j, k)] = (proc, time.monotonic(), out_base)
            if not running:
                continue
            wait([p.sentinel for p, _, _ in running.values()], timeout=0.2)
            for key in list(running):
                proc, started, out_base = running[key]
                timed_out = proc.is_alive() and time.monotonic() - started > limits.timeout_seconds
                if proc.is_alive() and not timed_out:
                    continue
                if timed_out:
                    proc.kill()
                proc.join()
                del running[key]
                j, k = key
                job = jobs[j]
                result = None if timed_out else _load(out_base)
                if result and result.get("ok"):
                    if cache_dir is not None and job.sha256 and digests[j][k] is not None:
                        entry = _store_in_cache(cache_dir, job, digests[j][k], out_base, result["sheets"])
                        sheets_of[j][k] = _sheets_from(result["sheets"], entry, job, lazy=lazy)
                    else:
                        sheets_of[j][k] = _sheets_from(result["sheets"], tmp_dir, job, lazy=lazy)
                    continue
                if result and result.get("internal"):
                    raise RuntimeError(f"读取 {job.path} 时程序出错 / internal error while reading {job.path}:\n"
                                       f"{result['internal']}")
                message = result.get("message") if result else None
                failed.add(j)
                fail(j, message or _failure(job, proc.exitcode, limits, timed_out,
                                            bool(result and result.get("memory"))))
    finally:
        for proc, _, _ in running.values():
            proc.kill()
            proc.join()
        if not lazy:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def clean_leftovers(out_dir: Path) -> list[Path]:
    """Remove what a killed run left in out_dir: parser scratch directories and half-written
    reports (`.<name>.xlsx.tmp`), a half-copied `.previous` database. Called under the run lock."""
    removed = []
    if out_dir.is_dir():
        leftovers = (TMP_PREFIX + "*", ".*.xlsx.tmp", ".*.previous.tmp")
        for p in [p for pattern in leftovers for p in out_dir.glob(pattern)]:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed
