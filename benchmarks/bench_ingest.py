"""Benchmark ``analyzer ingest`` against two baselines on the same Hubble file, in one run.

Baselines:

* ``python-json-loop``: a plain-Python loop (``json.loads`` per line) that extracts the same
  canonical fields ingest extracts (labels cleaned and sorted, namespace labels split off,
  entity, ports, flags, DNS name, ...), into column lists;
* ``duckdb-read-json``: DuckDB ``read_json`` with a GROUP BY over (source labels,
  destination labels, destination port).

Each contender runs in its own subprocess; wall time and peak RSS come from ``os.wait4``.
Results go to ``benchmarks/results/ingest.json`` and a table on stdout.

Usage::

    python benchmarks/bench_ingest.py                    # generates 1,000,000 flows (cached)
    python benchmarks/bench_ingest.py --flows 200000
    python benchmarks/bench_ingest.py --input flows.jsonl
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
RESULTS = HERE / "results" / "ingest.json"
sys.path.insert(0, str(HERE))
from harness import CAPTURE, duckdb_group_by, run  # noqa: E402

DATA = Path(tempfile.gettempdir()) / "analyzer-bench-data"


# --- baseline 1: plain Python ---------------------------------------------------------------

_BOOKKEEPING = ("io.cilium.k8s.", "io.kubernetes.pod.namespace=")
_NS_PREFIX = "io.cilium.k8s.namespace.labels."
_RESERVED = {
    "reserved:kube-apiserver": "kube-apiserver",
    "reserved:host": "host",
    "reserved:remote-node": "remote-node",
    "reserved:health": "health",
    "reserved:ingress": "ingress",
    "reserved:init": "init",
    "reserved:unmanaged": "unmanaged",
    "reserved:world": "world",
    "reserved:unknown": "unknown",
}


def _endpoint(ep: dict[str, Any]) -> tuple[Any, ...]:
    labels = ep.get("labels")
    pod_labels: list[str] = []
    ns_labels: list[str] = []
    entity = None
    for label in labels or ():
        if label in _RESERVED and entity is None:
            entity = _RESERVED[label]
        if label.startswith(("reserved:", "cidr:", "fqdn:")):
            continue
        text = label[4:] if label.startswith("k8s:") else label
        if text.startswith(_NS_PREFIX):
            ns_labels.append(text[len(_NS_PREFIX) :])
        elif not text.startswith(_BOOKKEEPING):
            pod_labels.append(text)
    workloads = ep.get("workloads") or [{}]
    return (
        ep.get("namespace"),
        ep.get("pod_name"),
        workloads[0].get("name"),
        sorted(pod_labels) if labels is not None else None,
        sorted(ns_labels),
        entity or ("pod" if labels else "unknown"),
        ep.get("identity"),
    )


def python_loop(path: str) -> int:
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "time",
            "node",
            "verdict",
            "drop_reason",
            "direction",
            "is_reply",
            "protocol",
            "src_ip",
            "dst_ip",
            "src_port",
            "dst_port",
            "src",
            "dst",
            "dst_names",
            "dns_query",
            "flow_type",
            "event_type",
            "observation_point",
            "tcp_flags",
            "l7_type",
        )
    }
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            try:
                env = json.loads(line)
            except ValueError:
                continue
            f = env.get("flow")
            if not isinstance(f, dict):
                continue
            n += 1
            l4 = f.get("l4") or {}
            proto = next(iter(l4), None)
            ports = l4.get(proto) or {}
            ip = f.get("IP") or {}
            l7 = f.get("l7") or {}
            dns = l7.get("dns") or {}
            flags = ports.get("flags")
            cols["time"].append(f.get("time"))
            cols["node"].append(f.get("node_name") or env.get("node_name"))
            cols["verdict"].append((f.get("verdict") or "unknown").lower())
            cols["drop_reason"].append(f.get("drop_reason_desc"))
            cols["direction"].append((f.get("traffic_direction") or "unknown").lower())
            cols["is_reply"].append(f.get("is_reply", True if f.get("reply") else None))
            cols["protocol"].append(proto)
            cols["src_ip"].append(ip.get("source"))
            cols["dst_ip"].append(ip.get("destination"))
            cols["src_port"].append(ports.get("source_port"))
            cols["dst_port"].append(ports.get("destination_port"))
            cols["src"].append(_endpoint(f.get("source") or {}))
            cols["dst"].append(_endpoint(f.get("destination") or {}))
            cols["dst_names"].append(f.get("destination_names"))
            cols["dns_query"].append((dns.get("query") or "").rstrip(".") or None)
            cols["flow_type"].append(f.get("Type"))
            cols["event_type"].append((f.get("event_type") or {}).get("type"))
            cols["observation_point"].append(f.get("trace_observation_point"))
            cols["tcp_flags"].append(
                ",".join(sorted(k for k, v in flags.items() if v)) if flags else None
            )
            cols["l7_type"].append((l7.get("type") or "").lower() or None)
    return n


# --- baseline 2: DuckDB (harness.duckdb_group_by) ---------------------------------------


def _run(cmd: list[str]) -> dict[str, Any]:
    measured = run(cmd, stdout=CAPTURE).check(" ".join(cmd))
    return {**measured.numbers(3), "stdout": measured.last_line()}


def _input(args: argparse.Namespace) -> Path:
    if args.input:
        return Path(args.input)
    target = DATA / f"hubble-{args.flows}"
    flows = target / "flows.jsonl"
    if not flows.is_file():
        analyzer = shutil.which("analyzer") or str(Path(sys.executable).with_name("analyzer"))
        subprocess.run(
            [
                analyzer,
                "generate",
                "--format",
                "hubble",
                "--flows",
                str(args.flows),
                "--seed",
                "7",
                "--out",
                str(target),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return flows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--input", help="an existing Hubble NDJSON file instead of generating")
    parser.add_argument("--baseline", choices=["loop", "duckdb"], help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.baseline:  # child mode
        fn = python_loop if args.baseline == "loop" else duckdb_group_by
        print(fn(args.input))
        return

    path = _input(args)
    size_mb = path.stat().st_size / 1e6
    with open(path, "rb") as fh:
        lines = sum(1 for _ in fh)
    analyzer = shutil.which("analyzer") or str(Path(sys.executable).with_name("analyzer"))
    store = Path(tempfile.mkdtemp(prefix="bench-ingest-")) / "store"
    me = [sys.executable, str(Path(__file__).resolve())]
    contenders = {
        "analyzer-ingest": [analyzer, "ingest", str(path), "--store", str(store), "-o", "json"],
        "python-json-loop": [*me, "--baseline", "loop", "--input", str(path)],
        "duckdb-read-json": [*me, "--baseline", "duckdb", "--input", str(path)],
    }
    results: dict[str, Any] = {}
    for name, cmd in contenders.items():
        r = _run(cmd)
        r["flows_per_s"] = round(lines / r["wall_s"])
        r["mb_per_s"] = round(size_mb / r["wall_s"], 1)
        results[name] = r
    shutil.rmtree(store.parent, ignore_errors=True)
    ours = results["analyzer-ingest"]["wall_s"]
    doc = {
        "input": {"path": str(path), "lines": lines, "size_mb": round(size_mb, 1)},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        },
        "results": {
            k: {kk: vv for kk, vv in v.items() if kk != "stdout"} for k, v in results.items()
        },
        "ratios": {
            "ingest_speedup_vs_python_loop": round(results["python-json-loop"]["wall_s"] / ours, 2),
            "ingest_speedup_vs_duckdb": round(results["duckdb-read-json"]["wall_s"] / ours, 2),
            # CPU seconds are steadier than wall time on a shared machine
            "ingest_cpu_advantage_vs_python_loop": round(
                results["python-json-loop"]["cpu_s"] / results["analyzer-ingest"]["cpu_s"], 2
            ),
            "ingest_cpu_advantage_vs_duckdb": round(
                results["duckdb-read-json"]["cpu_s"] / results["analyzer-ingest"]["cpu_s"], 2
            ),
        },
        "targets": {"vs_duckdb": ">= 1.0", "vs_python_loop": ">= 5.0", "peak_rss_mb": "< 1024"},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    load = doc["machine"]["load_avg_1m"]
    print(f"input: {path} ({lines:,} lines, {size_mb:,.0f} MB), load avg {load}")
    print(
        f"{'contender':<20} {'wall s':>8} {'cpu s':>8} {'flows/s':>12} {'MB/s':>8}"
        f" {'peak RSS MB':>12}"
    )
    for name, r in results.items():
        print(
            f"{name:<20} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} {r['flows_per_s']:>12,} "
            f"{r['mb_per_s']:>8.1f} {r['peak_rss_mb']:>12.1f}"
        )
    ratios = doc["ratios"]
    print(
        f"ingest speedup (wall): {ratios['ingest_speedup_vs_python_loop']}x vs python loop, "
        f"{ratios['ingest_speedup_vs_duckdb']}x vs duckdb; (cpu): "
        f"{ratios['ingest_cpu_advantage_vs_python_loop']}x, "
        f"{ratios['ingest_cpu_advantage_vs_duckdb']}x"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
