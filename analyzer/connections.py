"""Flow records to connection requests: replies removed, duplicates collapsed.

One TCP connection produces many Hubble events (several observation points, both nodes,
replies, SYN retransmits); one Calico connection is reported by both ends. Rules need
*requests*, counted once. The steps, all polars expressions on a lazy frame:

1. classify every row as request, reply, undecidable or ignored drop (`_classify`);
2. decide rows whose direction is still unknown from ports (`_port_rule`);
3. Hubble-style rows: sort by 5-tuple and time; a new connection starts at the first row of a
   5-tuple or after an idle gap (60 s for TCP, which covers SYN retransmits; 30 s otherwise);
4. Calico aggregates: the two reporters describe the same connections, so each side's
   ``flow_count`` is summed and the larger side counts (see `_calico_edges`);
5. one row per (src endpoint, dst endpoint, protocol, dst port, outcome), with endpoint
   attributes joined back from a per-endpoint table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from analyzer import schema as S
from analyzer.errors import SchemaError
from analyzer.identity import drop_volatile_expr, group_key_expr

__all__ = [
    "Connections",
    "ConnectionStats",
    "derive_connections",
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
    "DENIED",
]

# --- connection frame columns (beside the flow-schema names it reuses) ------------------------
SRC_KEY = "src_key"
DST_KEY = "dst_key"
SRC_GROUP = "src_group"
DST_GROUP = "dst_group"
OUTCOME = "outcome"
CONNECTIONS = "connections"
EVENTS = "events"
FIRST_SEEN = "first_seen"
LAST_SEEN = "last_seen"
NODES = "nodes"
SRC_NODE = "src_node"
DST_NODE = "dst_node"
AUDIT = "audit"  # True when some event was an AUDIT verdict (would be denied if enforced)

ALLOWED = "allowed"
DENIED = "denied"

# Drop reasons that mean "a policy said no". Other drops (UNSUPPORTED_L3_PROTOCOL, CT_*,
# STALE_OR_UNROUTABLE_IP, ...) say nothing about policy and are ignored. A drop without a
# reason (Calico deny, field-masked Hubble) counts as a policy denial: never an allow.
POLICY_DROP_REASONS = ("POLICY_DENIED", "POLICY_DENY", "AUTH_REQUIRED")
CALICO_FORMATS = ("calico", "goldmane", "whisker")
EPHEMERAL_MIN = 32768
TCP_IDLE = timedelta(seconds=60)
OTHER_IDLE = timedelta(seconds=30)

_LS = pl.List(pl.String())
_TS = pl.Datetime("us", "UTC")
CONNECTION_SCHEMA: pl.Schema = pl.Schema(
    {
        SRC_KEY: pl.String(),
        DST_KEY: pl.String(),
        S.SRC_NAMESPACE: pl.String(),
        S.DST_NAMESPACE: pl.String(),
        S.SRC_POD: pl.String(),
        S.DST_POD: pl.String(),
        S.SRC_WORKLOAD: pl.String(),
        S.DST_WORKLOAD: pl.String(),
        S.SRC_IP: pl.String(),
        S.DST_IP: pl.String(),
        S.SRC_ENTITY: pl.String(),
        S.DST_ENTITY: pl.String(),
        S.SRC_LABELS: _LS,
        S.DST_LABELS: _LS,
        S.SRC_NAMESPACE_LABELS: _LS,
        S.DST_NAMESPACE_LABELS: _LS,
        SRC_GROUP: pl.String(),
        DST_GROUP: pl.String(),
        S.DST_NAMES: _LS,
        S.SRC_NAMES: _LS,
        S.PROTOCOL: pl.String(),
        S.DST_PORT: pl.Int32(),
        OUTCOME: pl.String(),
        CONNECTIONS: pl.Int64(),
        EVENTS: pl.Int64(),
        FIRST_SEEN: _TS,
        LAST_SEEN: _TS,
        NODES: _LS,
        SRC_NODE: pl.String(),
        DST_NODE: pl.String(),
        AUDIT: pl.Boolean(),
    }
)

# row classes
_REQUEST, _REPLY, _UNDECIDED, _IGNORED, _SOCK = 1, 2, 3, 4, 5
_CLASS = "_class"


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """What happened to the flow rows on the way to connections."""

    rows_in: int = 0
    requests: int = 0
    replies_removed: int = 0
    undecidable: int = 0
    non_policy_drops_ignored: int = 0
    sock_events_ignored: int = 0
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


def _flag(name: str) -> pl.Expr:
    return pl.col(S.TCP_FLAGS).fill_null("").str.contains(rf"(^|,){name}(,|$)")


def _classify() -> pl.Expr:
    """Request / reply / undecided / ignored, from everything but ports."""
    verdict = pl.col(S.VERDICT).fill_null("unknown")
    reason = pl.col(S.DROP_REASON)
    syn, ack = _flag("SYN"), _flag("ACK")
    icmp = pl.col(S.ICMP_TYPE)
    proto = pl.col(S.PROTOCOL).fill_null("")
    l7 = pl.col(S.L7_TYPE).fill_null("").str.to_lowercase()
    trace = pl.col(S.TRACE_REASON).fill_null("").str.to_uppercase()
    return (
        pl.when(
            ((verdict == "dropped") & reason.is_not_null() & ~reason.is_in(POLICY_DROP_REASONS))
            | (verdict == "error")
        )
        .then(pl.lit(_IGNORED))
        # socket-LB traces (Type SOCK) repeat the connect() of an L3/L4 connection, without a
        # source port and (TRACED) towards the Service VIP: never evidence of their own
        .when(pl.col(S.FLOW_TYPE) == "SOCK")
        .then(pl.lit(_SOCK))
        # Calico aggregates describe the initiating direction; replies are never separate rows.
        .when(pl.col(S.SOURCE_FORMAT).is_in(CALICO_FORMATS))
        .then(pl.lit(_REQUEST))
        .when(pl.col(S.IS_REPLY) == True)  # noqa: E712 (null-aware column comparison)
        .then(pl.lit(_REPLY))
        .when(pl.col(S.IS_REPLY) == False)  # noqa: E712
        .then(pl.lit(_REQUEST))
        .when(l7 == "response")
        .then(pl.lit(_REPLY))
        .when(l7 == "request")
        .then(pl.lit(_REQUEST))
        # policy-verdict events fire on the first packet of a connection
        .when(pl.col(S.EVENT_TYPE) == 5)
        .then(pl.lit(_REQUEST))
        .when(trace == "REPLY")
        .then(pl.lit(_REPLY))
        .when(trace == "NEW")
        .then(pl.lit(_REQUEST))
        .when(syn & ~ack)
        .then(pl.lit(_REQUEST))
        .when(syn & ack)
        .then(pl.lit(_REPLY))
        .when(((proto == "ICMPv4") & (icmp == 8)) | ((proto == "ICMPv6") & (icmp == 128)))
        .then(pl.lit(_REQUEST))
        .when(((proto == "ICMPv4") & (icmp == 0)) | ((proto == "ICMPv6") & (icmp == 129)))
        .then(pl.lit(_REPLY))
        # conntrack lets replies through: a policy drop is always a connection attempt
        .when(verdict == "dropped")
        .then(pl.lit(_REQUEST))
        .otherwise(pl.lit(_UNDECIDED))
        .cast(pl.Int8)
    )


def _listening(ports: dict[str, list[int]], port: str) -> pl.Expr:
    """A port that serves: privileged, or seen as the destination of a known request."""
    p = pl.col(port)
    expr = p < 1024
    for proto, values in ports.items():
        expr = expr | ((pl.col(S.PROTOCOL) == proto) & p.is_in(values))
    return expr.fill_null(False)


def _port_rule(ports: dict[str, list[int]]) -> pl.Expr:
    src_srv, dst_srv = _listening(ports, S.SRC_PORT), _listening(ports, S.DST_PORT)
    src_eph = (pl.col(S.SRC_PORT) >= EPHEMERAL_MIN).fill_null(False)
    dst_eph = (pl.col(S.DST_PORT) >= EPHEMERAL_MIN).fill_null(False)
    cls = pl.col(_CLASS)
    return (
        pl.when(cls != _UNDECIDED)
        .then(cls)
        .when(dst_srv & src_eph & ~src_srv)
        .then(pl.lit(_REQUEST, pl.Int8))
        .when(src_srv & dst_eph & ~dst_srv)
        .then(pl.lit(_REPLY, pl.Int8))
        .otherwise(cls)
    )


def _side_key(side: str) -> pl.Expr:
    """Endpoint key of a row: ``ns/pod``, else the IP, else ``reserved:<entity>``.

    A pod identity without a pod name at a non-pod address (an L7 proxy's upstream leg from
    the node IP) is keyed ``ip#identity``: one node IP proxies for many client identities.
    """
    ip = pl.col(f"{side}_ip")
    identity = pl.col(f"{side}_identity")
    proxied = (
        pl.col(f"{side}_namespace").is_not_null()
        & (pl.col(f"{side}_labels").list.len() > 0)
        & identity.is_not_null()
    )
    return pl.coalesce(
        _pod_key(side),
        pl.when((ip != "") & proxied).then(ip + pl.lit("#") + identity.cast(pl.String())),
        pl.when(ip != "").then(ip),
        pl.lit("reserved:") + pl.col(f"{side}_entity").fill_null("unknown"),
    )


def _pod_key(side: str) -> pl.Expr:
    ns, pod = pl.col(f"{side}_namespace"), pl.col(f"{side}_pod")
    return pl.when((ns != "") & (pod != "")).then(ns + pl.lit("/") + pod)


def _check_columns(lf: pl.LazyFrame) -> None:
    missing = [c for c in S.FLOW_COLUMNS if c not in lf.collect_schema()]
    if missing:
        raise SchemaError(
            "flows lack canonical columns (use analyzer.schema.conform): " + ", ".join(missing)
        )


# working columns of the request rows
_SPK, _DPK, _SK, _DK = "_src_pk", "_dst_pk", "_src_k", "_dst_k"
_DEN, _L7, _AUD, _SN, _DN, _LAST = "_denied", "_l7", "_audit", "_src_n", "_dst_n", "_last"
_EDGE = [SRC_KEY, DST_KEY, S.PROTOCOL, S.DST_PORT, OUTCOME]
_SRC_H, _DST_H = "_src_h", "_dst_h"
_EDGE_SCHEMA = pl.Schema(
    {
        **{c: CONNECTION_SCHEMA[c] for c in _EDGE},
        CONNECTIONS: pl.Int64(),
        EVENTS: pl.Int64(),
        FIRST_SEEN: _TS,
        LAST_SEEN: _TS,
        NODES: _LS,
        SRC_NODE: pl.String(),
        DST_NODE: pl.String(),
        AUDIT: pl.Boolean(),
    }
)


def _requests(decided: pl.LazyFrame) -> pl.LazyFrame:
    node = pl.col(S.NODE)
    direction = pl.col(S.DIRECTION).fill_null("")
    point = pl.col(S.OBSERVATION_POINT).fill_null("")
    return decided.filter(pl.col(_CLASS) == _REQUEST).with_columns(
        _pod_key("src").alias(_SPK),
        _pod_key("dst").alias(_DPK),
        _side_key("src").alias(_SK),
        _side_key("dst").alias(_DK),
        # only policy drops are left at this point
        (pl.col(S.VERDICT) == "dropped").fill_null(False).alias(_DEN),
        ((pl.col(S.FLOW_TYPE) == "L7") | (pl.col(S.EVENT_TYPE) == 129)).fill_null(False).alias(_L7),
        (pl.col(S.VERDICT) == "audit").fill_null(False).alias(_AUD),
        # traffic_direction is relative to the endpoint local to the observing node; the host
        # entity is always the observing node itself
        pl.when(
            (direction == "egress") | (point == "FROM_ENDPOINT") | (pl.col(S.SRC_ENTITY) == "host")
        )
        .then(node)
        .alias(_SN),
        pl.when(
            (direction == "ingress") | (point == "TO_ENDPOINT") | (pl.col(S.DST_ENTITY) == "host")
        )
        .then(node)
        .alias(_DN),
        pl.coalesce(S.END_TIME, S.TIME).alias(_LAST),
    )


def _edge_aggs() -> list[pl.Expr]:
    return [
        pl.col(CONNECTIONS).sum(),
        pl.col(EVENTS).sum(),
        pl.col(FIRST_SEEN).min(),
        pl.col(LAST_SEEN).max(),
        pl.col(NODES).explode().drop_nulls().unique().sort(),
        pl.col(SRC_NODE).drop_nulls().min(),
        pl.col(DST_NODE).drop_nulls().min(),
        pl.col(AUDIT).any(),
    ]


def _hubble_edges(req: pl.LazyFrame, tcp_idle: timedelta, other_idle: timedelta) -> pl.LazyFrame:
    """Per-event rows: sessions of one 5-tuple (several observation points, both nodes,
    retransmits) become one connection; a new one starts after an idle gap."""
    # the 5-tuple as one 64-bit hash: sorting by it keeps each tuple's rows together at a
    # fraction of the cost (and memory) of a multi-column string sort
    five_tuple = pl.struct(
        pl.coalesce(S.SRC_IP, _SK), S.SRC_PORT, pl.coalesce(S.DST_IP, _DK), S.DST_PORT, S.PROTOCOL
    ).hash()
    node = pl.col(S.NODE).cast(pl.Categorical())
    rows = req.filter(~pl.col(S.SOURCE_FORMAT).is_in(CALICO_FORMATS).fill_null(False)).select(
        five_tuple.alias("_h"),
        S.DST_PORT,
        pl.col(S.PROTOCOL).cast(pl.Categorical()),
        S.TIME,
        _LAST,
        node.alias(S.NODE),
        # endpoint keys travel as 64-bit hashes too (string min/max per connection is slow);
        # they are mapped back through the endpoint table, whose keys are hashed the same way
        *(
            pl.when(pl.col(c).is_not_null()).then(pl.col(c).hash()).alias(c)
            for c in (_SPK, _DPK, _SK, _DK)
        ),
        _DEN,
        _L7,
        _AUD,
        pl.col(_SN).cast(pl.Categorical()),
        pl.col(_DN).cast(pl.Categorical()),
    )
    same = pl.col("_h") == pl.col("_h").shift(1)
    idle = pl.when(pl.col(S.PROTOCOL) == "TCP").then(pl.lit(tcp_idle)).otherwise(pl.lit(other_idle))
    gap = pl.col(S.TIME) - pl.col(S.TIME).shift(1)
    new = (~same | (gap > idle)).fill_null(True)
    sessions = (
        rows.sort(["_h", S.TIME], nulls_last=True)
        .with_columns(new.cum_sum().alias("_conn"))
        .group_by("_conn")
        .agg(
            # max() skips nulls: the pod key when any event of the connection named the pod
            pl.coalesce(pl.col(_SPK).max(), pl.col(_SK).max()).alias(_SRC_H),
            pl.coalesce(pl.col(_DPK).max(), pl.col(_DK).max()).alias(_DST_H),
            pl.col(S.PROTOCOL).first(),
            pl.col(S.DST_PORT).first(),
            # denied when a L3/L4 policy drop hit it, or when nothing but denials was seen (an
            # L7 denial of one request does not deny the TCP connection that carried it)
            pl.when((pl.col(_DEN) & ~pl.col(_L7)).any() | pl.col(_DEN).all())
            .then(pl.lit(DENIED))
            .otherwise(pl.lit(ALLOWED))
            .alias(OUTCOME),
            pl.len().cast(pl.Int64).alias(EVENTS),
            pl.col(S.TIME).min().alias(FIRST_SEEN),
            pl.col(_LAST).max().alias(LAST_SEEN),
            # usually seen by two nodes at most (source's and destination's)
            pl.col(S.NODE).first().alias("_n1"),
            pl.col(S.NODE).last().alias("_n2"),
            pl.col(_SN).drop_nulls().first().alias(SRC_NODE),
            pl.col(_DN).drop_nulls().first().alias(DST_NODE),
            pl.col(_AUD).any().alias(AUDIT),
        )
        .with_columns(
            pl.col("_n1", "_n2", SRC_NODE, DST_NODE, S.PROTOCOL).cast(pl.String()),
            pl.lit(1, pl.Int64).alias(CONNECTIONS),
        )
        .with_columns(pl.concat_list("_n1", "_n2", SRC_NODE, DST_NODE).alias(NODES))
        .drop("_n1", "_n2")
    )
    return sessions.group_by([_SRC_H, _DST_H, S.PROTOCOL, S.DST_PORT, OUTCOME]).agg(_edge_aggs())


def _calico_edges(req: pl.LazyFrame) -> pl.LazyFrame:
    """Calico aggregates: ``flow_count`` connections each, reported by the source side and the
    destination side. A connection the source allowed can still be denied at the destination,
    so allowed = destination's count when it reports, else the source's; denied = both sides'
    denials (a connection denied at the source never reaches the destination)."""
    rows = req.filter(pl.col(S.SOURCE_FORMAT).is_in(CALICO_FORMATS).fill_null(False))
    fc = pl.col(S.FLOW_COUNT).fill_null(1).clip(lower_bound=1)
    rep = pl.col(S.REPORTER).fill_null("").str.to_lowercase()
    den = pl.col(_DEN)
    is_src, is_dst = rep == "src", rep == "dst"
    other = ~is_src & ~is_dst

    def side(outcome: str, keep: pl.Expr) -> list[pl.Expr]:
        return [
            keep.sum().cast(pl.Int64).alias(f"{outcome}_events"),
            pl.col(S.TIME).filter(keep).min().alias(f"{outcome}_first"),
            pl.col(_LAST).filter(keep).max().alias(f"{outcome}_last"),
            pl.col(S.NODE).filter(keep).drop_nulls().unique().alias(f"{outcome}_nodes"),
        ]

    agg = rows.group_by(
        [pl.col(_SK).alias(SRC_KEY), pl.col(_DK).alias(DST_KEY), S.PROTOCOL, S.DST_PORT]
    ).agg(
        fc.filter(is_src & ~den).sum().alias("a_src"),
        fc.filter(is_dst & ~den).sum().alias("a_dst"),
        fc.filter(other & ~den).sum().alias("a_oth"),
        fc.filter(is_src & den).sum().alias("d_src"),
        fc.filter(is_dst & den).sum().alias("d_dst"),
        fc.filter(other & den).sum().alias("d_oth"),
        is_src.any().alias("has_src"),
        is_dst.any().alias("has_dst"),
        pl.col(S.NODE).filter(is_src).drop_nulls().min().alias(SRC_NODE),
        pl.col(S.NODE).filter(is_dst).drop_nulls().min().alias(DST_NODE),
        *side(ALLOWED, ~den),
        *side(DENIED, den),
    )
    allowed = (
        pl.when(pl.col("has_dst"))
        .then(pl.col("a_dst"))
        .when(pl.col("has_src"))
        .then(pl.col("a_src"))
        .otherwise(pl.col("a_oth"))
    )
    denied = (
        pl.col("d_src")
        + pl.col("d_dst")
        + pl.when(pl.col("has_src") | pl.col("has_dst")).then(0).otherwise(pl.col("d_oth"))
    )
    keys = [SRC_KEY, DST_KEY, S.PROTOCOL, S.DST_PORT]
    parts = [
        agg.select(
            *keys,
            pl.lit(outcome).alias(OUTCOME),
            count.cast(pl.Int64).alias(CONNECTIONS),
            pl.col(f"{outcome}_events").alias(EVENTS),
            pl.col(f"{outcome}_first").alias(FIRST_SEEN),
            pl.col(f"{outcome}_last").alias(LAST_SEEN),
            pl.col(f"{outcome}_nodes").alias(NODES),
            SRC_NODE,
            DST_NODE,
            pl.lit(False).alias(AUDIT),
        ).filter(pl.col(CONNECTIONS) > 0)
        for outcome, count in ((ALLOWED, allowed), (DENIED, denied))
    ]
    return pl.concat(parts)


_ROW = "_row"
_LISTS = (S.SRC_LABELS, S.DST_LABELS, S.SRC_NAMESPACE_LABELS, S.DST_NAMESPACE_LABELS)


def _endpoint_scalars(req: pl.LazyFrame) -> pl.LazyFrame:
    """One row per endpoint key: namespace, pod, workload, ip, entity, and for each label list
    the row (``2 * row index + side``) of its latest non-empty value. Label lists themselves are
    fetched later for those rows only, so the big pass never holds millions of lists."""

    def side(name: str, bit: int) -> pl.LazyFrame:
        def row_of(column: str) -> pl.Expr:
            return pl.when(pl.col(column).list.len() > 0).then(pl.col(_ROW) * 2 + bit)

        return req.select(
            pl.col(f"_{name}_k").alias("key"),
            pl.col(f"{name}_namespace").alias("namespace"),
            pl.col(f"{name}_pod").alias("pod"),
            pl.col(f"{name}_workload").alias("workload"),
            pl.col(f"{name}_ip").alias("ip"),
            (pl.col(f"_{name}_pk").is_not_null() | (pl.col(f"{name}_entity") == "pod")).alias(
                "_is_pod"
            ),
            pl.col(f"{name}_entity").alias("entity"),
            row_of(f"{name}_labels").alias("_labels_row"),
            row_of(f"{name}_namespace_labels").alias("_ns_labels_row"),
        )

    return (
        pl.concat([side("src", 0), side("dst", 1)])
        .group_by("key")
        .agg(
            # one key has one namespace/pod/workload; max() skips nulls and streams
            *(pl.col(c).max() for c in ("namespace", "pod", "workload", "ip", "entity")),
            pl.col("_is_pod").any(),
            pl.col("_labels_row").max(),  # row order is ingest order: the latest set
            pl.col("_ns_labels_row").max(),
        )
        .with_columns(
            pl.when(pl.col("_is_pod"))
            .then(pl.lit("pod"))
            .otherwise(pl.col("entity"))
            .alias("entity")
        )
        .drop("_is_pod")
    )


def _endpoint_names(req: pl.LazyFrame) -> pl.LazyFrame:
    """DNS names per endpoint key (only rows that carry names are exploded)."""
    return (
        pl.concat(
            [
                req.select(pl.col(_SK).alias("key"), pl.col(S.SRC_NAMES).alias("names")),
                req.select(pl.col(_DK).alias("key"), pl.col(S.DST_NAMES).alias("names")),
            ]
        )
        .filter(pl.col("names").list.len() > 0)
        .explode("names")
        .unique()
        .group_by("key")
        .agg(pl.col("names").sort())
    )


def _endpoints(lf: pl.LazyFrame, scalars: pl.DataFrame, names: pl.DataFrame) -> pl.DataFrame:
    """Endpoint attributes with their label lists, read back for the chosen rows only."""
    wanted = pl.concat([scalars["_labels_row"], scalars["_ns_labels_row"]]).drop_nulls() // 2
    ids = wanted.unique().sort()
    lists = (
        lf.filter(pl.col(_ROW).is_in(ids.implode()))
        .select(_ROW, *_LISTS)
        .collect(engine="streaming")
    )
    by_side = pl.concat(
        [
            lists.select(
                (pl.col(_ROW) * 2 + bit).alias("_at"),
                pl.col(f"{side}_labels").alias("labels"),
                pl.col(f"{side}_namespace_labels").alias("namespace_labels"),
            )
            for side, bit in (("src", 0), ("dst", 1))
        ]
    )
    return (
        scalars.join(
            by_side.select("_at", "labels"), left_on="_labels_row", right_on="_at", how="left"
        )
        .join(
            by_side.select("_at", "namespace_labels"),
            left_on="_ns_labels_row",
            right_on="_at",
            how="left",
        )
        .drop("_labels_row", "_ns_labels_row")
        .join(names, on="key", how="left")
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
    lf = flows.lazy() if isinstance(flows, pl.DataFrame) else flows
    _check_columns(lf)
    # a row index lets label lists be read back for a few rows instead of carried for all
    lf = lf.with_row_index(_ROW)
    classified = lf.with_columns(_classify().alias(_CLASS))
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
        pl.col(_CLASS).alias("_class0"), _port_rule(ports).alias(_CLASS)
    )
    cls = pl.col(_CLASS)
    is_req = cls == _REQUEST
    counts_q = decided.select(
        pl.len().alias("rows_in"),
        is_req.sum().alias("requests"),
        (cls == _REPLY).sum().alias("replies"),
        (cls == _UNDECIDED).sum().alias("undecidable"),
        (cls == _IGNORED).sum().alias("ignored"),
        (cls == _SOCK).sum().alias("sock"),
        ((pl.col("_class0") == _UNDECIDED) & (cls != _UNDECIDED)).sum().alias("by_ports"),
        pl.col(S.TIME).filter(is_req).min().alias("first"),
        pl.coalesce(S.END_TIME, S.TIME).filter(is_req).max().alias("last"),
    )
    req = _requests(decided)
    # Each query streams over the flows on its own: sharing one scan would cache every
    # request row in memory (the cost of a few more scans buys bounded memory).
    no_cse = pl.QueryOptFlags(comm_subplan_elim=False)
    queries = {
        "counts": counts_q,
        "scalars": _endpoint_scalars(req),
        "names": _endpoint_names(req),
        "hub": _hubble_edges(req, tcp_idle, other_idle) if present["hubble"][0] else None,
        "cal": _calico_edges(req) if present["calico"][0] else None,
    }
    done = {
        name: query.collect(engine="streaming", optimizations=no_cse)
        for name, query in queries.items()
        if query is not None
    }
    counts, scalars, names = done["counts"], done["scalars"], done["names"]
    hub = done.get("hub", _empty_hub())
    cal = done.get("cal", _empty_cal())
    endpoints = _endpoints(lf, scalars, names)
    hashes = endpoints.select(pl.col("key"), pl.col("key").hash().alias("_h"))
    for side, column in (("src", SRC_KEY), ("dst", DST_KEY)):
        hub = hub.join(
            hashes.rename({"key": column, "_h": f"_{side}_h"}), on=f"_{side}_h", how="left"
        ).drop(f"_{side}_h")
    edges = pl.concat([hub.select(cal.columns), cal], how="vertical_relaxed")
    edges = edges.group_by(_EDGE).agg(_edge_aggs())
    frame, proxied = _collapse_proxy_legs(_attach(edges, endpoints))
    return Connections(frame=frame, stats=_stats(counts.row(0, named=True), frame, proxied))


def _empty_hub() -> pl.DataFrame:
    schema = {k: v for k, v in _EDGE_SCHEMA.items() if k not in (SRC_KEY, DST_KEY)}
    return pl.DataFrame(schema={_SRC_H: pl.UInt64(), _DST_H: pl.UInt64(), **schema})


def _empty_cal() -> pl.DataFrame:
    return pl.DataFrame(schema=_EDGE_SCHEMA)


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
