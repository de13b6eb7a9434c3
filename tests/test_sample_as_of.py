"""tools/sample/as_of.py: the sample's exports as they stood on an earlier data date, which `make run`
goes through month end by month end so that 征缴进度 draws a curve (docs/RULES.md §10)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from pipeline.io.excel_in import read_sheet
from pipeline.io.grids import read_grids
from pipeline.io.preflight import check_file
from pipeline.params import load_params
from tools.sample.as_of import SampleFile, month_ends

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "2026"
DATE = dt.date(2025, 11, 30)


def test_the_data_dates_are_the_month_ends_of_the_collection_period_ending_on_its_last_day():
    assert month_ends(load_params(2025, "jingdezhen")) == [
        dt.date(2024, 9, 30),
        dt.date(2024, 10, 31),
        dt.date(2024, 11, 30),
        dt.date(2024, 12, 31),
        dt.date(2025, 1, 31),
        dt.date(2025, 2, 28),  # 2025's collection period ends on 2025-02-28
    ]


def _rows_read(path: Path, header_map) -> list[int]:
    return [read_sheet(g, header_map, str(path), "").rows_read for g in read_grids(path, check_file(path))]


@pytest.mark.parametrize("name", ["roster_洪源镇.xls", "payments_税务大厅.csv"])
def test_a_copy_leaves_out_exactly_the_rows_dated_after_the_data_date(tmp_path, name):
    params = load_params(2026, "jingdezhen")
    original = SampleFile(SAMPLE / name, params)
    dropped = [original.rows_dated_after(i, DATE) for i in range(len(original.sheets))]
    assert all(dropped), "every sheet of the sample has rows dated after 2025-11-30"
    original.write_as_of(tmp_path, DATE - dt.timedelta(days=30))  # one file read, copies for several dates
    copy = original.write_as_of(tmp_path, DATE)
    assert copy.suffix == (".csv" if name.endswith(".csv") else ".xlsx")
    # the copy read by the product: the rows of the original less those dated after the data date ...
    before, after = _rows_read(SAMPLE / name, original.header_map), _rows_read(copy, original.header_map)
    assert after == [n - len(d) for n, d in zip(before, dropped)]
    # ... none of its rows dated after it, and its other bad rows bad for the same reasons (an ID cell that
    # Excel made a number still a number)
    again = SampleFile(copy, params)
    assert [again.rows_dated_after(i, DATE) for i in range(len(again.sheets))] == [[] for _ in dropped]
    for (*_, late), (*_, late_again), gone in zip(original.sheets, again.sheets, dropped):
        assert late_again["column"].to_list() == late.filter(~pl.col("row_number").is_in(gone))["column"].to_list()
