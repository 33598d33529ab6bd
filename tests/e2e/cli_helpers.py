"""Run the installed command line in its own process (as a user or a CI job would)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def analyzer_command() -> list[str]:
    """The installed ``analyzer`` script (a separate process per run)."""
    script = Path(sys.executable).parent / "analyzer"
    if script.exists():
        return [str(script)]
    found = shutil.which("analyzer")
    return [found] if found else [sys.executable, "-c", "from analyzer.cli import app; app()"]


def run_analyzer(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run one command in its own process; its stdout as bytes."""
    return subprocess.run(
        [*analyzer_command(), *args], cwd=cwd, capture_output=True, timeout=600, check=False
    )


def run_store_command(*args: str, raw: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Run one command reading the store's rollup, or with ``raw`` the raw derivation
    (``ANALYZER_NO_ROLLUP=1``) whatever the caller's environment says."""
    env = dict(os.environ)
    env.pop("ANALYZER_NO_ROLLUP", None)
    if raw:
        env["ANALYZER_NO_ROLLUP"] = "1"
    return subprocess.run(
        [*analyzer_command(), *args], capture_output=True, timeout=600, check=False, env=env
    )


def store_command_ok(*args: str, raw: bool = False) -> bytes:
    """``run_store_command`` that must succeed: its stdout."""
    done = run_store_command(*args, raw=raw)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stdout
