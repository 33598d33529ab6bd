"""Subprocess script for tests: an ingest killed (SIGKILL) at the Nth os.replace of its commit."""

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
ingest(Path(sys.argv[2]), sys.argv[3:])
"""
