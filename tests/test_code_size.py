"""House rule: no module over 600 lines, no function over 60, in the product, its tests, tools and
benchmarks (the generated fixtures and benchmark data aside). A function counts from its `def` to
its last line, docstring included, decorators not."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("pipeline", "schemas", "tests", "tools", "benchmarks")
GENERATED = (ROOT / "tests" / "fixtures", ROOT / "benchmarks" / "data", ROOT / "benchmarks" / "out")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


def too_long(source: str, name: str) -> list[str]:
    """The module if it is over MAX_MODULE_LINES lines, then each function over MAX_FUNCTION_LINES
    (methods and nested functions too), as 'name: N lines' and 'name:line function(): N lines'."""
    found = []
    if (n := len(source.splitlines())) > MAX_MODULE_LINES:
        found.append(f"{name}: {n} lines")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.lineno} {node.name}(): {length} lines")
    return found


def python_files() -> list[Path]:
    return sorted(
        path
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*.py")
        if not any(path.is_relative_to(g) for g in GENERATED)
    )


def test_the_check_names_a_long_module_and_a_long_function_and_passes_the_limits_themselves():
    at_limit = "def f():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES - 1)  # 60 lines
    over = "def g():\n" + "    x = 1\n" * MAX_FUNCTION_LINES  # 61 lines
    assert too_long(at_limit, "a.py") == []
    assert too_long(over, "b.py") == ["b.py:1 g(): 61 lines"]
    nested = "class C:\n    def m(self):\n" + "        x = 1\n" * MAX_FUNCTION_LINES
    assert too_long(nested, "c.py") == ["c.py:2 m(): 61 lines"]
    filler = "x = 1\n"
    assert too_long(filler * MAX_MODULE_LINES, "d.py") == []
    assert too_long(filler * (MAX_MODULE_LINES + 1), "e.py") == ["e.py: 601 lines"]


def test_the_walk_sees_every_folder_and_leaves_the_generated_files_out():
    files = python_files()
    assert {p.relative_to(ROOT).parts[0] for p in files} == set(FOLDERS)
    assert Path(__file__) in files
    assert not any(p.is_relative_to(ROOT / "tests" / "fixtures") for p in files)


def test_no_module_over_600_lines_and_no_function_over_60():
    found = [
        line
        for path in python_files()
        for line in too_long(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert found == [], "split these:\n" + "\n".join(found)
