"""Peak memory and throughput of ``analyzer ingest`` (issue 11: peak RSS at most 300 MB on a 1M-
and on a 4M-flow file, throughput at least what it was), side by side in one run with DuckDB
``read_json`` + GROUP BY on the same file (the peer baseline of ``bench_ingest.py``) and,
optionally, another checkout of the analyzer (``--before``, e.g. the main branch).

``--no-keep-flows`` adds the same ingest with ``--no-keep-flows`` (the rollup alone: issue 11's
"aim for 1.0x DuckDB") and the size of each store. ``--compact`` also splits each input into one
file per node, ingests them one by one (one small part each), runs ``store compact`` and
records the part files before and after, its CPU, and whether ``recommend -o json`` printed
the same bytes before and after.

Every contender runs in its own subprocess (wall time, CPU and peak RSS from ``os.wait4``), and
each ingest goes into a fresh store. Results go to ``benchmarks/results/ingest-memory.json``.

Usage::

    python benchmarks/bench_ingest_memory.py --input 300k.jsonl --input 1200k.jsonl \
        [--before /path/to/main/checkout] [--store-dir /big/disk] [--no-keep-flows] [--compact]
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
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "ingest-memory.json"
sys.path.insert(0, str(HERE))
from harness import cli_argv, run, tree_env  # noqa: E402


def _run(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    return run(cmd, env=env).check(" ".join(cmd)).numbers()


def _size_mb(root: Path) -> float:
    return round(sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6, 1)


def _ingest(tree: Path, path: Path, stores: Path, *extra: str) -> dict[str, Any]:
    store = Path(tempfile.mkdtemp(prefix="bench-ingest-memory-", dir=stores)) / "store"
    try:
        result = _run(cli_argv(tree, ["ingest", str(path), "--store", str(store), *extra]),
                      tree_env(tree))
        result["store_mb"] = _size_mb(store)
        return result
    finally:
        shutil.rmtree(store.parent, ignore_errors=True)


def _output(store: Path, *args: str) -> bytes:
    return subprocess.run(
        cli_argv(ROOT, [*args, "--store", str(store)]),
        capture_output=True, check=True, env=tree_env(ROOT, ANALYZER_NO_ROLLUP=None),
    ).stdout


def _compaction(path: Path, stores: Path) -> dict[str, Any]:
    """Per-node files of ``path`` ingested one by one, then ``store compact``."""
    from split_nodes import split_by_node

    work = Path(tempfile.mkdtemp(prefix="bench-compact-", dir=stores))
    try:
        files = split_by_node(path, work / "nodes")
        store = work / "store"
        env = tree_env(ROOT)
        ingests = [_run(cli_argv(ROOT, ["ingest", str(f), "--store", str(store)]), env)
                   for f in files]
        before = _output(store, "recommend", "-o", "json")
        parts_before = len(list((store / "flows").glob("*.parquet")))
        compact = _run(
            cli_argv(ROOT, ["store", "compact", "--store", str(store), "--hours-after", "off",
                            "--days-after", "off"]),
            env,
        )
        return {
            "node_files": len(files),
            "ingest_cpu_s": round(sum(r["cpu_s"] for r in ingests), 2),
            "parts_before": parts_before,
            "parts_after": len(list((store / "flows").glob("*.parquet"))),
            "compact": compact,
            "recommend_identical": _output(store, "recommend", "-o", "json") == before,
            "store_mb": _size_mb(store),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", action="append", required=True, help="Hubble NDJSON file")
    parser.add_argument("--before", help="another analyzer checkout to compare with")
    parser.add_argument("--store-dir", default=None, help="where the fresh stores go")
    parser.add_argument("--no-keep-flows", action="store_true",
                        help="also ingest with --no-keep-flows")
    parser.add_argument("--compact", action="store_true",
                        help="also ingest per-node files and compact their parts")
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
        if args.no_keep_flows:
            results["analyzer-no-keep-flows"] = _ingest(
                ROOT, path, stores or path.parent, "--no-keep-flows"
            )
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
        if args.no_keep_flows:
            dropped = results["analyzer-no-keep-flows"]
            run["ratios"]["no_keep_cpu_vs_duckdb"] = round(
                results["duckdb-read-json"]["cpu_s"] / dropped["cpu_s"], 2
            )
            run["ratios"]["no_keep_throughput_vs_duckdb"] = round(
                results["duckdb-read-json"]["wall_s"] / dropped["wall_s"], 2
            )
            run["ratios"]["no_keep_cpu_vs_keep"] = round(ours["cpu_s"] / dropped["cpu_s"], 2)
        if args.compact:
            run["compaction"] = _compaction(path, stores or path.parent)
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
        if "compaction" in run:
            print(f"  compaction: {run['compaction']}")
    doc = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "target": {
            "peak_rss_mb": "<= 300 on 1M and 4M flows",
            "throughput_vs_before": ">= 1.0",
            "no_keep_throughput_vs_duckdb": "aim for 1.0",
        },
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
