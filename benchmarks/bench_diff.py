"""`analyzer diff` on a large store: wall time, CPU time and peak RSS, with two baselines.

Input (seeded, built once under ``benchmarks/out/`` and reused): ``analyzer generate`` with
~1M Hubble flows and a few hundred identities, ``analyzer ingest``, and
``analyzer recommend --out`` for the bundle. OLD is the generator's ``existing-policies.yaml``,
NEW the bundle. Each measurement runs in its own subprocess so its peak RSS is its own:

- ``diff``: the whole ``run_diff`` (load both sets, store, inventory; observed connections and
  every probe) plus the JSON document written to /dev/null, as ``analyzer diff -o json`` does;
- ``diff_observed``: the same with ``probes=False`` (``--no-probes``): observed connections
  only;
- ``simulate_twice``: the baseline a person would script for the observed part: load both
  sets, ``simulate`` OLD and ``simulate`` NEW (each derives the connections from the store,
  as two ``analyzer simulate`` runs do) and join the two results per connection;
- ``naive_probes``: a plain loop calling the engine's single-connection ``evaluate`` for both
  sets on a random sample of the probes the diff enumerates, extrapolated to all of them as a
  rate; the sampled verdicts are cross-checked against the diff's tables.

Usage::

    python benchmarks/bench_diff.py [--flows 1000000] [--namespaces-extra 50]
        [--workloads-per-namespace 6] [--seed 3] [--sample 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ANALYZER = [str(Path(sys.executable).parent / "analyzer")]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build_input(args: argparse.Namespace) -> dict[str, str]:
    tag = f"{args.flows}-{args.namespaces_extra}x{args.workloads_per_namespace}-s{args.seed}"
    work = Path(args.work)
    gen, store, bundle = (work / f"diff-{k}-{tag}" for k in ("gen", "store", "bundle"))
    if not (gen / "flows.jsonl").is_file():
        subprocess.run([*ANALYZER, "generate", "--out", str(gen), "--flows", str(args.flows),
                        "--namespaces-extra", str(args.namespaces_extra),
                        "--workloads-per-namespace", str(args.workloads_per_namespace),
                        "--seed", str(args.seed)], check=True)
    if not (store / "manifest.json").is_file():
        subprocess.run([*ANALYZER, "ingest", "--store", str(store), str(gen / "flows.jsonl")],
                       check=True)
    if not (bundle / "kustomization.yaml").is_file():
        subprocess.run([*ANALYZER, "recommend", "--store", str(store), "--out", str(bundle)],
                       check=True, capture_output=True)
    return {"store": str(store), "old": str(gen / "existing-policies.yaml"),
            "new": str(bundle), "inventory": str(gen / "inventory.json")}


# --- children -----------------------------------------------------------------------------------


def _run_diff(paths: dict[str, str], probes: bool) -> dict[str, Any]:
    from analyzer.diff import run_diff
    from analyzer.diff.render import iter_json

    t, c0 = time.perf_counter(), _cpu()
    result = run_diff([paths["old"]], [paths["new"]], store=Path(paths["store"]),
                      inventory_path=Path(paths["inventory"]), probes=probes)
    computed = time.perf_counter() - t
    size = 0
    with open(os.devnull, "w") as sink:
        for chunk in iter_json(result):
            sink.write(chunk)
            size += len(chunk.encode())
    c = result.counts
    return {"seconds": round(time.perf_counter() - t, 2), "compute_seconds": round(computed, 2),
            "cpu_seconds": round(_cpu() - c0, 2), "peak_rss_mb": round(_rss_mb(), 1),
            "json_bytes": size, "universe": result.universe.to_dict(), "counts": c.to_dict(),
            "changes": len(result.newly_denied) + len(result.newly_allowed)}


def child_diff(paths: dict[str, str]) -> dict[str, Any]:
    return _run_diff(paths, True)


def child_diff_observed(paths: dict[str, str]) -> dict[str, Any]:
    return _run_diff(paths, False)


def child_simulate_twice(paths: dict[str, str]) -> dict[str, Any]:
    import polars as pl

    from analyzer.k8s.inventory import load_inventory
    from analyzer.policy.compile import compile_policies
    from analyzer.policy.load import load_policies
    from analyzer.policy.simulate import read_flows, simulate

    t, c0 = time.perf_counter(), _cpu()
    inventory = load_inventory(paths["inventory"])
    frames = []
    for side in ("old", "new"):
        compiled = compile_policies(load_policies([paths[side]]).policies)
        flows, _ = read_flows([], Path(paths["store"]))
        frames.append(simulate(compiled, flows, inventory).frame)
    keys = ["src_key", "dst_key", "protocol", "dst_port"]
    joined = frames[0].select(*keys, "allowed", "connections").join(
        frames[1].select(*keys, pl.col("allowed").alias("after")), on=keys, nulls_equal=True
    )
    newly_denied = joined.filter(pl.col("allowed") & ~pl.col("after"))
    newly_allowed = joined.filter(~pl.col("allowed") & pl.col("after"))
    return {"seconds": round(time.perf_counter() - t, 2), "cpu_seconds": round(_cpu() - c0, 2),
            "peak_rss_mb": round(_rss_mb(), 1), "edges": joined.height,
            "observed_newly_denied_edges": newly_denied.height,
            "observed_newly_denied_connections": int(newly_denied["connections"].sum()),
            "observed_newly_allowed_edges": newly_allowed.height}


def child_naive_probes(paths: dict[str, str], sample: int = 20_000) -> dict[str, Any]:
    import numpy as np

    from analyzer.connections import derive_connections
    from analyzer.diff.semantic import _tables
    from analyzer.diff.universe import build_universe
    from analyzer.k8s.inventory import load_inventory
    from analyzer.policy.compile import compile_policies
    from analyzer.policy.evaluate import evaluate
    from analyzer.policy.load import load_policies
    from analyzer.policy.simulate import distinct_connections
    from analyzer.store import FlowStore

    inventory = load_inventory(paths["inventory"])
    sets = [compile_policies(load_policies([paths[k]]).policies) for k in ("old", "new")]
    scan = FlowStore.open(Path(paths["store"])).scan()
    edges = distinct_connections(derive_connections(scan).frame)
    universe = build_universe(edges, inventory, sets)
    eps, ports = universe.endpoints, universe.ports
    rng = np.random.default_rng(7)
    picks: list[tuple[int, int, int]] = []
    while len(picks) < sample:
        i, j = (int(x) for x in rng.integers(0, len(eps), 2))
        if eps[i].kind == "pod" or eps[j].kind == "pod":
            picks.append((i, j, int(rng.integers(0, len(ports)))))
    t, c0 = time.perf_counter(), _cpu()
    naive = [
        tuple(evaluate(s, eps[i].peer, eps[j].peer, ports[c].low, ports[c].protocol).allowed
              for s in sets)
        for i, j, c in picks
    ]
    seconds, cpu = time.perf_counter() - t, _cpu() - c0
    disagreements = 0
    tables = [_tables(s, universe) for s in sets]
    for (i, j, c), verdicts in zip(picks, naive, strict=True):
        for tab, expected in zip(tables, verdicts, strict=True):
            ok = tab.verdicts.allowed()
            eg = tab.egress[i].verdicts[tab.egress[i].others[j], c]
            ing = tab.ingress[j].verdicts[tab.ingress[j].others[i], c]
            disagreements += int(bool(ok[eg] and ok[ing]) != expected)
    probes = sum(1 for a in eps for b in eps if "pod" in (a.kind, b.kind)) * len(ports)
    rate = sample / seconds
    return {"sample": sample, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "probes_per_second": round(rate), "probes": probes,
            "extrapolated_seconds": round(probes / rate, 1),
            "extrapolated_cpu_seconds": round(probes / (sample / cpu), 1),
            "disagreements": disagreements}


CHILDREN = {"diff": child_diff, "diff_observed": child_diff_observed,
            "simulate_twice": child_simulate_twice, "naive_probes": child_naive_probes}


def run_child(name: str, paths: dict[str, str], sample: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, "--paths", json.dumps(paths),
         "--sample", str(sample)],
        check=True, capture_output=True, text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--namespaces-extra", type=int, default=50)
    parser.add_argument("--workloads-per-namespace", type=int, default=6)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "out"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "diff.json"))
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--paths")
    args = parser.parse_args()
    if args.child:
        paths = json.loads(args.paths)
        if args.child == "naive_probes":
            print(json.dumps(child_naive_probes(paths, args.sample)))
        else:
            print(json.dumps(CHILDREN[args.child](paths)))
        return
    paths = build_input(args)
    results = {name: run_child(name, paths, args.sample) for name in CHILDREN}
    diff, observed, twice = results["diff"], results["diff_observed"], results["simulate_twice"]
    naive = results["naive_probes"]
    assert diff["counts"]["observed_newly_denied_edges"] == twice["observed_newly_denied_edges"]
    assert naive["disagreements"] == 0, naive
    report = {
        "benchmark": "diff",
        "input": {"flows": args.flows, "namespaces_extra": args.namespaces_extra,
                  "workloads_per_namespace": args.workloads_per_namespace, "seed": args.seed,
                  **paths},
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count()},
        "results": results,
        "ratios": {
            "diff_observed_vs_simulate_twice_wall": round(
                observed["seconds"] / max(twice["seconds"], 1e-9), 2),
            "diff_observed_vs_simulate_twice_cpu": round(
                observed["cpu_seconds"] / max(twice["cpu_seconds"], 1e-9), 2),
            "diff_full_vs_simulate_twice_wall": round(
                diff["seconds"] / max(twice["seconds"], 1e-9), 2),
            "probe_speedup_vs_naive_cpu": round(
                naive["extrapolated_cpu_seconds"]
                / max(diff["cpu_seconds"] - observed["cpu_seconds"], 1e-9), 1),
        },
        "command": " ".join(["python", *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": "shared 2-core machine: CPU seconds are the steadier comparison",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["ratios"], indent=2))
    for name, r in results.items():
        print(name, {k: r[k] for k in ("seconds", "cpu_seconds", "peak_rss_mb") if k in r})


if __name__ == "__main__":
    main()
