"""Flow records to connection requests: replies removed, duplicates collapsed.

One TCP connection produces many Hubble events (several observation points, both nodes,
replies, SYN retransmits); one Calico connection is reported by both ends. Rules need
*requests*, counted once. The steps, all polars expressions on a lazy frame:

1. classify every row as request, reply, undecidable or ignored drop (`_direction.classify`);
2. decide rows whose direction is still unknown from ports (`_direction.port_rule`);
3. Hubble-style rows: sort by 5-tuple and time; a new connection starts at the first row of a
   5-tuple or after an idle gap (60 s for TCP, which covers SYN retransmits; 30 s otherwise);
4. Calico aggregates: the two reporters describe the same connections, so each side's
   ``flow_count`` is summed and the larger side counts (see `_state._map_calico`);
5. one row per (src endpoint, dst endpoint, protocol, dst port, outcome), with endpoint
   attributes joined back from a per-endpoint table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from analyzer import schema as S
from analyzer.connections._derive_columns import (
    _EDGE,
    _LS,
    CALICO_FORMATS,
    EPHEMERAL_MIN,
    OTHER_IDLE,
    POLICY_DROP_REASONS,
    TCP_IDLE,
    masked_expr,
    side_columns,
)
from analyzer.connections._state import (
    DerivationState,
    derive_state,
    endpoint_range,
    finish_endpoints,
    finish_state,
    hubble_edges,
    merge_endpoints,
    merge_hubble_edges,
    merge_sessions,
    merge_states,
    session_range,
)
from analyzer.connections.buckets import (
    BUCKET,
    EDGE_INDEX,
    BucketedConnections,
    Buckets,
    sort_buckets,
    sort_counts,
)
from analyzer.errors import SchemaError
from analyzer.identity import drop_volatile_expr, group_key_expr
from analyzer.schema import (
    ALLOWED,
    AUDIT,
    CONNECTION_SCHEMA,
    CONNECTIONS,
    DENIED,
    DST_GROUP,
    DST_KEY,
    DST_NODE,
    EVENTS,
    FIRST_SEEN,
    LAST_SEEN,
    NODES,
    OUTCOME,
    SRC_GROUP,
    SRC_KEY,
    SRC_NODE,
)

__all__ = [
    "DerivationState",
    "derive_state",
    "merge_states",
    "merge_sessions",
    "session_range",
    "merge_endpoints",
    "endpoint_range",
    "finish_endpoints",
    "hubble_edges",
    "merge_hubble_edges",
    "finish_bucketed",
    "BucketedConnections",
    "Buckets",
    "derive_bucketed",
    "window_connections",
    "masked_expr",
    "Connections",
    "ConnectionStats",
    "derive_connections",
    "side_columns",
    "empty_connections",
    "CONNECTION_SCHEMA",
    "POLICY_DROP_REASONS",
    "SRC_KEY",
    "DST_KEY",
    "SRC_GROUP",
    "DST_GROUP",
    "OUTCOME",
    "CONNECTIONS",
    "EVENTS",
    "FIRST_SEEN",
    "LAST_SEEN",
    "NODES",
    "SRC_NODE",
    "DST_NODE",
    "AUDIT",
    "ALLOWED",
    "CALICO_FORMATS",
    "EPHEMERAL_MIN",
    "TCP_IDLE",
    "OTHER_IDLE",
    "DENIED",
]


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """What happened to the flow rows on the way to connections."""

    rows_in: int = 0
    requests: int = 0
    replies_removed: int = 0
    undecidable: int = 0
    non_policy_drops_ignored: int = 0
    sock_events_ignored: int = 0
    service_vip_ignored: int = 0
    duplicates_collapsed: int = 0
    decided_by_ports: int = 0
    proxy_legs_collapsed: int = 0
    connections: int = 0
    window: tuple[datetime | None, datetime | None] = (None, None)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Connections:
    """Deduplicated connection requests, one row per distinct edge (see CONNECTION_SCHEMA)."""

    frame: pl.DataFrame
    stats: ConnectionStats


def empty_connections() -> pl.DataFrame:
    """An empty connection frame with the contract's columns."""
    return pl.DataFrame(schema=CONNECTION_SCHEMA)


def _check_columns(lf: pl.LazyFrame) -> None:
    missing = [c for c in S.FLOW_COLUMNS if c not in lf.collect_schema()]
    if missing:
        raise SchemaError(
            "flows lack canonical columns (use analyzer.schema.conform): " + ", ".join(missing)
        )


def _attach(edges: pl.DataFrame, endpoints: pl.DataFrame) -> pl.DataFrame:
    # identity work happens once per endpoint, not once per edge
    endpoints = endpoints.with_columns(
        drop_volatile_expr("labels").alias("labels"),
        pl.col("namespace_labels").fill_null(pl.lit([], dtype=_LS)),
    ).with_columns(group_key_expr("namespace", "labels", "entity", "ip").alias("group"))

    def prefixed(side: str) -> pl.DataFrame:
        cols = {c: f"{side}_{c}" for c in endpoints.columns if c not in ("key", "names")}
        frame = endpoints.rename({"key": f"{side}_key", **cols})
        return frame.rename({"names": S.DST_NAMES if side == "dst" else S.SRC_NAMES})

    joined = edges.join(prefixed("src"), on=SRC_KEY, how="left").join(
        prefixed("dst"), on=DST_KEY, how="left"
    )
    joined = joined.with_columns(
        pl.col(S.SRC_NAMES, S.DST_NAMES).fill_null(pl.lit([], dtype=_LS)),
        pl.col(NODES).fill_null(pl.lit([], dtype=_LS)),
    )
    return joined.select(
        pl.col(name).cast(dtype) for name, dtype in CONNECTION_SCHEMA.items()
    ).sort(_EDGE, nulls_last=True)


def _collapse_proxy_legs(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Drop L7-proxy upstream legs that repeat a client connection that was also seen.

    With L7 rules Envoy opens its own connection to the server from the node's IP, and Hubble
    labels it with the *client's* identity but no pod name (hubble-flow-format.md, pitfall 8).
    Where the client leg of the same edge was observed too, the proxy leg is a duplicate; where
    it was not, the leg stays (it is the only evidence) but its node IP is not the pod's.
    """
    proxy = (
        pl.col(S.SRC_POD).is_null()
        & pl.col(S.SRC_NAMESPACE).is_not_null()
        & (pl.col(S.SRC_ENTITY) == "pod")
        & (pl.col(S.SRC_LABELS).list.len() > 0)
    )
    same = [SRC_GROUP, DST_KEY, S.PROTOCOL, S.DST_PORT, OUTCOME]
    direct = frame.filter(~proxy).select(same).unique()
    legs = frame.filter(proxy)
    if legs.height == 0:
        return frame, 0
    duplicate = legs.join(direct, on=same, how="semi", nulls_equal=True)
    kept = legs.join(direct, on=same, how="anti", nulls_equal=True).with_columns(
        pl.lit(None, pl.String()).alias(S.SRC_IP)
    )
    out = pl.concat([frame.filter(~proxy), kept]).sort(_EDGE, nulls_last=True)
    return out, int(duplicate[CONNECTIONS].sum() or 0)


def derive_connections(
    flows: pl.LazyFrame | pl.DataFrame,
    *,
    tcp_idle: timedelta = TCP_IDLE,
    other_idle: timedelta = OTHER_IDLE,
) -> Connections:
    """Derive deduplicated connection requests from canonical flow rows.

    Parameters
    ----------
    flows
        Rows in the canonical flow schema (`analyzer.schema.FLOW_SCHEMA`), e.g.
        ``FlowStore.scan()``; replies and drops included.
    tcp_idle, other_idle
        Events of one 5-tuple closer together than this belong to one connection (TCP: covers
        SYN retransmits; other protocols: UDP/ICMP "sessions").

    Returns
    -------
    Connections
        ``frame``: one row per (src endpoint, dst endpoint, protocol, dst port, outcome) with the
        columns of `CONNECTION_SCHEMA`; ``stats``: what was removed and why.

    Raises
    ------
    SchemaError
        When the frame lacks canonical flow columns.
    """
    frame, counts, proxied, _ = _derive(flows, tcp_idle, other_idle, None)
    return Connections(frame=frame, stats=_stats(counts.row(0, named=True), frame, proxied))


def derive_bucketed(
    flows: pl.LazyFrame | pl.DataFrame,
    schedule: Buckets,
    *,
    tcp_idle: timedelta = TCP_IDLE,
    other_idle: timedelta = OTHER_IDLE,
    spill: Path | None = None,
) -> tuple[Connections, BucketedConnections]:
    """``derive_connections`` of ``flows``, and the same connections per time bucket of
    ``schedule`` (see ``analyzer.connections.buckets``: what a time window means). The first
    equals ``derive_connections(flows)``; the buckets of each edge sum to its row.

    ``spill``: a directory for a temporary file that bounds memory on big inputs (the store's
    staging directory at ingest); without it, big inputs are scanned once more per partition
    instead (``_state._map_sessions``)."""
    lf = flows.lazy() if isinstance(flows, pl.DataFrame) else flows
    _check_columns(lf)
    state = derive_state(lf, tcp_idle=tcp_idle, other_idle=other_idle, spill=spill)
    return finish_bucketed(state, schedule)


def finish_bucketed(
    state: DerivationState,
    schedule: Buckets,
    hub: pl.DataFrame | None = None,
    endpoints: pl.DataFrame | None = None,
) -> tuple[Connections, BucketedConnections]:
    """``derive_bucketed`` of the rows whose derivation state is ``state`` (``derive_state``
    of them, or ``merge_states`` of the states of consecutive runs of them: the same).
    ``hub``: the Hubble edge rows of the sessions, finished range by range by the caller
    (``hubble_edges`` per ``session_range``, ``merge_hubble_edges``; ``state.sessions`` is
    then unused); ``endpoints``: the endpoint table, finished range by range by the caller
    (``finish_endpoints`` per ``endpoint_range``; ``state.endpoints`` is then unused)."""
    frame, counts, proxied, buckets = _finish(state, schedule, hub, endpoints)
    assert buckets is not None
    whole = counts.select(
        *(pl.col(c).sum() for c in counts.columns if c not in (BUCKET, "first", "last")),
        pl.col("first").min(),
        pl.col("last").max(),
    )
    stats = _stats(whole.row(0, named=True), frame, proxied)
    edges = frame.select(_EDGE).with_row_index(EDGE_INDEX)
    placed = buckets.join(edges, on=_EDGE, how="left", nulls_equal=True)
    # buckets of L7-proxy legs collapsed into their client's connection: counted, not kept
    legs = (
        placed.filter(pl.col(EDGE_INDEX).is_null())
        .group_by(BUCKET)
        .agg(pl.col(CONNECTIONS).sum().alias("proxied"))
    )
    counts = counts.join(legs, on=BUCKET, how="left", nulls_equal=True).with_columns(
        pl.col("proxied").fill_null(0)
    )
    bucketed = BucketedConnections(
        frame=frame,
        buckets=sort_buckets(placed.filter(pl.col(EDGE_INDEX).is_not_null())),
        counts=sort_counts(counts),
        schedule=schedule,
    )
    return Connections(frame=frame, stats=stats), bucketed


def window_connections(
    bucketed: BucketedConnections, since: datetime | None, until: datetime | None
) -> Connections:
    """The connections observed in the buckets from ``since`` to ``until`` (bucket
    boundaries), with the window's statistics (``analyzer.connections.buckets``)."""
    frame, row = bucketed.window(since, until)
    return Connections(frame=frame, stats=_stats(row, frame, int(row["proxied"] or 0)))


def _derive(
    flows: pl.LazyFrame | pl.DataFrame,
    tcp_idle: timedelta,
    other_idle: timedelta,
    schedule: Buckets | None,
    spill: Path | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, int, pl.DataFrame | None]:
    """The connection frame, the row counts (one row, or one per bucket with ``schedule``),
    the proxy legs collapsed, and with ``schedule`` the per-bucket edge rows: the finish of
    the map of every row (``_state``), the one code path of every derivation."""
    lf = flows.lazy() if isinstance(flows, pl.DataFrame) else flows
    _check_columns(lf)
    state = derive_state(lf, tcp_idle=tcp_idle, other_idle=other_idle, spill=spill)
    return _finish(state, schedule)


def _finish(
    state: DerivationState,
    schedule: Buckets | None,
    hub: pl.DataFrame | None = None,
    ends: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, int, pl.DataFrame | None]:
    edges, counts, endpoints, per_bucket = finish_state(state, schedule, hub, ends)
    frame, proxied = _collapse_proxy_legs(_attach(edges, endpoints))
    return frame, counts, proxied, per_bucket


def _stats(c: dict[str, object], frame: pl.DataFrame, proxied: int) -> ConnectionStats:
    def n(key: str) -> int:
        value = c.get(key)
        return int(value) if isinstance(value, int) else 0

    total = int(frame[CONNECTIONS].sum() or 0) if frame.height else 0
    warnings: list[str] = []
    if n("undecidable"):
        warnings.append(
            f"{n('undecidable')} flow rows left out: neither is_reply, TCP flags nor ports tell "
            "request from reply"
        )
    if n("vip"):
        warnings.append(
            f"{n('vip')} flow rows left out: addressed to a Service IP before translation "
            "(Service port, backend unknown); capture on the destination nodes to see them"
        )
    unlabelled = set()
    for side in ("src", "dst"):
        bare = frame.filter(
            (pl.col(f"{side}_entity") == "pod") & (pl.col(f"{side}_labels").list.len() == 0)
        )
        unlabelled.update(bare[f"{side}_key"].to_list())
    if unlabelled:
        warnings.append(
            f"{len(unlabelled)} pods carry no labels (flows exported with a field mask without "
            "labels?): they share one unlabelled group per namespace"
        )
    first, last = c.get("first"), c.get("last")
    return ConnectionStats(
        rows_in=n("rows_in"),
        requests=n("requests"),
        replies_removed=n("replies"),
        undecidable=n("undecidable"),
        non_policy_drops_ignored=n("ignored"),
        sock_events_ignored=n("sock"),
        service_vip_ignored=n("vip"),
        duplicates_collapsed=max(0, n("requests") - total),
        decided_by_ports=n("by_ports"),
        proxy_legs_collapsed=proxied,
        connections=total,
        window=(
            first if isinstance(first, datetime) else None,
            last if isinstance(last, datetime) else None,
        ),
        warnings=warnings,
    )
