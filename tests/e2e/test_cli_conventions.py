"""The command line follows kubectl/git conventions: help placeholders, short flags, setup."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
COMMANDS = sorted(info.name for info in app.registered_commands if info.name)
# Python types and Typer's own spellings that must never reach a person
PLACEHOLDER = re.compile(r"<[^>\s]*>|\{\w+\}|\blist\[")
# an option: "-x, --long METAVAR" or "--long / --no-long"; a metavar is an upper-case word
OPTION = re.compile(
    r"^  (-\w, )?--[\w-]+(, --[\w-]+)*( / --[\w-]+)?( (?P<metavar>\S+))?(\s{2,}|$)"
)


def _help(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_command_is_listed() -> None:
    text = _help()
    assert len(COMMANDS) >= 11
    for name in COMMANDS:
        assert f"  {name}" in text


@pytest.mark.parametrize("command", COMMANDS)
def test_help_uses_placeholders_people_read(command: str) -> None:
    text = _help(command)
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: analyzer {command} [OPTIONS]")
    # arguments in the usage line: NAME or [NAME], with ... when repeatable
    for piece in usage.split()[3:]:
        assert re.fullmatch(r"\[?[A-Z][A-Z0-9_]*(\.\.\.)?\]?", piece), usage
    for line in text.splitlines():
        assert not PLACEHOLDER.search(line.split("  [default")[0]), f"{command}: {line!r}"
        match = OPTION.match(line)
        if match and match.group("metavar"):
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*(\.\.\.)?", match.group("metavar")), line


def test_short_n_means_namespace_everywhere() -> None:
    import typer.main

    group = typer.main.get_command(app)
    seen = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            opts = list(getattr(param, "opts", ())) + list(getattr(param, "secondary_opts", ()))
            if "-n" in opts:
                assert "--namespace" in opts, f"{name}: -n is {opts}"
                seen.append(name)
    assert {"recommend", "graph", "audit", "anomalies", "report"} <= set(seen)


def test_generate_takes_flows_as_a_long_option_only(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "-n", "20000"])
    assert result.exit_code == 2
    assert "--flows N" in _help("generate")


def _fake_python(bin_dir: Path) -> None:
    """A python3 whose `-m venv DIR` makes DIR/bin/python, a no-op that succeeds."""
    fake = bin_dir / "python3"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then\n'
        '  mkdir -p "$3/bin"; printf "#!/bin/sh\\nexit 0\\n" > "$3/bin/python"\n'
        '  chmod +x "$3/bin/python"\nfi\n'
    )
    fake.chmod(0o755)


def test_first_setup_says_what_it_is_doing(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "_venv.sh").write_text((REPO / "scripts" / "_venv.sh").read_text())
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_python(bin_dir)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    run = subprocess.run(
        ["bash", "-c", ". scripts/_venv.sh"], cwd=tmp_path, env=env, capture_output=True,
        text=True, check=True,
    )
    assert "first run: creating .venv" in run.stderr
    assert "installing analyzer and its dependencies" in run.stderr
    assert "ready" in run.stderr
    again = subprocess.run(
        ["bash", "-c", ". scripts/_venv.sh"], cwd=tmp_path, env=env, capture_output=True,
        text=True, check=True,
    )
    assert again.stderr == ""  # set up already: silent


def test_readme_shows_how_to_use_the_demo_store_and_the_path() -> None:
    text = (REPO / "README.md").read_text()
    first = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first is not None
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines()]
    assert commands[:2] == ["bash scripts/demo", "bash scripts/test"]
    after_demo = text[first.end():text.index("## A session on your own cluster")]
    assert "source .venv/bin/activate" in after_demo
    assert "export ANALYZER_STORE=reports/demo/store" in after_demo
    assert "--store reports/demo/store" in after_demo
