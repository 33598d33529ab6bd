"""The CLI surface every command shares: version, help, one-line errors and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from analyzer import __version__
from analyzer.cli import app
from analyzer.cli._common import handle_errors
from analyzer.errors import EXIT_USAGE, AnalyzerError, PolicyError, UsageError

runner = CliRunner()


def _command_names() -> list[str]:
    group = typer.main.get_command(app)
    return sorted(group.commands)  # type: ignore[attr-defined]


def test_version_prints_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"analyzer {__version__}"


def test_every_command_has_help() -> None:
    names = _command_names()
    assert names, "no command registered"
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output


def test_console_script_runs_as_a_module_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from analyzer.cli import app; app()", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0
    assert __version__ in out.stdout


@pytest.mark.parametrize(
    ("error", "code"),
    [(AnalyzerError("boom"), 1), (UsageError("bad value"), EXIT_USAGE)],
)
def test_errors_become_one_line_and_exit_code(error: AnalyzerError, code: int) -> None:
    probe = typer.Typer()

    @probe.command()
    @handle_errors
    def fail() -> None:
        raise error

    result = runner.invoke(probe, [])
    assert result.exit_code == code
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {error}"]
    assert "Traceback" not in result.output


def test_policy_error_names_file_policy_and_field_path() -> None:
    err = PolicyError(
        "invalid CIDR 10.0.0.0/33",
        file="p.yaml",
        policy="develop/allow-x",
        field_path="spec.ingress[0].from[1].ipBlock.cidr",
    )
    assert str(err) == (
        "p.yaml: develop/allow-x: spec.ingress[0].from[1].ipBlock.cidr: invalid CIDR 10.0.0.0/33"
    )
