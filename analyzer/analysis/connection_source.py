"""Where an analysis gets its connections: the one seam between the flows and everything else.

Today connections are derived from the raw flow rows of the time window
(``derive_connections``, replies removed, duplicates collapsed). A rollup written at ingest can
replace the body of :func:`connections_for` without any consumer noticing: they all receive
``Connections`` from here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from analyzer.analysis.inputs import FlowSource
from analyzer.analysis.scope import Scope
from analyzer.connections import Connections, derive_connections

__all__ = ["FlowCounts", "connections_for", "flow_counts", "flows_in"]


def flows_in(source: FlowSource, scope: Scope) -> pl.LazyFrame:
    """The flow rows of ``scope``'s time window."""
    flows = source.scan()
    condition = scope.flow_filter()
    return flows if condition is None else flows.filter(condition)


def connections_for(source: FlowSource, scope: Scope) -> Connections:
    """The connection requests of the flows in ``scope``'s time window (every namespace: the
    namespaces filter results, never what is derived)."""
    return derive_connections(flows_in(source, scope))


@dataclass(frozen=True, slots=True)
class FlowCounts:
    """Flow records of the window, and those whose addresses or pod names were masked or
    aggregated away (Calico aggregation, field masks)."""

    records: int
    masked: int


def flow_counts(source: FlowSource, scope: Scope) -> FlowCounts:
    """Count the flow records of ``scope``'s window (one pass over the flows)."""

    def masked(side: str) -> pl.Expr:
        name = pl.col(f"{side}_pod")
        return (pl.col(f"{side}_entity") == "pod") & (
            pl.col(f"{side}_ip").is_null()
            | name.is_null()
            | name.str.contains("*", literal=True)
            | (name == "-")
        )

    row = (
        flows_in(source, scope)
        .select(
            pl.len().alias("rows"),
            (masked("src") | masked("dst")).fill_null(False).sum().alias("masked"),
        )
        .collect(engine="streaming")
    )
    return FlowCounts(int(row["rows"][0]), int(row["masked"][0] or 0))
