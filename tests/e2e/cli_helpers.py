"""Run the installed command line in its own process (as a user or a CI job would)."""

from __future__ import annotations

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
