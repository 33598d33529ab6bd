"""Replay observed flows against policies (``simulate``) and resolve peers for ``explain``.

``resolve_peer`` (``policy/peers.py``) names endpoints the way this module sees them.
Flows become connection requests (replies never count) via ``connections.derive_connections``;
each distinct connection (source endpoint, destination endpoint, port, protocol) is evaluated
once by :func:`analyzer.policy.frame.evaluate_connections`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from analyzer.connections import Connections, derive_connections
from analyzer.k8s.inventory import Inventory
from analyzer.policy.compile import CompiledPolicies
from analyzer.policy.frame import evaluate_connections
from analyzer.policy.peers import resolve_peer

__all__ = [
    "SimulationResult",
    "simulate",
    "summarise",
    "headline",
    "resolve_peer",
    "connection_records",
    "distinct_connections",
]

_EDGE = ["src_key", "dst_key", "protocol", "dst_port"]


@dataclass(slots=True)
class SimulationResult:
    """One row per distinct connection with its verdict; notes for the person."""

    frame: pl.DataFrame
    notes: list[str] = field(default_factory=list)


def simulate(
    compiled: CompiledPolicies,
    connections: Connections | pl.LazyFrame | pl.DataFrame,
    inventory: Inventory | None = None,
) -> SimulationResult:
    """Evaluate every distinct observed connection request against ``compiled``
    (flow rows are first reduced to connections with ``derive_connections``)."""
    if not isinstance(connections, Connections):
        connections = derive_connections(connections)
    frame = distinct_connections(connections.frame)
    return SimulationResult(
        evaluate_connections(compiled, frame, inventory), list(connections.stats.warnings)
    )


def distinct_connections(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per distinct connection (source endpoint, destination endpoint, protocol, port):
    what ``simulate`` and ``diff`` judge.

    derive_connections keeps one row per observed outcome; a verdict is per connection, so the
    outcomes become the list ``observed``, ``connections`` is summed and the time window spans
    every outcome. TCP rows without a port cannot be judged and are left out.
    """
    frame = frame.filter(pl.col("dst_port").is_not_null() | (pl.col("protocol") != "TCP"))
    window = [c for c in ("first_seen", "last_seen") if c in frame.columns]
    return frame.group_by(_EDGE, maintain_order=True).agg(
        pl.all().exclude(["outcome", "connections", *window]).first(),
        *([pl.col("first_seen").min()] if "first_seen" in window else []),
        *([pl.col("last_seen").max()] if "last_seen" in window else []),
        pl.col("outcome").unique().sort().alias("observed"),
        pl.col("connections").sum(),
    )


def connection_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The jsonl objects: ``src``, ``dst``, ``port``, ``protocol``, ``allowed``, rules, ..."""
    cols = {
        "src": pl.col("src_key"),
        "dst": pl.col("dst_key"),
        "port": pl.col("dst_port"),
        "protocol": pl.col("protocol"),
        "allowed": pl.col("allowed"),
        "ingress_rules": pl.col("ingress_rules"),
        "egress_rules": pl.col("egress_rules"),
        "ingress_isolated": pl.col("ingress_isolated"),
        "egress_isolated": pl.col("egress_isolated"),
        "reason": pl.col("reason"),
    }
    extra = [c for c in ("src_group", "dst_group", "observed", "connections") if c in frame.columns]
    return frame.select(
        [e.alias(k) for k, e in cols.items()] + [pl.col(c) for c in extra]
    ).to_dicts()


def headline(frame: pl.DataFrame, policies: int) -> list[str]:
    """Totals for a person, and where the simulation disagrees with what was observed."""
    denied = int((~frame["allowed"]).sum()) if frame.height else 0
    lines = [
        f"{frame.height} distinct connections: {frame.height - denied} allowed, {denied} denied "
        f"by {policies} policies"
    ]
    if "observed" in frame.columns and frame.height:
        seen_ok = frame["observed"].list.contains("allowed")
        seen_denied = frame["observed"].list.contains("denied")
        breaks = int((seen_ok & ~frame["allowed"]).sum())
        opens = int((seen_denied & frame["allowed"]).sum())
        if breaks:
            lines.append(
                f"{breaks} connections that the flow logs show as allowed would be denied "
                "(applying these policies would break them)"
            )
        if opens:
            lines.append(f"{opens} connections that the flow logs show as denied would be allowed")
    return lines


def summarise(frame: pl.DataFrame) -> pl.DataFrame:
    """Allowed and denied connections per identity pair (for the table output)."""
    src = "src_group" if "src_group" in frame.columns else "src_key"
    dst = "dst_group" if "dst_group" in frame.columns else "dst_key"
    port = pl.col("protocol") + pl.lit("/") + pl.col("dst_port").cast(pl.String).fill_null("-")
    return (
        frame.with_columns(port.alias("_port"))
        .group_by(src, dst)
        .agg(
            pl.col("allowed").sum().alias("allowed"),
            (~pl.col("allowed")).sum().alias("denied"),
            pl.col("_port").filter(~pl.col("allowed")).unique().sort().alias("denied_ports"),
        )
        .rename({src: "source", dst: "destination"})
        .sort(["denied", "source", "destination"], descending=[True, False, False])
    )
