"""The sample's exports as they stood on earlier data dates, so `make run` can build a collection period
night by night (README "make run"; docs/RULES.md §10).

A bureau's nightly exports grow: the roster holds who had registered by the data date, the tax
bureau's export the payments made by then. The committed sample holds a whole year, so for each
month end of the coverage year's collection period this writes a copy of every sample file without
the rows dated after that day: a row leaves when a check of docs/RULES.md §6 rejects it for a date
after that data date and not for a date after the last day there is (a payment, a registration, a
birth, an identification still to come). Every other row stays, bad ones included, under the
same title rows and headers. The copies hold text cells (as the product reads the originals):
an .xls or .xlsx file is copied as .xlsx, a CSV as UTF-8 CSV.

    python -m tools.sample.as_of --coverage-year 2026 --region jingdezhen \
        --from sample_data/2026 --out out/.sample-exports/2026

writes out/.sample-exports/2026/<date>/ for each month end and prints the dates, one a line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import polars as pl
import xlsxwriter

from pipeline.io.excel_in import TEXT_ONLY_FIELDS, SheetRead, numeric_flag, read_sheet
from pipeline.io.grids import TEXT_FORMAT, Grid, read_grids
from pipeline.io.preflight import check_file
from pipeline.params import Params, load_params
from pipeline.validate import check_sheet
from schemas.headers import load_header_map

KINDS = ("roster", "payments", "subsidy_list")  # a sample file's kind is the start of its name
LAST_DAY = dt.date(9999, 12, 31)  # no date of the sample lies after it


def month_ends(params: Params) -> list[dt.date]:
    """The last day of each month of the collection period [CS, CE], CE itself the last."""
    start, end = params.collection_start.value, params.collection_end.value
    dates, month = [], dt.date(start.year, start.month, 1)
    while month <= end:
        following = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
        dates.append(min(following - dt.timedelta(days=1), end))
        month = following
    return dates


class SampleFile:
    """One sample file, read once: per sheet its grid, its rows as read, and the lines the checks
    reject on the last day there is."""

    def __init__(self, source: Path, params: Params) -> None:
        self.source, self.params = source, params
        self.header_map = load_header_map(next(k for k in KINDS if source.name.startswith(k)))
        self.fmt = check_file(source)
        self.sheets: list[tuple[Grid, SheetRead, pl.DataFrame | None, pl.DataFrame]] = []
        self.numbers: list[set[tuple[int, int]]] = []  # per sheet: (row number, column) of ID cells Excel made numbers
        for grid in read_grids(source, self.fmt):
            sheet = read_sheet(grid, self.header_map, str(source), "")
            rows = sheet.rows.load() if sheet.rows is not None else None
            self.sheets.append((grid, sheet, rows, self._rejected(sheet, rows, LAST_DAY)))
            self.numbers.append(_number_cells(grid, sheet, rows))

    def _rejected(self, sheet: SheetRead, rows: pl.DataFrame | None, data_date: dt.date) -> pl.DataFrame:
        if rows is None:
            return pl.DataFrame(schema={"row_number": pl.Int32, "column": pl.Utf8})
        checked = check_sheet(sheet, rows, self.params, self.header_map, data_date)
        return checked.rejected.select("row_number", "column")

    def rows_dated_after(self, index: int, data_date: dt.date) -> list[int]:
        """Row numbers of sheet `index` rejected on `data_date` for a cell they are not rejected for on
        the last day there is: a date after `data_date`."""
        _, sheet, rows, late = self.sheets[index]
        early = self._rejected(sheet, rows, data_date)
        after = early.join(late, on=["row_number", "column"], how="anti", nulls_equal=True)["row_number"]
        return after.unique().sort().to_list()

    def kept(self, index: int, data_date: dt.date) -> pl.DataFrame:
        """The grid's rows but those dated after `data_date`, each with its row number first."""
        grid = self.sheets[index][0]
        numbers = pl.int_range(grid.first_row, grid.first_row + grid.cells.height, eager=True, dtype=pl.Int32)
        return grid.cells.select(numbers.alias("__row"), pl.all()).filter(
            ~pl.col("__row").is_in(self.rows_dated_after(index, data_date))
        )

    def write_as_of(self, out_dir: Path, data_date: dt.date) -> Path:
        """A copy without the rows dated after `data_date`."""
        if self.fmt == TEXT_FORMAT:
            target = out_dir / self.source.name
            self.kept(0, data_date).drop("__row").write_csv(target, include_header=False, include_bom=True)
            return target
        target = out_dir / f"{self.source.stem}.xlsx"
        wb = xlsxwriter.Workbook(str(target), {"strings_to_numbers": False, "strings_to_formulas": False})
        for i, (grid, *_) in enumerate(self.sheets):
            ws = wb.add_worksheet(grid.sheet)
            kept = self.kept(i, data_date)
            for r, (row_number, *row) in enumerate(kept.iter_rows()):
                for c, text in enumerate(row):
                    if (row_number, c) in self.numbers[i]:
                        ws.write_number(r, c, float(text))
                    elif text is not None:
                        ws.write_string(r, c, text)
        wb.close()
        return target


def _number_cells(grid: Grid, sheet: SheetRead, rows: pl.DataFrame | None) -> set[tuple[int, int]]:
    """(row number, grid column) of the ID and ticket cells stored as numbers (the product flags them:
    docs/RULES.md §6), so that a copy keeps them numbers."""
    if rows is None or sheet.header_row is None:
        return set()
    header = grid.cells.head(sheet.header_row - grid.first_row + 1)
    cells = set()
    for field in TEXT_ONLY_FIELDS:
        flag, written = numeric_flag(field), sheet.columns_seen.get(field)
        if flag not in rows.columns or written is None:
            continue
        column = next(c for c, name in enumerate(header.columns) if written in header[name].to_list())
        cells |= {(int(r), column) for r in rows.filter(pl.col(flag))["row_number"]}
    return cells


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.sample.as_of", description=__doc__.splitlines()[0])
    ap.add_argument("--coverage-year", type=int, required=True)
    ap.add_argument("--region", default="jiangxi")
    ap.add_argument("--from", dest="source", type=Path, required=True, help="a year's sample folder")
    ap.add_argument("--out", type=Path, required=True, help="a folder per data date is written in it")
    a = ap.parse_args(argv)
    params = load_params(a.coverage_year, a.region)
    files = [SampleFile(p, params) for p in sorted(a.source.iterdir()) if p.name.startswith(KINDS)]
    for data_date in month_ends(params):
        folder = a.out / data_date.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for file in files:
            file.write_as_of(folder, data_date)
        print(data_date.isoformat())
    return 0


if __name__ == "__main__":
    sys.exit(main())
