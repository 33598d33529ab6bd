"""Where an analysis gets its connections: the one seam between the flows and everything else.

Without a time window, a store's connections come from its rollup (written at ingest, see
``analyzer.store.rollup``) when that is fresh; otherwise (a ``--since``/``--until`` window, flow
files, a stale rollup) they are derived from the raw flow rows (``derive_connections``, replies
removed, duplicates collapsed). Both give the same rows: the rollup is that derivation, done
once. Consumers all receive ``Connections`` from here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from analyzer.analysis.inputs import FlowSource
from analyzer.analysis.scope import Scope
from analyzer.connections import Connections, derive_connections
from analyzer.store.rollup import Rollup, flow_record_counts

__all__ = ["FlowCounts", "connections_for", "flow_counts", "flows_in"]


def flows_in(source: FlowSource, scope: Scope) -> pl.LazyFrame:
    """The flow rows of ``scope``'s time window."""
    flows = source.scan()
    condition = scope.flow_filter()
    return flows if condition is None else flows.filter(condition)


def _rollup(source: FlowSource, scope: Scope) -> Rollup | None:
    """The store's fresh rollup when it answers for ``scope`` (no time window)."""
    return None if scope.windowed else source.rollup()


def connections_for(source: FlowSource, scope: Scope) -> Connections:
    """The connection requests of the flows in ``scope``'s time window (every namespace: the
    namespaces filter results, never what is derived)."""
    rollup = _rollup(source, scope)
    if rollup is not None:
        return rollup.connections()
    return derive_connections(flows_in(source, scope))


@dataclass(frozen=True, slots=True)
class FlowCounts:
    """Flow records of the window, and those whose addresses or pod names were masked or
    aggregated away (Calico aggregation, field masks)."""

    records: int
    masked: int


def flow_counts(source: FlowSource, scope: Scope) -> FlowCounts:
    """Count the flow records of ``scope``'s window (the rollup's counts, or one pass over the
    flows)."""
    rollup = _rollup(source, scope)
    if rollup is not None:
        return FlowCounts(rollup.records, rollup.masked)
    return FlowCounts(*flow_record_counts(flows_in(source, scope)))
