"""Precision and recall of `detect_anomalies` against a generator's ground truth (truth.json).

An edge (source group, destination group, protocol, port) is an *attack edge* when any of its
connection rows matches an attack path of the truth: the source pod carries the path's source
labels in its namespace, the destination carries the destination's labels (or has one of its
addresses), and protocol and port agree. Precision and recall are counted over edges, because
an edge is what an allow rule admits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from analyzer import schema as c
from analyzer.anomaly._detect import AnomalyResult

__all__ = ["EdgeMetrics", "attack_rows", "evaluate_against_truth"]


@dataclass(frozen=True, slots=True)
class EdgeMetrics:
    """Edge-level confusion counts and the derived rates."""

    attack_edges: int
    legit_edges: int
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        """Flagged edges that are attacks; 1.0 when nothing was flagged."""
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        """Attack edges that were flagged; 1.0 when there were none."""
        return self.true_positives / self.attack_edges if self.attack_edges else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "attack_edges": self.attack_edges,
            "legit_edges": self.legit_edges,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
        }


def _peer(side: str, spec: Mapping[str, Any]) -> pl.Expr | None:
    """Rows whose `side` endpoint is the truth's peer; None when the spec cannot match a row."""
    if spec.get("kind") == "pod":
        labels = [f"{k}={v}" for k, v in sorted(dict(spec.get("labels") or {}).items())]
        expr: pl.Expr = pl.col(f"{side}_namespace") == str(spec["namespace"])
        for label in labels:
            expr = expr & pl.col(f"{side}_labels").list.contains(label)
        # Not narrowed to the path's pod: aggregated formats (Calico) name pods by prefix, and
        # an edge is between groups anyway.
        return expr
    ips = [*(spec.get("ips") or []), *([spec["ip"]] if spec.get("ip") else [])]
    if ips:
        # Aggregated formats drop addresses outside the pod network and keep only the kind of
        # network (Calico `net` with `pvt`/`pub`); such a row stands for the addresses too.
        aggregated = pl.col(f"{side}_ip").is_null() & pl.col(f"{side}_entity").is_in(
            ["world", "private-network", "public-network", "network-set"]
        )
        return pl.col(f"{side}_ip").is_in([str(ip) for ip in ips]) | aggregated
    if spec.get("kind"):
        return pl.col(f"{side}_entity") == str(spec["kind"])
    return None


def attack_rows(connections: pl.DataFrame, attack_paths: Sequence[Mapping[str, Any]]) -> pl.Series:
    """Boolean series: which connection rows belong to an attack path of the truth."""
    parts: list[pl.Expr] = []
    for path in attack_paths:
        src = _peer("src", path["source"])
        dst = _peer("dst", path["destination"])
        if src is None or dst is None:
            continue
        parts.append(
            src
            & dst
            & (pl.col(c.PROTOCOL) == path["protocol"])
            & (pl.col(c.DST_PORT) == int(path["port"]))
        )
    if not parts or connections.height == 0:
        return pl.Series("attack", [False] * connections.height, dtype=pl.Boolean)
    return connections.select(pl.any_horizontal(parts).fill_null(False).alias("attack")).to_series()


def evaluate_against_truth(
    connections: pl.DataFrame, result: AnomalyResult, truth: Mapping[str, Any]
) -> EdgeMetrics:
    """Edge-level precision and recall of `result` (from `connections`) against `truth`.

    Parameters
    ----------
    connections
        The frame given to `detect_anomalies` (all namespaces).
    result
        Its result.
    truth
        The generator's truth.json (``attack_paths`` entries as written by ``generate``).
    """
    keyed = connections.with_columns(
        attack_rows(connections, truth.get("attack_paths", [])),
        pl.col(c.SRC_GROUP).fill_null(pl.col(c.SRC_KEY)),
        pl.col(c.DST_GROUP).fill_null(pl.col(c.DST_KEY)),
    )
    edges = keyed.group_by(list(c.EDGE_KEYS)).agg(pl.col("attack").any())
    if result.edges.height:
        flagged = result.edges.select(*c.EDGE_KEYS, "flagged")
        edges = edges.join(flagged, on=list(c.EDGE_KEYS), how="left", nulls_equal=True)
        edges = edges.with_columns(pl.col("flagged").fill_null(False))
    else:
        edges = edges.with_columns(pl.lit(False).alias("flagged"))
    attack, hit = pl.col("attack"), pl.col("flagged")
    counts = edges.select(
        attack.sum().alias("attack_edges"),
        (~attack).sum().alias("legit_edges"),
        (attack & hit).sum().alias("tp"),
        (~attack & hit).sum().alias("fp"),
        (attack & ~hit).sum().alias("fn"),
    ).row(0, named=True)
    return EdgeMetrics(
        attack_edges=int(counts["attack_edges"]),
        legit_edges=int(counts["legit_edges"]),
        true_positives=int(counts["tp"]),
        false_positives=int(counts["fp"]),
        false_negatives=int(counts["fn"]),
    )
