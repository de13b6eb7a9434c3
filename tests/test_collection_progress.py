"""征缴进度 and 上年参保未续保 (docs/RULES.md §10): a snapshot per (year, data date), last year's insured
counted by last year's place, and who has not renewed.

One small county (浮梁县, region jingdezhen). Two 2025 nights (data dates 2024-12-31, 2025-03-01) hold last year;
then 2026 nights on data dates D1 < D2 < D3, each on the exports as they stood that day (the payment
file grows; the newborn's roster row arrives with D3). The expected figures are worked out by hand
from the table of people below, never read off the product. The nights run once for the module.

person  2025 (浮梁镇)        2026                                  counts as
甲      enrolled             moved to 鹅湖镇, paid 10-20 (D1)      renewed at 浮梁镇, new nowhere
乙      -                    newborn 2025-11-10, paid 11-20 (D3)  new at 浮梁镇
丙      enrolled             on the roster, unpaid                not renewed: unpaid
丁      enrolled             roster row rejected                  not renewed: roster_rejected
戊      enrolled             not on the roster                    not renewed: not_on_roster
己      enrolled             paid 100 of 400 on 11-03 (D2)        not renewed: underpaid
庚      on roster, unpaid    paid 11-15 (D3)                      new at 浮梁镇 (the lapsed who came back)
辛      enrolled             paid 11-05 (D2)                      renewed at 浮梁镇
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import openpyxl
import polars as pl
import pytest

from builders import PAYMENT_HEADER, ROSTER_HEADER, Person, make_person, roster_row, run_night, write_workbook
from pipeline.errors import DatabaseWriteError
from pipeline.io.excel_out.collection import read_snapshot
from pipeline.io.tables import DDL

COUNTY, FULIANG, EHU = "浮梁县", "浮梁镇", "鹅湖镇"
# last year's nights: in its collection period, and after it further on than this year's period reaches
LAST_YEAR_DATES = (dt.date(2024, 12, 31), dt.date(2025, 3, 1))
D1, D2, D3 = dt.date(2025, 11, 1), dt.date(2025, 11, 10), dt.date(2025, 11, 20)
HEADER = [*ROSTER_HEADER, "联系电话"]


JIA = make_person(1, "甲", dt.date(1970, 1, 5))
YI = make_person(2, "乙", dt.date(2025, 11, 10))
BING = make_person(3, "丙", dt.date(1972, 3, 5))
DING = make_person(4, "丁", dt.date(1973, 4, 5))
WU = make_person(5, "戊", dt.date(1974, 5, 5))
JI = make_person(6, "己", dt.date(1975, 6, 5))
GENG = make_person(7, "庚", dt.date(1976, 7, 5))
XIN = make_person(8, "辛", dt.date(1977, 8, 5))


def _row(n: int, p: Person, phone: str | None, **kw) -> list:
    return [*roster_row(n, p.name, p.id_number, **kw), phone]


def _roster_2025(path: Path) -> Path:
    people = [JIA, BING, DING, WU, JI, GENG, XIN]
    rows = [_row(n, p, f"1390000000{n}", prev="否", registered="2024-09-20") for n, p in enumerate(people, 1)]
    return write_workbook(path, {"花名册": [HEADER, *rows]})


def _roster_2026(path: Path, with_newborn: bool) -> Path:
    rows = [
        _row(1, JIA, "13800000001", township=EHU, village="鹅湖村"),
        _row(3, BING, "13800000003"),
        _row(4, DING, "13800000004", county=None),  # 县(市、区) empty: rejected
        _row(6, JI, ""),  # no phone this year: last year's is shown
        _row(7, GENG, None, prev="否"),
        _row(8, XIN, "13800000008"),
    ]
    if with_newborn:
        rows.append(_row(2, YI, "13800000002", prev="否", registered="2025-11-20"))
    return write_workbook(path, {"花名册": [HEADER, *rows]})


def _payments(path: Path, year: str, lines: list[tuple[Person, int, str]]) -> Path:
    rows = [
        [i, p.name, p.id_number, amount, paid_on, year, f"3360{year}{i:014d}", "微信"]
        for i, (p, amount, paid_on) in enumerate(lines, 1)
    ]
    return write_workbook(path, {"缴费": [PAYMENT_HEADER, *rows]})


PAID_2025 = [(p, 400, "2024-10-10") for p in (JIA, BING, DING, WU, JI, XIN)]  # 庚 did not pay
PAID_2026 = [
    (JIA, 400, "2025-10-20"),
    (JI, 100, "2025-11-03"),
    (XIN, 400, "2025-11-05"),
    (GENG, 400, "2025-11-15"),
    (YI, 400, "2025-11-20"),
]


def _known_by(date: dt.date) -> list[tuple[Person, int, str]]:
    """The tax bureau's export of that day: the payments made by then."""
    return [line for line in PAID_2026 if dt.date.fromisoformat(line[2]) <= date]


@dataclass
class Nights:
    db: Path
    out: Path
    states: dict[str, pl.DataFrame]  # collection_progress after each step
    not_renewed: dict[str, list[tuple]]  # not_renewed after each step
    runs: dict[str, str]  # run id of each step
    reports: list[Path]
    renewal: tuple[int, int] | None  # what the D3 night's summary says


def _progress(db: Path) -> pl.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.sql("SELECT * FROM collection_progress ORDER BY ALL").pl()


def _not_renewed(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT name, county, township, village, phone, reason FROM not_renewed WHERE coverage_year = 2026 "
            "ORDER BY name"
        ).fetchall()


def _night(tmp: Path, db: Path, year: int, roster: Path, payments: Path, as_of: dt.date, **kw):
    return run_night(year, "jingdezhen", [str(roster)], [str(payments)], db, tmp, as_of=as_of, **kw)


@pytest.fixture(scope="module")
def nights(tmp_path_factory) -> Nights:
    tmp = tmp_path_factory.mktemp("progress")
    db = tmp / "medins.duckdb"
    states, runs, not_renewed = {}, {}, {}
    for date in LAST_YEAR_DATES:
        last = _night(
            tmp,
            db,
            2025,
            _roster_2025(tmp / "r2025.xlsx"),
            _payments(tmp / "p2025.xlsx", "2025", PAID_2025),
            date,
            write_workbooks=False,
        )
        runs["2025"] = last.run_id  # the last one's results are those the database holds
    reports: list[Path] = []
    renewal = None
    steps = [("D1", D1, D1), ("D2", D2, D2), ("D3", D3, D3), ("D2 again", D2, D3), ("D1 after D3", D1, D1)]
    for step, date, paid_by in steps:
        # D2 again: the export of D2 as corrected later (庚's payment of 11-15 dated 11-08 by the tax bureau)
        lines = _known_by(paid_by) if step != "D2 again" else [*_known_by(D2), (GENG, 400, "2025-11-08")]
        result = _night(
            tmp,
            db,
            2026,
            _roster_2026(tmp / f"r-{step}.xlsx", with_newborn=date >= D3),
            _payments(tmp / f"p-{step}.xlsx", "2026", lines),
            date,
            write_workbooks=step == "D3",
        )
        states[step], runs[step], not_renewed[step] = _progress(db), result.run_id, _not_renewed(db)
        if step == "D3":
            reports, renewal = sorted(result.reports, key=lambda p: not p.name.startswith("对账报告")), result.renewal()
    return Nights(db, tmp, states, not_renewed, runs, reports, renewal)


def _total(state: pl.DataFrame, date: dt.date) -> dict:
    return state.filter((pl.col("data_date") == date) & (pl.col("level") == "total")).to_dicts()[0]


def test_each_night_writes_a_snapshot_whose_enrolled_count_is_the_persons_enrolled_by_its_date(nights):
    state = nights.states["D3"].filter(pl.col("coverage_year") == 2026)
    assert sorted(set(state["data_date"].to_list())) == [D1, D2, D3]
    # D1: 甲 (10-20); D2: 甲, 辛 (己 paid 100 of 400); D3: 甲, 辛, 庚, 乙
    assert [_total(state, d)["enrolled_count"] for d in (D1, D2, D3)] == [1, 2, 4]
    # the roster: 甲 丙 己 庚 辛 accepted (丁 rejected); 乙 from D3 on
    assert [_total(state, d)["roster_count"] for d in (D1, D2, D3)] == [5, 5, 6]
    # 400 due from each of them but 乙 (a newborn of the year is fully subsidised: 0 due)
    assert _total(state, D3)["individual_due_total"] == Decimal("2000.00")
    # collected: 甲 400 + 己 100 + 辛 400 + 庚 400 + 乙 400
    assert _total(state, D3)["individual_collected_total"] == Decimal("1700.00")
    assert set(state.filter(pl.col("data_date") == D3)["run_id"]) == {nights.runs["D3"]}


def test_last_years_insured_are_counted_by_last_years_township(nights):
    rows = nights.states["D3"].filter(pl.col("data_date") == D3)
    got = {
        (r["level"], r["township"]): (
            r["roster_count"],
            r["enrolled_count"],
            r["prev_enrolled_count"],
            r["renewed_count"],
            r["new_enrolled_count"],
            r["renewal_rate"],
        )
        for r in rows.to_dicts()
    }
    assert got == {
        # 浮梁镇: roster 丙 己 庚 辛 乙; enrolled 辛 庚 乙; last year 甲 丙 丁 戊 己 辛 (6), renewed 甲 辛 (2,
        # 甲 at last year's place), new 庚 乙; rate 2/6
        ("township", FULIANG): (5, 3, 6, 2, 2, 2 / 6),
        # 鹅湖镇: 甲 moved here: enrolled, but neither renewed here nor new anywhere; no rate without last year
        ("township", EHU): (1, 1, 0, 0, 0, None),
        ("county", None): (6, 4, 6, 2, 2, 2 / 6),
        ("total", None): (6, 4, 6, 2, 2, 2 / 6),  # enrolled 4 = renewed 2 + new 2 for the total
    }
    assert set(rows["prev_run_id"]) == {nights.runs["2025"]}
    assert nights.renewal == (2, 6)  # the run summary's line: renewed of last year's insured


def test_a_rerun_of_a_data_date_replaces_that_snapshot_only(nights):
    before, after = nights.states["D3"], nights.states["D2 again"]
    assert _total(after, D2)["enrolled_count"] == 3  # 甲, 辛 and 庚 (its payment now dated 11-08)
    assert _total(after, D2)["run_id"] == nights.runs["D2 again"]
    for date in (D1, D3):
        assert after.filter(pl.col("data_date") == date).equals(before.filter(pl.col("data_date") == date))


def test_a_night_for_an_earlier_date_run_last_leaves_the_later_snapshots_alone(nights):
    before, after = nights.states["D2 again"], nights.states["D1 after D3"]
    assert _total(after, D1)["run_id"] == nights.runs["D1 after D3"]
    assert _total(after, D1)["enrolled_count"] == 1
    for date in (D2, D3):
        assert after.filter(pl.col("data_date") == date).equals(before.filter(pl.col("data_date") == date))


def test_the_year_before_has_its_own_snapshot_without_last_year_figures(nights):
    rows = nights.states["D3"].filter(pl.col("coverage_year") == 2025)
    assert set(rows["data_date"]) == set(LAST_YEAR_DATES)
    # no 2024 run in the database: the comparison columns are empty
    assert (
        rows.select("prev_run_id", "prev_enrolled_count", "renewed_count", "new_enrolled_count").null_count().row(0)
        == (rows.height,) * 4
    )
    assert [_total(rows, d)["enrolled_count"] for d in LAST_YEAR_DATES] == [6, 6]


def test_not_renewed_lists_last_years_insured_not_enrolled_tonight_with_the_reason(nights):
    # by last year's place; phone: this year's roster row, else last year's (丁's row is rejected, 己's empty)
    assert nights.not_renewed["D3"] == [
        ("丁", COUNTY, FULIANG, "新平村", "13900000003", "roster_rejected"),
        ("丙", COUNTY, FULIANG, "新平村", "13800000003", "unpaid"),
        ("己", COUNTY, FULIANG, "新平村", "13900000005", "underpaid"),  # 100 of 400
        ("戊", COUNTY, FULIANG, "新平村", "13900000004", "not_on_roster"),
    ]
    # the list is the year's: the night of D1 run last replaces it (己 and 辛 had not paid by 11-01)
    assert [(r[0], r[5]) for r in nights.not_renewed["D1 after D3"]] == [
        ("丁", "roster_rejected"),
        ("丙", "unpaid"),
        ("己", "unpaid"),
        ("戊", "not_on_roster"),
        ("辛", "unpaid"),
    ]


# --- the workbook ------------------------------------------------------------------------


def _sheet_rows(path: Path, sheet: str) -> list[tuple]:
    ws = openpyxl.load_workbook(path)[sheet]
    return [row for row in ws.iter_rows(values_only=True) if any(v is not None for v in row)]


def test_the_sheet_shows_each_township_against_last_year_and_a_week_earlier(nights):
    rows = _sheet_rows(nights.reports[0], "征缴进度")
    assert rows[0] == (
        "县(市、区)",
        "乡镇(街道)",
        "上年参保人数",
        "本年已参保",
        "续保人数",
        "续保率",
        "新增参保",
        "较7天前增加",
        "排名",
    )
    # 较7天前: D3 (11-20) against D2 (11-10), the latest snapshot on or before 11-13: 浮梁镇 had 辛 then, 鹅湖镇 甲
    assert rows[1:5] == [
        (COUNTY, FULIANG, 6, 3, 2, 2 / 6, 2, 3 - 1, 1),
        (COUNTY, EHU, 0, 1, 0, None, 0, 1 - 1, None),
        (COUNTY, "小计", 6, 4, 2, 2 / 6, 2, 4 - 2, None),
        ("合计", "合计", 6, 4, 2, 2 / 6, 2, 4 - 2, None),
    ]


def _series_ranges(path: Path, sheet: str) -> list[tuple[str, str]]:
    """(x range, y range) of each series of the chart drawing from `sheet`."""
    with zipfile.ZipFile(path) as z:
        charts = [z.read(n).decode() for n in z.namelist() if re.fullmatch(r"xl/charts/chart\d+\.xml", n)]
    (chart,) = [c for c in charts if f"<c:f>{sheet}!" in c]
    return re.findall(r"<c:xVal><c:numRef><c:f>(.*?)</c:f>.*?<c:yVal><c:numRef><c:f>(.*?)</c:f>", chart, re.DOTALL)


def _cells(ws, ref: str) -> list:
    """The values of a range such as 征缴进度!$A$12:$A$14 (or one cell, 征缴进度!$G$12)."""
    first, _, last = ref.split("!")[1].replace("$", "").partition(":")
    return [row[0].value for row in ws[f"{first}:{last or first}"]]


def test_the_chart_draws_the_snapshot_rows_and_last_years_curve_aligned_by_days_since_the_start(nights):
    path = nights.reports[0]
    ws = openpyxl.load_workbook(path)["征缴进度"]
    (this_x, this_y), (last_x, last_y) = _series_ranges(path, "征缴进度")
    # this year's: the total rows of the three 2026 snapshots as they stood after the D3 night
    assert [d.date() for d in _cells(ws, this_x)] == [D1, D2, D3]
    assert _cells(ws, this_y) == [1, 2, 4]
    # last year's snapshot of 2024-12-31, 107 days after 2024-09-15, drawn 107 days after 2025-10-15; the one
    # of 2025-03-01 (day 167) lies beyond this year's period (2025-10-15 to 2026-02-28: 136 days) and is left out
    assert [d.date() for d in _cells(ws, last_x)] == [dt.date(2026, 1, 30)]
    assert _cells(ws, last_y) == [6]


def test_the_list_of_last_years_insured_not_renewed_masks_ids_and_names_the_reason(nights):
    phone_lists = next(p for p in nights.reports if p.name.startswith("催缴名单"))
    rows = _sheet_rows(phone_lists, "上年参保未续保")
    assert rows[0] == ("姓名", "联系电话", "证件号码", "乡镇(街道)", "村(社区)", "原因")
    persons = [r for r in rows[1:] if not (str(r[0]).endswith("人）") and all(v is None for v in r[1:]))]
    assert {(r[0], r[2], r[5]) for r in persons} == {
        ("丙", BING.id_number[:6] + "********" + BING.id_number[-4:], "未缴"),
        ("丁", DING.id_number[:6] + "********" + DING.id_number[-4:], "本年花名册行未通过校验"),
        ("戊", WU.id_number[:6] + "********" + WU.id_number[-4:], "本年花名册中无此人"),
        ("己", JI.id_number[:6] + "********" + JI.id_number[-4:], "少缴"),
    }


# --- without last year, and a failed night -------------------------------------------------


def test_without_a_run_for_last_year_the_comparison_is_empty_and_nobody_is_listed(nights, tmp_path):
    result = _night(
        tmp_path,
        tmp_path / "fresh.duckdb",
        2026,
        _roster_2026(tmp_path / "r.xlsx", with_newborn=True),
        _payments(tmp_path / "p.xlsx", "2026", PAID_2026),
        D3,
    )
    progress = result.table("collection_progress")
    assert progress.height == 4  # 浮梁镇, 鹅湖镇, the county, the total
    comparison = progress.select("prev_run_id", "prev_enrolled_count", "renewed_count", "new_enrolled_count")
    assert comparison.null_count().row(0) == (4, 4, 4, 4)
    assert _total(progress, D3)["enrolled_count"] == 4
    # the figures of this year are docs/RULES.md §8's, place by place (all tiers together)
    figures = ["roster_count", "enrolled_count", "individual_due_total", "individual_collected_total"]
    places = progress.filter(pl.col("level") == "township").select("county", "township", *figures).sort("township")
    totals = result.table("subsidy_totals").filter((pl.col("level") == "township") & (pl.col("tier") == "all"))
    assert places.equals(totals.select("county", "township", *figures).sort("township"))
    assert result.table("not_renewed").height == 0
    assert result.renewal() is None
    (report,) = [p for p in result.reports if p.name.startswith("对账报告")]
    assert "上年参保未续保" not in openpyxl.load_workbook(report).sheetnames
    # 浮梁镇: 辛 庚 乙 enrolled; a week earlier there is no snapshot in this database
    assert _sheet_rows(report, "征缴进度")[1] == (COUNTY, FULIANG, None, 3, None, None, None, None, None)


def test_a_failed_night_changes_no_snapshot(nights, tmp_path, monkeypatch):
    import pipeline.io.store

    db = tmp_path / "medins.duckdb"
    db.write_bytes(nights.db.read_bytes())

    def fail(name: str) -> None:
        if name == "before_commit":
            raise OSError("disk gone")

    monkeypatch.setattr(pipeline.io.store, "checkpoint", fail)
    with pytest.raises(DatabaseWriteError):
        _night(
            tmp_path,
            db,
            2026,
            _roster_2026(tmp_path / "r.xlsx", with_newborn=True),
            _payments(tmp_path / "p.xlsx", "2026", PAID_2026),
            dt.date(2025, 11, 30),
            write_workbooks=False,
        )
    assert _progress(db).equals(nights.states["D1 after D3"])


# --- the rank and the change, on snapshot rows as given ------------------------------------


def _snapshot_db(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    """collection_progress holding (data_date, level, county, township, enrolled, prev, renewed) rows."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE collection_progress ({DDL['collection_progress']})")
    for date, level, county, township, enrolled, prev, renewed in rows:
        con.execute(
            "INSERT INTO collection_progress (coverage_year, data_date, level, county, township, enrolled_count, "
            "prev_enrolled_count, renewed_count, renewal_rate) VALUES (2026, ?, ?, ?, ?, ?, ?, ?, ?)",
            [date, level, county, township, enrolled, prev, renewed, renewed / prev if prev else None],
        )
    return con


def test_townships_rank_by_renewal_rate_within_their_county_ties_sharing_a_rank():
    d = dt.date(2025, 12, 1)
    con = _snapshot_db(
        [
            (d, "township", "甲县", "a", 9, 10, 5),  # 0.5
            (d, "township", "甲县", "b", 9, 4, 2),  # 0.5: the same rate, the same rank
            (d, "township", "甲县", "c", 9, 10, 4),  # 0.4: third, not second
            (d, "township", "甲县", "d", 9, 0, 0),  # no rate, no rank
            (d, "township", "乙县", "e", 9, 10, 1),  # 0.1: first in its own county
        ]
    )
    snapshot = read_snapshot(con, 2026, d)
    ranks = dict(zip(snapshot.rows["township"], snapshot.rows["rank"]))
    assert ranks == {"a": 1, "b": 1, "c": 3, "d": None, "e": 1}


def test_the_change_is_against_the_latest_snapshot_a_week_old_and_empty_where_there_is_none():
    d = dt.date(2025, 12, 1)
    con = _snapshot_db(
        [
            (d - dt.timedelta(days=10), "township", "甲县", "a", 2, 0, 0),  # older: not the one compared
            (d - dt.timedelta(days=8), "township", "甲县", "a", 5, 0, 0),  # the latest on or before d - 7
            (d - dt.timedelta(days=6), "township", "甲县", "a", 7, 0, 0),  # less than a week old
            (d, "township", "甲县", "a", 9, 0, 0),
            (d, "township", "甲县", "b", 4, 0, 0),  # no row a week earlier
        ]
    )
    snapshot = read_snapshot(con, 2026, d)
    assert snapshot.week_before == d - dt.timedelta(days=8)
    assert dict(zip(snapshot.rows["township"], snapshot.rows["change"])) == {"a": 9 - 5, "b": None}
    # the first snapshots of a year: nothing a week old
    assert read_snapshot(con, 2026, d - dt.timedelta(days=8)).rows["change"].to_list() == [None]
