"""Every format, header and cell form the bureau's systems export (docs/CONTRACT.md "Inputs",
docs/RULES.md §6), read through the night and the command as a clerk's files would be.

Nights are shared by module-scoped fixtures: most checks read one night's tables. The office-made
files are those of tests/fixtures (tests/fixtures/README.md); the small text files, the merged
headers and the WPS stand-in are written here at run time.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import struct
import tomllib
import unicodedata
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import duckdb
import fastexcel
import polars as pl
import pytest
import xlwt
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from builders import PAYMENT_HEADER, ROSTER_HEADER, Num, XDate, make_id, roster_row, run_night, write_workbook
from pipeline.cli import app
from pipeline.errors import InputFileError
from pipeline.io.preflight import check_file
from schemas.headers import load_header_map

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


# === 1. each format read ======================================================================

LO_ROSTER_COUNTS = {  # tests/fixtures/README.md, the tables of libreoffice_roster.xlsx
    "参保登记1": {
        "header_row": 3,
        "rows_read": 18,
        "accepted": 13,
        "rejected": 2,
        "skipped_blank": 1,
        "skipped_footer": 2,
        "skipped_duplicate": 0,
    },
    "参保登记2": {
        "header_row": 3,
        "rows_read": 21,
        "accepted": 9,
        "rejected": 7,
        "skipped_blank": 2,
        "skipped_footer": 2,
        "skipped_duplicate": 1,
    },
}
LO_PAYMENT_COUNTS = {
    "缴费明细1": {
        "header_row": 2,
        "rows_read": 17,
        "accepted": 10,
        "rejected": 3,
        "skipped_blank": 2,
        "skipped_footer": 2,
        "skipped_duplicate": 0,
    },
    "缴费明细2": {
        "header_row": 3,
        "rows_read": 19,
        "accepted": 13,
        "rejected": 3,
        "skipped_blank": 1,
        "skipped_footer": 2,
        "skipped_duplicate": 0,
    },
}
LO_REJECTED = [  # (sheet, row, column, reason), README's rejected rows
    ("参保登记1", 9, "证件号码", CONFLICT),
    ("参保登记1", 17, "参保登记日期", "参保登记日期“19/10/2025”不是可识别的日期" + NOT_A_DATE),
    ("参保登记2", 8, "证件号码", CONFLICT),
    ("参保登记2", 11, "证件号码", ID_BIRTH),
    ("参保登记2", 12, "人员身份", "人员身份“建档立卡贫困户”中有政策参数未列出的类别“建档立卡贫困户”，请核对写法"),
    ("参保登记2", 13, "特殊情形", "特殊情形“回国”不是政策规定的情形（是否为：出国回国？）"),
    ("参保登记2", 15, "证件号码", NUMERIC_ID),
    ("参保登记2", 19, "证件号码", CHECKSUM),
    ("参保登记2", 20, "参保人姓名", "参保人姓名为空，此项必填"),
    ("缴费明细1", 8, "电子税票号码", "电子税票号码为空，此项必填"),
    ("缴费明细1", 12, "缴费人证件号码", ID_BIRTH),
    ("缴费明细1", 13, "缴费日期", "缴费日期“11/02/2026”不是可识别的日期" + NOT_A_DATE),
    (
        "缴费明细2",
        9,
        "缴费金额",
        "缴费金额“八十元”不是可识别的金额（可写作 400、400.00、400元、￥400、1,000.00；退费写作 -400）",
    ),
    ("缴费明细2", 15, "证件号码", CHECKSUM),
    ("缴费明细2", 17, "证件号码", NUMERIC_ID),
]


@pytest.fixture(scope="module")
def libreoffice_nights(tmp_path_factory) -> dict[str, tuple]:
    base = tmp_path_factory.mktemp("libreoffice")
    return {
        fmt: night(base / fmt, [FIXTURES / f"libreoffice_roster.{fmt}"], [FIXTURES / f"libreoffice_payments.{fmt}"])
        for fmt in ("xlsx", "xls", "ods")
    }


def test_the_libreoffice_xlsx_reads_as_its_readme_says(libreoffice_nights):
    result, _ = libreoffice_nights["xlsx"]
    assert counts(result, "roster") == LO_ROSTER_COUNTS
    assert counts(result, "payments") == LO_PAYMENT_COUNTS
    # 22 accepted, 9 rejected, 1 duplicate / 23 accepted, 6 rejected
    assert sorted((s, r, c, why) for s, r, c, _, why in lines(result)) == sorted(LO_REJECTED)


@pytest.mark.parametrize("fmt", ["xls", "ods"])
def test_the_libreoffice_xls_and_ods_give_the_counts_and_rejected_lines_of_the_xlsx(libreoffice_nights, fmt):
    xlsx, _ = libreoffice_nights["xlsx"]
    other, _ = libreoffice_nights[fmt]
    for kind in ("roster", "payments"):
        assert counts(other, kind) == counts(xlsx, kind)
    assert lines(other) == lines(xlsx)


@pytest.mark.parametrize("fmt", ["xls", "ods"])
def test_the_libreoffice_xls_and_ods_fill_the_tables_of_the_xlsx(libreoffice_nights, fmt):
    """Also the unknown extra columns (联系电话 / 备注信息) and the dates, which .ods renders without a time."""
    (_, xlsx_db), (_, other_db) = libreoffice_nights["xlsx"], libreoffice_nights[fmt]
    assert differences(tables_apart_from_file_names(xlsx_db), tables_apart_from_file_names(other_db)) == {}


# Three text files as other writers make them: a title line that is ONE field (not padded to the
# width of the table as LibreOffice pads it), a blank line, then the header.
TEXT_PEOPLE = [make_id("360281", dt.date(1991, 1, 1) + dt.timedelta(days=40 * i), 100 + i) for i in range(6)]


def _text_line(cells: list, sep: str) -> str:
    def quoted(cell) -> str:
        text = "" if cell is None else str(cell)
        return f'"{text}"' if any(ch in text for ch in (sep, "\n", '"')) else text

    return sep.join(quoted(c) for c in cells)


@pytest.fixture(scope="module")
def text_night(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    a, b, c, d, e, _ = TEXT_PEOPLE
    bom = [
        "浮梁县2026年度城乡居民医保参保登记花名册",
        "",
        _text_line(ROSTER_HEADER, ","),
        _text_line(roster_row(1, "赵甲", a, village="新平村,一组"), ","),  # record 4, a quoted comma
        _text_line(roster_row(1, "赵乙", b), ","),  # record 5
        _text_line(roster_row(1, "赵丙", "3.6020219980525E+017"), ","),  # record 6: LibreOffice's CSV of a number ID
        "合计：3人",  # record 7
    ]
    (folder / "roster_bom.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(bom).encode("utf-8") + b"\r\n")
    tab = [
        "花名册",
        "",
        _text_line([*ROSTER_HEADER, "备注"], "\t"),
        _text_line([*roster_row(1, "钱甲", c), "户主\n本人"], "\t"),  # record 4, over two lines
        _text_line([*roster_row(1, "钱乙", d, prev="也许"), None], "\t"),  # record 5, line 6
        _text_line([*roster_row(1, "钱丙", e), None], "\t"),  # record 6
    ]
    (folder / "roster_tab.txt").write_bytes("\n".join(tab).encode("gb18030") + b"\n")
    semicolon = [
        "缴费明细",
        "",
        _text_line(PAYMENT_HEADER, ";"),
        _text_line([1, "赵甲", a, "400.00", "2025-11-01", "2026", "03622259900000000001", "微信"], ";"),
        _text_line([2, "赵乙", b, "1,000.00", "2025", "2026", "03622259900000000002", "微信"], ";"),
        _text_line([3, "钱甲", c, "400", "20251102", "2026年度", "03622259900000000003", "微信"], ";"),
        "合计：3笔",
    ]
    (folder / "payments_semicolon.csv").write_text("\n".join(semicolon) + "\n", encoding="utf-8")
    return night(
        folder / "out", [folder / "roster_bom.csv", folder / "roster_tab.txt"], [folder / "payments_semicolon.csv"]
    )


def test_utf8_bom_tab_and_semicolon_text_files_are_read_by_content(text_night):
    result, _ = text_night
    assert counts(result, "roster") == {
        "roster_bom": {
            "header_row": 3,
            "rows_read": 4,
            "accepted": 2,
            "rejected": 1,
            "skipped_blank": 0,
            "skipped_footer": 1,
            "skipped_duplicate": 0,
        },
        "roster_tab": {
            "header_row": 3,
            "rows_read": 3,
            "accepted": 2,
            "rejected": 1,
            "skipped_blank": 0,
            "skipped_footer": 0,
            "skipped_duplicate": 0,
        },
    }
    assert counts(result, "payments") == {
        "payments_semicolon": {
            "header_row": 3,
            "rows_read": 4,
            "accepted": 2,
            "rejected": 1,
            "skipped_blank": 0,
            "skipped_footer": 1,
            "skipped_duplicate": 0,
        }
    }


def test_a_text_files_row_number_is_its_record_number_title_and_blank_line_counted(text_night):
    result, _ = text_night
    assert lines(result) == [
        (
            "payments_semicolon",
            5,
            "缴费日期",
            "2025",
            "缴费日期“2025”只有年份或年月，不是完整日期；请填写年月日（如 2025-10-15）",
        ),
        ("roster_bom", 6, "证件号码", "3.6020219980525E+017", NUMERIC_ID),
        # the quoted line break of record 4 does not shift the records after it
        ("roster_tab", 5, "上年度参保", "也许", "上年度参保“也许”应为 是/否"),
    ]


def test_text_cells_arrive_whole_quoted_separators_and_line_breaks_included(text_night):
    _, db = text_night
    residents = {r["name"]: r for r in query(db, "SELECT name, village, extra_columns, row_number FROM residents")}
    assert residents["赵甲"]["village"] == "新平村,一组"
    assert json.loads(residents["钱甲"]["extra_columns"]) == {"备注": "户主\n本人"}
    paid = query(db, "SELECT row_number, amount, paid_on, coverage_year FROM payments ORDER BY row_number")
    assert [(p["row_number"], float(p["amount"]), p["paid_on"], p["coverage_year"]) for p in paid] == [
        (4, 400.0, dt.date(2025, 11, 1), 2026),
        (6, 400.0, dt.date(2025, 11, 2), 2026),
    ]


# === 2. the same night in three formats ===========================================================


@pytest.fixture(scope="module")
def same_nights(tmp_path_factory) -> dict[str, tuple]:
    base = tmp_path_factory.mktemp("same_night")
    return {
        fmt: night(base / fmt, [SAME_NIGHT / f"roster.{fmt}"], [SAME_NIGHT / f"payments.{fmt}"])
        for fmt in ("xlsx", "xls", "csv")
    }


SAME_NIGHT_COUNTS = {  # tests/fixtures/README.md, `same_night/`
    "roster": {
        "roster": {
            "header_row": 3,
            "rows_read": 16,
            "accepted": 12,
            "rejected": 1,
            "skipped_blank": 1,
            "skipped_footer": 2,
            "skipped_duplicate": 0,
        }
    },
    "payments": {
        "payments": {
            "header_row": 2,
            "rows_read": 15,
            "accepted": 13,
            "rejected": 1,
            "skipped_blank": 0,
            "skipped_footer": 1,
            "skipped_duplicate": 0,
        }
    },
}


@pytest.mark.parametrize("fmt", ["xlsx", "xls", "csv"])
def test_the_same_night_reads_as_its_readme_says_in_every_format(same_nights, fmt):
    """The .csv is GB18030 (LibreOffice's filter option 85), padded to the width of the table."""
    result, _ = same_nights[fmt]
    assert {kind: counts(result, kind) for kind in ("roster", "payments")} == SAME_NIGHT_COUNTS
    assert lines(result) == [
        (
            "payments",
            16,
            "缴费金额",
            "八十元",
            "缴费金额“八十元”不是可识别的金额（可写作 400、400.00、400元、￥400、1,000.00；退费写作 -400）",
        ),
        ("roster", 16, "证件号码", "360222198310010510", CHECKSUM),
    ]


@pytest.mark.parametrize("fmt", ["xls", "csv"])
def test_the_same_night_as_xls_and_as_csv_fills_the_same_tables_as_xlsx(same_nights, fmt):
    (_, xlsx_db), (_, other_db) = same_nights["xlsx"], same_nights[fmt]
    xlsx_tables, other_tables = tables_apart_from_file_names(xlsx_db), tables_apart_from_file_names(other_db)
    assert NAMED_TABLES <= set(xlsx_tables)
    assert differences(xlsx_tables, other_tables) == {}


# === 3. named by content, not by name ================================================================


@pytest.fixture(scope="module")
def renamed_nights(tmp_path_factory) -> dict[str, tuple]:
    base = tmp_path_factory.mktemp("renamed")

    def copy(src: Path, name: str) -> Path:
        (base / "in").mkdir(exist_ok=True)
        return Path(shutil.copyfile(src, base / "in" / name))

    xls_as_xlsx = copy(SAME_NIGHT / "roster.xls", "roster_old.xlsx")
    xlsx_as_xls = copy(SAME_NIGHT / "payments.xlsx", "payments_new.xls")
    csv_as_xlsx = copy(SAME_NIGHT / "roster.csv", "roster.xlsx")
    xls_as_et = copy(SAME_NIGHT / "payments.xls", "payments.et")
    return {
        "files": {
            "xls_as_xlsx": xls_as_xlsx,
            "xlsx_as_xls": xlsx_as_xls,
            "csv_as_xlsx": csv_as_xlsx,
            "xls_as_et": xls_as_et,
        },
        "xls_as_xlsx + xlsx_as_xls": night(base / "a", [xls_as_xlsx], [xlsx_as_xls]),
        "csv_as_xlsx + xls_as_et": night(base / "b", [csv_as_xlsx], [xls_as_et]),
    }


def test_the_preflight_names_a_files_format_by_its_content(renamed_nights):
    files = renamed_nights["files"]
    assert {k: check_file(p) for k, p in files.items()} == {
        "xls_as_xlsx": "xls",
        "xlsx_as_xls": "xlsx",
        "csv_as_xlsx": "csv",
        "xls_as_et": "xls",
    }
    assert [check_file(FIXTURES / f"libreoffice_roster.{x}") for x in ("xlsx", "xls", "ods")] == ["xlsx", "xls", "ods"]


@pytest.mark.parametrize("pair", ["xls_as_xlsx + xlsx_as_xls", "csv_as_xlsx + xls_as_et"])
def test_a_renamed_workbook_is_read_as_what_it_is(renamed_nights, same_nights, pair):
    (_, renamed_db), (_, xlsx_db) = renamed_nights[pair], same_nights["xlsx"]
    assert differences(tables_apart_from_file_names(xlsx_db), tables_apart_from_file_names(renamed_db)) == {}


# === 4. files that are no workbook: one line each, exit code 2 =======================================

FREE, END_OF_CHAIN, FAT_SECTOR, NO_STREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def _directory_entry(name: str, kind: int, child: int = NO_STREAM, start: int = END_OF_CHAIN, size: int = 0) -> bytes:
    encoded = (name + "\0").encode("utf-16-le") if name else b""
    return (
        encoded.ljust(64, b"\0")
        + struct.pack("<HBB3I", len(encoded), kind, 1 if name else 0, NO_STREAM, NO_STREAM, child)
        + b"\0" * 36
        + struct.pack("<IQ", start, size)
    )


def compound_file(stream: str, data: bytes) -> bytes:
    """A minimal OLE compound file (MS-CFB version 3, 512-byte sectors) holding one stream of 4096
    bytes in regular sectors: sector 0 the FAT, 1 the directory, 2-9 the stream."""
    data = data.ljust(4096, b"\0")
    n = len(data) // 512
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\0" * 16
        + struct.pack("<HHHHH6xIIIIIIIII", 0x3E, 3, 0xFFFE, 9, 6, 0, 1, 1, 0, 4096, END_OF_CHAIN, 0, END_OF_CHAIN, 0)
        + struct.pack("<109I", 0, *[FREE] * 108)
    )
    fat = [FAT_SECTOR, END_OF_CHAIN, *range(3, 2 + n), END_OF_CHAIN]
    directory = (
        _directory_entry("Root Entry", 5, child=1)
        + _directory_entry(stream, 2, start=2, size=len(data))
        + _directory_entry("", 0) * 2
    )
    return header + struct.pack("<128I", *fat, *[FREE] * (128 - len(fat))) + directory + data


@pytest.fixture(scope="module")
def wps_et(tmp_path_factory) -> Path:
    """Stands for a WPS .et: an OLE file whose only stream is not a Workbook (no genuine .et can be
    made here, tests/fixtures/README.md)."""
    path = tmp_path_factory.mktemp("et") / "花名册.et"
    path.write_bytes(compound_file("WpsCustomData", "金山WPS表格".encode("utf-16-le")))
    return path


def test_the_wps_stand_in_is_a_valid_compound_file_without_a_workbook(wps_et, tmp_path):
    # calamine walks its directory and finds no Workbook stream: the container itself is sound
    as_xls = Path(shutil.copyfile(wps_et, tmp_path / "et.xls"))
    with pytest.raises(fastexcel.FastExcelError, match="Cannot find Workbook stream"):
        fastexcel.read_excel(str(as_xls))


# What the clerk reads, in Chinese then English, before ": <file>": what the file is and what to do.
PASSWORD = (
    "工作簿设置了打开密码，请取消密码后另存为 .xlsx",
    "workbook is password-protected, remove the password and save as .xlsx",
)
REFUSED_MESSAGES = {
    "html_export.xls": (
        "文件是网页(HTML)表格，不是Excel工作簿（网上系统常这样“导出Excel”），请用Excel或WPS打开后另存为 .xlsx",
        'HTML page, not a workbook (a web system\'s "Excel export"): open it in Excel or WPS and save it as .xlsx',
    ),
    "spreadsheetml_2003.xls": (
        "文件是Excel 2003 XML表格，请用Excel或WPS打开后另存为 .xlsx",
        "Excel 2003 XML spreadsheet: open it in Excel or WPS and save it as .xlsx",
    ),
    "encrypted.xls": PASSWORD,
    "encrypted.xlsx": PASSWORD,
    "truncated.xls": (
        "文件已损坏或不完整，请重新导出或重新下载",
        "file is truncated or damaged: export or download it again",
    ),
    "wps.et": (
        "文件不是Excel工作簿（可能是WPS表格的 .et 格式或其他Office文档），请用WPS或Excel另存为 .xlsx",
        "not an Excel workbook (perhaps a WPS .et spreadsheet or another Office file): save it as .xlsx in WPS or Excel",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED_MESSAGES))
def test_a_file_that_is_no_readable_workbook_stops_the_night_with_its_own_line(tmp_path, wps_et, case):
    bad = wps_et if case == "wps.et" else REFUSED / case
    out = tmp_path / "out"
    roster = SAME_NIGHT / "roster.xlsx"
    args = ["run", "--coverage-year", "2026", "--region", "jingdezhen", "--roster", str(roster), "--payments", str(bad)]
    result = CliRunner().invoke(app, [*args, "--db", str(out / "medins.duckdb"), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.strip()] == [
        "错误 / error: {} / {}: {}".format(*REFUSED_MESSAGES[case], bad)
    ]
    assert not (out / "medins.duckdb").exists()


def test_each_kind_of_refused_file_has_its_own_message_in_chinese_and_english(wps_et):
    def message(path: Path) -> str:
        with pytest.raises(InputFileError) as refused:
            check_file(path)
        return str(refused.value).removesuffix(f": {path}")

    got = {case: message(wps_et if case == "wps.et" else REFUSED / case) for case in REFUSED_MESSAGES}
    assert len(set(got.values())) == len(got) - 1  # the two encrypted workbooks share theirs
    assert got["encrypted.xls"] == got["encrypted.xlsx"]
    for text in got.values():
        chinese, english = text.split(" / ", 1)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese) and english.isascii(), text


# === 5. headers ==========================================================================================

HEADER_DATA = tomllib.loads(HEADERS_TOML.read_text(encoding="utf-8"))
ALIASES = [
    (kind, name, alias)
    for kind in ("roster", "payments", "subsidy_list")
    for name, spec in HEADER_DATA[kind]["fields"].items()
    for alias in spec["aliases"]
]
_FULL_WIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}


def decorated(alias: str) -> list[str]:
    """The ways clerks and exports write one header: full-width brackets and commas, spaces and line
    breaks inside, the `*` of a required field, a unit in brackets after it."""
    middle = len(alias) // 2
    return [
        alias,
        "".join(_FULL_WIDTH.get(ch, ch) for ch in alias),
        f" {alias[:middle]}\n{alias[middle:]} ",
        f"{alias[:middle]}\r\n{alias[middle:]}",
        "\u3000".join(alias),
        f"*{alias}",
        f"{alias}*",
        f"＊{alias}",
        f"{alias}（元）",
        f"{alias}(元)",
        f"*{alias[:middle]} {alias[middle:]}（人民币元）",
    ]


@pytest.mark.parametrize(("kind", "field", "alias"), ALIASES, ids=[f"{k}-{a}" for k, _, a in ALIASES])
def test_every_alias_of_every_field_is_recognised_however_it_is_written(kind, field, alias):
    header_map = load_header_map(kind)
    assert {spelling: header_map.field_of(spelling) for spelling in decorated(alias)} == {
        spelling: field for spelling in decorated(alias)
    }


@pytest.mark.parametrize(
    ("kind", "cell", "field"),
    [
        ("payments", "实缴金额(元)", "amount"),
        ("payments", "缴费金额（元）", "amount"),
        ("roster", "县(市、区)", "county"),  # a header name with brackets matches as it is
        ("roster", "县（市、区）", "county"),
        ("payments", "缴费总金额", None),  # includes the fiscal subsidy: never the amount
        ("payments", "票证号码", None),  # the paper ticket: never the electronic ticket number
        ("payments", "缴费总金额(元)", None),
    ],
)
def test_header_cells_that_must_or_must_not_match(kind, cell, field):
    assert load_header_map(kind).field_of(cell) == field


# NFKC-equivalent single characters of every character the aliases use (full-width forms, small
# forms, Kangxi radicals, compatibility ideographs, ...).
_PREIMAGES: dict[str, list[str]] = {}
for _code in [*range(0x80, 0x30000)]:
    _ch = chr(_code)
    _norm = unicodedata.normalize("NFKC", _ch)
    if len(_norm) == 1 and _norm != _ch:
        _PREIMAGES.setdefault(_norm, []).append(_ch)


@st.composite
def spelled(draw, alias: str) -> str:
    chars = [draw(st.sampled_from([ch, *_PREIMAGES.get(ch, [])])) for ch in alias]
    spaces = st.sampled_from(["", "", " ", "\n", "\r\n", "\t", "\u3000", "\u00a0"])
    body = "".join(draw(spaces) + ch for ch in chars) + draw(spaces)
    star = st.sampled_from(["", "*", "＊"])
    unit = draw(st.sampled_from(["", "(元)", "（元）", "（ 元 ）", "(人民币元)"]))
    return draw(star) + draw(spaces) + body + unit + draw(star)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(ALIASES).flatmap(lambda a: st.tuples(st.just(a), spelled(a[2]))))
def test_any_nfkc_equivalent_spelling_of_an_alias_finds_its_field(case):
    (kind, field, _), cell = case
    assert load_header_map(kind).field_of(cell) == field


# === the cells night: items 5-9 read from one night ===================================================
# Each sheet holds the cases of one check; with the header on row 1, case k is on Excel row k + 2.

IDS = person_ids()
LATE = "2026-11-24"  # the day after the run date


def future(header: str, raw: str) -> str:
    return f"{header}“{raw}”晚于运行日期2026-11-23，不可能是将来的日期；请核对"


ID_TYPE_CASES = [
    ("01", "居民身份证"),
    (Num(1), "居民身份证"),
    ("1", "居民身份证"),
    ("07", "07"),
    ("护照", "护照"),
    ("居民身份证", "居民身份证"),
    (None, "居民身份证"),
]

NO_DAY = "{}“{}”只有年份或年月，不是完整日期；请填写年月日（如 2025-10-15）"
# (roster_row keyword, cell, then the residents column and the value kept, or the column and the reason)
ROSTER_DATE_CASES = [
    ("registered", LATE, "参保登记日期", future("参保登记日期", LATE)),
    ("registered", "2026-11-23", "registered_on", dt.date(2026, 11, 23)),  # the run date itself
    ("event_date", LATE, "特殊情形日期", future("特殊情形日期", LATE)),
    ("identified", LATE, "资助认定日期", future("资助认定日期", LATE)),
    ("identified", "202612", "资助认定日期", future("资助认定日期", "202612")),
    # a month is enough for 资助认定日期 (its first day), not for the other dates (docs/RULES.md §6)
    ("identified", "202603", "subsidy_identified_on", dt.date(2026, 3, 1)),
    ("identified", "2026-03", "subsidy_identified_on", dt.date(2026, 3, 1)),
    ("identified", "2026年3月", "subsidy_identified_on", dt.date(2026, 3, 1)),
    ("identified", Num(202603), "subsidy_identified_on", dt.date(2026, 3, 1)),
    ("identified", "2026-03-15", "subsidy_identified_on", dt.date(2026, 3, 15)),
    ("registered", "202510", "参保登记日期", NO_DAY.format("参保登记日期", "202510")),
    ("registered", "2025年10月", "参保登记日期", "参保登记日期“2025年10月”不是可识别的日期" + NOT_A_DATE),
]


def dated_row(name: str, keyword: str, cell) -> list:
    """A roster row with one date cell; a 特殊情形日期 needs its 特殊情形, a 资助认定日期 its label."""
    needs = {"event_date": {"event": "退役军人"}, "identified": {"labels": "城乡低保对象"}}.get(keyword, {})
    return roster_row(1, name, next(IDS), **{keyword: cell}, **needs)


BORN = dt.date(1990, 3, 4)
BORN_ID = make_id("360222", BORN, 5)
FUTURE_BIRTH_ID = next(IDS)
# Not a month: a bare year, month 13, month 00 (docs/RULES.md §6: a year is never a date)
IDENTIFIED_NOT_A_MONTH = ["2026", Num(2026), "202613", "202600"]

ROSTER_ID_CASES = [
    ("360222900501123", OLD_15),
    (Num(360222900501123), OLD_15),
    ("3.6020219980525E+017", NUMERIC_ID),  # what LibreOffice's CSV writes for a number ID
    (Num(3.6020219980525e17), NUMERIC_ID),
]
PAYMENT_ID_CASES = [
    ("360222900501123", OLD_15),
    (Num(360222900501123), OLD_15),
    ("3.6020219980525E+017", NUMERIC_ID),
    ("3.60222E+17", NUMERIC_ID),  # what Excel writes for one
]

# (cell, the coverage year it gives): docs/RULES.md §6, every form and ranges of them
PERIOD_FORMS = [
    ("2026", 2026),
    ("2026年", 2026),
    ("2026年度", 2026),
    ("2025年度", 2025),
    ("202603", 2026),
    ("2026-03", 2026),
    ("2026.03", 2026),
    ("2026年3月", 2026),
    ("202512", 2025),
    ("2026-03-15", 2026),
    ("2026/03/15", 2026),
    ("2026.03.15", 2026),
    ("20260315", 2026),
    ("2026年3月15日", 2026),
    (XDate(dt.date(2026, 3, 15)), 2026),
    (XDate(dt.date(2025, 12, 31)), 2025),
    (Num(2026), 2026),
    ("202601-202612", 2026),
    ("2026-01-01至2026-12-31", 2026),
    ("2026-01-01~2026-12-31", 2026),
    ("2026-01-01～2026-12-31", 2026),
    ("2026年1月到2026年12月", 2026),
    ("2026-01-01-2026-12-31", 2026),
    ("2026-01-2026-12", 2026),
    ("2026.01-2026.12", 2026),
    ("2026年-2026年", 2026),
    ("2025-01至2025-12", 2025),
    ("2026-01-01 至 2026-12-31", 2026),
    ("2026/1/1-2026/12/31", 2026),
    ("2026年01月01日-2026年12月31日", 2026),
]
CROSS_YEAR = "202512-202601"
PERIOD_RANGE_FORMS = [
    ("202601-202612", 2026),
    ("2026-01-01至2026-12-31", 2026),
    ("2025年1月到2025年12月", 2025),
    ("2026", 2026),
]
# A range of two different forms joined by `-` ("a range of any of those", docs/RULES.md §6)
MIXED_RANGES = ["202601-2026-12", "2026-01-01-2026-12", "2026-01-2026-12-31", "2026年1月-2026-12", "2026.01-2026-12"]

TOO_EARLY = "缴费日期“{}”早于费款所属期前两年的1月1日，不可能是为该年度缴费；请核对缴费日期或费款所属期"
BABY = make_id("360222", dt.date(2025, 6, 1), 9)
# (缴费日期 cell, 费款所属期, ID, the paid_on kept or the reason)
PAID_ON_CASES = [
    ("2025", "2026", PAYER, NO_DAY.format("缴费日期", "2025")),  # never serial 2025 = 1905-07-17
    (Num(2025), "2026", PAYER, NO_DAY.format("缴费日期", "2025")),
    ("202511", "2026", PAYER, NO_DAY.format("缴费日期", "202511")),
    (Num(202511), "2026", PAYER, NO_DAY.format("缴费日期", "202511")),
    (LATE, "2026", PAYER, future("缴费日期", LATE)),
    ("2026-11-23", "2026", PAYER, dt.date(2026, 11, 23)),  # the run date itself
    ("2023-12-31", "2026", PAYER, TOO_EARLY.format("2023-12-31")),  # C = 2026: not before 2024-01-01
    ("2024-01-01", "2026", PAYER, dt.date(2024, 1, 1)),
    ("2022-12-31", "2025", PAYER, TOO_EARLY.format("2022-12-31")),  # C = 2025: not before 2023-01-01
    ("2023-01-01", "2025", PAYER, dt.date(2023, 1, 1)),
    ("2025-03-01", "2026", BABY, "缴费日期早于出生日期"),  # born 2025-06-01 by the row's own ID
    ("2025-06-01", "2026", BABY, dt.date(2025, 6, 1)),
    ("20251015", "2026", PAYER, dt.date(2025, 10, 15)),
    (Num(20251015), "2026", PAYER, dt.date(2025, 10, 15)),
    ("45945", "2026", PAYER, dt.date(2025, 10, 15)),  # Excel serial 45945
    (Num(45945), "2026", PAYER, dt.date(2025, 10, 15)),
    ("45945.5", "2026", PAYER, dt.date(2025, 10, 15)),  # the day of its integer part
    (Num(45945.5), "2026", PAYER, dt.date(2025, 10, 15)),
    (XDate(dt.date(2025, 10, 15)), "2026", PAYER, dt.date(2025, 10, 15)),
    ("2026-10-01", "2027", PAYER, dt.date(2026, 10, 1)),  # 费款所属期 may lie in the future
]


def two_row_sheet(group: str, sub: tuple[str, str], rows: list[list], title: bool = True):
    """A tax export with a header over two rows: `group` merged over two columns with `sub` below,
    every other header cell merged down over both rows; a merged title above it when `title`."""
    top = ["序号", "缴费人姓名", "缴费人证件号码", "缴费金额", "缴费日期", group, None, "电子税票号码", "缴费渠道"]
    below = [None] * 5 + list(sub) + [None, None]
    first = 1 if title else 0
    cells = ([["2026年度城乡居民医保缴费明细"] + [None] * 8] if title else []) + [top, below] + rows
    merges = (
        ([(0, 0, 0, 8)] if title else [])
        + [(first, c, first + 1, c) for c in (0, 1, 2, 3, 4, 7, 8)]
        + [(first, 5, first, 6)]
    )
    return cells, merges


def two_column_row(start, end) -> list:
    return [1, "丁一", PAYER, 400, "2025-11-01", start, end, ticket(), "微信"]


def write_xls(path: Path, sheets: dict[str, tuple[list[list], list[tuple[int, int, int, int]]]]) -> Path:
    """An Excel 97 (BIFF8) workbook with merged cells, written by xlwt."""
    book = xlwt.Workbook(encoding="utf-8")
    for name, (rows, merges) in sheets.items():
        ws = book.add_sheet(name)
        covered = set()
        for r1, c1, r2, c2 in merges:
            ws.write_merge(r1, r2, c1, c2, rows[r1][c1] or "")
            covered |= {(r, c) for r in range(r1, r2 + 1) for c in range(c1, c2 + 1)}
        for r, row in enumerate(rows):
            for c, cell in enumerate(row):
                if cell is not None and (r, c) not in covered:
                    ws.write(r, c, cell)
    book.save(str(path))
    return path


def payment_sheets() -> tuple[dict[str, list[list]], dict[str, list]]:
    def paid_columns(first: str, second: str) -> list[list]:
        dates = {"缴款日期": "2025-11-01", "入库日期": "2025-11-05"}
        return [
            with_header(PAYMENT_HEADER, {"缴费日期": first}, (second,)),
            [*payment_row(paid_on=dates[first]), dates[second]],
        ]

    sheets, merges = {}, {}
    for name, group, sub, rows, title in [
        (
            "两行表头",
            "费款所属期",
            ("起", "止"),
            [
                two_column_row("2026-01-01", "2026-12-31"),
                two_column_row("202601", None),
                two_column_row("2025-12-01", "2026-11-30"),
            ],
            True,
        ),
        (
            "两行表头_对应",
            "对应费款所属期",
            ("起始", "结束"),
            [two_column_row("2026-01", "2026-12"), two_column_row(None, "2026-12-31")],
            True,
        ),
        ("两行表头_税款", "税款所属期", ("起", "止"), [two_column_row("2026年1月", "2026年12月")], False),
    ]:
        sheets[name], merges[name] = two_row_sheet(group, sub, rows, title)
    flat = with_header(PAYMENT_HEADER, {"费款所属期": "税款所属期起"})
    flat.insert(6, "税款所属期止")
    sheets["一行起止"] = [
        flat,
        two_column_row("2026-01-01", "2026-12-31"),
        two_column_row(XDate(dt.date(2026, 1, 1)), XDate(dt.date(2026, 12, 31))),
    ]
    sheets["所属期"] = (
        [PAYMENT_HEADER] + [payment_row(period=form) for form, _ in PERIOD_FORMS] + [payment_row(period=CROSS_YEAR)]
    )
    sheets["所属期起止"] = [with_header(PAYMENT_HEADER, {"费款所属期": "费款所属期起止"})] + [
        payment_row(period=form) for form, _ in PERIOD_RANGE_FORMS
    ]
    sheets["混合区间"] = [PAYMENT_HEADER] + [payment_row(period=form) for form in MIXED_RANGES]
    sheets["缴费日期"] = [PAYMENT_HEADER] + [
        payment_row(paid_on=cell, period=period, pid=pid) for cell, period, pid, _ in PAID_ON_CASES
    ]
    sheets["旧证"] = [PAYMENT_HEADER] + [payment_row(pid=pid) for pid, _ in PAYMENT_ID_CASES]
    sheets["入库日期在前"] = paid_columns("入库日期", "缴款日期")
    sheets["缴款日期在前"] = paid_columns("缴款日期", "入库日期")
    sheets["票证号码"] = [with_header(PAYMENT_HEADER, append=("票证号码",)), [*payment_row(), "A00000001"]]
    sheets["缴费总金额"] = [
        with_header(PAYMENT_HEADER, {"缴费金额": "缴费总金额"}, ("缴费金额",)),
        [*payment_row(amount="1280.00"), "400.00"],
    ]
    sheets["金额单位"] = [
        with_header(PAYMENT_HEADER, {"缴费金额": "实缴金额(元)"}, ("缴费金额（元）",)),
        [*payment_row(amount="380.00"), "400.00"],
    ]
    return sheets, merges


def roster_sheets() -> dict[str, list[list]]:
    decorated_headers = ["编号", "参保人姓名", "*姓名", "公民身份\n号码", "县（市、区）", " 乡镇（街道）*", "村 (社区)"]
    dates = [[*dated_row(f"乙{i}", keyword, cell), None] for i, (keyword, cell, *_) in enumerate(ROSTER_DATE_CASES)]
    # then two rows with a 出生日期: after the run date, and the one in the ID
    dates += [[*roster_row(1, "乙甲", FUTURE_BIRTH_ID), LATE], [*roster_row(1, "乙乙", BORN_ID), BORN.isoformat()]]
    return {
        "证件类型": [[*ROSTER_HEADER, "证件类型"]]
        + [[*roster_row(1, f"甲{i}", next(IDS)), code] for i, (code, _) in enumerate(ID_TYPE_CASES)],
        "日期": [[*ROSTER_HEADER, "出生日期"], *dates],
        "认定日期": [ROSTER_HEADER]
        + [dated_row(f"戊{i}", "identified", c) for i, c in enumerate(IDENTIFIED_NOT_A_MONTH)],
        "旧证": [ROSTER_HEADER] + [roster_row(1, f"丙{i}", pid) for i, (pid, _) in enumerate(ROSTER_ID_CASES)],
        "表头": [
            [*decorated_headers, "上年度参保", "备注"],
            [1, "张别名", "张三", next(IDS), "浮梁县", "浮梁镇", "新平村", "是", "无"],
        ],
    }


@pytest.fixture(scope="module")
def cells_night(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cells")
    roster = write_workbook(folder / "roster.xlsx", roster_sheets())
    sheets, merges = payment_sheets()
    payments = write_workbook(folder / "payments.xlsx", sheets, merges=merges)
    # the same two-row header as an .xls and as the CSV LibreOffice writes of it (merged cells empty)
    filled, start_only = two_column_row("2026-01-01", "2026-12-31"), two_column_row("202601", None)
    old_xls = write_xls(
        folder / "payments_97.xls", {"两行表头xls": two_row_sheet("费款所属期", ("起", "止"), [filled, start_only])}
    )
    rows, _ = two_row_sheet(
        "费款所属期", ("起", "止"), [two_column_row("2026-01-01", "2026-12-31"), two_column_row(None, "2026-12")]
    )
    text = folder / "两行表头csv.csv"
    text.write_bytes("\n".join(_text_line(row, ",") for row in rows).encode("gb18030") + b"\n")
    return night(folder / "out", [roster], [payments, old_xls, text])


def payments_of(db: Path, sheet: str) -> dict[int, dict]:
    return {
        r["row_number"]: r
        for r in query(
            db,
            "SELECT row_number, coverage_year, paid_on, amount, ticket_no, extra_columns FROM payments WHERE sheet = ?",
            sheet,
        )
    }


def residents_of(db: Path, sheet: str) -> dict[int, dict]:
    return {r["row_number"]: r for r in query(db, "SELECT * FROM residents WHERE sheet = ?", sheet)}


# === 5. headers in a night ==================================================================================


def test_id_type_codes_01_and_1_mean_resident_id_card_other_codes_are_kept_as_written(cells_night):
    result, db = cells_night
    assert lines(result, "roster", "证件类型") == []
    got = {row: r["id_type"] for row, r in residents_of(db, "证件类型").items()}
    assert got == {i + 2: want for i, (_, want) in enumerate(ID_TYPE_CASES)}


def test_decorated_headers_find_their_fields_and_the_first_listed_alias_wins(cells_night):
    _, db = cells_night
    (person,) = residents_of(db, "表头").values()
    # 姓名 is listed before 参保人姓名, whatever the column order
    assert (person["name"], person["county"], person["township"], person["village"]) == (
        "张三",
        "浮梁县",
        "浮梁镇",
        "新平村",
    )
    assert json.loads(person["extra_columns"]) == {"参保人姓名": "张别名", "备注": "无"}


@pytest.mark.parametrize("sheet", ["入库日期在前", "缴款日期在前"])
def test_payment_date_beats_posting_date_whatever_the_column_order(cells_night, sheet):
    _, db = cells_night
    (row,) = payments_of(db, sheet).values()
    assert (row["paid_on"], json.loads(row["extra_columns"])) == (dt.date(2025, 11, 1), {"入库日期": "2025-11-05"})


def test_a_trailing_unit_is_dropped_and_the_first_listed_amount_alias_wins(cells_night):
    _, db = cells_night
    (row,) = payments_of(db, "金额单位").values()
    assert (float(row["amount"]), json.loads(row["extra_columns"])) == (400.0, {"实缴金额(元)": "380.00"})


def test_the_paper_ticket_number_is_an_extra_column_never_the_electronic_ticket(cells_night):
    _, db = cells_night
    (row,) = payments_of(db, "票证号码").values()
    assert json.loads(row["extra_columns"]) == {"票证号码": "A00000001"}
    assert row["ticket_no"] != "A00000001" and len(row["ticket_no"]) == 20


@pytest.mark.parametrize(
    "renamed, missing",
    [
        ({"电子税票号码": "票证号码"}, "电子税票号码（也可写作：电子税票号）"),
        ({"缴费金额": "缴费总金额"}, "缴费金额（也可写作：实缴金额、个人缴费金额）"),
    ],
)
def test_a_payments_file_with_only_the_look_alike_column_is_refused_naming_the_real_one(tmp_path, renamed, missing):
    """票证号码 is no 电子税票号码 and 缴费总金额 (with the fiscal subsidy) no 缴费金额: a sheet that has
    only the look-alike lacks a required column, and its file is refused whole (docs/RULES.md §6)."""
    roster = write_workbook(tmp_path / "roster.xlsx", {"S": [ROSTER_HEADER, roster_row(1, "张三", next(IDS))]})
    payments = write_workbook(tmp_path / "payments.xlsx", {"S": [with_header(PAYMENT_HEADER, renamed), payment_row()]})
    with pytest.raises(InputFileError) as refused:
        night(tmp_path / "out", [roster], [payments])
    assert str(refused.value).startswith(f"税务缴费明细缺少必填列：{missing}。")


def test_the_total_amount_with_the_fiscal_subsidy_is_never_the_amount(cells_night):
    _, db = cells_night
    (row,) = payments_of(db, "缴费总金额").values()
    assert (float(row["amount"]), json.loads(row["extra_columns"])) == (400.0, {"缴费总金额": "1280.00"})


# === 6. two-row headers ==================================================================================

# (sheet, Excel row of the first data row, data rows): the sub-header row is no data row
TWO_ROW_SHEETS = [
    ("两行表头", 4, 3),
    ("两行表头_对应", 4, 2),
    ("两行表头_税款", 3, 1),
    ("两行表头xls", 4, 2),
    ("两行表头csv", 4, 2),
]


@pytest.mark.parametrize(("sheet", "first_data_row", "n_rows"), TWO_ROW_SHEETS)
def test_a_period_merged_over_start_and_end_reads_as_two_columns_below_a_sub_header(
    cells_night, sheet, first_data_row, n_rows
):
    result, db = cells_night
    counted = counts(result, "payments")[sheet]
    assert (counted["rows_read"], counted["skipped_blank"], counted["skipped_footer"]) == (n_rows, 0, 0)
    assert counted["accepted"] + counted["rejected"] == n_rows
    assert payments_of(db, sheet)[first_data_row]["coverage_year"] == 2026


def test_a_period_in_two_plain_columns_text_or_excel_dates(cells_night):
    result, db = cells_night
    assert lines(result, "payments", "一行起止") == []
    assert {row: r["coverage_year"] for row, r in payments_of(db, "一行起止").items()} == {2: 2026, 3: 2026}


def test_one_empty_end_of_a_two_column_period_rejects_the_row_naming_that_column(cells_night):
    result, _ = cells_night
    rejected = {
        sheet: reasons_by_row(result, "payments", sheet)
        for sheet in ("两行表头", "两行表头_对应", "两行表头xls", "两行表头csv")
    }
    assert rejected == {
        "两行表头": {
            5: [("费款所属期止", "费款所属期止为空，此项必填")],
            6: [
                (
                    "费款所属期",
                    "费款所属期跨年度（“2025-12-01至2026-11-30”的起止不在同一年），无法确定待遇年度；请按年度分开",
                )
            ],
        },
        "两行表头_对应": {5: [("对应费款所属期起始", "对应费款所属期起始为空，此项必填")]},
        "两行表头xls": {5: [("费款所属期止", "费款所属期止为空，此项必填")]},
        "两行表头csv": {5: [("费款所属期起", "费款所属期起为空，此项必填")]},
    }


# === 7. every 费款所属期 form ============================================================================


def test_every_period_form_gives_its_coverage_year(cells_night):
    _, db = cells_night
    got = {row: r["coverage_year"] for row, r in payments_of(db, "所属期").items()}
    assert got == {i + 2: year for i, (_, year) in enumerate(PERIOD_FORMS)}


def test_a_period_across_two_years_is_rejected(cells_night):
    result, _ = cells_night
    assert reasons_by_row(result, "payments", "所属期") == {
        len(PERIOD_FORMS) + 2: [
            ("费款所属期", f"费款所属期跨年度（“{CROSS_YEAR}”的起止不在同一年），无法确定待遇年度；请按年度分开")
        ]
    }


def test_a_range_in_one_column_named_period_from_to(cells_night):
    result, db = cells_night
    assert lines(result, "payments", "所属期起止") == []
    got = {row: r["coverage_year"] for row, r in payments_of(db, "所属期起止").items()}
    assert got == {i + 2: year for i, (_, year) in enumerate(PERIOD_RANGE_FORMS)}


@pytest.mark.parametrize("form", MIXED_RANGES)
def test_a_range_of_two_different_forms_joined_by_a_dash(cells_night, form):
    result, db = cells_night
    row = MIXED_RANGES.index(form) + 2
    assert (
        payments_of(db, "混合区间").get(row, {}).get("coverage_year"),
        reasons_by_row(result, "payments", "混合区间").get(row),
    ) == (2026, None)


# === 8. dates that cannot be right =======================================================================


def test_payment_dates_that_cannot_be_right_each_get_their_reason(cells_night):
    result, db = cells_night
    rejected = reasons_by_row(result, "payments", "缴费日期")
    accepted = {row: r["paid_on"] for row, r in payments_of(db, "缴费日期").items()}
    assert rejected == {
        i + 2: [("缴费日期", want)] for i, (*_, want) in enumerate(PAID_ON_CASES) if isinstance(want, str)
    }
    assert accepted == {i + 2: want for i, (*_, want) in enumerate(PAID_ON_CASES) if isinstance(want, dt.date)}


def test_future_roster_dates_are_rejected_and_a_month_is_enough_only_for_the_identification_date(cells_night):
    result, db = cells_night
    rejected, residents = reasons_by_row(result, "roster", "日期"), residents_of(db, "日期")
    got, want = {}, {}
    for row, (_, _, column, expected) in enumerate(ROSTER_DATE_CASES, start=2):
        got[row] = rejected.get(row) or (column, residents[row][column])
        want[row] = [(column, expected)] if isinstance(expected, str) else (column, expected)
    assert got == want


def test_a_birth_date_after_the_run_date_is_rejected(cells_night):
    result, db = cells_night
    rejected = reasons_by_row(result, "roster", "日期")
    late_row, ok_row = len(ROSTER_DATE_CASES) + 2, len(ROSTER_DATE_CASES) + 3
    assert ("出生日期", "出生日期晚于今天") in rejected[late_row]
    assert ok_row not in rejected and residents_of(db, "日期")[ok_row]["birth_date"] == BORN


@pytest.mark.parametrize("cell", IDENTIFIED_NOT_A_MONTH, ids=["text 2026", "number 2026", "202613", "202600"])
def test_an_identification_date_that_is_no_month_is_rejected_not_dropped(cells_night, cell):
    result, db = cells_night
    row = IDENTIFIED_NOT_A_MONTH.index(cell) + 2
    assert [c for c, _ in reasons_by_row(result, "roster", "认定日期").get(row, [])] == ["资助认定日期"]
    assert row not in residents_of(db, "认定日期")


# === 9. old and corrupted ID numbers ======================================================================


@pytest.mark.parametrize(
    ("kind", "column", "cases"),
    [("roster", "证件号码", ROSTER_ID_CASES), ("payments", "缴费人证件号码", PAYMENT_ID_CASES)],
)
def test_a_15_digit_id_and_an_id_written_as_a_number_each_get_their_reason(cells_night, kind, column, cases):
    result, _ = cells_night
    got = [(row, c, why) for _, row, c, _, why in lines(result, kind, "旧证")]
    assert got == [(i + 2, column, why) for i, (_, why) in enumerate(cases)]
