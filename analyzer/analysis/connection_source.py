"""Where an analysis gets its connections: the one seam between the flows and everything else.

Without a time window, a store's connections come from its rollup (written at ingest, see
``analyzer.store.rollup``) when that is fresh, else from ``derive_connections`` over the raw
flow rows (replies removed, duplicates collapsed): the rollup is that derivation, done once.

A ``--since``/``--until`` window is rounded out to whole time buckets of the source's schedule
and means *the connections of the whole-source derivation observed in those buckets*
(``analyzer.connections.buckets``): the rollup's per-bucket rows summed, or, without a fresh
rollup, the same definition applied to the raw flows (``derive_bucketed``) -- byte-identical.
Consumers all receive ``Connections`` from here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import polars as pl

from analyzer import schema as S
from analyzer.analysis.inputs import FlowSource
from analyzer.analysis.scope import Scope
from analyzer.connections import (
    Connections,
    derive_bucketed,
    derive_connections,
    window_connections,
)
from analyzer.connections.buckets import in_window
from analyzer.identity.seen import SeenTable
from analyzer.store.flow_summary import read_endpoints
from analyzer.store.rollup import flow_record_counts

__all__ = [
    "FlowCounts",
    "connections_for",
    "endpoints_for",
    "flow_counts",
    "flows_in",
    "window_of",
]


def window_of(source: FlowSource, scope: Scope) -> tuple[datetime | None, datetime | None]:
    """``scope``'s window rounded out to whole buckets (the window every command uses)."""
    schedule = source.buckets()
    since = schedule.floor(scope.since) if scope.since is not None else None
    until = schedule.ceil(scope.until) if scope.until is not None else None
    return since, until


def _iso(t: datetime | None) -> str:
    return "-" if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def flows_in(source: FlowSource, scope: Scope) -> pl.LazyFrame:
    """The flow rows of ``scope``'s time window (rounded out to whole buckets)."""
    flows = source.scan()
    since, until = window_of(source, scope)
    conditions = [pl.lit(True)]
    if since is not None:
        conditions.append(pl.col(S.TIME) >= since)
    if until is not None:
        conditions.append(pl.col(S.TIME) < until)
    if len(conditions) == 1:
        return flows
    return flows.filter(pl.all_horizontal(conditions).fill_null(False))


def connections_for(source: FlowSource, scope: Scope) -> Connections:
    """The connection requests of ``scope``'s time window (every namespace: the namespaces
    filter results, never what is derived)."""
    rollup = source.rollup()
    if not scope.windowed:
        return rollup.connections() if rollup is not None else derive_connections(source.scan())
    since, until = window_of(source, scope)
    if rollup is not None:
        bucketed = rollup.bucketed()
    else:
        bucketed = derive_bucketed(source.scan(), source.buckets())[1]
    connections = window_connections(bucketed, since, until)
    if (since, until) == (scope.since, scope.until):
        return connections
    note = (
        f"time window rounded out to whole buckets ({bucketed.schedule.describe()}): "
        f"{_iso(since)} to {_iso(until)}"
    )
    stats = replace(connections.stats, warnings=[*connections.stats.warnings, note])
    return replace(connections, stats=stats)


@dataclass(frozen=True, slots=True)
class FlowCounts:
    """Flow records of the window, and those whose addresses or pod names were masked or
    aggregated away (Calico aggregation, field masks)."""

    records: int
    masked: int


def flow_counts(source: FlowSource, scope: Scope) -> FlowCounts:
    """Count the flow records of ``scope``'s window (the rollup's counts, or one pass over the
    flows of the rounded window: the same rows)."""
    rollup = source.rollup()
    if rollup is not None and not scope.windowed:
        return FlowCounts(rollup.records, rollup.masked)
    if rollup is not None:
        row = rollup.counts().filter(in_window(*window_of(source, scope))).select(
            pl.col("rows_in").sum(), pl.col("masked").sum()
        )
        return FlowCounts(int(row["rows_in"][0] or 0), int(row["masked"][0] or 0))
    return FlowCounts(*flow_record_counts(flows_in(source, scope)))


def endpoints_for(source: FlowSource, scope: Scope) -> SeenTable | pl.LazyFrame:
    """Where a named peer is looked up (``policy.peers``): the endpoint table the rollup
    carries (``identity.seen``, every row of the store), else the window's flow rows, of which
    ``peers`` reads only those naming the peer. A window needs the rows: the table is the whole
    store's."""
    rollup = source.rollup() if not scope.windowed else None
    table = read_endpoints(rollup.path) if rollup is not None else None
    return SeenTable(table) if table is not None else flows_in(source, scope)
