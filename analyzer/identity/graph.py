"""The identity graph: groups of endpoints (label identities, reserved peers, addresses) and the
requests between them, each edge with its counts, time range and evidence.

Built from `analyzer.connections.Connections`; renderers for people (table), scripts (JSON)
and Graphviz (DOT) are in `analyzer.present.graph`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from analyzer import connections as C
from analyzer import schema as S
from analyzer.connections import Connections, ConnectionStats, side_columns
from analyzer.identity import choose_selectors, parse_labels
from analyzer.schema import EVIDENCE, NODE_LOCAL

__all__ = [
    "IdentityGroup",
    "IdentityGraph",
    "build_graph",
    "restrict_graph",
    "display_name",
    "EDGE_SCHEMA",
    "EVIDENCE",
    "NODE_LOCAL",
    "EVIDENCE_PER_EDGE",
]

EVIDENCE_PER_EDGE = 3

_EVIDENCE_TYPE = pl.List(
    pl.Struct(
        {
            "first_seen": pl.Datetime("us", "UTC"),
            "last_seen": pl.Datetime("us", "UTC"),
            "src": pl.String(),
            "dst": pl.String(),
            "nodes": pl.List(pl.String()),
            "connections": pl.Int64(),
        }
    )
)
EDGE_SCHEMA: pl.Schema = pl.Schema(
    {
        C.SRC_GROUP: pl.String(),
        C.DST_GROUP: pl.String(),
        S.SRC_NAMESPACE: pl.String(),
        S.DST_NAMESPACE: pl.String(),
        S.SRC_ENTITY: pl.String(),
        S.DST_ENTITY: pl.String(),
        S.PROTOCOL: pl.String(),
        S.DST_PORT: pl.Int32(),
        C.OUTCOME: pl.String(),
        C.CONNECTIONS: pl.Int64(),
        C.EVENTS: pl.Int64(),
        C.FIRST_SEEN: pl.Datetime("us", "UTC"),
        C.LAST_SEEN: pl.Datetime("us", "UTC"),
        C.NODES: pl.List(pl.String()),
        C.AUDIT: pl.Boolean(),
        NODE_LOCAL: pl.Boolean(),
        EVIDENCE: _EVIDENCE_TYPE,
    }
)
_EDGE_KEY = [C.SRC_GROUP, C.DST_GROUP, S.PROTOCOL, S.DST_PORT, C.OUTCOME]


@dataclass(frozen=True, slots=True)
class IdentityGroup:
    """One node of the graph.

    ``labels`` are the identity's stable ``k=v`` labels (volatile ones removed); ``selector`` is
    the chosen matchLabels (empty for non-pod groups); ``selector_unique`` is False when it
    also selects another observed group of the namespace (``notes`` says which).
    """

    key: str
    namespace: str | None
    labels: tuple[str, ...]
    entity: str
    selector: dict[str, str]
    pods: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    namespace_labels: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    selector_unique: bool = True
    notes: tuple[str, ...] = ()

    @property
    def label_map(self) -> dict[str, str]:
        """The labels as a dict."""
        return parse_labels(self.labels)


@dataclass(frozen=True, slots=True)
class IdentityGraph:
    """Groups by key and one edge row per (src group, dst group, protocol, dst port, outcome)."""

    groups: dict[str, IdentityGroup]
    edges: pl.DataFrame
    stats: ConnectionStats = field(default_factory=ConnectionStats)

    @property
    def namespaces(self) -> list[str]:
        """Namespaces of the pod groups, sorted."""
        return sorted({g.namespace for g in self.groups.values() if g.namespace})


def display_name(group: IdentityGroup) -> str:
    """A short human name: ``ns/app=web`` for pods, ``host``, ``1.2.3.4 (example.com)``."""
    if group.key.startswith("pod:"):
        if group.selector and group.selector_unique:
            parts = [f"{k}={v}" for k, v in sorted(group.selector.items())]
        else:
            # the selector does not tell this group apart: show every label, selector first and
            # then short ones (version=v2) before long ones, so truncation keeps what differs
            first = [f"{k}={v}" for k, v in list(group.selector.items())[:1]]
            rest = sorted((x for x in group.labels if x not in first), key=lambda x: (len(x), x))
            parts = first + rest
        return f"{group.namespace}/{','.join(parts) or '(no labels)'}"
    if group.key.startswith("ip:"):
        address = group.key[3:]
        if group.dns_names:
            extra = "" if len(group.dns_names) == 1 else f" +{len(group.dns_names) - 1}"
            return f"{address} ({group.dns_names[0]}{extra})"
        return address
    return group.key.partition(":")[2] or group.key


def _endpoint_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per (group, endpoint) from both sides of the connection frame."""
    parts = []
    for side in ("src", "dst"):
        names = pl.col(S.DST_NAMES if side == "dst" else S.SRC_NAMES)
        parts.append(
            # each endpoint key has one set of attributes: reduce to endpoints first
            frame.unique(subset=[f"{side}_key"], keep="any").select(
                *side_columns(
                    side,
                    "group",
                    "namespace",
                    "labels",
                    "namespace_labels",
                    "entity",
                    "pod",
                    "workload",
                    "ip",
                ),
                names.alias("names"),
            )
        )
    return (
        pl.concat(parts)
        .group_by("group")
        .agg(
            pl.col("namespace").drop_nulls().min(),
            pl.col("labels").filter(pl.col("labels").list.len() > 0).first(),
            pl.col("namespace_labels").filter(pl.col("namespace_labels").list.len() > 0).first(),
            pl.when((pl.col("entity") == "pod").any())
            .then(pl.lit("pod"))
            .otherwise(pl.col("entity").drop_nulls().min())
            .alias("entity"),
            *(pl.col(c).drop_nulls().unique().sort() for c in ("pod", "workload", "ip")),
            pl.col("names").explode().drop_nulls().unique().sort(),
        )
        .sort("group")
    )


def _groups(frame: pl.DataFrame) -> dict[str, IdentityGroup]:
    rows = _endpoint_rows(frame).to_dicts()
    pod_groups = {
        r["group"]: (r["namespace"], parse_labels(r["labels"]))
        for r in rows
        if r["group"].startswith("pod:")
    }
    owners = {r["group"]: r["workload"] or () for r in rows if r["group"] in pod_groups}
    choices = choose_selectors(pod_groups, workloads=owners)
    out: dict[str, IdentityGroup] = {}
    for r in rows:
        choice = choices.get(r["group"])
        out[r["group"]] = IdentityGroup(
            key=r["group"],
            namespace=r["namespace"] if r["group"].startswith("pod:") else None,
            labels=tuple(r["labels"] or ()),
            entity=r["entity"] or "unknown",
            selector=dict(choice.selector) if choice else {},
            pods=tuple(r["pod"] or ()),
            workloads=tuple(r["workload"] or ()),
            ips=tuple(r["ip"] or ()),
            namespace_labels=tuple(r["namespace_labels"] or ()),
            dns_names=tuple(r["names"] or ()),
            selector_unique=choice.unique if choice else True,
            notes=choice.notes if choice else (),
        )
    return out


def _edges(frame: pl.DataFrame) -> pl.DataFrame:
    evidence = pl.struct(
        pl.col(C.FIRST_SEEN).alias("first_seen"),
        pl.col(C.LAST_SEEN).alias("last_seen"),
        pl.col(C.SRC_KEY).alias("src"),
        pl.col(C.DST_KEY).alias("dst"),
        pl.col(C.NODES).alias("nodes"),
        pl.col(C.CONNECTIONS).alias("connections"),
    )
    both = pl.col(C.SRC_NODE).is_not_null() & pl.col(C.DST_NODE).is_not_null()
    same = pl.col(C.SRC_NODE) == pl.col(C.DST_NODE)
    # the order of rows within a group is kept: sort once, then take the first few per edge
    ordered = frame.sort([C.FIRST_SEEN, C.SRC_KEY, C.DST_KEY], nulls_last=True)
    edges = ordered.group_by(_EDGE_KEY).agg(
        pl.col(S.SRC_NAMESPACE).drop_nulls().min(),
        pl.col(S.DST_NAMESPACE).drop_nulls().min(),
        pl.col(S.SRC_ENTITY).drop_nulls().min(),
        pl.col(S.DST_ENTITY).drop_nulls().min(),
        pl.col(C.CONNECTIONS).sum(),
        pl.col(C.EVENTS).sum(),
        pl.col(C.FIRST_SEEN).min(),
        pl.col(C.LAST_SEEN).max(),
        pl.col(C.NODES).explode().drop_nulls().unique().sort(),
        pl.col(C.AUDIT).any(),
        pl.when(both.any()).then(same.filter(both).all()).alias(NODE_LOCAL),
        evidence.head(EVIDENCE_PER_EDGE).alias(EVIDENCE),
    )
    return edges.select(pl.col(n).cast(t) for n, t in EDGE_SCHEMA.items()).sort(
        _EDGE_KEY, nulls_last=True
    )


def build_graph(
    connections: Connections | pl.DataFrame,
    *,
    namespaces: Sequence[str] | None = None,
) -> IdentityGraph:
    """Group connection endpoints by identity and aggregate the edges between groups.

    Parameters
    ----------
    connections
        `derive_connections` output (or its ``frame``).
    namespaces
        Keep only edges with a source or destination in these namespaces. Selectors are still
        chosen against every observed group of a namespace, so they stay unique cluster-wide.

    Returns
    -------
    IdentityGraph
    """
    if isinstance(connections, Connections):
        frame, stats = connections.frame, connections.stats
    else:
        frame, stats = connections, ConnectionStats()
    if frame.height == 0:
        return IdentityGraph({}, pl.DataFrame(schema=EDGE_SCHEMA), stats)
    graph = IdentityGraph(_groups(frame), _edges(frame), stats)
    return restrict_graph(graph, namespaces) if namespaces else graph


def restrict_graph(graph: IdentityGraph, namespaces: Sequence[str]) -> IdentityGraph:
    """The edges from or to ``namespaces`` and the groups they join; selectors stay the ones
    chosen against every group of the namespace."""
    if not namespaces:
        return graph
    wanted = list(namespaces)
    edges = graph.edges.filter(
        pl.col(S.SRC_NAMESPACE).is_in(wanted) | pl.col(S.DST_NAMESPACE).is_in(wanted)
    )
    used = set(edges[C.SRC_GROUP].to_list()) | set(edges[C.DST_GROUP].to_list())
    groups = {k: g for k, g in graph.groups.items() if k in used}
    return IdentityGraph(groups, edges, graph.stats)
