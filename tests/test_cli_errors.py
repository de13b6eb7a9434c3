"""Errors at the edge: one line in Chinese and English, an exit code, no traceback, outputs untouched."""

from __future__ import annotations

import datetime as dt
import hashlib
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders import ROSTER_HEADER, make_id, one_payer_files, write_workbook
from pipeline.cli import app

A = make_id("360222", dt.date(1990, 5, 1), 1)
runner = CliRunner()


@pytest.fixture
def good(tmp_path):
    return one_payer_files(tmp_path, A, 2026)


def invoke(tmp_path, roster, payments, year="2026"):
    return runner.invoke(
        app,
        [
            "run",
            "--coverage-year",
            year,
            "--roster",
            str(roster),
            "--payments",
            str(payments),
            "--db",
            str(tmp_path / "out" / "medins.duckdb"),
            "--out",
            str(tmp_path / "out"),
        ],
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "text.xlsx"
    text.write_text("姓名,证件号码\n张三,360222199001011234\n", encoding="utf-8")
    ole = tmp_path / "old.xlsx"
    ole.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    empty = tmp_path / "empty.xlsx"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.xlsx"
    full = write_workbook(tmp_path / "full.xlsx", {"S": [ROSTER_HEADER]})
    truncated.write_bytes(full.read_bytes()[:300])
    no_header = write_workbook(tmp_path / "noheader.xlsx", {"S": [["一些说明"], ["不是花名册"]]})
    return {
        "missing": (
            tmp_path / "nope.xlsx",
            f"错误 / error: 找不到输入文件 / input file not found: {tmp_path / 'nope.xlsx'}",
        ),
        # told apart by content: text named .xlsx is read as CSV, and this one has only two known headers
        "text": (
            text,
            f"错误 / error: 工作簿中没有找到参保登记花名册的表头行 / no roster header row in any sheet: {text}",
        ),
        # an OLE header with nothing behind it: no directory to find a workbook in
        "ole": (
            ole,
            f"错误 / error: 文件已损坏或不完整，请重新导出或重新下载 / file is truncated or damaged: export or "
            f"download it again: {ole}",
        ),
        "empty": (empty, f"错误 / error: 文件是空的 / file is empty: {empty}"),
        "truncated": (
            truncated,
            f"错误 / error: 文件已损坏或不完整，请重新导出或重新下载 / file is truncated or damaged: "
            f"export or download it again: {truncated}",
        ),
        "no_header": (
            no_header,
            f"错误 / error: 工作簿中没有找到参保登记花名册的表头行 / no roster header row in any sheet: {no_header}",
        ),
    }


@pytest.mark.parametrize("case", ["missing", "text", "ole", "empty", "truncated", "no_header"])
def test_bad_roster_file_one_line_exit_2_outputs_untouched(tmp_path, good, case):
    roster, payments = good
    first = invoke(tmp_path, roster, payments)
    assert first.exit_code == 0, first.output
    db = tmp_path / "out" / "medins.duckdb"
    before = digest(db)
    path, message = bad_files(tmp_path)[case]
    result = invoke(tmp_path, path, payments)
    assert result.exit_code == 2
    assert error_line(result) == message
    assert digest(db) == before


def test_coverage_year_without_parameters_is_a_clear_error(tmp_path, good):
    roster, payments = good
    result = invoke(tmp_path, roster, payments, year="2027")
    assert result.exit_code == 3
    assert error_line(result) == (
        "错误 / error: 没有2027年度的政策参数 / no policy parameters for coverage year 2027 "
        "(have: 2024, 2025, 2026); write them with `medins params new 2027` (docs/NEW-YEAR.md)"
    )


def test_unknown_region_is_a_clear_error(tmp_path, good):
    roster, payments = good
    result = runner.invoke(
        app,
        [
            "run",
            "-y",
            "2026",
            "--region",
            "shanghai",
            "--roster",
            str(roster),
            "--payments",
            str(payments),
            "--db",
            str(tmp_path / "m.duckdb"),
        ],
    )
    assert result.exit_code == 3
    assert (
        error_line(result) == "错误 / error: 未知地区 / unknown region 'shanghai' (have: jiangxi, jingdezhen, yichun)"
    )


def test_only_one_kind_of_input_is_refused(tmp_path, good):
    roster, _ = good
    result = runner.invoke(app, ["run", "-y", "2026", "--roster", str(roster), "--db", str(tmp_path / "m.duckdb")])
    assert result.exit_code == 2
    assert error_line(result) == (
        "错误 / error: 须同时提供花名册和缴费明细：--roster 文件或目录 --payments 文件或目录 / give both --roster and --payments (files, folders or globs)"
    )


def test_glob_matching_nothing(tmp_path, good):
    _, payments = good
    result = invoke(tmp_path, str(tmp_path / "*.nothing"), payments)
    assert result.exit_code == 2
    assert error_line(result) == f"错误 / error: 没有文件匹配 / no file matches: {tmp_path / '*.nothing'}"


def test_every_command_has_help():
    for command in ("run", "explain"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert "Usage" in result.output


def test_run_prints_a_summary(tmp_path, good):
    result = invoke(tmp_path, *good)
    assert result.exit_code == 0
    assert "读入行 rows read" in result.output
    assert "paid_in_full" in result.output


def test_zip_that_is_not_a_workbook(tmp_path, good):
    _, payments = good
    path = tmp_path / "archive.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    result = invoke(tmp_path, path, payments)
    assert result.exit_code == 2
    assert error_line(result) == (
        "错误 / error: 压缩包中没有 Excel 工作簿或 .ods 表格 / zip holds no Excel workbook "
        f"(xl/workbook.xml, xl/workbook.bin) or OpenDocument spreadsheet: {path}"
    )
