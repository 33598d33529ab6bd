"""One measured child process, as every benchmark here measures it: wall time, CPU seconds (user
+ system, from ``wait4``: the child's reaped children included) and peak RSS (``ru_maxrss``, the
largest process), optionally the summed RSS of the child and its children sampled every 10 ms.

Also what the benchmarks share around it: the CLI child that proves which source tree ran, the
environment that puts a tree first, the middle run of a series, the sum of a series of runs,
the report HTML without its time, and DuckDB's ``read_json`` + GROUP BY ingest baseline.

Benchmarks run as scripts, so this module is imported as a sibling (``from harness import
...``): the script's directory is first on ``sys.path``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Final, TypeVar

T = TypeVar("T")

DEVNULL: Final = subprocess.DEVNULL
# a child's stdout/stderr read back into ``Measured`` (through a file: a pipe left unread while
# ``wait4`` blocks would stall a child that writes more than the pipe holds)
CAPTURE: Final = "capture"
Sink = int | str | Path | IO[Any] | None

# The CLI as its entry point runs it, from the source tree given as the first argument
# (PYTHONPATH wins over the editable install; the assertion proves which code ran). ``-P``:
# ``-c`` would put the working directory (often this checkout) ahead of PYTHONPATH's tree.
CLI_CHILD: Final = (
    "import sys, pathlib, analyzer; "
    "src = pathlib.Path(sys.argv.pop(1)).resolve(); "
    "assert pathlib.Path(analyzer.__file__).resolve().is_relative_to(src), analyzer.__file__; "
    "from analyzer.cli import app; sys.argv[0] = 'analyzer'; app()"
)

_GENERATED = re.compile(rb"<p>Generated [^<]*?\xc2\xb7")

# DuckDB reading Hubble NDJSON: the peer baseline of ingest (bench_ingest.py, bench_rollup.py)
DUCK_INGEST: Final = """
SELECT flow.source.labels AS src_labels, flow.destination.labels AS dst_labels,
       coalesce(flow.l4.TCP.destination_port, flow.l4.UDP.destination_port) AS port,
       count(*) AS n
FROM read_json('{path}', format='newline_delimited', maximum_object_size=16777216)
GROUP BY ALL
"""


@dataclass(frozen=True)
class Measured:
    """What one child process cost. Unrounded; ``numbers`` rounds as the results files do."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    # the child and its children together, sampled (``sample_tree``); never below the peak
    tree_rss_mb: float
    exit_code: int | None  # None: killed at the timeout
    stdout: bytes  # with ``stdout=CAPTURE``
    stderr: bytes  # with ``stderr=CAPTURE`` or a file

    @property
    def finished(self) -> bool:
        return self.exit_code is not None

    def check(self, what: str) -> Measured:
        """This, or the run's failure (with the end of its stderr) as the benchmark's exit."""
        if self.exit_code != 0:
            tail = self.stderr.decode(errors="replace")[-2000:]
            raise SystemExit(f"{what} failed ({self.exit_code}):\n{tail}")
        return self

    def numbers(self, digits: int = 2, *, tree: bool = False) -> dict[str, float]:
        """``wall_s``, ``cpu_s`` (to ``digits``) and ``peak_rss_mb`` (to 0.1 MB); with
        ``tree``, ``tree_rss_mb`` too."""
        out = {
            "wall_s": round(self.wall_s, digits),
            "cpu_s": round(self.cpu_s, digits),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }
        if tree:
            out["tree_rss_mb"] = round(self.tree_rss_mb, 1)
        return out

    def last_line(self) -> str:
        """The last line the child printed (a child's JSON summary, a count)."""
        lines = self.stdout.decode().strip().splitlines()
        return lines[-1] if lines else ""


def rss_kb(pid: int) -> int | None:
    """Resident KB of ``pid`` now (None once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")), None)
    except OSError:
        return None


def _tree_rss_kb(pid: int) -> int:
    """Resident KB of ``pid`` and its children (the anomaly commands' forest helper)."""
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return sum(rss_kb(p) or 0 for p in pids)


def measure(proc: subprocess.Popen[bytes], started: float, *, timeout: float | None = None,
            sample_tree: bool = False) -> Measured:
    """Reap ``proc`` (started at ``time.perf_counter()`` ``started``) with ``wait4``; killed
    past ``timeout`` seconds. Its stdout and stderr are the caller's."""
    tree = 0
    timed_out = False
    if timeout is None and not sample_tree:
        _, status, usage = os.wait4(proc.pid, 0)
    else:
        deadline = None if timeout is None else started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            if sample_tree:
                tree = max(tree, _tree_rss_kb(proc.pid))
            time.sleep(0.01 if sample_tree else 0.05)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        tree_rss_mb=max(tree, usage.ru_maxrss) / 1024,
        exit_code=None if timed_out else proc.returncode,
        stdout=b"",
        stderr=b"",
    )


def run(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        stdin: int | IO[Any] | None = None, stdout: Sink = DEVNULL, stderr: Sink = CAPTURE,
        timeout: float | None = None, sample_tree: bool = False) -> Measured:
    """``argv`` in its own process, measured (``measure``). ``stdout``/``stderr``: ``DEVNULL``,
    ``CAPTURE`` (into the result), a path (written there; stderr also read back), an open
    file, or None (this process's)."""
    with tempfile.TemporaryFile() as out_tmp, tempfile.TemporaryFile() as err_tmp:
        sinks: list[Any] = []
        opened: list[IO[bytes]] = []
        for sink, tmp in ((stdout, out_tmp), (stderr, err_tmp)):
            if sink == CAPTURE:
                sinks.append(tmp)
            elif isinstance(sink, Path):
                sink.parent.mkdir(parents=True, exist_ok=True)
                opened.append(open(sink, "wb"))
                sinks.append(opened[-1])
            else:
                sinks.append(sink)
        try:
            started = time.perf_counter()
            proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdin=stdin,
                                    stdout=sinks[0], stderr=sinks[1])
            result = measure(proc, started, timeout=timeout, sample_tree=sample_tree)
        finally:
            for f in opened:
                f.close()

        def read(sink: Sink, tmp: IO[bytes], file_too: bool) -> bytes:
            if sink == CAPTURE:
                tmp.seek(0)
                return tmp.read()
            return sink.read_bytes() if file_too and isinstance(sink, Path) else b""

        return replace(result, stdout=read(stdout, out_tmp, False),
                       stderr=read(stderr, err_tmp, True))


def tree_env(src: Path | str, **overrides: str | None) -> dict[str, str]:
    """This environment with ``src`` as PYTHONPATH; each override set, or removed when None."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def cli_argv(src: Path, args: Sequence[str]) -> list[str]:
    """``analyzer ARGS`` run by the code of the tree ``src`` (give it ``tree_env(src)``)."""
    return [sys.executable, "-P", "-c", CLI_CHILD, str(src), *args]


def middle(items: Iterable[T], key: Callable[[T], Any] | None = None) -> T:
    """The median item of a series (the upper one of an even count): a run, not an average."""
    ordered: list[T] = sorted(items, key=key)  # type: ignore[arg-type, type-var]
    return ordered[len(ordered) // 2]


def totals(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A series of runs as one: CPU and wall summed, the largest peak RSS."""
    return {
        "cpu_s": round(sum(r["cpu_s"] for r in runs), 2),
        "wall_s": round(sum(r["wall_s"] for r in runs), 2),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
    }


def cell(run: dict[str, Any] | None) -> str:
    """A run as a Markdown table cell: wall / CPU / peak RSS."""
    if run is None:
        return "not run"
    return f"{run['wall_s']:.1f} s / {run['cpu_s']:.1f} s / {run['peak_rss_mb']:,.0f} MB"


def without_time(html: bytes) -> bytes:
    """A report's HTML without its "Generated <time>" (the only part that differs by run)."""
    return _GENERATED.sub(b"<p>Generated \xc2\xb7", html)


def duckdb_group_by(path: Path | str, threads: int | None = None) -> int:
    """DuckDB ``read_json`` + GROUP BY of a Hubble file (``DUCK_INGEST``): the rows it read."""
    import duckdb

    con = duckdb.connect()
    if threads is not None:
        con.execute(f"SET threads TO {threads}")
    rows = con.sql(DUCK_INGEST.format(path=path)).fetchall()
    return sum(int(r[3]) for r in rows)
