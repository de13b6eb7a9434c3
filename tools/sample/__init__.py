"""Deterministic, realistically messy sample inputs for the nightly run (a developer tool).

Writes the files the bureau really receives (docs/CONTRACT.md "Inputs"): the
rosters (参保登记花名册) as .xlsx and a township's old .xls, the tax payments
(税务缴费明细) as a plain .xlsx, the tax bureau's own .xlsx with a two-row
header and a CSV in GB18030, and the subsidy lists of 民政, 乡村振兴 and 残联
(docs/RULES.md §9); with title rows, header aliases, text dates, full-width
digits, blank and footer rows, and a known number of bad rows of every kind
of docs/RULES.md §6 and §9 (defects.toml), so tests can assert exact counts.
Same arguments, same bytes: one seeded `random.Random` per stream, fixed
document properties. One pass over the residents with bounded buffers, so a
million rows of each kind can be written.

Its rule arithmetic is an INTENTIONAL INDEPENDENT READING of docs/RULES.md,
kept apart from `pipeline/rules` so that the generated data can catch the
product's mistakes: the GB 11643 check digit, add_months, age, tier and
individual due, and the newborn test live in `independent_rules.py`, written
again from the text of the rules. From the product it imports only
`pipeline.params.load_params` (amounts, dates, labels and their aliases),
`schemas.headers.load_header_map` (header aliases) and `pipeline.errors`.

Layout: context.py (arguments, parameters, random streams), people.py
(residents, places, labels), payments.py (who paid what), defects.toml +
defects.py (the planted bad rows as data, and how each spoils its row),
render.py (cells), workbook.py (sheets, .xlsx), formats.py (.xls, CSV, the
fixed layouts of layouts.toml), rosters.py, paybooks.py (the payment files),
lists.py (subsidy lists), generate.py (generate_sample, main_sample),
vocabulary.toml (places, names, shares).

    python -m tools.sample --rows 300 --seed 2026 --coverage-year 2026 --out sample_data/2026
"""

from tools.sample.context import SampleArgumentError
from tools.sample.defects import bad_row_reasons, load_defects
from tools.sample.generate import generate_sample, main_sample

# kind -> description, over rosters, payments and lists (tests/fixtures/README.md quotes its wording)
BAD_ROW_REASONS: dict[str, str] = bad_row_reasons()
# what (roster / payments / subsidy_list) -> kind -> Defect (rate, reason code, outcome, description)
DEFECTS = load_defects()

__all__ = ["BAD_ROW_REASONS", "DEFECTS", "SampleArgumentError", "generate_sample", "main_sample"]
