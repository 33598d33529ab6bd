"""`recommend` over a large store: wall time and peak RSS, with a plain-Python baseline.

The store is built once with ``analyzer generate`` (seeded; about 2,000 identities with the
defaults below) and ``analyzer ingest``, under ``benchmarks/out/``, and reused by later runs.
Each measurement runs in its own subprocess so that its peak RSS is its own:

- ``edges``: ``derive_connections`` plus the (source group, destination group, protocol, port)
  edge set in polars (the step the baseline reproduces);
- ``recommend``: the whole library call over every namespace (connections, identity graph,
  anomalies, synthesis, rendering, verification with the policy engine, probes);
- ``baseline``: a plain-Python loop over the store's rows (pyarrow batches -> dicts) that drops
  replies and non-forwarded rows and builds the same edge set.

Usage::

    python benchmarks/bench_recommend.py [--flows 1000000] [--namespaces-extra 330]
        [--workloads-per-namespace 6] [--seed 3] [--out benchmarks/results/recommend.json]

The 10M-flow run is the same command with ``--flows 10000000`` (the generated JSON is ~8 GB;
generation and ingest take most of the time).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ANALYZER = [str(Path(sys.executable).parent / "analyzer")]
VOLATILE_PREFIXES = (
    "pod-template-hash=", "controller-revision-hash=", "statefulset.kubernetes.io/pod-name=",
    "apps.kubernetes.io/pod-index=", "batch.kubernetes.io/", "controller-uid=", "job-name=",
    "pod-template-generation=",
)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    # CPU time is steadier than wall time on a machine shared with other jobs.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build_store(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    tag = f"{args.flows}-{args.namespaces_extra}x{args.workloads_per_namespace}-s{args.seed}"
    work = Path(args.work)
    gen, store = work / f"recommend-gen-{tag}", work / f"recommend-store-{tag}"
    info: dict[str, Any] = {"store": str(store)}
    if (store / "manifest.json").is_file():
        info["reused"] = True
        return store, info
    if not (gen / "flows.jsonl").is_file():
        t = time.perf_counter()
        subprocess.run([*ANALYZER, "generate", "--out", str(gen), "--flows", str(args.flows),
                        "--namespaces-extra", str(args.namespaces_extra),
                        "--workloads-per-namespace", str(args.workloads_per_namespace),
                        "--seed", str(args.seed)], check=True)
        info["generate_seconds"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    subprocess.run([*ANALYZER, "ingest", "--store", str(store), str(gen / "flows.jsonl")],
                   check=True)
    info["ingest_seconds"] = round(time.perf_counter() - t, 1)
    return store, info


# --- children -----------------------------------------------------------------------------------


def child_edges(store: Path) -> dict[str, Any]:
    import polars as pl

    from analyzer.connections import derive_connections
    from analyzer.recommend.engine import load_flows

    t, c0 = time.perf_counter(), _cpu()
    conns = derive_connections(load_flows(store)).frame
    edges = (
        conns.filter(pl.col("outcome") == "allowed")
        .select("src_group", "dst_group", "protocol", "dst_port")
        .unique()
    )
    seconds = time.perf_counter() - t
    groups = pl.concat([conns["src_group"], conns["dst_group"]]).unique()
    return {"seconds": round(seconds, 2), "cpu_seconds": round(_cpu() - c0, 2),
            "peak_rss_mb": round(_rss_mb(), 1),
            "edges": edges.height, "identities": int(groups.str.starts_with("pod:").sum()),
            "connection_rows": conns.height}


def child_recommend(store: Path) -> dict[str, Any]:
    from analyzer.recommend.engine import load_flows, recommend

    t, c0 = time.perf_counter(), _cpu()
    rec = recommend(load_flows(store))
    seconds = time.perf_counter() - t
    v = rec.verification
    return {"seconds": round(seconds, 2), "cpu_seconds": round(_cpu() - c0, 2),
            "peak_rss_mb": round(_rss_mb(), 1),
            "namespaces": len(rec.namespaces), "policies": len(rec.manifests),
            "verified_edges": v.checked if v else 0, "probes": len(rec.probes),
            "rows_in": rec.stats.get("rows_in")}


def _group(ns: str | None, labels: list[str] | None, entity: str | None, ip: str | None) -> str:
    if entity == "pod" or (entity is None and ns):
        kept = sorted(x for x in labels or () if not x.startswith(VOLATILE_PREFIXES))
        return f"pod:{ns}:{','.join(kept)}"
    if ip and entity in (None, "world", "unknown"):
        return f"ip:{ip}"
    return f"entity:{entity}"


def child_baseline(store: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from analyzer.store import FlowStore

    cols = ["verdict", "is_reply", "tcp_flags", "protocol", "src_port", "dst_port",
            "src_namespace",
            "src_labels", "src_entity", "src_ip", "dst_namespace", "dst_labels", "dst_entity",
            "dst_ip"]
    t, c0 = time.perf_counter(), _cpu()
    edges: set[tuple[str, str, str, int | None]] = set()
    rows = 0
    for part in FlowStore.open(store).part_paths():
        for batch in pq.ParquetFile(part).iter_batches(columns=cols, batch_size=65536):
            for r in batch.to_pylist():
                rows += 1
                if r["verdict"] != "forwarded" or r["is_reply"] is True:
                    continue
                if r["is_reply"] is None:
                    if r["tcp_flags"] and "ACK" in r["tcp_flags"]:
                        continue  # mid-stream or SYN-ACK: not the request
                    if (r["protocol"] == "UDP" and r["src_port"] is not None
                            and r["dst_port"] is not None and r["src_port"] < r["dst_port"]):
                        continue  # a UDP answer from a service port to an ephemeral one
                edges.add((
                    _group(r["src_namespace"], r["src_labels"], r["src_entity"], r["src_ip"]),
                    _group(r["dst_namespace"], r["dst_labels"], r["dst_entity"], r["dst_ip"]),
                    r["protocol"], r["dst_port"],
                ))
    seconds = time.perf_counter() - t
    return {"seconds": round(seconds, 2), "cpu_seconds": round(_cpu() - c0, 2),
            "peak_rss_mb": round(_rss_mb(), 1),
            "edges": len(edges), "rows": rows}


CHILDREN = {"edges": child_edges, "recommend": child_recommend, "baseline": child_baseline}


def run_child(name: str, store: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, "--store", str(store)],
        check=True, capture_output=True, text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--namespaces-extra", type=int, default=330)
    parser.add_argument("--workloads-per-namespace", type=int, default=6)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "out"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "recommend.json"))
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--store")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](Path(args.store))))
        return
    store, info = build_store(args)
    results = {name: run_child(name, store) for name in ("edges", "recommend", "baseline")}
    run = {
        "input": {"flows": args.flows, "namespaces_extra": args.namespaces_extra,
                  "workloads_per_namespace": args.workloads_per_namespace, "seed": args.seed,
                  **info},
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": __import__("os").cpu_count()},
        "results": results,
        "speedup_edges_vs_baseline": round(
            results["baseline"]["seconds"] / max(results["edges"]["seconds"], 1e-9), 2),
        "command": " ".join(["python", *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # One file, one run per input size: the 1M and 10M runs sit side by side.
    out = Path(args.out)
    report: dict[str, Any] = {"benchmark": "recommend", "runs": {}}
    if out.is_file() and "runs" in json.loads(out.read_text()):
        report = json.loads(out.read_text())
    report["runs"][str(args.flows)] = run
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(run, indent=2))


if __name__ == "__main__":
    main()
