"""Benchmark the connection rollup (issue 11): every command before (raw derivation) and after
(rollup), DuckDB computing the same edges from the raw Parquet, and ingest with and without
the rollup, in one run on one generated store.

The store is built the way a cluster's exporters deliver flows: the generated capture is split
into one file per node (``node_name``) and each file is ingested on its own, so the two ends of
a connection arrive in different ingests.

* ingest: the per-node files into a fresh store with this code (rollup written at each ingest)
  and with the code of ``--baseline-ref`` (no rollup);
* commands: ``graph``, ``recommend -n production``, ``recommend`` (all), ``anomalies``,
  ``audit`` and ``report`` on the same store, ``before`` = ``ANALYZER_NO_ROLLUP=1`` (derived
  from the raw flows, exactly what the code did before), ``after`` = the rollup. Their outputs
  are compared byte for byte (the report's HTML without its "Generated" time);
* DuckDB: the same edges (request rows, sessions of one 5-tuple split at the idle gap, counted
  per source/destination endpoint, protocol and port) from ``flows/*.parquet``; its edges and
  counts are also the *independent derivation* the rollup's are checked against.

Each run is its own process; wall time, CPU seconds (user + system) and peak RSS from
``wait4``. Results: ``benchmarks/results/rollup.json``.

Usage::

    nice -n 10 python benchmarks/bench_rollup.py --work /work/bench-data/rollup --flows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "rollup.json"
sys.path.insert(0, str(HERE))
from baseline_code import baseline_source  # noqa: E402
from split_nodes import split_by_node  # noqa: E402

_CHILD = (
    "import sys, pathlib, analyzer; "
    "src = pathlib.Path(sys.argv.pop(1)).resolve(); "
    "assert pathlib.Path(analyzer.__file__).resolve().is_relative_to(src), analyzer.__file__; "
    "from analyzer.cli import app; sys.argv[0] = 'analyzer'; app()"
)
_DUCK_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); import bench_rollup as b; b.duck_main()"
_GENERATED = re.compile(rb"<p>Generated [^<]*?\xc2\xb7")


def run(argv: list[str], out: Path, env: dict[str, str]) -> dict[str, Any]:
    """One process: wall, CPU (user + system) and peak RSS via wait4."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(out / "stdout", "wb") as stdout, open(out / "stderr", "wb") as stderr:
        proc = subprocess.Popen(argv, cwd=out, env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{argv[3:6]} failed ({code}): {(out / 'stderr').read_text()[-2000:]}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def cli(src: Path, args: list[str], out: Path, *, raw: bool = False) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    env.pop("ANALYZER_NO_ROLLUP", None)
    if raw:
        env["ANALYZER_NO_ROLLUP"] = "1"
    return run([sys.executable, "-c", _CHILD, str(src), *args], out, env)


def prepare(work: Path, flows: int) -> tuple[Path, list[Path]]:
    """The generated capture (cached) and its per-node files."""
    case = work / f"gen-{flows}"
    if not (case / "done").is_file():
        shutil.rmtree(case, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-c", _CHILD, str(ROOT), "generate", "--out", str(case),
             "--flows", str(flows), "--nodes", "4"],
            check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
        )
        split_by_node(case / "flows.jsonl", case / "nodes")
        (case / "done").write_text("ok\n")
    return case, sorted((case / "nodes").glob("*.jsonl"))


def ingest_all(src: Path, files: list[Path], store: Path, out: Path) -> dict[str, Any]:
    shutil.rmtree(store, ignore_errors=True)
    runs = [
        cli(src, ["ingest", "--store", str(store), str(f)], out / f"ingest-{i}")
        for i, f in enumerate(files)
    ]
    return {
        "files": len(files),
        "cpu_s": round(sum(r["cpu_s"] for r in runs), 2),
        "wall_s": round(sum(r["wall_s"] for r in runs), 2),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "last_file": runs[-1],
    }


COMMANDS: dict[str, list[str]] = {
    "graph": ["graph", "-o", "json"],
    "recommend -n production": ["recommend", "-n", "production", "-o", "json"],
    "recommend (all)": ["recommend", "-o", "json"],
    "anomalies": ["anomalies", "-o", "json"],
    "audit": ["audit", "-o", "json", "--policies", "{policies}"],
    "report": ["report", "--policies", "{policies}", "--out", "{out}/report.html", "-o", "json"],
}


def output_of(out: Path, name: str) -> bytes:
    if name == "report":
        return _GENERATED.sub(b"<p>Generated \xc2\xb7", (out / "report.html").read_bytes())
    return (out / "stdout").read_bytes()


# --- DuckDB: the same edges from the raw Parquet ---------------------------------------------

# Requests only (Hubble marks replies), policy drops kept, other drops and errors left out;
# one connection per 5-tuple session (a new one after 60 s idle for TCP, 30 s otherwise);
# an endpoint is ``namespace/pod``, else its IP, else ``reserved:<entity>``.
DUCK_EDGES = """
WITH req AS (
  SELECT
    coalesce(CASE WHEN src_namespace <> '' AND src_pod <> ''
                  THEN src_namespace || '/' || src_pod END,
             nullif(src_ip, ''), 'reserved:' || coalesce(src_entity, 'unknown')) AS src_key,
    coalesce(CASE WHEN dst_namespace <> '' AND dst_pod <> ''
                  THEN dst_namespace || '/' || dst_pod END,
             nullif(dst_ip, ''), 'reserved:' || coalesce(dst_entity, 'unknown')) AS dst_key,
    src_ip, src_port, dst_ip, dst_port, protocol, "time"
  FROM read_parquet('{glob}')
  WHERE is_reply = false
    AND coalesce(verdict, '') <> 'error'
    AND NOT (verdict = 'dropped' AND drop_reason IS NOT NULL
             AND drop_reason NOT IN ({policy_reasons}))
    AND coalesce(flow_type, '') <> 'SOCK'
    AND NOT (dst_service IS NOT NULL AND dst_pod IS NULL AND coalesce(dst_entity, '') <> 'pod')
), gaps AS (
  SELECT *, CASE WHEN lag("time") OVER w IS NULL
                   OR "time" - lag("time") OVER w >
                      CASE WHEN protocol = 'TCP' THEN INTERVAL 60 SECOND ELSE INTERVAL 30 SECOND END
                 THEN 1 ELSE 0 END AS new
  FROM req
  WINDOW w AS (PARTITION BY coalesce(src_ip, src_key), src_port, coalesce(dst_ip, dst_key),
                            dst_port, protocol ORDER BY "time")
)
SELECT src_key, dst_key, protocol, dst_port, sum(new) AS connections, count(*) AS events
FROM gaps GROUP BY ALL
"""


def duck_main() -> None:
    import duckdb

    store, out = Path(sys.argv[2]), Path(sys.argv[3])
    from analyzer.connections import POLICY_DROP_REASONS

    reasons = ", ".join(f"'{r}'" for r in sorted(POLICY_DROP_REASONS))
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    query = DUCK_EDGES.format(glob=f"{store}/flows/*.parquet", policy_reasons=reasons)
    con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet)")


def exactness(store: Path, duck_edges: Path) -> dict[str, Any]:
    """Rollup vs raw derivation (the analyzer's own code) and vs DuckDB (independent)."""
    import polars as pl

    sys.path.insert(0, str(ROOT))
    from analyzer.connections import derive_connections
    from analyzer.store import FlowStore

    opened = FlowStore.open(store)
    rollup = opened.rollup()
    assert rollup is not None, "no fresh rollup"
    rolled = rollup.connections()
    derived = derive_connections(opened.scan())
    keys = ["src_key", "dst_key", "protocol", "dst_port"]

    def per_edge(frame: pl.DataFrame) -> pl.DataFrame:
        return (
            frame.group_by(keys)
            .agg(pl.col("connections").sum(), pl.col("events").sum())
            .with_columns(pl.col("dst_port").cast(pl.Int64), pl.col("connections").cast(pl.Int64),
                          pl.col("events").cast(pl.Int64))
            .sort(keys, nulls_last=True)
        )

    mine, duck = per_edge(rolled.frame), per_edge(pl.read_parquet(duck_edges))
    both = mine.join(duck, on=keys, how="full", suffix="_duck", nulls_equal=True, coalesce=True)
    differ = both.filter(
        (pl.col("connections") != pl.col("connections_duck")).fill_null(True)
        | (pl.col("events") != pl.col("events_duck")).fill_null(True)
    )
    return {
        "rollup_equals_raw_derivation": rolled.frame.equals(derived.frame)
        and rollup.stats == derived.stats,
        "edges_rollup": mine.height,
        "edges_duckdb": duck.height,
        "connections_rollup": int(mine["connections"].sum()),
        "connections_duckdb": int(duck["connections"].sum()),
        "edges_differing": differ.height,
        "differing_examples": differ.head(5).to_dicts(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/work/bench-data/rollup"))
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--baseline-ref", default="9bea3a8", help="code before the rollup")
    parser.add_argument("--skip-baseline-ingest", action="store_true")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    case, files = prepare(work, args.flows)
    policies = case / "existing-policies.yaml"
    runs = work / "runs"
    shutil.rmtree(runs, ignore_errors=True)

    result: dict[str, Any] = {
        "flows": args.flows,
        "node_files": [f.name for f in files],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "baseline_ref": args.baseline_ref,
    }
    store = work / "store"
    print(f"ingest {len(files)} per-node files (with rollup) ...", flush=True)
    result["ingest_after"] = ingest_all(ROOT, files, store, runs / "ingest-after")
    if not args.skip_baseline_ingest:
        old = baseline_source(args.baseline_ref, work)
        print("ingest with the code before the rollup ...", flush=True)
        result["ingest_before"] = ingest_all(old, files, work / "store-before", runs / "ib")
        shutil.rmtree(work / "store-before", ignore_errors=True)

    commands: dict[str, Any] = {}
    for name, template in COMMANDS.items():
        row: dict[str, Any] = {}
        outputs = {}
        for label, raw in (("before", True), ("after", False)):
            out = runs / re.sub(r"\W+", "-", name) / label
            argv = [a.format(policies=policies, out=out) for a in template]
            row[label] = cli(ROOT, [*argv, "--store", str(store)], out, raw=raw)
            outputs[label] = output_of(out, name)
        row["outputs_identical"] = outputs["before"] == outputs["after"]
        row["cpu_ratio"] = round(row["before"]["cpu_s"] / max(row["after"]["cpu_s"], 1e-9), 2)
        commands[name] = row
        print(f"{name:<26} before {row['before']}  after {row['after']}  "
              f"x{row['cpu_ratio']} identical={row['outputs_identical']}", flush=True)
    result["commands"] = commands

    duck_out = runs / "duckdb" / "edges.parquet"
    duck_out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}"}
    result["duckdb_edges"] = run(
        [sys.executable, "-c", _DUCK_CHILD, str(HERE), str(store), str(duck_out)],
        runs / "duckdb", env,
    )
    graph_after = commands["graph"]["after"]
    result["graph_vs_duckdb_wall"] = round(
        result["duckdb_edges"]["wall_s"] / max(graph_after["wall_s"], 1e-9), 2
    )
    print(f"duckdb edges {result['duckdb_edges']}", flush=True)
    result["exactness"] = exactness(store, duck_out)
    print(json.dumps(result["exactness"], indent=2, default=str), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
