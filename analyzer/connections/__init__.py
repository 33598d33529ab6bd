"""Flow records to connection requests: replies removed, duplicates collapsed.

One TCP connection produces many Hubble events (several observation points, both nodes,
replies, SYN retransmits); one Calico connection is reported by both ends. Rules need
*requests*, counted once. The steps, all polars expressions on a lazy frame:

1. classify every row as request, reply, undecidable or ignored drop (`_direction.classify`);
2. decide rows whose direction is still unknown from ports (`_direction.port_rule`);
3. Hubble-style rows: sort by 5-tuple and time; a new connection starts at the first row of a
   5-tuple or after an idle gap (60 s for TCP, which covers SYN retransmits; 30 s otherwise);
4. Calico aggregates: the two reporters describe the same connections, so each side's
   ``flow_count`` is summed and the larger side counts (see `_dedupe.calico_edges`);
5. one row per (src endpoint, dst endpoint, protocol, dst port, outcome), with endpoint
   attributes joined back from a per-endpoint table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from analyzer import schema as S
from analyzer.connections._dedupe import (
    calico_edges,
    edge_aggs,
    empty_cal,
    empty_hub,
    endpoint_names,
    endpoint_scalars,
    partitioned_hubble,
    read_endpoints,
)
from analyzer.connections._derive_columns import (
    _CLASS,
    _EDGE,
    _IGNORED,
    _LS,
    _REPLY,
    _REQUEST,
    _ROW,
    _SOCK,
    _UNDECIDED,
    _VIP,
    CALICO_FORMATS,
    EPHEMERAL_MIN,
    OTHER_IDLE,
    POLICY_DROP_REASONS,
    TCP_IDLE,
    side_columns,
)
from analyzer.connections._direction import (
    classify,
    port_rule,
    request_rows,
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
    instead (``_dedupe.partitioned_hubble``)."""
    frame, counts, proxied, buckets = _derive(flows, tcp_idle, other_idle, schedule, spill)
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


def masked_expr() -> pl.Expr:
    """Flow rows whose addresses or pod names were masked or aggregated away (Calico
    aggregation, field masks)."""

    def side(name: str) -> pl.Expr:
        pod = pl.col(f"{name}_pod")
        return (pl.col(f"{name}_entity") == "pod") & (
            pl.col(f"{name}_ip").is_null()
            | pod.is_null()
            | pod.str.contains("*", literal=True)
            | (pod == "-")
        )

    return (side("src") | side("dst")).fill_null(False)


def _derive(
    flows: pl.LazyFrame | pl.DataFrame,
    tcp_idle: timedelta,
    other_idle: timedelta,
    schedule: Buckets | None,
    spill: Path | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, int, pl.DataFrame | None]:
    """The connection frame, the row counts (one row, or one per bucket with ``schedule``),
    the proxy legs collapsed, and with ``schedule`` the per-bucket edge rows."""
    lf = flows.lazy() if isinstance(flows, pl.DataFrame) else flows
    _check_columns(lf)
    bucket = schedule.expr if schedule is not None else None
    # a row index lets label lists be read back for a few rows instead of carried for all
    lf = lf.with_row_index(_ROW)
    classified = lf.with_columns(classify().alias(_CLASS))
    calico = pl.col(S.SOURCE_FORMAT).is_in(CALICO_FORMATS).fill_null(False)
    listening, present = pl.collect_all(
        [
            classified.filter(
                (pl.col(_CLASS) == _REQUEST)
                & pl.col(S.DST_PORT).is_not_null()
                & pl.col(S.PROTOCOL).is_not_null()
            )
            .group_by(S.PROTOCOL)
            .agg(pl.col(S.DST_PORT).unique().sort()),
            classified.select(calico.any().alias("calico"), (~calico).any().alias("hubble")),
        ],
        engine="streaming",
    )
    ports = {row[0]: list(row[1]) for row in listening.iter_rows()}
    decided = classified.with_columns(
        pl.col(_CLASS).alias("_class0"), port_rule(ports).alias(_CLASS)
    )
    cls = pl.col(_CLASS)
    is_req = cls == _REQUEST
    count_exprs = [
        pl.len().cast(pl.Int64).alias("rows_in"),
        is_req.sum().alias("requests"),
        (cls == _REPLY).sum().alias("replies"),
        (cls == _UNDECIDED).sum().alias("undecidable"),
        (cls == _IGNORED).sum().alias("ignored"),
        (cls == _SOCK).sum().alias("sock"),
        (cls == _VIP).sum().alias("vip"),
        ((pl.col("_class0") == _UNDECIDED) & (cls != _UNDECIDED)).sum().alias("by_ports"),
        pl.col(S.TIME).filter(is_req).min().alias("first"),
        pl.coalesce(S.END_TIME, S.TIME).filter(is_req).max().alias("last"),
    ]
    if bucket is None:
        counts_q = decided.select(count_exprs)
    else:
        counts_q = decided.group_by(bucket(pl.col(S.TIME)).alias(BUCKET)).agg(
            *count_exprs, masked_expr().sum().cast(pl.Int64).alias("masked")
        )
    req = request_rows(decided)
    # Each query streams over the flows on its own: sharing one scan would cache every
    # request row in memory (the cost of a few more scans buys bounded memory).
    no_cse = pl.QueryOptFlags(comm_subplan_elim=False)

    def collect(query: pl.LazyFrame) -> pl.DataFrame:
        return query.collect(engine="streaming", optimizations=no_cse)

    counts = collect(counts_q)
    scalars = collect(endpoint_scalars(req))
    names = collect(endpoint_names(req))
    keyed = [*_EDGE, BUCKET] if bucket is not None else _EDGE
    hub = empty_hub(bucket is not None)
    if present["hubble"][0]:
        requests = int(counts["requests"].sum() or 0)
        hub = partitioned_hubble(
            req, requests, tcp_idle, other_idle, bucket, spill=spill, collect=collect
        )
    cal = collect(calico_edges(req, bucket)) if present["calico"][0] else empty_cal(
        bucket is not None
    )
    endpoints = read_endpoints(lf, scalars, names)
    hashes = endpoints.select(pl.col("key"), pl.col("key").hash().alias("_h"))
    for side, column in (("src", SRC_KEY), ("dst", DST_KEY)):
        hub = hub.join(
            hashes.rename({"key": column, "_h": f"_{side}_h"}), on=f"_{side}_h", how="left"
        ).drop(f"_{side}_h")
    edges = pl.concat([hub.select(cal.columns), cal], how="vertical_relaxed")
    edges = edges.group_by(keyed).agg(edge_aggs())
    per_bucket = None
    if bucket is not None:
        per_bucket, edges = edges, edges.group_by(_EDGE).agg(edge_aggs())
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
