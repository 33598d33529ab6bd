"""Fold peers that play the same role into one node or row, so the report stays readable.

A port sweep touches dozens of addresses, and an ingress gateway is reached from hundreds of
clients on the internet; drawn one by one they bury the identities that matter. Addresses
(`ip` nodes) with exactly the same clients and the same servers are merged into one node
"N addresses", with their edges' ports, counts and outcomes combined. Pods and reserved
entities are never merged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from analyzer.report.model import AnomalyRow, DeniedRow, GraphEdge, GraphModel, GraphNode

__all__ = ["collapse_peers", "fold_destinations", "merge_edges"]

R = TypeVar("R", AnomalyRow, DeniedRow)

MAX_LISTED = 12


def _port_key(port: str) -> tuple[str, int]:
    """``TCP/80`` before ``TCP/443``: protocol, then the number."""
    proto, _, number = port.partition("/")
    return (proto, int(number) if number.isdigit() else -1)


def merge_edges(edges: list[GraphEdge], src: str, dst: str) -> GraphEdge:
    outcomes = {e.outcome for e in edges}
    return GraphEdge(
        src=src,
        dst=dst,
        ports=tuple(sorted({p for e in edges for p in e.ports}, key=_port_key)),
        connections=sum(e.connections for e in edges),
        outcome=outcomes.pop() if len(outcomes) == 1 else "mixed",
        anomalous=any(e.anomalous for e in edges),
        merged=sum(e.merged for e in edges),
    )


def collapse_peers(graph: GraphModel, min_size: int = 3) -> GraphModel:
    """Merge `ip` nodes with identical neighbours when at least ``min_size`` share them."""
    clients: dict[str, set[str]] = defaultdict(set)
    servers: dict[str, set[str]] = defaultdict(set)
    for e in graph.edges:
        servers[e.src].add(e.dst)
        clients[e.dst].add(e.src)
    roles: dict[tuple[frozenset[str], frozenset[str]], list[GraphNode]] = defaultdict(list)
    for node in graph.nodes:
        if node.kind == "ip":
            roles[(frozenset(clients[node.key]), frozenset(servers[node.key]))].append(node)
    alias: dict[str, str] = {}
    merged: list[GraphNode] = []
    for members in roles.values():
        if len(members) < min_size:
            continue
        members.sort(key=lambda n: n.key)
        key = f"ips:{members[0].key}+{len(members) - 1}"
        for n in members:
            alias[n.key] = key
        listed = [n.label for n in members[:MAX_LISTED]]
        if len(members) > MAX_LISTED:
            listed.append(f"… and {len(members) - MAX_LISTED} more")
        merged.append(GraphNode(key, "", f"{len(members)} addresses", "ip", 0, tuple(listed)))
    if not alias:
        return graph
    nodes = [n for n in graph.nodes if n.key not in alias] + merged
    grouped: dict[tuple[str, str], list[GraphEdge]] = defaultdict(list)
    for e in graph.edges:
        grouped[(alias.get(e.src, e.src), alias.get(e.dst, e.dst))].append(e)
    edges = [merge_edges(es, src, dst) for (src, dst), es in sorted(grouped.items())]
    return GraphModel(tuple(sorted(nodes, key=lambda n: n.key)), tuple(edges))


def _fold_key(row: AnomalyRow | DeniedRow) -> tuple[str, ...]:
    if isinstance(row, AnomalyRow):
        return (row.src, row.port, *[r for r in row.reasons if r.startswith("rule: ")])
    return (row.src, row.port)


def fold_destinations(rows: Sequence[R], min_size: int = 3) -> list[R]:
    """Rows from one source on the same ports (and, for anomalies, the same detector rule) to
    at least ``min_size`` destinations become one row "N destinations (a, b, c, …)": a sweep
    of 70 addresses is one line. Order follows each group's first (worst) row."""
    groups: dict[tuple[str, ...], list[R]] = defaultdict(list)
    for row in rows:
        groups[_fold_key(row)].append(row)
    out: list[R] = []
    for members in groups.values():
        if len(members) < min_size:
            out.extend(members)
            continue
        shown = ", ".join(m.dst for m in members[:3])
        dst = f"{len(members)} destinations ({shown}, …)"
        total = sum(m.connections for m in members)
        first = members[0]
        if isinstance(first, DeniedRow):
            last = max(m.last_seen for m in members if isinstance(m, DeniedRow))
            out.append(replace(first, dst=dst, connections=total, last_seen=last))
        else:
            out.append(replace(first, dst=dst, connections=total))
    return out
