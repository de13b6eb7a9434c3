"""What the person pays and what finance subsidises, docs/RULES.md §2 (all in fen)."""

from __future__ import annotations

import polars as pl

from pipeline.params import Params


def subsidy_amount_fen(params: Params) -> pl.Expr:
    """全额资助 = the full standard, 定额资助 = the fixed subsidy, otherwise 0.

    赣医保发〔2025〕12号 (五) / 〔2024〕7号 (一) / 〔2023〕9号 二(一); the same for
    residence-permit holders (持居住证, (六)).
    """
    return (
        pl.when(pl.col("tier") == "full")
        .then(pl.lit(params.fen("full_subsidy_yuan"), dtype=pl.Int64))
        .when(pl.col("tier") == "fixed")
        .then(pl.lit(params.fen("fixed_subsidy_yuan"), dtype=pl.Int64))
        .otherwise(pl.lit(0, dtype=pl.Int64))
        .alias("subsidy_amount_fen")
    )


def individual_due_fen(params: Params) -> pl.Expr:
    """Individual standard minus the subsidy (full: nothing to pay). Needs subsidy_amount_fen."""
    standard = pl.lit(params.fen("individual_standard_yuan"), dtype=pl.Int64)
    return (standard - pl.col("subsidy_amount_fen")).alias("individual_due_fen")
