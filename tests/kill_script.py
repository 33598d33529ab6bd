"""Subprocess script for tests: an ingest killed (SIGKILL) at the Nth os.replace of its commit
(``KILL_KEEP_FLOWS=0`` in the environment: an ingest with ``--no-keep-flows``)."""

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
