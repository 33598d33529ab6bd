"""Subprocess script for tests: an ingest killed (SIGKILL) at the Nth os.replace of its commit
(``KILL_KEEP_FLOWS=0`` in the environment: an ingest with ``--no-keep-flows``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]  # the checkout: the analyzer the script imports

KILL_AT_RENAME = """
import os, signal, sys
from pathlib import Path
from analyzer.store import ingest
target, calls = int(sys.argv[1]), 0
real = os.replace
def replace(*args, **kwargs):
    global calls
    calls += 1
    if calls == target:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
os.replace = replace
keep = os.environ.get("KILL_KEEP_FLOWS")
ingest(Path(sys.argv[2]), sys.argv[3:], keep_flows=None if keep is None else keep == "1")
"""


def killed_ingests(
    pristine: Path, inputs: Sequence[str], work: Path, *, limit: int,
    env: Mapping[str, str] | None = None,
) -> Iterator[tuple[int, Path]]:
    """Copies of ``pristine`` with an ingest of ``inputs`` killed at its 1st, 2nd, ... rename
    (below ``limit``), until one runs to its end: ``(target, store)`` per killed ingest."""
    for target in range(1, limit):
        store = work / f"store-{target}"
        shutil.copytree(pristine, store)
        proc = subprocess.run(
            [sys.executable, "-c", KILL_AT_RENAME, str(target), str(store), *inputs],
            capture_output=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(_ROOT), **(env or {})},
        )
        if proc.returncode == 0:
            return  # no rename left to die at
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        yield target, store
