"""Never lose a night's data, never crash on a bad file, never leak an ID number.

The hostile corpus is generated here; every case asserts the exact message, the
exit code, and that the previous night's outputs are untouched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import duckdb
import openpyxl
import pytest

from builders import PAYMENT_HEADER, ROSTER_HEADER, make_id, with_wrong_check_digit, write_workbook
from pipeline.faults import POINTS
from pipeline.io.lock import run_lock

PEOPLE = [make_id("360222", dt.date(1960 + i, 1 + i % 12, 1 + i % 28), i) for i in range(12)]
MEDINS = [sys.executable, "-m", "pipeline.cli"]
ID_PATTERN = re.compile(r"(?<![0-9])[0-9]{17}[0-9X](?![0-9])")


def roster_rows(names_suffix=""):
    return [ROSTER_HEADER] + [
        [
            i,
            f"居民{i}{names_suffix}",
            pid,
            "浮梁县",
            "浮梁镇" if i % 2 else "鹅湖镇",
            "新平村",
            "城乡低保对象" if i % 5 == 0 else None,
            "是",
            None,
            None,
            "2025-10-20",
            None,
        ]
        for i, pid in enumerate(PEOPLE)
    ]


def payment_rows():
    return [PAYMENT_HEADER] + [
        [i, f"居民{i}", pid, 400 if i % 3 else 300, "2025-11-01", "2026", f"3360000000000000{i:04d}", "微信"]
        for i, pid in enumerate(PEOPLE)
    ]


@pytest.fixture
def night(tmp_path):
    roster = write_workbook(tmp_path / "roster.xlsx", {"S": roster_rows()})
    payments = write_workbook(tmp_path / "payments.xlsx", {"S": payment_rows()})
    return tmp_path, roster, payments


@pytest.fixture(scope="module")
def first_night(tmp_path_factory):
    """One completed night, made once for the module: its inputs and its out/ folder."""
    base = tmp_path_factory.mktemp("first_night")
    roster = write_workbook(base / "roster.xlsx", {"S": roster_rows()})
    payments = write_workbook(base / "payments.xlsx", {"S": payment_rows()})
    assert medins_run(base, roster, payments).returncode == 0
    return base


@pytest.fixture
def published(first_night, tmp_path):
    """A test's own copy of the completed night (inputs at the same names, out/ as published)."""
    for name in ("roster.xlsx", "payments.xlsx"):
        shutil.copy2(first_night / name, tmp_path / name)
    shutil.copytree(first_night / "out", tmp_path / "out")
    return tmp_path, tmp_path / "roster.xlsx", tmp_path / "payments.xlsx"


def medins_run(tmp_path: Path, roster, payments, *extra, env=None, out="out"):
    cmd = [
        *MEDINS,
        "run",
        "--coverage-year",
        "2026",
        "--region",
        "jingdezhen",
        "--db",
        str(tmp_path / out / "medins.duckdb"),
        "--out",
        str(tmp_path / out),
        "--roster",
        str(roster),
        "--payments",
        str(payments),
        *extra,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=tmp_path, timeout=300
    )


def snapshot(out: Path) -> dict[str, str]:
    """sha256 of every output file (not the lock file)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.iterdir())
        if p.is_file() and not p.name.endswith(".lock")
    }


def assert_readable(out: Path, run_count: int) -> None:
    con = duckdb.connect(str(out / "medins.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM runs").fetchall() == [(run_count,)]
    assert con.execute("SELECT count(*) FROM determinations").fetchall() == [(len(PEOPLE),)]
    con.close()
    for name in ("催缴名单_2026.xlsx", "对账报告_2026.xlsx", "财政补助资金测算表_2026.xlsx"):
        openpyxl.load_workbook(out / name, read_only=True).close()


# --- kill at any point -----------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_point_leaves_the_previous_outputs(published, point):
    tmp_path, _, payments = published
    out = tmp_path / "out"
    before = snapshot(out)
    changed = write_workbook(tmp_path / "roster2.xlsx", {"S": roster_rows("改")})
    killed = medins_run(tmp_path, changed, payments, env={"MEDINS_FAULT_AT": point})
    assert killed.returncode == -signal.SIGKILL
    if point == "after_publish":
        # the database published the new night; the workbooks are still the previous complete ones
        assert_readable(out, run_count=2)
        assert {k: v for k, v in snapshot(out).items() if k.endswith(".xlsx")} == {
            k: v for k, v in before.items() if k.endswith(".xlsx")
        }
    else:
        assert_readable(out, run_count=1)
        assert {k: v for k, v in snapshot(out).items() if k.endswith(".xlsx")} == {
            k: v for k, v in before.items() if k.endswith(".xlsx")
        }
    again = medins_run(tmp_path, changed, payments)
    assert again.returncode == 0, again.stderr
    assert_readable(out, run_count=3 if point == "after_publish" else 2)
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".medins-cache"], (
        "temporary files left behind"
    )


def test_sigkill_at_random_moments_never_breaks_the_outputs(published):
    tmp_path, roster, payments = published
    out = tmp_path / "out"
    cmd = [
        *MEDINS,
        "run",
        "--coverage-year",
        "2026",
        "--db",
        str(out / "medins.duckdb"),
        "--out",
        str(out),
        "--roster",
        str(roster),
        "--payments",
        str(payments),
    ]
    runs = 1
    for delay in (0.3, 0.9, 1.5, 2.1, 2.7):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        con = duckdb.connect(str(out / "medins.duckdb"), read_only=True)
        runs = con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
        con.close()
        assert_readable(out, run_count=runs)
    final = medins_run(tmp_path, roster, payments)
    assert final.returncode == 0, final.stderr
    assert_readable(out, run_count=runs + 1)


# --- one run at a time ------------------------------------------------------------------


def test_a_second_run_on_the_same_database_exits_quickly(night):
    tmp_path, roster, payments = night
    db = tmp_path / "out" / "medins.duckdb"
    with run_lock(db):
        started = time.monotonic()
        second = medins_run(tmp_path, roster, payments)
        assert time.monotonic() - started < 30
    assert second.returncode == 5
    holder = (db.parent / "medins.duckdb.lock").read_text()
    assert holder.startswith(f"pid {os.getpid()}, started ")
    assert second.stderr.strip() == (
        f"错误 / error: 另一个运行（{holder}）正在使用 {db} / another run ({holder}) is using {db}; see --wait"
    )
    assert "Traceback" not in second.stderr
    assert medins_run(tmp_path, roster, payments).returncode == 0


# --- hostile files -----------------------------------------------------------------------


def _xlsx_parts(sheet_xml: str) -> dict[str, str]:
    ns = "http://schemas.openxmlformats.org"
    return {
        "[Content_Types].xml": f'<?xml version="1.0"?><Types xmlns="{ns}/package/2006/content-types">'
        '<Default Extension="xml" ContentType="application/xml"/></Types>',
        "_rels/.rels": f'<?xml version="1.0"?><Relationships xmlns="{ns}/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{ns}/officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0"?><workbook xmlns="{ns}/spreadsheetml/2006/main" '
        f'xmlns:r="{ns}/officeDocument/2006/relationships"><sheets>'
        '<sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<?xml version="1.0"?><Relationships xmlns="{ns}/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{ns}/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": sheet_xml,
    }


def far_cell_workbook(path: Path, with_dimension: bool) -> Path:
    dim = '<dimension ref="A1:XFD1048576"/>' if with_dimension else ""
    sheet = (
        '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'{dim}<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>姓名</t></is></c></row>'
        '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData></worksheet>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in _xlsx_parts(sheet).items():
            z.writestr(name, text)
    return path


def zip_bomb(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in _xlsx_parts("<worksheet/>").items():
            z.writestr(name, text)
        z.writestr("xl/media/padding.bin", b"\0" * (80 * 1024**2))
    return path


def hostile(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    encrypted = tmp_path / "encrypted.xlsx"
    encrypted.write_bytes(
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512 + "EncryptionInfo".encode("utf-16-le") + b"\0" * 512
    )
    html = tmp_path / "html.xlsx"
    html.write_text("<html><body><table><tr><td>姓名</td></tr></table></body></html>", encoding="utf-8")
    dimension = far_cell_workbook(tmp_path / "dimension.xlsx", with_dimension=True)
    bomb = zip_bomb(tmp_path / "bomb.xlsx")
    return {
        "encrypted": (
            encrypted,
            "错误 / error: 工作簿设置了打开密码，请取消密码后另存为 .xlsx / workbook is password-protected, "
            f"remove the password and save as .xlsx: {encrypted}",
        ),
        "html": (
            html,
            "错误 / error: 文件是网页(HTML)表格，不是Excel工作簿（网上系统常这样“导出Excel”），请用Excel或WPS打开后"
            '另存为 .xlsx / HTML page, not a workbook (a web system\'s "Excel export"): open it in Excel or '
            f"WPS and save it as .xlsx: {html}",
        ),
        "dimension": (
            dimension,
            "错误 / error: 工作表范围异常（A1:XFD1048576，1,048,576行×16,384列），请删除表格末尾的空行空列后另存 / "
            f"sheet dimensions absurd (xl/worksheets/sheet1.xml A1:XFD1048576): {dimension}",
        ),
        "bomb": (
            bomb,
            "错误 / error: 工作簿解压后过大（xl/media/padding.bin 80 MB），疑似压缩炸弹 / too large when "
            f"unpacked (xl/media/padding.bin): {bomb}",
        ),
    }


@pytest.mark.parametrize("case", ["encrypted", "html", "dimension", "bomb"])
def test_hostile_files_are_refused_with_their_reason(night, case):
    tmp_path, roster, payments = night
    assert medins_run(tmp_path, roster, payments).returncode == 0
    before = snapshot(tmp_path / "out")
    path, message = hostile(tmp_path)[case]
    result = medins_run(tmp_path, path, payments)
    assert result.returncode == 2
    assert result.stderr.strip() == message
    assert snapshot(tmp_path / "out") == before


def test_a_parser_that_dies_is_reported_not_fatal_to_the_job(night):
    # One cell at XFD1048576 and no <dimension>: preflight cannot see it; calamine tries to allocate
    # the whole sheet and dies in its child process under the memory limit.
    tmp_path, roster, payments = night
    assert medins_run(tmp_path, roster, payments).returncode == 0
    before = snapshot(tmp_path / "out")
    crash = far_cell_workbook(tmp_path / "crash.xlsx", with_dimension=False)
    result = medins_run(tmp_path, crash, payments, "--parse-memory-gb", "2")  # the option's earlier name
    assert result.returncode == 11
    assert result.stderr.strip() == (
        "错误 / error: 解析时内存超过上限（2 GB，一次申请 512 GB），可用 --parse-memory-limit 调高 / parser ran out of "
        f"memory (2 GB limit, it asked for 512 GB at once; raise it with --parse-memory-limit): {crash}"
    ), result.stderr
    assert snapshot(tmp_path / "out") == before
    skipped = medins_run(tmp_path, crash, payments, "--parse-memory-limit", "2", "--skip-bad-files", "--roster", roster)
    assert skipped.returncode == 0 and "已跳过文件 / skipped file: 解析时内存超过上限（2 GB" in skipped.stdout


def test_skip_bad_files_goes_on_with_the_others(night):
    tmp_path, roster, payments = night
    bad = hostile(tmp_path)["html"][0]
    result = medins_run(tmp_path, roster, payments, "--skip-bad-files", "--roster", str(bad))
    assert result.returncode == 0, result.stderr
    assert "已跳过文件 / skipped file: 文件是网页(HTML)表格" in result.stdout
    con = duckdb.connect(str(tmp_path / "out" / "medins.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM determinations").fetchall() == [(len(PEOPLE),)]
    con.close()


# --- safe to open and to share ---------------------------------------------------------


def _all_text_of_workbook(path: Path) -> str:
    with zipfile.ZipFile(path) as z:
        return "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())


def test_no_unmasked_id_in_any_workbook_log_or_terminal_output(night):
    tmp_path, _roster, payments = night
    bad_roster = write_workbook(
        tmp_path / "bad.xlsx",
        {
            "S": [
                *roster_rows(),
                [
                    99,
                    "坏行",
                    with_wrong_check_digit(PEOPLE[0]),
                    "浮梁县",
                    "浮梁镇",
                    None,
                    "特困供养人",
                    "是",
                    None,
                    None,
                    "2025-10-20",
                    None,
                ],
            ]
        },
    )
    result = medins_run(tmp_path, bad_roster, payments)
    assert result.returncode == 0
    out = tmp_path / "out"
    texts = {"stdout": result.stdout, "stderr": result.stderr}
    for p in out.iterdir():
        if p.suffix == ".xlsx":
            texts[p.name] = _all_text_of_workbook(p)
        elif p.suffix in (".log", ".txt"):
            texts[p.name] = p.read_text(encoding="utf-8", errors="replace")
    leaks = {name: ID_PATTERN.findall(text) for name, text in texts.items() if ID_PATTERN.search(text)}
    assert leaks == {}
    assert any(p.suffix == ".xlsx" for p in out.iterdir())
    explain = subprocess.run(
        [*MEDINS, "explain", "-y", "2026", "--db", str(out / "medins.duckdb"), PEOPLE[3]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert explain.returncode == 0 and not ID_PATTERN.search(explain.stdout)


def test_unmask_shows_full_ids_in_the_workbooks(night):
    tmp_path, roster, payments = night
    assert medins_run(tmp_path, roster, payments, "--unmask").returncode == 0
    text = _all_text_of_workbook(tmp_path / "out" / "催缴名单_2026.xlsx")
    assert PEOPLE[3] in text  # person 3 paid 300 of 400: on the 少缴 list


def test_outputs_are_owner_only(night):
    tmp_path, roster, payments = night
    assert medins_run(tmp_path, roster, payments).returncode == 0
    for p in (tmp_path / "out").iterdir():
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o077 == 0, f"{p.name} is {oct(mode)}"


def test_two_runs_on_identical_inputs_give_byte_identical_workbooks(night):
    tmp_path, roster, payments = night
    assert medins_run(tmp_path, roster, payments, out="a").returncode == 0
    assert medins_run(tmp_path, roster, payments, out="b").returncode == 0
    for name in ("催缴名单_2026.xlsx", "对账报告_2026.xlsx", "财政补助资金测算表_2026.xlsx"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_the_previous_good_database_is_kept_and_restores(night):
    tmp_path, roster, payments = night
    out = tmp_path / "out"
    assert medins_run(tmp_path, roster, payments).returncode == 0
    assert not (out / "medins.duckdb.previous").exists()
    changed = write_workbook(tmp_path / "roster2.xlsx", {"S": roster_rows("改")})
    assert medins_run(tmp_path, changed, payments).returncode == 0
    con = duckdb.connect(str(out / "medins.duckdb.previous"), read_only=True)
    names = {r[0] for r in con.execute("SELECT name FROM residents").fetchall()}
    assert con.execute("SELECT count(*) FROM runs").fetchall() == [(1,)]
    con.close()
    assert names == {f"居民{i}" for i in range(len(PEOPLE))}


def test_a_bug_in_the_parser_child_is_reported_as_ours_not_as_a_damaged_file(tmp_path):
    """An exception in the child that is not about the file (here: a kind of input with no header map)
    must not read as "parser crashed, damaged file"; it carries the child's traceback."""
    from pipeline.io.isolate import ReadJob, read_isolated

    roster = write_workbook(tmp_path / "r.xlsx", {"S": [ROSTER_HEADER]})
    job = ReadJob(roster, "nowhere")
    with pytest.raises(RuntimeError, match=r"(?s)internal error while reading .*r\.xlsx.*Traceback"):
        read_isolated([job], tmp_path / "scratch", skip_bad_files=True)


def test_a_night_left_without_a_payments_file_stops_even_when_skipping_bad_files(night):
    """The only payments file is refused and skipped: a night without payments would call everyone
    unpaid, so it stops (docs/CONTRACT.md "The command") and publishes nothing."""
    tmp_path, roster, payments = night
    assert medins_run(tmp_path, roster, payments).returncode == 0
    before = snapshot(tmp_path / "out")
    bad = hostile(tmp_path)["html"][0]
    result = medins_run(tmp_path, roster, bad, "--skip-bad-files")
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "错误 / error: 没有可读的缴费明细文件，本次未运行 / no readable payments file is left (see the files skipped above)"
    )
    assert snapshot(tmp_path / "out") == before
