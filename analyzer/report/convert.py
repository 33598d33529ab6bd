"""Turn the connection frame (analyzer.connections contract) into graph, denied and anomaly rows.

Only the documented columns of the connections frame are used, so these functions can be fed
a hand-built frame in tests. Aggregation happens in polars; Python only sees the few hundred
resulting groups and edges.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace

import polars as pl

from analyzer.connections import side_columns
from analyzer.report.collapse import collapse_peers, fold_destinations
from analyzer.report.model import AnomalyRow, DeniedRow, GraphEdge, GraphModel, GraphNode

__all__ = [
    "NAMING_LABELS",
    "anomaly_rows",
    "denied_rows",
    "edge_key",
    "graph_from_connections",
    "port_text",
]

# The label that names a workload, most preferred first (the same preference as selectors).
NAMING_LABELS = ("app.kubernetes.io/name", "app", "k8s-app", "name", "component")
MAX_DETAIL = 12
MAX_ROWS = 300


def port_text(protocol: str | None, port: int | None) -> str:
    """``TCP/8080``; a bare protocol for ICMP and other portless protocols."""
    proto = protocol or "?"
    return proto if port is None else f"{proto}/{port}"


def edge_key(src: str, dst: str, protocol: str | None, port: int | None) -> tuple[str, str, str]:
    return (src, dst, port_text(protocol, port))


def _node_label(
    kind: str,
    labels: Sequence[str],
    workload: str | None,
    pod: str | None,
    ip: str | None,
    entity: str | None,
    names: Sequence[str],
) -> str:
    if kind == "pod":
        by_key = dict(lbl.partition("=")[::2] for lbl in labels)
        for key in NAMING_LABELS:
            if key in by_key and by_key[key]:
                return by_key[key]
        if labels:
            return labels[0]
        return workload or pod or "(no labels)"
    if kind == "ip":
        return f"{names[0]} ({ip})" if names else (ip or "?")
    return entity or "?"


def _side(frame: pl.DataFrame, side: str) -> pl.DataFrame:
    """One row per (group, namespace) seen on this side, with its pods, labels and names."""
    return frame.select(
        *side_columns(side, "group", "namespace", "entity", "labels", "pod", "workload", "ip"),
        (
            pl.col(f"{side}_names")  # src_names is a later, additive column: may be absent
            if f"{side}_names" in frame.columns
            else pl.lit([], dtype=pl.List(pl.String))
        ).alias("names"),
    )


def _nodes(frame: pl.DataFrame) -> list[GraphNode]:
    sides = pl.concat([_side(frame, "src"), _side(frame, "dst")], how="vertical_relaxed")
    groups = (
        sides.filter(pl.col("group").is_not_null())
        .group_by("group")
        .agg(
            pl.col("namespace").drop_nulls().first(),
            pl.col("entity").drop_nulls().first(),
            pl.col("labels").drop_nulls().first(),
            pl.col("workload").drop_nulls().first(),
            pl.col("ip").drop_nulls().first(),
            pl.col("pod").drop_nulls().unique().sort().alias("pods"),
            pl.col("names").explode().drop_nulls().unique().sort().alias("names"),
        )
        .sort("group")
    )
    nodes: list[GraphNode] = []
    for row in groups.iter_rows(named=True):
        key: str = row["group"]
        kind = "pod" if key.startswith("pod:") else ("ip" if key.startswith("ip:") else "entity")
        labels: list[str] = row["labels"] or []
        pods: list[str] = row["pods"] or []
        names: list[str] = row["names"] or []
        namespace = (row["namespace"] or "") if kind == "pod" else ""
        label = _node_label(
            kind,
            labels,
            row["workload"],
            pods[0] if pods else None,
            row["ip"],
            row["entity"],
            names,
        )
        detail = [f"labels: {', '.join(labels)}" if labels else "labels: none"]
        detail += [f"pod {p}" for p in pods[:MAX_DETAIL]]
        if len(pods) > MAX_DETAIL:
            detail.append(f"… and {len(pods) - MAX_DETAIL} more pods")
        detail += [f"name {n}" for n in names[:MAX_DETAIL]]
        if kind == "ip" and row["ip"]:
            detail.append(f"address {row['ip']}")
        nodes.append(
            GraphNode(key, namespace, label, kind, len(pods) if kind == "pod" else 0, tuple(detail))
        )
    return _disambiguate(nodes)


def _disambiguate(nodes: list[GraphNode]) -> list[GraphNode]:
    """Two identities drawn with the same name in one namespace get their other labels added."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for n in nodes:
        seen[(n.namespace, n.label)] += 1
    out = []
    for n in nodes:
        if seen[(n.namespace, n.label)] > 1 and n.kind == "pod":
            labels = n.key.split(":", 2)[-1]
            n = replace(n, label=f"{n.label} [{labels}]")
        out.append(n)
    return out


def graph_from_connections(
    frame: pl.DataFrame, anomalous: Iterable[tuple[str, str, str]] = ()
) -> GraphModel:
    """Identity nodes and group-to-group edges with their ports and outcome.

    Parameters
    ----------
    frame
        A connections frame (one row per distinct request edge, `outcome` allowed/denied).
    anomalous
        ``edge_key(src_key, dst_key, protocol, port)`` of connections flagged as anomalous; the
        identity edges that contain one are marked.
    """
    if frame.height == 0:
        return GraphModel()
    port = (
        pl.when(pl.col("dst_port").is_null())
        .then(pl.col("protocol").fill_null("?"))
        .otherwise(pl.col("protocol").fill_null("?") + "/" + pl.col("dst_port").cast(pl.String))
    )
    flagged = pl.DataFrame(
        sorted(set(anomalous)),
        schema={"src_key": pl.String, "dst_key": pl.String, "_port": pl.String},
        orient="row",
    ).with_columns(pl.lit(True).alias("_anomalous"))
    marked = (
        frame.with_columns(port.alias("_port"))
        .join(flagged, on=["src_key", "dst_key", "_port"], how="left", nulls_equal=True)
        .with_columns(pl.col("_anomalous").fill_null(False))
    )
    edges = (
        marked.filter(pl.col("src_group").is_not_null() & pl.col("dst_group").is_not_null())
        .sort("protocol", "dst_port", nulls_last=True)  # ports in numeric order
        .group_by("src_group", "dst_group")
        .agg(
            pl.col("_port").unique(maintain_order=True).alias("ports"),
            pl.col("connections").sum(),
            pl.col("outcome").unique().sort().alias("outcomes"),
            pl.col("_anomalous").any(),
        )
        .sort("src_group", "dst_group")
    )
    out: list[GraphEdge] = []
    for row in edges.iter_rows(named=True):
        outcomes: list[str] = row["outcomes"]
        outcome = outcomes[0] if len(outcomes) == 1 else "mixed"
        out.append(
            GraphEdge(
                row["src_group"],
                row["dst_group"],
                tuple(row["ports"]),
                int(row["connections"] or 0),
                outcome,
                bool(row["_anomalous"]),
            )
        )
    return collapse_peers(GraphModel(tuple(_nodes(frame)), tuple(out)))


MAX_PORTS = 8


def _ports_summary(ports: Sequence[str]) -> str:
    shown = ", ".join(ports[:MAX_PORTS])
    return shown if len(ports) <= MAX_PORTS else f"{shown} … ({len(ports)} ports)"


def _per_pair(frame: pl.DataFrame, *extra: pl.Expr) -> pl.DataFrame:
    """One row per (source, destination): a scan of 30 ports is one line, not 30."""
    port = (
        pl.when(pl.col("dst_port").is_null())
        .then(pl.col("protocol").fill_null("?"))
        .otherwise(pl.col("protocol").fill_null("?") + "/" + pl.col("dst_port").cast(pl.String))
    )
    return (
        frame.with_columns(port.alias("_port"))
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
            _ports_summary(r["ports"]),
            int(r["connections"] or 0),
            r["last_seen"].isoformat() if r["last_seen"] is not None else "",
        )
        for r in denied.iter_rows(named=True)
    ]
    return tuple(fold_destinations(rows)[:limit])


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
            _ports_summary(r["ports"]),
            int(r["connections"] or 0),
            float(r["score"] or 0.0),
            tuple([f"rule: {x}" for x in r["rules"]] + [str(x) for x in r["why"]]),
        )
        for r in pairs.iter_rows(named=True)
    ]
    return tuple(fold_destinations(rows)[:limit])
