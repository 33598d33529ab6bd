"""Policy engine throughput: N distinct connections against P policies.

Measures ``evaluate_connections`` (compile once, group connections by endpoint identity, evaluate
each distinct edge once, join back) and, in the same run, a naive evaluator that re-walks every
policy for every connection from the uncompiled model (no matchers, no caching, CIDRs parsed on
each check). The naive one runs on a random sample (it is far too slow for the whole input) and
its verdicts are checked against the engine's on that sample. Peak RSS is taken after the
engine's run, before the naive one.

Usage::

    python benchmarks/bench_policy.py [--connections 1000000] [--policies 500] [--seed 7]
        [--naive-sample 20000] [--out benchmarks/results/policy.json]

The input is seeded and synthetic: namespaces of workloads with replicas (so many pods share a
label identity, as in a real cluster), each workload talking to a handful of others on its
ports, plus external addresses; policies mix podSelector, namespaceSelector, AND peers,
matchExpressions, ipBlock with except, named ports, endPort and egress rules.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from analyzer.k8s.inventory import Inventory, PodInfo
from analyzer.policy import frame as policy_frame
from analyzer.policy.compile import compile_policies
from analyzer.policy.frame import evaluate_connections
from analyzer.policy.load import LoadResult, parse_documents
from analyzer.policy.model import LabelSelector, NetworkPolicy, PolicyPeer, PolicyPort, PolicyRule

APPS = ["web", "api", "db", "cache", "queue", "worker", "auth", "search", "pay", "mail"]
PORTS = {
    "web": 8080,
    "api": 8081,
    "db": 5432,
    "cache": 6379,
    "queue": 5672,
    "worker": 9000,
    "auth": 8443,
    "search": 9200,
    "pay": 8082,
    "mail": 2525,
}


def build_cluster(rng: np.random.Generator, namespaces: int, replicas: int) -> pl.DataFrame:
    rows = []
    n = 0
    for i in range(namespaces):
        ns = f"ns{i:03d}"
        for app in APPS:
            for r in range(replicas):
                rows.append(
                    {
                        "namespace": ns,
                        "pod": f"{app}-{r}",
                        "app": app,
                        "tier": "backend" if app in ("db", "cache", "queue") else "frontend",
                        "ip": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
                        "node": f"node-{n % 20}",
                        "team": f"t{i % 7}",
                        "env": ("prod", "dev")[i % 2],
                    }
                )
                n += 1
    return pl.DataFrame(rows)


def build_policies(rng: np.random.Generator, namespaces: int, count: int) -> list[dict[str, Any]]:
    docs = []
    for k in range(count):
        ns = f"ns{k % namespaces:03d}"
        app = APPS[(k // namespaces) % len(APPS)]
        port = PORTS[app]
        variant = k % 6
        peer: dict[str, Any]
        if variant == 0:
            peer = {"podSelector": {"matchLabels": {"app": APPS[(k + 1) % 10]}}}
        elif variant == 1:
            peer = {
                "namespaceSelector": {"matchLabels": {"team": f"t{k % 7}"}},
                "podSelector": {
                    "matchExpressions": [
                        {
                            "key": "app",
                            "operator": "In",
                            "values": [APPS[k % 10], APPS[(k + 3) % 10]],
                        }
                    ]
                },
            }
        elif variant == 2:
            peer = {
                "namespaceSelector": {
                    "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]
                }
            }
        elif variant == 3:
            peer = {"ipBlock": {"cidr": "10.0.0.0/14", "except": [f"10.0.{k % 200}.0/24"]}}
        elif variant == 4:
            peer = {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}}
        else:
            peer = {"namespaceSelector": {}}
        ports: list[dict[str, Any]] = [{"port": "serve" if k % 4 == 0 else port, "protocol": "TCP"}]
        if k % 5 == 0:
            ports.append({"port": 9000, "endPort": 9100, "protocol": "TCP"})
        spec: dict[str, Any] = {
            "podSelector": {"matchLabels": {"app": app}},
            "ingress": [{"from": [peer], "ports": ports}],
        }
        if k % 8 == 0:
            spec["egress"] = [
                {"to": [{"namespaceSelector": {}}]},
                {
                    "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                    "ports": [{"port": 443}],
                },
            ]
        docs.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"p{k}", "namespace": ns},
                "spec": spec,
            }
        )
    return docs


def build_connections(rng: np.random.Generator, pods: pl.DataFrame, target: int) -> pl.DataFrame:
    """Distinct (src pod, dst pod, port) triples: each workload talks to a few others."""
    n = pods.height
    per_ns = len(APPS) * (n // (len(APPS) * pods["namespace"].n_unique()))
    replicas = per_ns // len(APPS)
    workloads = n // replicas
    # Each source workload has ~6 destination workloads (mostly its own namespace).
    fanout = 6
    dst_w = np.empty((workloads, fanout), dtype=np.int64)
    for w in range(workloads):
        base = (w // len(APPS)) * len(APPS)
        dst_w[w] = np.where(
            rng.random(fanout) < 0.8,
            base + rng.integers(0, len(APPS), fanout),
            rng.integers(0, workloads, fanout),
        )
    chosen: set[tuple[int, int, int]] = set()
    ports = np.array([PORTS[a] for a in pods["app"].to_list()])
    while len(chosen) < target:
        m = int((target - len(chosen)) * 1.2) + 100
        sw = rng.integers(0, workloads, m)
        dw = dst_w[sw, rng.integers(0, fanout, m)]
        s = sw * replicas + rng.integers(0, replicas, m)
        d = dw * replicas + rng.integers(0, replicas, m)
        p = np.where(rng.random(m) < 0.9, ports[d], rng.integers(9000, 9200, m))
        for triple in zip(s.tolist(), d.tolist(), p.tolist(), strict=True):
            if triple[0] != triple[1]:
                chosen.add(triple)
                if len(chosen) >= target:
                    break
    arr = np.array(sorted(chosen))
    src = pods[arr[:, 0]].select(pl.all().name.prefix("src_"))
    dst = pods[arr[:, 1]].select(pl.all().name.prefix("dst_"))
    frame = pl.concat([src, dst], how="horizontal").with_columns(
        pl.Series("dst_port", arr[:, 2], dtype=pl.Int32), pl.lit("TCP").alias("protocol")
    )
    # 2% of connections go to external addresses instead of pods.
    external = rng.random(frame.height) < 0.02
    ext_ip = [f"203.0.{i % 256}.{i % 97}" for i in range(frame.height)]
    return (
        frame.with_columns(
            pl.Series("_ext", external),
            pl.Series("_ext_ip", ext_ip),
        )
        .with_columns(
            pl.when("_ext").then(pl.col("_ext_ip")).otherwise(pl.col("dst_ip")).alias("dst_ip"),
            pl.when("_ext").then(None).otherwise(pl.col("dst_namespace")).alias("dst_namespace"),
            pl.when("_ext").then(None).otherwise(pl.col("dst_pod")).alias("dst_pod"),
            pl.when("_ext").then(pl.lit("world")).otherwise(pl.lit("pod")).alias("dst_entity"),
            pl.when("_ext").then(pl.lit(443)).otherwise(pl.col("dst_port")).alias("dst_port"),
            pl.lit("pod").alias("src_entity"),
        )
        .drop("_ext", "_ext_ip")
    )


def to_flow_columns(frame: pl.DataFrame) -> pl.DataFrame:
    def labels(side: str) -> pl.Expr:
        return pl.when(pl.col(f"{side}_entity") == "pod").then(
            pl.concat_list(
                pl.lit("app=") + pl.col(f"{side}_app"), pl.lit("tier=") + pl.col(f"{side}_tier")
            )
        )

    def ns_labels(side: str) -> pl.Expr:
        return pl.when(pl.col(f"{side}_entity") == "pod").then(
            pl.concat_list(
                pl.lit("team=") + pl.col(f"{side}_team"), pl.lit("env=") + pl.col(f"{side}_env")
            )
        )

    return frame.select(
        "src_namespace",
        "src_pod",
        labels("src").alias("src_labels"),
        ns_labels("src").alias("src_namespace_labels"),
        "src_ip",
        "src_entity",
        "src_node",
        "dst_namespace",
        "dst_pod",
        labels("dst").alias("dst_labels"),
        ns_labels("dst").alias("dst_namespace_labels"),
        "dst_ip",
        "dst_entity",
        "dst_node",
        "protocol",
        "dst_port",
    )


def build_inventory(pods: pl.DataFrame) -> Inventory:
    infos = {}
    for r in pods.iter_rows(named=True):
        info = PodInfo(
            r["namespace"],
            r["pod"],
            {"app": r["app"], "tier": r["tier"]},
            (r["ip"],),
            r["node"],
            {"serve": ((PORTS[r["app"]], "TCP"),)},
        )
        infos[info.key] = info
    namespaces = {
        ns: {"team": t, "env": e, "kubernetes.io/metadata.name": ns}
        for ns, t, e in pods.select("namespace", "team", "env").unique().iter_rows()
    }
    return Inventory(infos, namespaces)


# --- the naive baseline: no compilation, no caching ----------------------------------------


def _labels(items: list[str] | None) -> dict[str, str]:
    return dict(i.partition("=")[::2] for i in items or [])


def _naive_sel(sel: LabelSelector, labels: dict[str, str]) -> bool:
    return sel.matches(labels)


def _naive_peer(peer: PolicyPeer, pol: NetworkPolicy, other: dict[str, Any]) -> bool:
    if peer.ip_block is not None:
        if not other["ip"]:
            return False
        addr = ipaddress.ip_address(other["ip"])
        net = ipaddress.ip_network(peer.ip_block.cidr)
        if addr.version != net.version or addr not in net:
            return False
        return not any(addr in ipaddress.ip_network(e) for e in peer.ip_block.excepts)
    if other["kind"] != "pod":
        return False
    if peer.namespace_selector is not None:
        if not _naive_sel(peer.namespace_selector, other["ns_labels"]):
            return False
    elif other["namespace"] != pol.namespace:
        return False
    return peer.pod_selector is None or _naive_sel(peer.pod_selector, other["labels"])


def _naive_port(
    ports: tuple[PolicyPort, ...] | None,
    port: int,
    proto: str,
    named: dict[str, tuple[tuple[int, str], ...]],
) -> bool:
    if not ports:
        return True
    for p in ports:
        if p.protocol != proto:
            continue
        if p.port is None:
            return True
        if isinstance(p.port, str):
            if (port, proto) in named.get(p.port, ()):
                return True
        elif p.port <= port <= (p.end_port or p.port):
            return True
    return False


def _naive_side(
    policies: list[NetworkPolicy],
    subject: dict[str, Any],
    other: dict[str, Any],
    port: int,
    proto: str,
    ingress: bool,
    named: dict[str, Any],
) -> bool:
    if subject["kind"] != "pod":
        return True
    isolated = False
    for pol in policies:
        types = pol.isolates_ingress if ingress else pol.isolates_egress
        if not types or pol.namespace != subject["namespace"]:
            continue
        if not _naive_sel(pol.pod_selector, subject["labels"]):
            continue
        isolated = True
        for rule in pol.ingress if ingress else pol.egress:
            rule_r: PolicyRule = rule
            if not _naive_port(rule_r.ports, port, proto, named):
                continue
            if not rule_r.peers or any(_naive_peer(p, pol, other) for p in rule_r.peers):
                return True
    return not isolated


def naive_evaluate(
    policies: list[NetworkPolicy], rows: list[dict[str, Any]], inventory: Inventory
) -> list[bool]:
    out = []
    for r in rows:
        ends = {}
        for side in ("src", "dst"):
            kind = "pod" if r[f"{side}_entity"] == "pod" else "ip"
            ns = r[f"{side}_namespace"]
            ends[side] = {
                "kind": kind,
                "namespace": ns,
                "ip": r[f"{side}_ip"],
                "labels": _labels(r[f"{side}_labels"]),
                "ns_labels": dict(inventory.namespaces.get(ns, {})) if ns else {},
            }
        pod = inventory.pod(r["dst_namespace"], r["dst_pod"]) if r["dst_pod"] else None
        named = dict(pod.ports) if pod else {}
        port, proto = r["dst_port"], r["protocol"]
        out.append(
            _naive_side(policies, ends["src"], ends["dst"], port, proto, False, named)
            and _naive_side(policies, ends["dst"], ends["src"], port, proto, True, named)
        )
    return out


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=1_000_000)
    ap.add_argument("--policies", type=int, default=500)
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--replicas", type=int, default=20)
    ap.add_argument("--naive-sample", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/policy.json"))
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    pods = build_cluster(rng, args.namespaces, args.replicas)
    raw = build_connections(rng, pods, args.connections)
    frame = to_flow_columns(raw)
    inventory = build_inventory(pods)
    docs = build_policies(rng, args.namespaces, args.policies)
    rss_input = peak_rss_mb()

    t0 = time.perf_counter()
    loaded = LoadResult()
    parse_documents(docs, "bench", loaded)
    assert not loaded.problems, loaded.problems[:3]
    compiled = compile_policies(loaded.policies)
    t_compile = time.perf_counter() - t0
    evaluated: list[int] = []
    inner = policy_frame._evaluate_edges

    def counting(c: Any, rows: list[dict[str, Any]], *rest: Any) -> list[tuple[Any, ...]]:
        evaluated.append(len(rows))
        return inner(c, rows, *rest)

    policy_frame._evaluate_edges = counting  # type: ignore[assignment]
    t1, c1 = time.perf_counter(), time.process_time()
    result = evaluate_connections(compiled, frame, inventory)
    t_eval, c_eval = time.perf_counter() - t1, time.process_time() - c1
    policy_frame._evaluate_edges = inner  # type: ignore[assignment]
    rss_engine = peak_rss_mb()

    sample_idx = rng.choice(frame.height, size=min(args.naive_sample, frame.height), replace=False)
    sample = frame[np.sort(sample_idx)]
    rows = sample.to_dicts()
    t2, c2 = time.perf_counter(), time.process_time()
    naive = naive_evaluate(loaded.policies, rows, inventory)
    t_naive, c_naive = time.perf_counter() - t2, time.process_time() - c2
    engine_sample = result[np.sort(sample_idx)]["allowed"].to_list()
    mismatches = sum(a != b for a, b in zip(naive, engine_sample, strict=True))

    engine_rate = frame.height / t_eval
    naive_rate = sample.height / t_naive
    report = {
        "benchmark": "policy",
        "connections": frame.height,
        "policies": len(loaded.policies),
        "pods": pods.height,
        "edges_evaluated": sum(evaluated),
        "allowed": int(result["allowed"].sum()),
        "compile_seconds": round(t_compile, 3),
        "evaluate_seconds": round(t_eval, 3),
        "evaluate_cpu_seconds": round(c_eval, 3),
        "connections_per_second": round(engine_rate),
        "connections_per_cpu_second": round(frame.height / c_eval),
        "peak_rss_mb_after_input": round(rss_input, 1),
        "peak_rss_mb_after_engine": round(rss_engine, 1),
        "naive_sample": sample.height,
        "naive_seconds": round(t_naive, 3),
        "naive_cpu_seconds": round(c_naive, 3),
        "naive_connections_per_second": round(naive_rate),
        "speedup_vs_naive": round(engine_rate / naive_rate, 1),
        "speedup_vs_naive_cpu": round((frame.height / c_eval) / (sample.height / c_naive), 1),
        "note": "wall-clock on a shared 2-core machine; the naive baseline runs on a random "
        "sample and is extrapolated as a rate; CPU-time rates are the steadier comparison",
        "naive_disagreements": mismatches,
        "seed": args.seed,
        "machine": f"{platform.machine()} {platform.python_version()} polars {pl.__version__}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
