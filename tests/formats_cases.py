"""What the format tests share (test_formats.py, test_formats_headers.py, test_formats_cells.py): a
night into its own folder, its tables and rejected lines read back, the reasons the checks give,
and rows for the small files the tests write."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import duckdb
import polars as pl

from builders import make_id, run_night

TODAY = dt.date(2026, 11, 23)
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAME_NIGHT = FIXTURES / "same_night"
REFUSED = FIXTURES / "refused"
HEADERS_TOML = Path(__file__).resolve().parent.parent / "schemas" / "headers.toml"

# Columns that name the run or the file rather than what was read.
RUN_SPECIFIC = {
    "run_id",
    "source_file",
    "sha256",
    "row_hash",
    "key_hash",
    "started_at",
    "finished_at",
    "inputs",
    "fingerprint",
    "library_versions",
    "previous_run_id",
}
NAMED_TABLES = {
    "residents",
    "payments",
    "determinations",
    "reconciliation",
    "unmatched_payments",
    "rejected_rows",
    "subsidy_totals",
    "run_sheets",
}
COUNTS = ("header_row", "rows_read", "accepted", "rejected", "skipped_blank", "skipped_footer", "skipped_duplicate")

NOT_A_DATE = "（可用 2025-10-15、2025/10/15、2025.10.15、20251015、2025年10月15日）"
NUMERIC_ID = "证件号码被Excel存成了数字，末几位已丢失；请把该列设置为文本格式后重新录入"
OLD_15 = "15位旧身份证号码，请换成18位号码"
CHECKSUM = "证件号码校验位错误（GB 11643），请核对号码"
ID_BIRTH = "证件号码中的出生日期不存在或晚于今天"
CONFLICT = "同一证件号码在花名册中出现2次且内容不一致，全部暂不处理，请核实后只保留一行"


# --- helpers ------------------------------------------------------------------------------


def night(folder: Path, roster: list[Path], payments: list[Path]):
    """One night into its own folder (database, cache and all), so no night reuses another's parse."""
    folder.mkdir(parents=True, exist_ok=True)
    result = run_night(
        2026,
        "jingdezhen",
        [str(p) for p in roster],
        [str(p) for p in payments],
        folder / "medins.duckdb",
        folder,
        as_of=TODAY,
        write_workbooks=False,
    )
    return result, folder / "medins.duckdb"


def query(db: Path, sql: str, *params) -> list[dict]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        con.close()


def tables_apart_from_file_names(db: Path) -> dict[str, list[tuple]]:
    """Every table and view, run- and file-specific columns dropped, rows sorted."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            cols = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                    [table],
                ).fetchall()
                if c not in RUN_SPECIFIC
            ]
            select = ", ".join(f'"{c}"' for c in cols)
            out[table] = [tuple(cols), *sorted(con.execute(f'SELECT {select} FROM "{table}"').fetchall(), key=repr)]
        return out
    finally:
        con.close()


def differences(a: dict, b: dict) -> dict[str, str]:
    """Table -> the first differing rows (for a readable failure)."""
    out = {}
    for table in sorted(set(a) | set(b)):
        if a.get(table) != b.get(table):
            rows_a, rows_b = a.get(table, []), b.get(table, [])
            first = next((i for i, (x, y) in enumerate(zip(rows_a, rows_b)) if x != y), min(len(rows_a), len(rows_b)))
            out[table] = (
                f"{rows_a[first : first + 1]} != {rows_b[first : first + 1]} ({len(rows_a)} vs {len(rows_b)} rows)"
            )
    return out


def counts(result, kind: str) -> dict[str, dict]:
    frame = result.sheets.filter(pl.col("kind") == kind)
    return {row["sheet"]: {k: row[k] for k in COUNTS} for row in frame.to_dicts()}


def lines(result, kind: str | None = None, sheet: str | None = None) -> list[tuple]:
    """(sheet, row, column, raw value, reason) of the rejected lines, sorted."""
    frame = result.rejected
    if kind:
        frame = frame.filter(pl.col("kind") == kind)
    if sheet:
        frame = frame.filter(pl.col("sheet") == sheet)
    return sorted(frame.select("sheet", "row_number", "column", "raw_value", "reason").rows(), key=repr)


def reasons_by_row(result, kind: str, sheet: str) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list[tuple[str, str]]] = {}
    for _, row, column, _, reason in lines(result, kind, sheet):
        out.setdefault(row, []).append((column, reason))
    return out


def person_ids() -> Iterator[str]:
    """Valid, distinct IDs (a roster must not hold one ID twice)."""
    for i in count(1):
        yield make_id("360222", dt.date(1950, 1, 1) + dt.timedelta(days=97 * i), i % 1000)


PAYER = make_id("360222", dt.date(1980, 2, 3), 7)
_TICKETS = count(1)


def ticket() -> str:
    """20-digit text, distinct over the whole module (one ticket twice with other content rejects both)."""
    return f"03622250{next(_TICKETS):012d}"


def payment_row(paid_on="2025-11-01", period="2026", pid=PAYER, amount=400) -> list:
    return [1, "丁一", pid, amount, paid_on, period, ticket(), "微信"]


def with_header(header: list[str], replace: dict[str, str] | None = None, append: tuple[str, ...] = ()) -> list[str]:
    return [(replace or {}).get(h, h) for h in header] + list(append)


def text_line(cells: list, sep: str) -> str:
    """One record of a delimited text file, a cell quoted where it holds the separator, a line break
    or a quote."""

    def quoted(cell) -> str:
        text = "" if cell is None else str(cell)
        return f'"{text}"' if any(ch in text for ch in (sep, "\n", '"')) else text

    return sep.join(quoted(c) for c in cells)
