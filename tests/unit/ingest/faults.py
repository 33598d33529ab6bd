"""Real file-system faults for store tests: a small tmpfs (disk full) or a read-only remount,
made in a private mount namespace (``unshare -rm``) so that nothing outside the test sees it.

``run_in_namespace(steps)`` runs each step inside one namespace and returns what happened:

* ``["mount", dir, size]``: a tmpfs of ``size`` at ``dir``;
* ``["readonly", dir]``: remount it read-only;
* ``["fill", path, free_bytes]``: fill the tmpfs with ``path`` until ``free_bytes`` are left;
* ``["cli", [args], stdin_path_or_None]``: run ``analyzer ARGS`` -> ``[rc, stdout, stderr]``;
* ``["tree", dir]``: a hash of the file names and bytes under ``dir`` (hidden files included).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["namespace_problem", "run_in_namespace"]

_DRIVER = r"""
import hashlib, json, os, subprocess, sys
from pathlib import Path

def tree(root):
    digest = hashlib.sha256()
    for path in sorted(Path(root).rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()

out = []
for step in json.loads(sys.argv[1]):
    kind = step[0]
    if kind == "mount":
        options = f"size={step[2]}"
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", step[1]], check=True)
        out.append(None)
    elif kind == "readonly":
        subprocess.run(["mount", "-o", "remount,ro", step[1]], check=True)
        out.append(None)
    elif kind == "fill":
        stat = os.statvfs(Path(step[1]).parent)
        free = stat.f_bavail * stat.f_frsize
        with open(step[1], "wb") as fh:
            fh.write(bytes(max(0, free - step[2])))
        out.append(None)
    elif kind == "cli":
        stdin = open(step[2], "rb") if step[2] else subprocess.DEVNULL
        proc = subprocess.run(
            [sys.executable, "-c", "from analyzer.cli import app; app()", *step[1]],
            stdin=stdin, capture_output=True, text=True, timeout=300,
        )
        out.append([proc.returncode, proc.stdout, proc.stderr])
    elif kind == "tree":
        out.append(tree(step[1]))
print(json.dumps(out))
"""


def namespace_problem(scratch: Path) -> str | None:
    """Why faults cannot be made here (no ``unshare``, no user namespaces), or None."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare/mount not installed"
    scratch.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(
        ["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(scratch)],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a user namespace: {probe.stderr.strip()}"
    return None


def run_in_namespace(steps: list[list[Any]]) -> list[Any]:
    proc = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", _DRIVER, json.dumps(steps)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    result: list[Any] = json.loads(proc.stdout)
    return result
