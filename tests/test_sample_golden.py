"""Golden figures of the committed sample_data/, and `medins explain` on it.

The golden file changes only through an explicit command, so a changed total
is a reviewable diff:

    .venv/bin/python tests/test_sample_golden.py --update
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from functools import lru_cache
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "sample_data.json"
TODAY = dt.date(2026, 11, 23)
YEARS = (2024, 2025, 2026)


def figures(out: Path) -> dict:
    """What the bureau would notice if it changed: counts, statuses, money, the grand totals."""
    from builders import run_night

    result = {}
    db = out / "medins.duckdb"
    for year in YEARS:
        base = ROOT / "sample_data" / str(year)
        run_night(
            year,
            "jingdezhen",
            [str(base / "roster*")],
            [str(base / "payments*")],
            db,
            out,
            subsidy_lists=[str(base / "subsidy_list*")],
            as_of=TODAY,
            write_workbooks=False,
        )
    con = duckdb.connect(str(db), read_only=True)
    for year in YEARS:
        q = lambda sql, year=year: con.execute(sql, [year]).fetchall()  # noqa: E731
        result[str(year)] = {
            "rows": q("SELECT rows_read, rows_accepted, rows_rejected, rows_skipped FROM runs WHERE coverage_year = ?")[
                0
            ],
            "tiers": dict(q("SELECT tier, count(*) FROM determinations WHERE coverage_year = ? GROUP BY 1 ORDER BY 1")),
            "rules": dict(
                q("SELECT rule_id, count(*) FROM determinations WHERE coverage_year = ? GROUP BY 1 ORDER BY 1")
            ),
            "statuses": dict(
                q("SELECT status, count(*) FROM reconciliation WHERE coverage_year = ? GROUP BY 1 ORDER BY 1")
            ),
            "rejected_reasons": len(q("SELECT DISTINCT reason FROM rejected_rows WHERE coverage_year = ?")),
            "rejected_by_kind": dict(
                q("SELECT kind, count(*) FROM rejected_rows WHERE coverage_year = ? GROUP BY 1 ORDER BY 1")
            ),
            "subsidy_not_enrolled": dict(
                q("SELECT reason, count(*) FROM subsidy_not_enrolled WHERE coverage_year = ? GROUP BY 1 ORDER BY 1")
            ),
            "subsidy_progress_total": [
                list(r)
                for r in q(
                    "SELECT label, listed, on_roster, enrolled FROM subsidy_progress WHERE coverage_year = ? AND level = 'total' "
                    "ORDER BY label"
                )
            ],
            "unmatched": q("SELECT count(*) FROM unmatched_payments WHERE coverage_year = ?")[0][0],
            "totals": [
                str(v)
                for v in q(
                    "SELECT roster_count, enrolled_count, fiscal_per_capita_total, central_share_total, "
                    "local_share_total, participation_subsidy_total, critical_illness_total, individual_due_total, "
                    "individual_collected_total FROM subsidy_totals WHERE coverage_year = ? AND level = 'total' "
                    "AND tier = 'all'"
                )[0]
            ],
        }
    con.close()
    return json.loads(json.dumps(result, default=list))


@lru_cache(maxsize=1)
def _computed(tmp: str) -> dict:
    return figures(Path(tmp))


@pytest.fixture(scope="module")
def sample_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    return out, _computed(str(out))


def test_sample_figures_match_the_golden_file(sample_out):
    _, got = sample_out
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert got == want, (
        "sample figures changed: review, then run `.venv/bin/python tests/test_sample_golden.py --update`"
    )


def test_explain_a_person_of_the_sample(sample_out):
    from pipeline.cli import app

    out, _ = sample_out
    con = duckdb.connect(str(out / "medins.duckdb"), read_only=True)
    pid, _rule = con.execute(
        "SELECT id_number, rule_id FROM determinations WHERE coverage_year = 2026 AND rule_id = 'lapsed_in_year' "
        "ORDER BY id_number LIMIT 1"
    ).fetchall()[0]
    con.close()
    result = CliRunner().invoke(app, ["explain", "-y", "2026", "--db", str(out / "medins.duckdb"), pid])
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"{pid[:6]}********{pid[-4:]}" in text and pid not in text
    assert "规则 lapsed_in_year" in text
    assert "断保, 1月1日后缴费 [lapsed_in_year]: 起始" in text
    assert "赣医保发〔2025〕12号(八)4 断保且1月1日后缴费, 等待期3个月" in text
    assert "待遇起始规则 / rules considered" in text


def test_explain_a_rejected_row_and_an_unknown_person(sample_out):
    from pipeline.cli import app

    out, _ = sample_out
    con = duckdb.connect(str(out / "medins.duckdb"), read_only=True)
    rejected = con.execute(
        "SELECT id_number FROM rejected_rows WHERE coverage_year = 2026 AND kind = 'roster' AND id_number IS NOT NULL "
        "AND id_number NOT IN (SELECT id_number FROM residents WHERE coverage_year = 2026) "
        "AND length(id_number) = 18 ORDER BY 1 LIMIT 1"
    ).fetchall()[0][0]
    con.close()
    result = CliRunner().invoke(app, ["explain", "-y", "2026", "--db", str(out / "medins.duckdb"), rejected])
    assert result.exit_code == 0
    assert "花名册中该人员的行未通过校验 / roster row rejected:" in result.output
    missing = CliRunner().invoke(
        app, ["explain", "-y", "2026", "--db", str(out / "medins.duckdb"), "11010519491231002X"]
    )
    assert missing.exit_code == 6
    assert "不在" in missing.output or "没有此证件号码" in missing.output


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_sample_golden.py --update")
    import tempfile

    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(
            json.dumps(figures(Path(tmp)), ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
    print(f"wrote {GOLDEN}")
