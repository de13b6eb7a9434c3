"""Every format the bureau's systems export (docs/CONTRACT.md "Inputs", docs/RULES.md §6), read
through the night and the command as a clerk's files would be: the office-made files of
tests/fixtures (tests/fixtures/README.md), small text files, the same night in three formats, files
named for another format, and files that are no workbook.

Nights are shared by module-scoped fixtures: most checks read one night's tables. The small text
files and the WPS stand-in are written here at run time.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import struct
from pathlib import Path

import fastexcel
import pytest
from typer.testing import CliRunner

from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, roster_row
from formats_cases import (
    CHECKSUM,
    CONFLICT,
    FIXTURES,
    ID_BIRTH,
    NAMED_TABLES,
    NOT_A_DATE,
    NUMERIC_ID,
    REFUSED,
    SAME_NIGHT,
    counts,
    differences,
    lines,
    night,
    query,
    tables_apart_from_file_names,
    text_line,
)
from pipeline.cli import app
from pipeline.errors import InputFileError
from pipeline.io.preflight import check_file

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


@pytest.fixture(scope="module")
def text_night(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    a, b, c, d, e, _ = TEXT_PEOPLE
    bom = [
        "浮梁县2026年度城乡居民医保参保登记花名册",
        "",
        text_line(ROSTER_HEADER, ","),
        text_line(roster_row(1, "赵甲", a, village="新平村,一组"), ","),  # record 4, a quoted comma
        text_line(roster_row(1, "赵乙", b), ","),  # record 5
        text_line(roster_row(1, "赵丙", "3.6020219980525E+017"), ","),  # record 6: LibreOffice's CSV of a number ID
        "合计：3人",  # record 7
    ]
    (folder / "roster_bom.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(bom).encode("utf-8") + b"\r\n")
    tab = [
        "花名册",
        "",
        text_line([*ROSTER_HEADER, "备注"], "\t"),
        text_line([*roster_row(1, "钱甲", c), "户主\n本人"], "\t"),  # record 4, over two lines
        text_line([*roster_row(1, "钱乙", d, prev="也许"), None], "\t"),  # record 5, line 6
        text_line([*roster_row(1, "钱丙", e), None], "\t"),  # record 6
    ]
    (folder / "roster_tab.txt").write_bytes("\n".join(tab).encode("gb18030") + b"\n")
    semicolon = [
        "缴费明细",
        "",
        text_line(PAYMENT_HEADER, ";"),
        text_line([1, "赵甲", a, "400.00", "2025-11-01", "2026", "03622259900000000001", "微信"], ";"),
        text_line([2, "赵乙", b, "1,000.00", "2025", "2026", "03622259900000000002", "微信"], ";"),
        text_line([3, "钱甲", c, "400", "20251102", "2026年度", "03622259900000000003", "微信"], ";"),
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
