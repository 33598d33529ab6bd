"""Flagged edges for people (a table) and for scripts (JSON records), and the store entry point."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from analyzer.anomaly import _columns as c
from analyzer.anomaly._detect import AnomalyResult, detect_anomalies
from analyzer.anomaly.detector import DEFAULT_THRESHOLD

__all__ = ["detect_store_anomalies", "anomaly_records", "anomaly_table"]

_EDGE_FIELDS = (
    "src_name",
    "dst_name",
    c.SRC_GROUP,
    c.DST_GROUP,
    "src_namespace",
    "dst_namespace",
    c.PROTOCOL,
    c.DST_PORT,
    c.SCORE,
    "model_score",
    c.RULE,
    c.REASONS,
    "connections",
    "denied",
    "first_seen",
    "last_seen",
)


def detect_store_anomalies(
    store_dir: Path,
    *,
    namespaces: Sequence[str] | None = None,
    random_state: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
) -> AnomalyResult:
    """Derive the connections of a flow store and flag its anomalies (`analyzer anomalies`).

    Raises
    ------
    StoreError
        When `store_dir` is not a flow store.
    """
    from analyzer.connections import derive_connections
    from analyzer.store import FlowStore

    connections = derive_connections(FlowStore.open(store_dir).scan())
    return detect_anomalies(
        connections.frame,
        random_state=random_state,
        threshold=threshold,
        namespaces=namespaces,
    )


def _flagged_edges(result: AnomalyResult) -> pl.DataFrame:
    if result.edges.height == 0:
        return pl.DataFrame()
    return result.edges.filter(pl.col("flagged")).sort(
        [c.SCORE, *c.EDGE_KEYS], descending=[True, False, False, False, False], nulls_last=True
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, float):
        return round(value, 4)
    return value


def anomaly_records(result: AnomalyResult) -> list[dict[str, Any]]:
    """One JSON-able dict per flagged edge, most anomalous first, with its endpoints."""
    edges = _flagged_edges(result)
    if edges.height == 0:
        return []
    endpoints = result.flagged.group_by([*c.EDGE_KEYS], maintain_order=True).agg(
        pl.concat_str([pl.col(c.SRC_KEY), pl.lit(" -> "), pl.col(c.DST_KEY)])
        .unique(maintain_order=True)
        .alias("endpoints")
    )
    joined = edges.select(list(_EDGE_FIELDS)).join(
        endpoints, on=list(c.EDGE_KEYS), how="left", nulls_equal=True, maintain_order="left"
    )
    records = []
    for row in joined.iter_rows(named=True):
        records.append({key: _jsonable(value) for key, value in row.items()})
    return records


def _port(row: dict[str, Any]) -> str:
    port = row[c.DST_PORT]
    return str(row[c.PROTOCOL]) if port is None else f"{row[c.PROTOCOL]}/{port}"


def anomaly_table(result: AnomalyResult) -> str:
    """A fixed-width table of flagged edges with the first reason of each, and a summary line."""
    records = anomaly_records(result)
    s = result.summary
    summary = (
        f"{s.flagged_edges} of {s.edges} edges flagged "
        f"({', '.join(f'{k} {v}' for k, v in s.by_rule.items()) or 'no rule hits'}; "
        f"model {s.model_flagged}); threshold {s.threshold:.2f}"
    )
    if not records:
        return f"no anomalies: {summary}"
    header = ("SCORE", "RULE", "SOURCE", "DESTINATION", "PORT", "CONNS", "REASON")
    rows = [
        (
            f"{r[c.SCORE]:.2f}",
            r[c.RULE] or "model",
            str(r["src_name"]),
            str(r["dst_name"]),
            _port(r),
            str(r["connections"]),
            r[c.REASONS][0] if r[c.REASONS] else "",
        )
        for r in records
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header[:-1])]
    lines = []
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines.append("")
    lines.append(summary)
    return "\n".join(lines)
