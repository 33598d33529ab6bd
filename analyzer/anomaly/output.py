"""Flagged edges for people (a table) and for scripts (JSON records), and the store entry point."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from analyzer.anomaly import _columns as c
from analyzer.anomaly._detect import AnomalyResult, detect_anomalies
from analyzer.anomaly.defaults import DEFAULT_THRESHOLD

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
    if namespaces:
        from analyzer.k8s.namespaces import namespaces_in, require_known

        require_known(namespaces, namespaces_in(connections.frame), where="the flow store")
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


def _ports(ports: list[str]) -> str:
    shown = ", ".join(ports[:3])
    return f"{len(ports)} ports ({shown}{', ...' if len(ports) > 3 else ''})"


def _findings(records: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Table rows: a scan is one row per (source, destination), a sweep one per (source, port).

    Records come most anomalous first, so the first record of a finding gives its score and
    reason; the order of findings follows their first record.
    """
    grouped: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in records:
        rule = str(r[c.RULE] or "model")
        key: tuple[str, ...]
        if rule == "port_scan":
            key = (rule, r["src_name"], r["dst_name"])
        elif rule == "host_sweep":
            key = (rule, r["src_name"], _port(r))
        else:
            key = (rule, r["src_name"], r["dst_name"], _port(r))
        grouped.setdefault(key, []).append(r)
    rows: list[tuple[str, ...]] = []
    for found, members in grouped.items():
        top = members[0]
        ports = list(dict.fromkeys(_port(m) for m in members))
        dsts = list(dict.fromkeys(str(m["dst_name"]) for m in members))
        rows.append(
            (
                f"{top[c.SCORE]:.2f}",
                found[0],
                str(top["src_name"]),
                dsts[0] if len(dsts) == 1 else f"{len(dsts)} destinations",
                ports[0] if len(ports) == 1 else _ports(ports),
                str(sum(int(m["connections"]) for m in members)),
                top[c.REASONS][0] if top[c.REASONS] else "",
            )
        )
    return rows


def anomaly_table(result: AnomalyResult) -> str:
    """Findings for people: scans and sweeps folded into one row each, then a summary line.

    `-o json` lists every flagged edge with all of its reasons.
    """
    records = anomaly_records(result)
    s = result.summary
    summary = (
        f"{s.flagged_edges} of {s.edges} edges flagged "
        f"({', '.join(f'{k} {v}' for k, v in s.by_rule.items()) or 'no rule hits'}; "
        f"model {s.model_flagged}); model threshold {s.threshold:.2f}"
    )
    if not records:
        return f"no anomalies: {summary}"
    header = ("SCORE", "RULE", "SOURCE", "DESTINATION", "PORT", "CONNS", "REASON")
    rows = _findings(records)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header[:-1])]
    lines = []
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines.append("")
    lines.append(summary)
    lines.extend(f"suspect: {suspect.message()}" for suspect in s.suspects)
    return "\n".join(lines)
