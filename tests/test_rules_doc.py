"""docs/RULES.md is executable: every worked example and every [interp] reading has a case.

docs/RULES.md marks each worked example `[ex-N.M]` and each reading the notices do not settle
on their own `[interp-N.M]`; a case in tests/cases/ shows it and says so (`cites = ["ex-3.3"]`).
Both directions are checked: a marking no case cites fails (an example that is not a case
drifts), and so does a citation of a marking the document does not have (a case that follows a
rule the document no longer states). An example left without a marking fails too.
"""

from __future__ import annotations

import re
from pathlib import Path

from test_rule_cases import CASES, MARKING

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "RULES.md"
MARK = re.compile(r"\[(" + MARKING.pattern + r")\]")

# Markings that no determination can show, so no case in tests/cases/ can cite them: each names the
# test file that covers it. Keep this list short; anything `determine` or `reconcile` decides belongs
# in a case.
NOT_BY_CASES = {
    # the group 农村低收入人口和脱贫人口 of subsidy_progress (§9): counted after the night, not by determine
    "interp-9.2": "tests/test_subsidy_lists.py",
}

EXAMPLE_INTRO = re.compile(r"^\s*(?:- )?(?:Further )?Examples?\b")
ITEM = re.compile(r"^\s*(?:- |\|)")


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def markings(text: str) -> list[str]:
    """Every marking in the order written (a marking written twice appears twice)."""
    return MARK.findall(text)


def _intro_end(lines: list[str], start: int) -> int:
    """The last line of an example intro: the intro may run over several lines up to its colon."""
    end = start
    while not lines[end].rstrip().endswith(":") and end + 1 < len(lines) and lines[end + 1].strip():
        end += 1
    return end


def _items_after(lines: list[str], start: int) -> list[tuple[int, str]]:
    """The list items or table rows that follow line `start` (blank lines before them skipped), each
    with its continuation lines; a table's header and separator rows are not items."""
    i = start + 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    items: list[tuple[int, str]] = []
    table_rows = 0
    while i < len(lines) and lines[i].strip():
        line = lines[i]
        if line.lstrip().startswith("|"):
            table_rows += 1
            if table_rows > 2:  # header, separator
                items.append((i + 1, line))
        elif ITEM.match(line) or not items:
            items.append((i + 1, line))
        else:
            number, text = items[-1]
            items[-1] = (number, text + " " + line.strip())
        i += 1
    return items


def unmarked_examples(text: str) -> list[str]:
    """Examples that carry no marking: the items under an 'Example(s)...:' intro, or an intro that
    holds its example itself ('Example: born ...')."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if not EXAMPLE_INTRO.match(line):
            continue
        end = _intro_end(lines, i)
        if not lines[end].rstrip().endswith(":"):
            block = " ".join(lines[i : end + 1])
            if not MARK.search(block):
                found.append(f"docs/RULES.md:{i + 1}: {line.strip()}")
            continue
        items = _items_after(lines, end)
        if not items:
            found.append(f"docs/RULES.md:{i + 1}: an example intro with no example under it")
        found += [f"docs/RULES.md:{n}: {item.strip()[:70]}" for n, item in items if not MARK.search(item)]
    return found


def cited() -> dict[str, list[str]]:
    by_marking: dict[str, list[str]] = {}
    for case in CASES:
        for marking in case.cites:
            by_marking.setdefault(marking, []).append(case.where())
    return by_marking


def test_every_marking_of_rules_md_is_cited_by_a_case() -> None:
    have = set(cited())
    uncited = [m for m in markings(doc_text()) if m not in have and m not in NOT_BY_CASES]
    assert not uncited, f"docs/RULES.md markings no case in tests/cases/ cites (add a case with cites): {uncited}"


def test_every_citation_names_a_marking_of_rules_md() -> None:
    in_doc = set(markings(doc_text()))
    unknown = {m: where for m, where in cited().items() if m not in in_doc}
    assert not unknown, f"cases cite markings docs/RULES.md does not have: {unknown}"


def test_each_marking_is_written_once_and_every_interp_is_numbered() -> None:
    text = doc_text()
    all_markings = markings(text)
    twice = sorted({m for m in all_markings if all_markings.count(m) > 1})
    assert not twice, f"markings written twice in docs/RULES.md: {twice}"
    bare = [n + 1 for n, line in enumerate(text.splitlines()) if "[interp]" in line]
    assert not bare, f"docs/RULES.md lines with an unnumbered [interp] (give it [interp-N.M] and a case): {bare}"
    sections = {m.split("-")[1].split(".")[0] for m in all_markings}
    headed = set(re.findall(r"^## §(\d+) ", text, flags=re.M))
    assert sections <= headed, f"markings numbered after a section docs/RULES.md lacks: {sorted(sections - headed)}"


def test_every_worked_example_carries_a_marking() -> None:
    missing = unmarked_examples(doc_text())
    assert not missing, "examples in docs/RULES.md without an [ex-N.M] marking:\n" + "\n".join(missing)


def test_the_markings_no_case_can_show_are_few_exist_and_name_their_test_file() -> None:
    in_doc = set(markings(doc_text()))
    have = cited()
    assert len(NOT_BY_CASES) <= 3, "keep the markings outside tests/cases/ few"
    for marking, test_file in NOT_BY_CASES.items():
        assert marking in in_doc, f"{marking} is no longer in docs/RULES.md: remove it from NOT_BY_CASES"
        assert marking not in have, f"{marking} is cited by a case ({have.get(marking)}): remove it from NOT_BY_CASES"
        assert (ROOT / test_file).is_file(), f"{marking}: {test_file} does not exist"


def test_the_checks_find_an_unmarked_example_and_a_bare_interp_in_a_crafted_text() -> None:
    """The example check is shown failing once: a crafted page with one marked and three unmarked examples."""
    crafted = "\n".join(
        [
            "## §3 Enrolment",
            "Examples (2026):",
            "- [ex-3.1] Paid 400 on 2025-11-01: from 2026-01-01.",
            "- Paid 400 on 2026-02-10: from 2026-02-11.",
            "  (continued)",
            "",
            "Example: a child born 2026-05-01 has d = 2026-05-01.",
            "",
            "Examples, a 低保 person",
            "identified 2026-05-01:",
            "",
            "| | paid | status |",
            "|---|---|---|",
            "| [ex-3.2] | 400 | paid_in_full |",
            "| | 200 | overpaid |",
        ]
    )
    found = unmarked_examples(crafted)
    assert [f.split(":")[1] for f in found] == ["4", "7", "15"], found
    assert markings(crafted) == ["ex-3.1", "ex-3.2"]
