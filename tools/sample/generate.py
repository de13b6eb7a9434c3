"""generate_sample: every file of one sample night, and what a correct reader must find in them."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from tools.sample.context import Args, PaymentMix, Sample, SampleArgumentError
from tools.sample.defects import WHATS, Spoiler, planted_indices
from tools.sample.lists import SubsidyLists
from tools.sample.paybooks import PaymentFiles
from tools.sample.payments import Payments
from tools.sample.people import People
from tools.sample.render import Renderer
from tools.sample.rosters import Rosters, roster_file_plan, township_residents
from tools.sample.workbook import Sheet

# Above this many rows xlsxwriter streams rows to temp files instead of keeping
# the workbook in memory (the benchmark writes a million of each kind).
CONSTANT_MEMORY_ROWS = 50_000
EXCEL_MAX_ROWS = 1_048_576


def generate_sample(
    rows: int,
    seed: int,
    coverage_year: int,
    out_dir: Path,
    *,
    payment_rows: int | None = None,
    roster_files: int = 1,
    messy: bool = True,
    sheets_per_file: int = 2,
    numeric_id_rows: list[int] | None = None,
    extra_formats: bool = True,
    payment_mix: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Write the rosters, payment files and subsidy lists for coverage year Y into out_dir; say what
    was planted.

    rows: residents of the .xlsx rosters, one row each (planted duplicate copies come on top).
    roster_files: 1 writes one city-wide roster (roster_jingdezhen.xlsx); more write one per county.
    payment_rows: exact number of payment data rows over all payment files, or None for the
    natural mix (about 0.9 per resident). messy=False writes clean files with no planted bad rows.
    numeric_id_rows: Excel row numbers of the first roster sheet that must hold an ID stored as a
    number (planted as id_numeric). extra_formats=False writes only the .xlsx roster(s) and
    payments.xlsx (the benchmark's night); True adds a township roster .xls (10 % more residents,
    at most 60,000), the tax bureau's payments .xlsx (two-row header) and CSV (GB18030), and the
    subsidy lists of 民政 (.xlsx), 乡村振兴 (.xls) and 残联 (.csv). payment_mix: the fields of
    tools.sample.context.PaymentMix to change (how residents pay; strangers' payments per resident).

    Returns: roster_files, payment_files, subsidy_list_files, files (Paths); residents, roster_rows,
    payment_rows, subsidy_list_rows (data rows written); bad_rows {what: {kind: rows}}; expected
    (accepted / rejected / skipped counts a correct reader reports, docs/RULES.md §6 and §9);
    payment_cases, subsidy_list_cases (how many people of each case); sheets (per sheet: header
    row, data, blank and footer rows); planted (one dict per bad row: kind, file, sheet, row as
    Excel shows it (a CSV: the record number), column header as written (a two-row header: the
    joined name, 费款所属期起), raw value, what, reason_code).
    """
    args = _checked(
        rows,
        seed,
        coverage_year,
        Path(out_dir),
        payment_rows,
        roster_files,
        messy,
        sheets_per_file,
        numeric_id_rows,
        extra_formats,
    )
    if payment_mix:
        args.mix = PaymentMix(**payment_mix)
    n_township = township_residents(rows) if extra_formats else 0
    total = rows + n_township
    pay_basis = total if payment_rows is None else payment_rows
    s = Sample(args, residents_total=total, big=total + pay_basis > CONSTANT_MEMORY_ROWS)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    return _write(s, n_township, min(pay_basis, total))


def _write(s: Sample, n_township: int, paying: int) -> dict[str, Any]:
    """Every file of the night: the .xlsx rosters, the township .xls roster (`n_township` residents),
    the payment files (bad rows planted among the first `paying` payment rows), the subsidy lists."""
    rows, messy, total = s.args.rows, s.args.messy, s.residents_total
    people = People(s)
    payments, renderer = Payments(s, people), Renderer(s)
    spoiler = Spoiler(s, people, renderer)

    plant_rng = random.Random(f"medins-sample:{s.args.seed}:plant")
    roster_plan = planted_indices(plant_rng, rows, "roster", messy, rows)
    payment_plan = planted_indices(plant_rng, paying, "payments", messy, total)
    township_plan = planted_indices(plant_rng, n_township, "roster", messy, n_township)
    paybook = PaymentFiles(s, payments, renderer, spoiler, payment_plan)
    lists = SubsidyLists(s, people, renderer, spoiler) if s.args.extra_formats else None
    rosters = Rosters(s, people, payments, renderer, spoiler, paybook, lists)

    roster_paths: list[Path] = []
    g = 0
    for k, (slug, place, county_list, n_file) in enumerate(roster_file_plan(s)):
        path, g = rosters.write_xlsx(slug, place, county_list, n_file, g, roster_plan, k == 0)
        roster_paths.append(path)
    if n_township:
        path, g = rosters.write_township_xls(n_township, g, {rows + i: k for i, k in township_plan.items()})
        roster_paths.append(path)
    payment_paths, payment_sheets = paybook.close()
    list_paths = lists.finish() if lists else []
    sheets = rosters.sheets + payment_sheets + (lists.sheets if lists else [])
    return _summary(s, roster_paths, payment_paths, list_paths, sheets, lists)


def _checked(
    rows: int,
    seed: int,
    year: int,
    out_dir: Path,
    payment_rows: int | None,
    roster_files: int,
    messy: bool,
    sheets_per_file: int,
    numeric_id_rows: list[int] | None,
    extra_formats: bool,
) -> Args:
    if rows < 1 or roster_files < 1 or sheets_per_file < 1:
        raise SampleArgumentError(
            "行数、文件数、工作表数至少为1 / rows, roster_files and sheets_per_file must be at least 1"
        )
    if payment_rows is not None and payment_rows < 0:
        raise SampleArgumentError("缴费行数不能为负 / payment_rows must not be negative")
    residents = rows + (township_residents(rows) if extra_formats else 0)
    per_file = max(-(-rows // roster_files), residents if payment_rows is None else payment_rows)
    if per_file / sheets_per_file * 1.05 + 50 > EXCEL_MAX_ROWS:
        raise SampleArgumentError(
            f"每张工作表约{int(per_file / sheets_per_file)}行, 超出Excel上限 / "
            f"{int(per_file / sheets_per_file)} rows per sheet do not fit in Excel; "
            "raise sheets_per_file or roster_files"
        )
    return Args(
        rows,
        seed,
        year,
        out_dir,
        payment_rows,
        roster_files,
        messy,
        sheets_per_file,
        sorted(set(numeric_id_rows or ())),
        extra_formats,
    )


def _summary(
    s: Sample,
    roster_paths: list[Path],
    payment_paths: list[Path],
    list_paths: list[Path],
    sheets: list[Sheet],
    lists: SubsidyLists | None,
) -> dict[str, Any]:
    bad: dict[str, Counter[str]] = {what: Counter() for what in WHATS}
    for item in s.planted:
        bad[item["what"]][item["kind"]] += 1
    skipped_dup = bad["roster"]["exact_duplicate"]
    rejected = {what: sum(bad[what].values()) for what in WHATS}
    rejected["roster"] -= skipped_dup
    info = [sh.info() for sh in sheets]
    data_rows = {what: sum(i["data_rows"] for i in info if i["kind"] == what) for what in WHATS}
    return {
        "coverage_year": s.year,
        "seed": s.seed,
        "region": s.vocab["region"],
        "messy": s.messy,
        "extra_formats": s.args.extra_formats,
        "roster_files": roster_paths,
        "payment_files": payment_paths,
        "subsidy_list_files": list_paths,
        "files": roster_paths + payment_paths + list_paths,
        "residents": s.residents_total,
        "roster_rows": data_rows["roster"],
        "payment_rows": data_rows["payments"],
        "subsidy_list_rows": data_rows["subsidy_list"],
        "bad_rows": {what: {kind: n for kind, n in sorted(c.items()) if n} for what, c in bad.items()},
        "expected": {
            "roster_accepted": data_rows["roster"] - rejected["roster"] - skipped_dup,
            "roster_rejected": rejected["roster"],
            "roster_skipped_duplicate": skipped_dup,
            "payments_accepted": data_rows["payments"] - rejected["payments"],
            "payments_rejected": rejected["payments"],
            "subsidy_list_accepted": data_rows["subsidy_list"] - rejected["subsidy_list"],
            "subsidy_list_rejected": rejected["subsidy_list"],
            "subsidy_list_not_in_force": lists.cases["not_in_force"] if lists else 0,
            "skipped_blank": sum(i["blank_rows"] for i in info),
            "skipped_footer": sum(i["footer_rows"] for i in info),
        },
        "payment_cases": dict(sorted(s.cases.items())),
        "subsidy_list_cases": dict(sorted(lists.cases.items())) if lists else {},
        "sheets": info,
        "planted": s.planted,
    }


def main_sample(
    rows: int,
    seed: int,
    coverage_year: int,
    out: Path | str,
    *,
    payment_rows: int | None = None,
    roster_files: int = 1,
    messy: bool = True,
    sheets_per_file: int = 2,
    extra_formats: bool = True,
) -> str:
    """Generate a sample and return a one-line summary for the terminal (`medins sample`)."""
    res = generate_sample(
        rows,
        seed,
        coverage_year,
        Path(out),
        payment_rows=payment_rows,
        roster_files=roster_files,
        messy=messy,
        sheets_per_file=sheets_per_file,
        extra_formats=extra_formats,
    )
    bad = sum(sum(kinds.values()) for kinds in res["bad_rows"].values())
    names = ", ".join(p.name for p in res["files"])
    return (
        f"已生成样例数据 / sample written: {out} ({names}); 花名册 {res['roster_rows']} 行 roster rows, "
        f"缴费 {res['payment_rows']} 行 payment rows, 资助名单 {res['subsidy_list_rows']} 行 "
        f"subsidy-list rows, 预置错误行 {bad} planted bad rows"
    )
