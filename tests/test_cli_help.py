"""The command line reads at 80 columns: every help fits, no option name is cut short; `--version`."""

from __future__ import annotations

import importlib.metadata
import unicodedata

import pytest
import typer
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()
COMMANDS = [[], ["run"], ["explain"], ["params"], ["params", "new"], ["params", "check"]]


def display_width(line: str) -> int:
    """Columns a terminal gives the line (a Chinese character takes two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def help_at_80(command: list[str]) -> str:
    result = runner.invoke(app, [*command, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "medins")
def test_every_help_fits_80_columns(command):
    text = help_at_80(command)
    assert "Usage" in text
    too_wide = [line for line in text.splitlines() if display_width(line) > 80]
    assert too_wide == []


def test_every_option_name_of_run_appears_whole_at_80_columns():
    text = help_at_80(["run"])
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    run = group.commands["run"]
    names = [name for param in run.params for name in (*param.opts, *param.secondary_opts)]
    assert "--skip-bad-files" in names and "--parse-memory-limit" in names and "--parse-memory-gb" in names
    words = set(text.replace(",", " ").split())
    assert [name for name in names if name not in words] == []
    assert "…" not in text


def test_every_command_is_listed_with_its_help():
    assert all(name in help_at_80([]) for name in ("run", "explain", "params"))
    assert all(name in help_at_80(["params"]) for name in ("new", "check"))


def test_version_prints_the_package_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"medins {importlib.metadata.version('medins')}\n"
