"""The identity graph, the denied connections and the flagged ones as the report shows them.

Only the documented columns of the connections frame are used, so these functions can be fed
a hand-built frame in tests. Aggregation happens in polars; Python only sees the few hundred
resulting groups and edges.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl

from analyzer import connections as C
from analyzer import schema as S
from analyzer.identity.graph import IdentityGraph, IdentityGroup, display_name
from analyzer.present.text import port_text_expr, ports_summary
from analyzer.report.collapse import collapse_peers, fold_destinations
from analyzer.report.model import AnomalyRow, DeniedRow, GraphEdge, GraphModel, GraphNode

if TYPE_CHECKING:
    from analyzer.anomaly import AnomalyResult

__all__ = ["anomaly_rows", "denied_rows", "graph_model"]

MAX_DETAIL = 12
MAX_ROWS = 300


def _node(group: IdentityGroup) -> GraphNode:
    kind = group.key.partition(":")[0] if group.key.startswith(("pod:", "ip:")) else "entity"
    name = display_name(group)
    # pods are drawn inside their namespace's box: the box says the namespace
    label = name.partition("/")[2] if kind == "pod" else name
    detail = [f"labels: {', '.join(group.labels)}" if group.labels else "labels: none"]
    detail += [f"pod {p}" for p in group.pods[:MAX_DETAIL]]
    if len(group.pods) > MAX_DETAIL:
        detail.append(f"… and {len(group.pods) - MAX_DETAIL} more pods")
    detail += [f"name {n}" for n in group.dns_names[:MAX_DETAIL]]
    if kind == "ip":
        detail += [f"address {ip}" for ip in group.ips[:1]]
    return GraphNode(
        group.key,
        (group.namespace or "") if kind == "pod" else "",
        label,
        kind,
        len(group.pods) if kind == "pod" else 0,
        tuple(detail),
    )


def graph_model(graph: IdentityGraph, anomalies: AnomalyResult | None = None) -> GraphModel:
    """The identity graph as the report draws it: one node per group (named as
    ``analyzer graph`` names it), one edge per (source, destination) with its ports, outcome
    and whether a flagged edge is among them."""
    if graph.edges.height == 0:
        return GraphModel()
    flagged = pl.DataFrame(
        schema={
            C.SRC_GROUP: pl.String,
            C.DST_GROUP: pl.String,
            S.PROTOCOL: pl.String,
            S.DST_PORT: pl.Int32,
        },
    )
    if anomalies is not None and anomalies.edges.height:
        flagged = anomalies.edges.filter(pl.col("flagged")).select(
            C.SRC_GROUP, C.DST_GROUP, S.PROTOCOL, pl.col(S.DST_PORT).cast(pl.Int32)
        )
    keys = [C.SRC_GROUP, C.DST_GROUP, S.PROTOCOL, S.DST_PORT]
    marked = graph.edges.join(
        flagged.unique().with_columns(pl.lit(True).alias("_anomalous")),
        on=keys,
        how="left",
        nulls_equal=True,
    ).with_columns(pl.col("_anomalous").fill_null(False), port_text_expr().alias("_port"))
    edges = (
        marked.sort(S.PROTOCOL, S.DST_PORT, nulls_last=True)  # ports in numeric order
        .group_by(C.SRC_GROUP, C.DST_GROUP)
        .agg(
            pl.col("_port").unique(maintain_order=True).alias("ports"),
            pl.col(C.CONNECTIONS).sum(),
            pl.col(C.OUTCOME).unique().sort().alias("outcomes"),
            pl.col("_anomalous").any(),
        )
        .sort(C.SRC_GROUP, C.DST_GROUP)
    )
    out: list[GraphEdge] = []
    for row in edges.iter_rows(named=True):
        outcomes: list[str] = row["outcomes"]
        out.append(
            GraphEdge(
                row[C.SRC_GROUP],
                row[C.DST_GROUP],
                tuple(row["ports"]),
                int(row[C.CONNECTIONS] or 0),
                outcomes[0] if len(outcomes) == 1 else "mixed",
                bool(row["_anomalous"]),
            )
        )
    nodes = tuple(_node(graph.groups[key]) for key in sorted(graph.groups))
    return collapse_peers(GraphModel(nodes, tuple(out)))


def _per_pair(frame: pl.DataFrame, *extra: pl.Expr) -> pl.DataFrame:
    """One row per (source, destination): a scan of 30 ports is one line, not 30."""
    return (
        frame.with_columns(port_text_expr().alias("_port"))
        .sort("protocol", "dst_port", nulls_last=True)  # ports in numeric order
        .group_by("src_key", "dst_key", maintain_order=True)
        .agg(
            pl.col("_port").unique(maintain_order=True).alias("ports"),
            pl.col("connections").sum(),
            pl.col("last_seen").max(),
            *extra,
        )
    )


def denied_rows(frame: pl.DataFrame, limit: int = MAX_ROWS) -> tuple[DeniedRow, ...]:
    """Connections a policy dropped, per source and destination, most frequent first."""
    if frame.height == 0:
        return ()
    denied = (
        _per_pair(frame.filter(pl.col("outcome") == "denied"))
        .sort(["connections", "src_key", "dst_key"], descending=[True, False, False],
              nulls_last=True)
    )  # fmt: skip
    rows = [
        DeniedRow(
            r["src_key"] or "?",
            r["dst_key"] or "?",
            ports_summary(r["ports"]),
            int(r["connections"] or 0),
            r["last_seen"].isoformat() if r["last_seen"] is not None else "",
        )
        for r in denied.iter_rows(named=True)
    ]
    return tuple(fold_destinations(rows)[:limit])


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
MAX_REASONS = 4


def short_reasons(reasons: Sequence[str], limit: int = MAX_REASONS) -> tuple[str, ...]:
    """The reasons of one row without repeated clauses: the detector joins several clauses
    with "; " and each port of a scan repeats the same ones with other numbers ("no other
    client of X uses TCP/21", "... TCP/22"; "first seen 60% into the window ..."). Keep the
    first clause of each shape (numbers ignored), at most ``limit``."""
    seen: set[str] = set()
    out: list[str] = []
    for reason in reasons:
        for clause in reason.split("; "):
            clause = clause.strip()
            shape = _NUMBER.sub("#", clause)
            if not clause or shape in seen:
                continue
            seen.add(shape)
            out.append(clause)
    return tuple(out[:limit]) + ((f"{len(out) - limit} more",) if len(out) > limit else ())


def anomaly_rows(flagged: pl.DataFrame, limit: int = MAX_ROWS) -> tuple[AnomalyRow, ...]:
    """Flagged connections (connection columns plus ``score``, ``reasons`` and optionally
    ``rule``) per source and destination, worst first."""
    if flagged.height == 0:
        return ()
    rule = pl.col("rule") if "rule" in flagged.columns else pl.lit(None, dtype=pl.String)
    reasons = (
        pl.col("reasons") if "reasons" in flagged.columns else pl.lit([], dtype=pl.List(pl.String))
    )
    pairs = (
        _per_pair(
            flagged.with_columns(rule.alias("_rule"), reasons.alias("_reasons")),
            pl.col("score").max(),
            pl.col("_rule").drop_nulls().unique().sort().alias("rules"),
            pl.col("_reasons").explode().drop_nulls().unique(maintain_order=True)
            .head(6).alias("why"),
        )
        .sort(["score", "src_key", "dst_key"], descending=[True, False, False], nulls_last=True)
    )  # fmt: skip
    rows = [
        AnomalyRow(
            r["src_key"] or "?",
            r["dst_key"] or "?",
            ports_summary(r["ports"]),
            int(r["connections"] or 0),
            float(r["score"] or 0.0),
            tuple([f"rule: {x}" for x in r["rules"]]) + short_reasons([str(x) for x in r["why"]]),
        )
        for r in pairs.iter_rows(named=True)
    ]
    return tuple(fold_destinations(rows)[:limit])
