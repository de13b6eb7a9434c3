"""Small workbook builders for tests: write exactly the cells a test needs.

A cell value may be a plain value (written with xlsxwriter's type for it), or
one of the wrappers below to force how Excel stores it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xlsxwriter

ROSTER_HEADER = [
    "序号",
    "姓名",
    "证件号码",
    "县(市、区)",
    "乡镇(街道)",
    "村(社区)",
    "人员身份",
    "上年度参保",
    "特殊情形",
    "特殊情形日期",
    "参保登记日期",
    "资助认定日期",
]
PAYMENT_HEADER = [
    "序号",
    "缴费人姓名",
    "缴费人证件号码",
    "缴费金额",
    "缴费日期",
    "费款所属期",
    "电子税票号码",
    "缴费渠道",
]

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def check_digit(body17: str) -> str:
    """The GB 11643-1999 check character of an ID's first 17 digits: the tests' one, written here
    independently of pipeline.parse (which computes it another way) so a test of the product's check
    proves something."""
    return "10X98765432"[sum(int(c) * w for c, w in zip(body17, _WEIGHTS, strict=True)) % 11]


def with_check_digit(body17: str) -> str:
    """The 18-character ID whose first 17 digits are `body17`."""
    return body17 + check_digit(body17)


def with_wrong_check_digit(id18: str) -> str:
    """The same ID with another check character, one the GB 11643 check refuses."""
    return id18[:17] + ("0" if id18[17] != "0" else "1")


def make_id(region: str, birth: dt.date, seq: int) -> str:
    """A valid GB 11643 ID for tests: region code, birth date, sequence number, check digit."""
    return with_check_digit(f"{region}{birth:%Y%m%d}{seq:03d}")


@dataclass(frozen=True)
class Person:
    name: str
    id_number: str


def make_person(n: int, name: str, birth: dt.date) -> Person:
    """A person of 浮梁县 (region 360222) born on `birth`, `n` their ID's sequence number."""
    return Person(name, make_id("360222", birth, n))


@dataclass(frozen=True)
class Num:
    """Stored as an Excel number (e.g. an ID that Excel already corrupted)."""

    value: float


@dataclass(frozen=True)
class XDate:
    """Stored as a real Excel date."""

    value: dt.date


def write_workbook(
    path: Path,
    sheets: Mapping[str, Sequence[Sequence[Any]]],
    *,
    title_rows: int = 0,
    start_row: int = 0,
    inline_strings: bool = False,
    created: dt.datetime = dt.datetime(2025, 1, 1),
    merges: dict[str, list[tuple[int, int, int, int]]] | None = None,
) -> Path:
    """Each sheet: rows of cells, written from `start_row`; None leaves a cell empty. `inline_strings`:
    text in the sheet XML itself (as streaming exporters write it), not in a shared-string table.
    `merges`: per sheet, merged ranges (first row, first column, last row, last column, 0-based sheet
    rows; the value is that of the first cell)."""
    wb = xlsxwriter.Workbook(
        str(path),
        {
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "constant_memory": inline_strings,
        },
    )
    wb.set_properties({"created": created})
    date_fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    centred = wb.add_format({"align": "center", "valign": "vcenter"})
    for name, rows in sheets.items():
        ws = wb.add_worksheet(name)
        covered = set()
        for r1, c1, r2, c2 in (merges or {}).get(name, []):
            ws.merge_range(r1, c1, r2, c2, rows[r1 - start_row][c1] or "", centred)
            covered |= {(r, c) for r in range(r1, r2 + 1) for c in range(c1, c2 + 1)}
        for r, row in enumerate(rows, start=start_row):
            for c, cell in enumerate(row):
                if cell is None or (r, c) in covered:
                    continue
                if isinstance(cell, Num):
                    ws.write_number(r, c, cell.value)
                elif isinstance(cell, XDate):
                    ws.write_datetime(r, c, dt.datetime.combine(cell.value, dt.time()), date_fmt)
                elif isinstance(cell, bool):
                    ws.write_boolean(r, c, cell)
                elif isinstance(cell, (int, float)):
                    ws.write_number(r, c, cell)
                else:
                    ws.write_string(r, c, str(cell))
    wb.close()
    return path


def run_night(*args, **kwargs):
    """pipeline.run.run_night with its settings given as arguments (RunSettings' fields, in order)."""
    from pipeline.run import run_night as run
    from pipeline.settings import RunSettings

    return run(RunSettings(*args, **kwargs))


def one_payer_files(folder: Path, id_number: str, coverage_year: int) -> tuple[Path, Path]:
    """roster.xlsx and payments.xlsx in `folder`: 张三, registered on 20 October of the year before,
    paying 400 for `coverage_year` on 1 November."""
    before = coverage_year - 1
    roster = write_workbook(
        folder / "roster.xlsx",
        {
            "S": [
                ROSTER_HEADER,
                [1, "张三", id_number, "浮梁县", "浮梁镇", None, None, "是", None, None, f"{before}-10-20", None],
            ]
        },
    )
    payment = [1, "张三", id_number, 400, f"{before}-11-01", str(coverage_year), "33600000000000000001", "微信"]
    payments = write_workbook(folder / "payments.xlsx", {"S": [PAYMENT_HEADER, payment]})
    return roster, payments


def roster_row(n, name, id_number, **kw):
    """A roster row under ROSTER_HEADER: 序号 n, the person, and the other cells as given (or the usual)."""
    cells = {
        "county": "浮梁县",
        "township": "浮梁镇",
        "village": "新平村",
        "labels": None,
        "prev": "是",
        "event": None,
        "event_date": None,
        "registered": "2025-10-20",
        "identified": None,
    }
    cells.update(kw)
    return [
        n,
        name,
        id_number,
        cells["county"],
        cells["township"],
        cells["village"],
        cells["labels"],
        cells["prev"],
        cells["event"],
        cells["event_date"],
        cells["registered"],
        cells["identified"],
    ]
