"""The product's words (schemas/vocabulary.toml) and region names (policy_params/regions/*.toml),
loaded once: reports, `medins explain` and the command line say the same thing."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

import schemas
from pipeline.params import PARAMS_DIR

_VOCABULARY = Path(schemas.__file__).resolve().parent / "vocabulary.toml"


@cache
def _words() -> dict[str, dict[str, str]]:
    with _VOCABULARY.open("rb") as f:
        return tomllib.load(f)


TIER_NAMES: dict[str, str] = _words()["tiers"]
STATUS_NAMES: dict[str, str] = _words()["statuses"]
STATUSES: tuple[str, ...] = tuple(STATUS_NAMES)
KIND_NAMES: dict[str, str] = _words()["kinds"]
RUN_STATUS_NAMES: dict[str, str] = _words()["run_statuses"]
NOT_ENROLLED_REASON_NAMES: dict[str, str] = _words()["not_enrolled_reasons"]
NOT_RENEWED_REASON_NAMES: dict[str, str] = _words()["not_renewed_reasons"]
RULE_NAMES: dict[str, str] = _words()["rules"]
UNMATCHED_REASON_NAMES: dict[str, str] = _words()["unmatched_reasons"]
REFUND_BASIS_NAMES: dict[str, str] = _words()["refund_bases"]
MODEL_NAMES: dict[str, dict[str, str]] = {
    "benefit_model": _words()["benefit_models"],
    "newborn_model": _words()["newborn_models"],
}


@cache
def region_name(region: str) -> str:
    """江西省 / 景德镇市 / 宜春市 for jiangxi / jingdezhen / yichun (the region file's `name`)."""
    path = PARAMS_DIR / "regions" / f"{region}.toml"
    try:
        with path.open("rb") as f:
            return str(tomllib.load(f).get("name", region))
    except OSError:
        return region


PARAMETER_NAMES: dict[str, str] = _words()["parameters"]
