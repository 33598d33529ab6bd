"""Peak memory and throughput of ``analyzer ingest`` (issue 11: peak RSS at most 300 MB on a 1M-
and on a 4M-flow file, throughput at least what it was), side by side in one run with DuckDB
``read_json`` + GROUP BY on the same file (the peer baseline of ``bench_ingest.py``) and,
optionally, another checkout of the analyzer (``--before``, e.g. the main branch).

Every contender runs in its own subprocess (wall time, CPU and peak RSS from ``os.wait4``), and
each ingest goes into a fresh store. Results go to ``benchmarks/results/ingest-memory.json``.

Usage::

    python benchmarks/bench_ingest_memory.py --input 300k.jsonl --input 1200k.jsonl \
        [--before /path/to/main/checkout] [--store-dir /big/disk]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "ingest-memory.json"
_CLI = "from analyzer.cli import app; app()"


def _run(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def _ingest(tree: Path, path: Path, stores: Path) -> dict[str, Any]:
    store = Path(tempfile.mkdtemp(prefix="bench-ingest-memory-", dir=stores)) / "store"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    try:
        return _run([sys.executable, "-c", _CLI, "ingest", str(path), "--store", str(store)], env)
    finally:
        shutil.rmtree(store.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", action="append", required=True, help="Hubble NDJSON file")
    parser.add_argument("--before", help="another analyzer checkout to compare with")
    parser.add_argument("--store-dir", default=None, help="where the fresh stores go")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    stores = Path(args.store_dir) if args.store_dir else None
    bench_ingest = [sys.executable, str(HERE / "bench_ingest.py")]
    runs: list[dict[str, Any]] = []
    for item in args.input:
        path = Path(item)
        with open(path, "rb") as fh:
            lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 24), b""))
        results: dict[str, Any] = {}
        if args.before:
            results["analyzer-before"] = _ingest(Path(args.before), path, stores or path.parent)
        results["analyzer-ingest"] = _ingest(ROOT, path, stores or path.parent)
        results["duckdb-read-json"] = _run(
            [*bench_ingest, "--baseline", "duckdb", "--input", str(path)]
        )
        for r in results.values():
            r["flows_per_s"] = round(lines / r["wall_s"])
        ours = results["analyzer-ingest"]
        run: dict[str, Any] = {
            "input": {
                "path": str(path),
                "lines": lines,
                "size_mb": round(path.stat().st_size / 1e6),
            },
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "results": results,
            "ratios": {
                "throughput_vs_duckdb": round(
                    results["duckdb-read-json"]["wall_s"] / ours["wall_s"], 2
                ),
                "cpu_vs_duckdb": round(results["duckdb-read-json"]["cpu_s"] / ours["cpu_s"], 2),
            },
        }
        if args.before:
            before = results["analyzer-before"]
            run["ratios"]["peak_rss_vs_before"] = round(
                ours["peak_rss_mb"] / before["peak_rss_mb"], 2
            )
            run["ratios"]["throughput_vs_before"] = round(before["wall_s"] / ours["wall_s"], 2)
            run["ratios"]["cpu_vs_before"] = round(before["cpu_s"] / ours["cpu_s"], 2)
        runs.append(run)
        print(f"{path} ({lines:,} flows), load avg {run['load_avg_1m']}")
        for name, r in results.items():
            print(
                f"  {name:<18} {r['wall_s']:>8.2f} s {r['cpu_s']:>8.2f} cpu s "
                f"{r['flows_per_s']:>10,} flows/s {r['peak_rss_mb']:>8.1f} MB"
            )
        print(f"  ratios: {run['ratios']}")
    doc = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "target": {"peak_rss_mb": "<= 300 on 1M and 4M flows", "throughput_vs_before": ">= 1.0"},
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
