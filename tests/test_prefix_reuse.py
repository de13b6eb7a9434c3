"""A sheet read again keeps the checks of the rows it shares with its previous version
(excel_in.row_checkpoints, isolate._with_reused_rows): only the rows after the last unchanged
checkpoint are checked, and everything that comes out equals a fresh read."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import polars as pl

from builders import PAYMENT_HEADER, ROSTER_HEADER, Num, make_id, write_workbook
from pipeline.io.excel_in import row_checkpoints
from pipeline.io.store import query_frame
from pipeline.io.tables import DIFFED_TABLES
from pipeline.run import run_night

TODAY = dt.date(2026, 11, 23)
IDS = [make_id("360222", dt.date(1950 + n % 60, 1 + n % 12, 1 + n % 28), n) for n in range(1, 81)]
TITLE = ["景德镇市2026年度城乡居民基本医疗保险费缴费明细（税务）"]
FOOTER = ["合计：笔"]


def roster_file(tmp_path: Path) -> Path:
    rows = [[n + 1, f"居民{n}", IDS[n], "浮梁县", "浮梁镇", "新平村", None, "是", None, None, "2025-10-20", None]
            for n in range(len(IDS))]
    return write_workbook(tmp_path / "roster.xlsx", {"S": [ROSTER_HEADER, *rows]})


def pay(n: int, amount: object = 400, id_number: object = None) -> list:
    return [n, f"居民{n}", IDS[n] if id_number is None else id_number, amount, "2025-11-01", "2026",
            f"3360000000000000{n:04d}", "微信"]


def body() -> list[list]:
    """60 payment lines with what a real export holds: a bad amount, a bad ID, a blank line."""
    rows = [pay(n) for n in range(60)]
    rows[7] = pay(7, amount="四百")
    rows[12] = pay(12, id_number="36022219900501123")
    rows[20] = [None] * 8
    return rows


def payments_file(tmp_path: Path, rows: list[list], *, header: list = PAYMENT_HEADER, inline: bool = True,
                  day: int = 1, name: str = "payments.xlsx") -> Path:
    return write_workbook(tmp_path / name, {"缴费明细": [TITLE, header, *rows, FOOTER]}, inline_strings=inline,
                          created=dt.datetime(2025, 1, day))


def night(tmp_path: Path, roster: Path, payments: Path, db: str = "m.duckdb", use_cache: bool = True):
    return run_night(2026, "jingdezhen", [str(roster)], [str(payments)], tmp_path / db, tmp_path,
                     today=TODAY, write_workbooks=False, use_cache=use_cache)


def tables(db: Path) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(db), read_only=True) as con:
        out = {}
        for name in (*DIFFED_TABLES, "rejected_rows", "unmatched_payments", "subsidy_totals"):
            frame = query_frame(con, f"SELECT * EXCLUDE (run_id) FROM {name}")
            out[name] = frame.sort(frame.columns)
        sheets = query_frame(con, "SELECT * EXCLUDE (run_id, reused, rows_reused) FROM run_sheets")
        out["run_sheets"] = sheets.sort(sheets.columns)
    return out


def reused_rows(result) -> int:
    return sum(s["rows_reused"] for s in result.sheet_seconds if s["kind"] == "payments")


def assert_same_as_fresh(tmp_path: Path, result, roster: Path, payments: Path) -> None:
    """Tonight's run equals a run on the same files with no cache at all: every table, the sheet
    counts, the rejected lines and the determinations."""
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir(exist_ok=True)
    fresh = run_night(2026, "jingdezhen", [str(roster)], [str(payments)], fresh_dir / "f.duckdb", fresh_dir,
                      today=TODAY, write_workbooks=False, use_cache=False)
    got, want = tables(tmp_path / "m.duckdb"), tables(fresh_dir / "f.duckdb")
    for name in want:
        assert got[name].equals(want[name]), name
    assert result.sheets.drop("reused", "rows_reused").equals(fresh.sheets.drop("reused", "rows_reused"))
    columns = result.rejected.columns
    assert result.rejected.sort(columns).equals(fresh.rejected.sort(columns))
    assert result.determinations.equals(fresh.determinations)
    shutil.rmtree(fresh_dir)


def test_an_export_grown_before_its_footer_checks_only_its_new_rows(tmp_path):
    roster = roster_file(tmp_path)
    night(tmp_path, roster, payments_file(tmp_path, body()))
    grown = body() + [pay(n) for n in range(60, 66)] + [pay(66, amount="")]
    payments = payments_file(tmp_path, grown, day=2)
    second = night(tmp_path, roster, payments)
    # rows 3 (header) to 64 are unchanged; the last checkpoint before the old footer lies a few
    # rows before it, so most of the old lines are reused and every new one is checked
    n = reused_rows(second)
    assert 40 <= n <= 61
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
        assert con.execute("SELECT sheet, reused, rows_reused FROM run_sheets WHERE kind = 'payments'").fetchall() \
            == [("缴费明细", False, n)]
        assert con.execute("SELECT reused, rows_reused FROM run_sheets WHERE kind = 'roster'").fetchall() \
            == [(True, len(IDS))]
    assert f"工作表前{n}行与上次相同，复用其检查结果 / first {n} rows unchanged since last read, their checks " \
           f"reused: {payments} [缴费明细]" in second.notes
    # the bad lines (Excel rows 10 and 15, reused; 69, new) are rejected, the blank row 23 skipped
    assert sorted(set(second.rejected["row_number"])) == [10, 15, 69]
    assert second.sheets.filter(pl.col("kind") == "payments").select(
        "rows_read", "accepted", "rejected", "skipped_blank", "skipped_footer").row(0) == (68, 63, 3, 1, 1)
    assert_same_as_fresh(tmp_path, second, roster, payments)


def test_an_export_named_by_its_date_reuses_the_rows_of_yesterdays_file(tmp_path):
    roster = roster_file(tmp_path)
    night(tmp_path, roster, payments_file(tmp_path, body(), name="缴费明细_20261122.xlsx"))
    payments = payments_file(tmp_path, body() + [pay(61)], day=2, name="缴费明细_20261123.xlsx")
    second = night(tmp_path, roster, payments)
    assert reused_rows(second) >= 40
    assert set(second.determinations["source_file"]) == {str(roster)}
    assert_same_as_fresh(tmp_path, second, roster, payments)
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
        assert con.execute("SELECT DISTINCT source_file FROM payments").fetchall() == [(str(payments),)]


def test_reused_rows_keep_their_today_window_into_the_next_night(tmp_path):
    """A payer born after "today" (an ID the checks reject) in the reused rows: the new entry's
    "today" window ends at that birth date too, so once the date comes the rows are checked again."""
    born = TODAY + dt.timedelta(days=2)
    rows = body()
    rows[5] = pay(5, id_number=make_id("360222", born, 9))
    roster = roster_file(tmp_path)

    def on(today: dt.date, payments: Path):
        return run_night(2026, "jingdezhen", [str(roster)], [str(payments)], tmp_path / "m.duckdb", tmp_path,
                         today=today, write_workbooks=False)

    on(TODAY, payments_file(tmp_path, rows))
    grown = payments_file(tmp_path, rows + [pay(61)], day=2)
    second = on(TODAY + dt.timedelta(days=1), grown)
    assert reused_rows(second) >= 40 and 8 in set(second.rejected["row_number"])
    third = on(born, grown)  # the same file on the birth date: not taken from the cache
    assert not any(third.sheets.filter(pl.col("kind") == "payments")["reused"])
    assert 8 not in set(third.rejected["row_number"])


def test_the_cache_keeps_two_versions_of_a_growing_export(tmp_path):
    """Tonight's version of the grown sheet and last night's (a re-run of yesterday's file still
    reads from the cache); older versions go at once, not after 14 days: they hold ID numbers."""
    roster = roster_file(tmp_path)
    files = [payments_file(tmp_path, body() + [pay(n) for n in range(61, 61 + night)], day=night + 1,
                           name=f"p{night}.xlsx") for night in range(3)]
    daily = tmp_path / "payments.xlsx"
    for f in files:
        shutil.copy(f, daily)
        night(tmp_path, roster, daily)
    cache = tmp_path / ".medins-cache"
    kinds = sorted(e.name.split("-")[1] for e in cache.iterdir())
    assert kinds == ["payments", "payments", "roster"]
    shutil.copy(files[1], daily)  # yesterday's file again: read from the cache
    again = night(tmp_path, roster, daily)
    assert all(again.sheets["reused"])


def test_a_line_changed_in_the_middle_is_checked_and_so_is_every_line_after_it(tmp_path):
    roster = roster_file(tmp_path)
    night(tmp_path, roster, payments_file(tmp_path, body()))
    changed = body()
    changed[30] = pay(30, amount=300)  # Excel row 33
    payments = payments_file(tmp_path, changed, day=2)
    second = night(tmp_path, roster, payments)
    assert 0 < reused_rows(second) < 33 - 2
    assert second.determinations.filter(pl.col("id_number") == IDS[30])["net_paid_fen"].item() == 30000
    assert_same_as_fresh(tmp_path, second, roster, payments)


def test_an_id_that_became_a_number_cell_in_a_reused_stretch_is_not_taken_from_the_cache(tmp_path):
    """The same text can be a text cell one night and a number cell the next (its digits already
    lost): the XML differs, so the rows from there on are checked again."""
    roster = roster_file(tmp_path)
    plain = body()
    plain[40] = pay(40, id_number="360222199005011234")
    night(tmp_path, roster, payments_file(tmp_path, plain))
    as_number = [list(r) for r in plain]
    as_number[40] = pay(40, id_number=Num(360222199005011234))
    payments = payments_file(tmp_path, as_number, day=2)
    second = night(tmp_path, roster, payments)
    assert reused_rows(second) < 43 - 2
    assert "被Excel存成了数字" in second.rejected.filter(pl.col("row_number") == 43)["reason"].item()
    assert_same_as_fresh(tmp_path, second, roster, payments)


def test_a_changed_header_or_a_shared_string_table_reuses_nothing(tmp_path):
    roster = roster_file(tmp_path)
    night(tmp_path, roster, payments_file(tmp_path, body()))
    renamed = [*PAYMENT_HEADER[:-1], "缴费方式"]  # another header for 缴费渠道: the columns are read anew
    payments = payments_file(tmp_path, body() + [pay(61)], header=renamed, day=2)
    second = night(tmp_path, roster, payments)
    assert reused_rows(second) == 0
    assert_same_as_fresh(tmp_path, second, roster, payments)
    # text in a shared-string table: the table grows with the new lines, so no row is shared
    (tmp_path / "m.duckdb").unlink()
    night(tmp_path, roster, payments_file(tmp_path, body(), inline=False, day=3))
    payments = payments_file(tmp_path, body() + [pay(62)], inline=False, day=4)
    third = night(tmp_path, roster, payments)
    assert reused_rows(third) == 0
    assert_same_as_fresh(tmp_path, third, roster, payments)


def test_a_new_column_in_the_new_rows_reuses_nothing(tmp_path):
    """The old lines are the same bytes, but the sheet is now a column wider: every line gains an
    (empty) unknown column, so none of last night's checked lines is what tonight reads."""
    roster = roster_file(tmp_path)
    night(tmp_path, roster, payments_file(tmp_path, body()))
    payments = payments_file(tmp_path, body() + [[*pay(61), "补缴"]], day=2)
    second = night(tmp_path, roster, payments)
    assert reused_rows(second) == 0
    assert_same_as_fresh(tmp_path, second, roster, payments)


def test_a_shared_string_changed_under_unchanged_sheet_xml_reuses_nothing(tmp_path):
    """A name changed in place: the sheet XML keeps the same index, the shared-string table says
    another name. The other parts of the file are part of what must be the same."""
    roster = roster_file(tmp_path)
    night(tmp_path, roster, payments_file(tmp_path, body(), inline=False))
    renamed = body()
    renamed[50][1] = "改名"
    payments = payments_file(tmp_path, renamed, inline=False, day=2)
    second = night(tmp_path, roster, payments)
    assert reused_rows(second) == 0
    assert_same_as_fresh(tmp_path, second, roster, payments)
    assert second.determinations.filter(pl.col("id_number") == IDS[50]).height == 1


def test_a_damaged_previous_entry_means_the_sheet_is_read_whole(tmp_path):
    roster = roster_file(tmp_path)
    night(tmp_path, roster, payments_file(tmp_path, body()))
    for arrow in (tmp_path / ".medins-cache").rglob("*.arrow"):
        arrow.write_bytes(b"not arrow")
    payments = payments_file(tmp_path, body() + [pay(61)], day=2)
    second = night(tmp_path, roster, payments)
    assert reused_rows(second) == 0
    assert_same_as_fresh(tmp_path, second, roster, payments)


def test_a_later_night_can_reuse_rows_of_a_sheet_that_itself_reused_rows(tmp_path):
    roster = roster_file(tmp_path)
    night(tmp_path, roster, payments_file(tmp_path, body()))
    night(tmp_path, roster, payments_file(tmp_path, body() + [pay(61)], day=2))
    payments = payments_file(tmp_path, body() + [pay(61), pay(62)], day=3)
    third = night(tmp_path, roster, payments)
    assert reused_rows(third) >= 40
    assert_same_as_fresh(tmp_path, third, roster, payments)


# --- the checkpoints themselves ---------------------------------------------------

def _sheet(rows: list[bytes], r: bool = True) -> bytes:
    cells = b"".join((b'<row r="%d">' % (i + 1) if r else b"<row>") + b'<c t="inlineStr"><is><t>' + row
                     + b"</t></is></c></row>" for i, row in enumerate(rows))
    return b'<worksheet><dimension ref="A1:A9"/><sheetData>' + cells + b"</sheetData></worksheet>"


def test_checkpoints_end_at_rows_and_are_shared_up_to_the_first_changed_byte():
    rows = [b"x" * 300 for _ in range(40)]
    points, shared = row_checkpoints(_sheet(rows))
    assert shared == 0 and len(points) >= 5
    assert [p[0] for p in points] == sorted({p[0] for p in points})  # Excel rows, increasing
    xml = _sheet(rows)
    assert all(xml[xml.find(b"<sheetData") + p[1] - len(b"</row>"):][:6] == b"</row>" for p in points)
    # another <dimension> (the rows grew) and new rows at the end: every checkpoint is shared
    grown = _sheet(rows + [b"y" * 300] * 3).replace(b"A1:A9", b"A1:A43")
    again, shared = row_checkpoints(grown, tuple(tuple(p) for p in points))
    assert shared == len(points) and again[:shared] == points
    # one byte changed in row 20: only the checkpoints before it are shared
    changed = list(rows)
    changed[19] = b"x" * 299 + b"z"
    _, shared = row_checkpoints(_sheet(changed), tuple(tuple(p) for p in points))
    assert [p[0] for p in points[:shared]] == [p[0] for p in points if p[0] < 20]
    # rows that do not carry their number: no checkpoint, nothing shared
    assert row_checkpoints(_sheet(rows, r=False), tuple(tuple(p) for p in points)) == ([], 0)


# --- any edit of an export, read with and without the cache -----------------------

from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from builders import XDate  # noqa: E402
from pipeline.io.excel_in import sha256_of  # noqa: E402
from pipeline.io.isolate import ReadJob, read_isolated  # noqa: E402
from pipeline.params import load_params  # noqa: E402

PARAMS_DIGEST = load_params(2026, "jingdezhen").digest()


@st.composite
def payment_line(draw, n: int) -> list:
    amount = draw(st.sampled_from([400, 300, "四百", "", None, -400]))
    id_number = draw(st.sampled_from([None, "36022219900501123", Num(360222199005011234.0), "  " + IDS[n % 80]]))
    paid_on = draw(st.sampled_from(["2025-11-01", XDate(dt.date(2025, 12, 2)), "2025-13-01"]))
    line = pay(n % 80, amount=amount, id_number=id_number)
    line[4] = paid_on
    return line


@st.composite
def export_and_edit(draw) -> tuple[list[list], list[list]]:
    """Last night's lines and tonight's: the same with one edit, as exports change."""
    lines = draw(st.lists(st.one_of(payment_line(n=draw(st.integers(0, 79))), st.just([None] * 8)),
                          min_size=3, max_size=70))
    edit = draw(st.sampled_from(["append", "change", "insert", "delete", "after_footer", "same"]))
    at = draw(st.integers(0, len(lines) - 1))
    new = [list(line) for line in lines]
    extra = draw(payment_line(n=draw(st.integers(0, 79))))
    if edit == "append":
        new += [extra, draw(payment_line(n=draw(st.integers(0, 79))))]
    elif edit == "change":
        new[at][draw(st.integers(1, 7))] = draw(st.sampled_from(["改", 1, None, "2025-11-03"]))
    elif edit == "insert":
        new.insert(at, extra)
    elif edit == "delete":
        del new[at]
    return lines, new + ([["（续）"]] if edit == "after_footer" else [])


def _read(path: Path, cache: Path | None, scratch: Path):
    job = ReadJob(path, "payments", 2026, sha256_of(path), "jingdezhen", PARAMS_DIGEST, TODAY)
    per_job, _, _ = read_isolated([job], scratch, cache_dir=cache)
    (sheet,) = per_job[0]
    data = sheet.data.sort("row_number")
    rejected = sheet.rejected.sort(sheet.rejected.columns)
    counts = (sheet.header_row, sheet.rows_read, sheet.skipped_blank, sheet.skipped_footer, sheet.missing_required)
    return counts, data, rejected, sheet.rows_reused


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(export_and_edit())
def test_any_edit_of_an_export_reads_the_same_with_and_without_reused_rows(tmp_path, case):
    last_night, tonight = case
    work = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    cache = work / "cache"
    path = work / "payments.xlsx"
    write_workbook(path, {"缴费明细": [TITLE, PAYMENT_HEADER, *last_night, FOOTER]}, inline_strings=True)
    _read(path, cache, work / "s1")
    write_workbook(path, {"缴费明细": [TITLE, PAYMENT_HEADER, *tonight, FOOTER]}, inline_strings=True,
                   created=dt.datetime(2025, 1, 2))
    counts, data, rejected, shared = _read(path, cache, work / "s2")
    event("rows reused" if shared else "no row reused")
    fresh_counts, fresh_data, fresh_rejected, reused = _read(path, None, work / "s3")
    assert reused == 0
    assert counts == fresh_counts
    assert data.drop("source_file").equals(fresh_data.drop("source_file"))
    assert rejected.drop("source_file").equals(fresh_rejected.drop("source_file"))
