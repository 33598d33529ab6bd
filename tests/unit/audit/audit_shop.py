"""Helpers for the audit tests: the planted shop policy set and its hand-built traffic.

The traffic is built as canonical flow rows (``analyzer.schema.conform``) from the same table
``tests/fixtures/audit/make_shop_flows.py`` writes as Hubble JSON, then turned into connections
by ``derive_connections``, exactly as the CLI does with a store.
"""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl

from analyzer.connections import Connections, derive_connections
from analyzer.schema import conform

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "audit"


def _traffic_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "audit_shop_traffic", FIXTURES / "make_shop_flows.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHOP = _traffic_module()


def _side(key: str) -> dict[str, Any]:
    if key not in SHOP.PODS:
        return {"ip": key, "entity": "world"}
    ns, pod, ip, labels, workload = SHOP.PODS[key]
    ns_labels = {"kubernetes.io/metadata.name": ns, **SHOP.NS_LABELS[ns]}
    return {
        "ip": ip, "entity": "pod", "namespace": ns, "pod": pod, "workload": workload,
        "labels": sorted(f"{k}={v}" for k, v in labels.items()),
        "namespace_labels": sorted(f"{k}={v}" for k, v in ns_labels.items()),
    }


def flow_rows(traffic: list[tuple[str, str, str, int, int, str]]) -> pl.DataFrame:
    """Canonical flow rows (request + reply per connection, one drop event per dropped one)."""
    rows: list[dict[str, Any]] = []
    for i, (src, dst, proto, port, count, outcome) in enumerate(traffic):
        s, d = _side(src), _side(dst)
        for n in range(count):
            when = SHOP.START + timedelta(minutes=(n * 117 + i * 7) % 120, seconds=i)
            sport = 32768 + (i * 97 + n * 13) % 20000
            base = {"time": when, "source_format": "hubble", "node": "kind-worker",
                    "protocol": proto, "flow_count": 1, "direction": "ingress"}
            req = {**base, "src_port": sport, "dst_port": port, "is_reply": False,
                   "verdict": "forwarded" if outcome == "forwarded" else "dropped",
                   "tcp_flags": "SYN" if proto == "TCP" else None}
            if outcome == "dropped":
                req["drop_reason"] = "POLICY_DENIED"
                req["is_reply"] = None
            for side, info in (("src", s), ("dst", d)):
                for k, v in info.items():
                    req[f"{side}_{k}"] = v
            rows.append(req)
            if outcome == "forwarded":
                rep = {**base, "time": when + timedelta(milliseconds=1), "src_port": port,
                       "dst_port": sport, "is_reply": True, "verdict": "forwarded",
                       "tcp_flags": "ACK,SYN" if proto == "TCP" else None}
                for side, info in (("dst", s), ("src", d)):
                    for k, v in info.items():
                        rep[f"{side}_{k}"] = v
                rows.append(rep)
    return conform(pl.DataFrame(rows, infer_schema_length=None))


Traffic = list[tuple[str, str, str, int, int, str]]


def shop_connections(traffic: Traffic | None = None) -> Connections:
    return derive_connections(flow_rows(SHOP.TRAFFIC if traffic is None else traffic))
