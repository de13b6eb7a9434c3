"""A new coverage year, added by the bureau (docs/NEW-YEAR.md, docs/CONTRACT.md "A new coverage year"):
`medins params new` writes it unconfirmed, `medins params check` lists what is open, and the year does
not load (so `medins run` refuses it, exit 3) until every value is confirmed and cited.

Every test works on a copy of policy_params/ in its own folder: nothing is written into the checkout."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from builders import make_id, one_payer_files
from pipeline.cli import app
from pipeline.errors import ParamsUnconfirmedError
from pipeline.params import PARAMS_DIR, PARAMS_DIR_ENV, load_params

runner = CliRunner()
A = make_id("360222", dt.date(1990, 5, 1), 1)
# 2027.toml as `params new` writes it from 2026.toml: 17 values, 6 special events, special_status, rule_basis
OPEN_IN_YEAR = 25


@pytest.fixture
def params_dir(tmp_path: Path) -> Path:
    base = tmp_path / "policy_params"
    shutil.copytree(PARAMS_DIR, base, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return base


def new_year(base: Path, year: str = "2027"):
    return runner.invoke(app, ["params", "new", year, "--params-dir", str(base)])


def check(base: Path, year: str = "2027", *options: str):
    return runner.invoke(app, ["params", "check", year, "--params-dir", str(base), *options])


def lines(result) -> list[str]:
    assert "Traceback" not in result.output
    return [line for line in result.output.splitlines() if line.strip()]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def confirm_everything(base: Path) -> None:
    """What the clerk does by hand: a citation for every value, every value confirmed."""
    for path in (base / "2027.toml", base / "regions" / "jingdezhen.toml"):
        text = path.read_text(encoding="utf-8")
        text = text.replace('cite = ""', 'cite = "赣医保发〔2026〕N号 (五) 测试用引用"')
        text = text.replace('not_given = ""', 'not_given = "赣医保发〔2026〕N号 未规定"')
        path.write_text(text.replace("confirmed = false", "confirmed = true"), encoding="utf-8")


def test_params_new_writes_last_years_values_unconfirmed_and_uncited(params_dir):
    untouched = {name: digest(params_dir / "regions" / name) for name in ("jiangxi.toml", "yichun.toml")}
    result = new_year(params_dir)
    assert result.exit_code == 0, result.output
    assert lines(result) == [
        f"已写出 / written: {params_dir / '2027.toml'}",
        f"已写出 / written: {params_dir / 'regions' / 'jingdezhen.toml'}",
        "下一步 / next: 对照2027年度的通知逐项填写 / check each value against the 2027 notice, then "
        "`medins params check 2027` (docs/NEW-YEAR.md)",
    ]
    assert not (PARAMS_DIR / "2027.toml").exists()
    new = tomllib.loads((params_dir / "2027.toml").read_text(encoding="utf-8"))
    old = tomllib.loads((params_dir / "2026.toml").read_text(encoding="utf-8"))
    assert new["coverage_year"] == 2027
    assert new["individual_standard_yuan"] == {"value": 400, "cite": "", "confirmed": False}
    assert new["critical_illness_per_capita_yuan"] == {"not_given": "", "confirmed": False}
    # the dates of the year's own calendar move on by a year; the newborn policy's start does not
    assert new["collection_start"]["value"] == dt.date(2026, 10, 15)
    assert new["collection_end"]["value"] == dt.date(2027, 2, 28)
    assert new["lapsed_early_benefit_start"]["value"] == dt.date(2027, 4, 1)
    assert new["newborn_full_from"]["value"] == old["newborn_full_from"]["value"] == dt.date(2024, 1, 1)
    assert new["special_events"]["退役军人"] == {"window_months": 3, "cite": "", "confirmed": False}
    assert new["special_status"]["confirmed"] is False
    assert new["rule_basis"] == {**old["rule_basis"], "confirmed": False}
    region = tomllib.loads((params_dir / "regions" / "jingdezhen.toml").read_text(encoding="utf-8"))
    assert region["2026"]["critical_illness_per_capita_yuan"]["cite"].startswith("景医保办字〔2025〕24号")
    assert region["2027"] == {"critical_illness_per_capita_yuan": {"value": 100, "cite": "", "confirmed": False}}
    assert {name: digest(params_dir / "regions" / name) for name in untouched} == untouched


def test_params_new_never_overwrites_a_year(params_dir):
    assert new_year(params_dir).exit_code == 0
    before = {p: digest(p) for p in (params_dir / "2027.toml", params_dir / "regions" / "jingdezhen.toml")}
    again = new_year(params_dir)
    assert again.exit_code == 3
    assert lines(again) == [
        f"错误 / error: 2027年度的政策参数已存在，不会覆盖 / policy parameters for 2027 exist already and are not "
        f"overwritten: {params_dir / '2027.toml'}; edit that file (`medins params check 2027` lists what is left)"
    ]
    assert {p: digest(p) for p in before} == before
    shipped = new_year(params_dir, "2026")
    assert shipped.exit_code == 3
    assert "2026年度的政策参数已存在，不会覆盖" in shipped.output


def test_params_new_needs_an_earlier_year(params_dir):
    result = new_year(params_dir, "2023")
    assert result.exit_code == 3
    assert lines(result) == [
        "错误 / error: 没有早于2023年度的政策参数可作底稿 / no earlier coverage year to start 2023 from "
        "(have: 2024, 2025, 2026)"
    ]


def test_a_scaffolded_year_does_not_load_and_names_what_is_open(params_dir):
    new_year(params_dir)
    with pytest.raises(ParamsUnconfirmedError) as caught:
        load_params(2027, "jingdezhen", params_dir=params_dir)
    assert str(caught.value) == (
        "2027年度的政策参数还有26项未确认或未注明出处 / coverage year 2027: 26 values not yet confirmed and "
        "cited: individual_standard_yuan, fiscal_per_capita_yuan, full_subsidy_yuan and 23 more; "
        "see `medins params check 2027` and docs/NEW-YEAR.md"
    )
    assert caught.value.exit_code == 3


def test_run_refuses_a_scaffolded_year_with_exit_3(params_dir, tmp_path, monkeypatch):
    new_year(params_dir)
    monkeypatch.setenv(PARAMS_DIR_ENV, str(params_dir))
    roster, payments = inputs_2027(tmp_path)
    db = tmp_path / "out" / "medins.duckdb"
    result = runner.invoke(app, run_args(roster, payments, tmp_path / "out"))
    assert result.exit_code == 3
    assert lines(result) == [
        f"错误 / error: 2027年度的政策参数还有{OPEN_IN_YEAR}项未确认或未注明出处 / coverage year 2027: "
        f"{OPEN_IN_YEAR} values not yet confirmed and cited: individual_standard_yuan, fiscal_per_capita_yuan, "
        f"full_subsidy_yuan and {OPEN_IN_YEAR - 3} more; see `medins params check 2027` and docs/NEW-YEAR.md"
    ]
    assert not db.exists()


def test_params_check_lists_each_open_value_and_exits_3(params_dir):
    new_year(params_dir)
    result = check(params_dir)
    assert result.exit_code == 3
    out = lines(result)
    both = "未确认、未注明出处 / unconfirmed, uncited"
    assert out[:3] == [
        f"2027.toml individual_standard_yuan: {both}",
        f"2027.toml fiscal_per_capita_yuan: {both}",
        f"2027.toml full_subsidy_yuan: {both}",
    ]
    assert f"2027.toml special_events.退役军人: {both}" in out
    assert f"2027.toml special_status: {both}" in out
    assert "2027.toml rule_basis: 未确认 / unconfirmed" in out
    assert out[-2:] == [
        f"regions/jingdezhen.toml 2027.critical_illness_per_capita_yuan: {both}",
        "错误 / error: 2027年度还有26项政策参数未确认或未注明出处（见上） / coverage year 2027: 26 values above "
        "not yet confirmed and cited (docs/NEW-YEAR.md)",
    ]
    assert len(out) == 26 + 1
    jiangxi = lines(check(params_dir, "2027", "--region", "jiangxi"))
    assert len(jiangxi) == OPEN_IN_YEAR + 1 and not any("jingdezhen" in line for line in jiangxi)


def test_a_value_confirmed_without_a_citation_is_still_open(params_dir):
    new_year(params_dir)
    confirm_everything(params_dir)
    path = params_dir / "2027.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('cite = "赣医保发〔2026〕N号 (五) 测试用引用"', 'cite = ""', 1), encoding="utf-8")
    result = check(params_dir)
    assert result.exit_code == 3
    assert lines(result)[0] == "2027.toml individual_standard_yuan: 未注明出处 / uncited"
    assert len(lines(result)) == 2


def test_a_confirmed_marker_must_be_true_or_false(params_dir):
    new_year(params_dir)
    path = params_dir / "2027.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('cite = ""\nconfirmed = false', 'cite = ""\nconfirmed = "是"', 1), "utf-8")
    result = check(params_dir)
    assert result.exit_code == 3
    assert lines(result) == [
        f"错误 / error: {path}: key 'individual_standard_yuan' field 'confirmed' must be true or false, got '是'"
    ]


def test_the_years_shipped_with_the_product_count_as_confirmed(params_dir):
    for year in ("2024", "2025", "2026"):
        result = check(params_dir, year)
        assert result.exit_code == 0, result.output
        assert lines(result) == [
            f"{year}年度的政策参数均已确认并注明出处 / coverage year {year}: every value is confirmed and cited"
        ]


def test_params_check_of_a_year_without_a_file_says_how_to_make_one(params_dir):
    result = check(params_dir, "2028")
    assert result.exit_code == 3
    assert lines(result) == [
        "错误 / error: 没有2028年度的政策参数 / no policy parameters for coverage year 2028 "
        "(have: 2024, 2025, 2026); write them with `medins params new 2028` (docs/NEW-YEAR.md)"
    ]


def test_a_confirmed_value_that_is_malformed_is_named_by_check(params_dir):
    new_year(params_dir)
    confirm_everything(params_dir)
    path = params_dir / "2027.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("value = 400", 'value = "400元"', 1), "utf-8")
    result = check(params_dir)
    assert result.exit_code == 3
    assert lines(result) == [
        f"错误 / error: {path}: key 'individual_standard_yuan' has bad value '400元' (expected int)"
    ]


def inputs_2027(tmp_path: Path) -> tuple[Path, Path]:
    return one_payer_files(tmp_path, A, 2027)


def run_args(roster: Path, payments: Path, out: Path, region: str = "jiangxi") -> list[str]:
    files = ["--roster", str(roster), "--payments", str(payments)]
    return ["run", "-y", "2027", "--region", region, *files, "--db", str(out / "medins.duckdb"), "--out", str(out)]


def test_once_confirmed_the_year_loads_checks_and_runs(params_dir, tmp_path):
    new_year(params_dir)
    confirm_everything(params_dir)
    result = check(params_dir)
    assert result.exit_code == 0, result.output
    assert lines(result) == [
        "2027年度的政策参数均已确认并注明出处 / coverage year 2027: every value is confirmed and cited"
    ]
    params = load_params(2027, "jingdezhen", params_dir=params_dir)
    assert params.collection_end.value == dt.date(2027, 2, 28)
    assert params.critical_illness_per_capita_yuan.value == 100
    # the night in a process of its own: its sheet parsers must see the same policy_params folder
    roster, payments = inputs_2027(tmp_path)
    out = tmp_path / "out"
    night = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *run_args(roster, payments, out, "jingdezhen")],
        env={**os.environ, PARAMS_DIR_ENV: str(params_dir)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert night.returncode == 0, night.stdout + night.stderr
    with duckdb.connect(str(out / "medins.duckdb"), read_only=True) as con:
        row = con.execute(
            "SELECT tier, individual_due, enrolled, benefit_start FROM determinations WHERE coverage_year = 2027"
        ).fetchall()
    # paid 2026-11-01, insured in 2026: (八)1 as in 2026 -> from 1 January 2027, no waiting period
    assert row == [("none", Decimal("400.00"), True, dt.date(2027, 1, 1))]
