"""The flagged edges as JSON-able records: what ``anomalies -o json``, ``recommend -o json``
(its ``anomalies`` list) and the report all list, one record per flagged edge (source
identity, destination identity, protocol, port), most anomalous first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from analyzer import schema as c
from analyzer.anomaly._detect import AnomalyResult

__all__ = ["flagged_edge_records"]

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


def flagged_edge_records(result: AnomalyResult) -> list[dict[str, Any]]:
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
