"""python -m tools.sample: write a sample night's input files (see the package docstring)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.errors import MedinsError
from tools.sample.generate import main_sample


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.sample",
        description="Write deterministic sample rosters, payment files and subsidy lists.",
    )
    ap.add_argument("--rows", type=int, required=True, help="residents of the .xlsx rosters")
    ap.add_argument("--seed", type=int, required=True, help="random seed (same seed, same bytes)")
    ap.add_argument("--coverage-year", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--payment-rows", type=int, default=None, help="exact payment rows over all payment files")
    ap.add_argument("--roster-files", type=int, default=1, help="1: a city-wide roster; more: one per county")
    ap.add_argument("--sheets-per-file", type=int, default=2)
    ap.add_argument("--clean", action="store_true", help="no messiness, no planted bad rows")
    ap.add_argument(
        "--xlsx-only",
        action="store_true",
        help="only the .xlsx rosters and payments.xlsx (no .xls, CSV, tax layout, subsidy lists)",
    )
    a = ap.parse_args(argv)
    try:
        print(
            main_sample(
                a.rows,
                a.seed,
                a.coverage_year,
                a.out,
                payment_rows=a.payment_rows,
                roster_files=a.roster_files,
                messy=not a.clean,
                sheets_per_file=a.sheets_per_file,
                extra_formats=not a.xlsx_only,
            )
        )
    except MedinsError as e:
        print(e, file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
