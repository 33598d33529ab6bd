"""Connection frames built by hand, in the column contract of docs/architecture.md, and
generated captures (H2's generator -> H1's reader -> H4's connections)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

T0 = datetime(2026, 1, 1, tzinfo=UTC)

SCHEMA: dict[str, Any] = {
    "src_key": pl.String,
    "dst_key": pl.String,
    "src_namespace": pl.String,
    "dst_namespace": pl.String,
    "src_pod": pl.String,
    "dst_pod": pl.String,
    "src_workload": pl.String,
    "dst_workload": pl.String,
    "src_ip": pl.String,
    "dst_ip": pl.String,
    "src_entity": pl.String,
    "dst_entity": pl.String,
    "src_labels": pl.List(pl.String),
    "dst_labels": pl.List(pl.String),
    "src_group": pl.String,
    "dst_group": pl.String,
    "protocol": pl.String,
    "dst_port": pl.Int32,
    "outcome": pl.String,
    "connections": pl.Int64,
    "events": pl.Int64,
    "first_seen": pl.Datetime("us", "UTC"),
    "last_seen": pl.Datetime("us", "UTC"),
}


def _side(peer: str, replica: int) -> dict[str, Any]:
    """`ns/app` is a pod of workload app (replica n), anything else a reserved entity."""
    if "/" in peer:
        ns, app = peer.split("/", 1)
        pod = f"{app}-{replica}"
        return {
            "key": f"{ns}/{pod}",
            "namespace": ns,
            "pod": pod,
            "workload": app,
            "ip": None,
            "entity": "pod",
            "labels": [f"app={app}"],
            "group": f"pod:{ns}:app={app}",
        }
    return {
        "key": f"reserved:{peer}",
        "namespace": None,
        "pod": None,
        "workload": None,
        "ip": None,
        "entity": peer,
        "labels": [],
        "group": f"entity:{peer}",
    }


def conn(
    src: str,
    dst: str,
    port: int | None,
    *,
    outcome: str = "allowed",
    connections: int = 10,
    events: int | None = None,
    first: float = 0.0,
    last: float = 60.0,
    protocol: str = "TCP",
    src_replica: int = 0,
    dst_replica: int = 0,
) -> dict[str, Any]:
    """One connection row; times are minutes after T0 (a 60-minute window)."""
    row: dict[str, Any] = {}
    for prefix, peer, replica in (("src", src, src_replica), ("dst", dst, dst_replica)):
        for k, v in _side(peer, replica).items():
            row[f"{prefix}_{k}"] = v
    row.update(
        protocol=protocol,
        dst_port=port,
        outcome=outcome,
        connections=connections,
        events=events if events is not None else 2 * connections,
        first_seen=T0 + timedelta(minutes=first),
        last_seen=T0 + timedelta(minutes=last),
    )
    return row


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA)


def baseline() -> list[dict[str, Any]]:
    """A small shop: frontend -> api -> postgres, DNS, Prometheus, ingress, kubelet probes."""
    rows: list[dict[str, Any]] = []
    apps = [
        "shop/frontend",
        "shop/api",
        "shop/cart",
        "shop/worker",
        "data/postgres",
        "develop/debug",
    ]
    for app in apps:
        for r in range(2):
            rows.append(conn(app, "kube-system/coredns", 53, protocol="UDP", src_replica=r))
            rows.append(conn("monitoring/prometheus", app, 9102, connections=60, dst_replica=r))
            rows.append(conn("host", app, 8080, connections=120, dst_replica=r))
    for r in range(2):
        rows.append(conn("ingress/traefik", "shop/frontend", 8080, dst_replica=r, connections=200))
        rows.append(conn("shop/frontend", "shop/api", 8080, src_replica=r, dst_replica=r))
        rows.append(conn("shop/frontend", "shop/cart", 7070, src_replica=r, dst_replica=r))
        rows.append(conn("shop/api", "data/postgres", 5432, src_replica=r))
        rows.append(conn("shop/worker", "data/postgres", 5432, src_replica=r))
        rows.append(conn("shop/worker", "shop/cart", 7070, src_replica=r))
        rows.append(conn("develop/debug", "develop/devapi", 8080, src_replica=r))
    return rows


# --- generated scenarios (H2's generator -> H1's reader -> H4's connections) -------------------


@dataclass(frozen=True)
class Generated:
    truth: dict[str, Any]
    connections: pl.DataFrame


def generate_connections(
    tmp: Path, *, seed: int, attacks: frozenset[str], flows: int, fmt: str
) -> Generated:
    from analyzer.connections import derive_connections
    from analyzer.generate import ScenarioConfig, build_scenario, write_flows
    from analyzer.ingest import read_flow_file

    scenario = build_scenario(ScenarioConfig(seed=seed, attacks=attacks))
    path = write_flows(scenario, tmp / f"flows-{seed}-{fmt}.log", fmt, flows)
    conns = derive_connections(read_flow_file(path).frame)
    return Generated(truth=scenario.truth(), connections=conns.frame)
