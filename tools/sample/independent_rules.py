"""The sample's own reading of the arithmetic of docs/RULES.md.

Deliberately NOT imported from `pipeline/rules` or `pipeline/parse`: the
generated data is meant to catch the product's mistakes, so the check digit,
the Civil Code month arithmetic, age, tier, individual due and the newborn
test are written here a second time, from the text of docs/RULES.md, and kept
short enough to read against it line by line. Only the numbers come from the
product's parameters (`pipeline.params.load_params`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type hints only: the sample reads the parameters, not the product's code
    from pipeline.params import Label, Params

# GB 11643-1999 (ISO 7064 MOD 11-2): weights of the first 17 digits, and the
# check character indexed by (weighted sum mod 11).
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
TIER_ORDER = ("none", "fixed", "full")  # docs/RULES.md §1: full > fixed > none (就高原则)


def id_check_digit(body17: str) -> str:
    """GB 11643 check character of the first 17 digits."""
    return ID_CHECK[sum(int(c) * w for c, w in zip(body17, ID_WEIGHTS)) % 11]


def first_generation_id(id18: str) -> str:
    """The 15-digit ID the same person would have carried before 1999: region, yymmdd, sequence."""
    return id18[:6] + id18[8:14] + id18[14:17]


def add_months(d: dt.date, months: int) -> dt.date:
    """Same day N months on, or that month's last day (民法典 第二百零二条; docs/RULES.md §0)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    first_of_next = dt.date(year + (month == 12), month % 12 + 1, 1)
    return dt.date(year, month, min(d.day, (first_of_next - dt.timedelta(days=1)).day))


def age_on_year_start(birth: dt.date, coverage_year: int) -> int:
    """Whole years completed on 1 January of Y; born on 1 January completes the year that day (§0)."""
    return coverage_year - birth.year - (1 if (birth.month, birth.day) > (1, 1) else 0)


def label_gives(label: Label, age: int, params: Params) -> str:
    """The tier one label gives at this age (docs/RULES.md §1, the age conditions of labels.toml)."""
    if label.age_rule == "elderly" and age < params.elderly_age:
        return "none"
    if label.age_rule == "minor_or_elderly" and params.adult_age <= age < params.elderly_age:
        return "none"
    return label.tier


def label_tier(labels: dict[str, Label], canonical: tuple[str, ...], age: int, params: Params) -> str:
    """Highest tier the labels give at this age (就高原则, 赣医保发〔2023〕9号 二(一))."""
    tiers = [label_gives(labels[name], age, params) for name in canonical]
    return max(tiers, key=TIER_ORDER.index, default="none")


def is_full_newborn(birth: dt.date, coverage_year: int, params: Params) -> bool:
    """Born on or after newborn_full_from and Y - birth year within newborn_full_years - 1 (§1)."""
    return (
        birth >= params.newborn_full_from.value
        and 0 <= coverage_year - birth.year <= params.newborn_full_years.value - 1
    )


def individual_due_fen(tier_from_labels: str, birth: dt.date, coverage_year: int, params: Params) -> int:
    """Standard minus the tier's subsidy (docs/RULES.md §2); a newborn meeting the test of §1 is full."""
    tier = "full" if is_full_newborn(birth, coverage_year, params) else tier_from_labels
    subsidy = {"full": params.fen("full_subsidy_yuan"), "fixed": params.fen("fixed_subsidy_yuan"), "none": 0}
    return (params.fen("individual_standard_yuan") or 0) - (subsidy[tier] or 0)
