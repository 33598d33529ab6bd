"""Features of each edge and of its source, its server and its port, computed with polars.

An *edge* is what one allow rule would admit: (source group, destination group, protocol,
port). Every feature is oriented so that a larger value is more suspicious, except where noted,
and every one is something a person can check by looking at the connections:

* fan-out of the source: distinct destinations, ports and namespaces it reached;
* failure: the share of attempts that were denied by policy, and raw events per connection
  (retransmitted or unanswered attempts fold many events into one connection);
* sharing: how many other clients of the same server use the same port ("ports no other client
  of the same server uses");
* time: when in the observation window the edge first appeared and for how much of it it lasted;
* rarity: how many sources use this port anywhere, how many sources cross the same pair of
  namespaces, and the edge's share of its server's traffic;
* volume: connection counts.

The expressions are plain ``list[pl.Expr]`` so that other modules (and tests) can reuse them.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from analyzer import schema as c
from analyzer.anomaly.replicas import with_lone_replica
from analyzer.anomaly.stealth import STEALTH_MODEL_FEATURES, stealth_features, workload_from_pod

__all__ = [
    "DATABASE_PORTS",
    "MODEL_FEATURES",
    "SOURCE_MODEL_FEATURES",
    "compute_source_features",
    "source_aggregations",
    "edge_aggregations",
    "edge_features",
    "server_features",
    "shape_features",
    "compute_features",
]

# Well-known ports of databases and data stores that should never be reached from a namespace
# whose workloads are not established clients (a compromised pod's usual next hop).
DATABASE_PORTS: frozenset[int] = frozenset(
    {
        1433,  # SQL Server
        1521,  # Oracle
        2379,  # etcd
        3306,  # MySQL / MariaDB
        5432,  # PostgreSQL
        5984,  # CouchDB
        6379,  # Redis
        7000,  # Cassandra inter-node
        7687,  # Neo4j bolt
        8086,  # InfluxDB
        9042,  # Cassandra CQL
        9200,  # Elasticsearch
        11211,  # memcached
        26257,  # CockroachDB
        27017,  # MongoDB
        28015,  # RethinkDB
    }
)

# Columns of the edge frame the model sees. Counts enter as log1p so that one huge edge does not
# dominate the random splits; shares are already in [0, 1].
MODEL_FEATURES: tuple[str, ...] = (
    "log_connections",
    "denied_share",
    "events_per_connection",
    "first_seen_at",
    "inactive_share",
    "unshared_port",
    "log_clients_on_port",
    "log_src_fanout_dsts",
    "log_src_fanout_ports",
    "src_fanout_namespaces",
    "src_denied_share",
    "src_first_seen_at",
    "log_pair_ports",
    "log_sweep_targets",
    "log_port_sources",
    "log_ns_pair_sources",
    "server_share",
    "cross_namespace",
    "database_port",
    *STEALTH_MODEL_FEATURES,
)


# Columns of the source frame the model scores (see `source_aggregations`).
SOURCE_MODEL_FEATURES: tuple[str, ...] = (
    "log_fanout_destinations",
    "log_fanout_ports",
    "fanout_namespaces",
    "denied_share",
    "first_seen_at",
    "span",
    "unshared_share",
    "log_connections_per_edge",
    "events_per_connection",
    "bare",
    "max_novelty_surprise",
    "first_crossings",
    "new_externals",
    "max_unlike",
)


def _display_name(side: str, columns: set[str]) -> pl.Expr:
    """`namespace/workload` for pods, the reserved entity or address for other peers."""
    ns = pl.col(f"{side}_namespace")
    names = [pl.col(f"{side}_workload")] if f"{side}_workload" in columns else []
    if f"{side}_pod" in columns:
        # Without the exporter's workload name, the pod name less its generated suffix names
        # the workload (`web-7d9fbb5c4d-x2k9q` -> `web`).
        names.append(workload_from_pod(pl.col(f"{side}_pod")))
    within = pl.coalesce([*names, pl.col(f"{side}_key")]) if names else pl.col(f"{side}_key")
    entity = pl.col(f"{side}_entity")
    outside = (
        pl.when(entity.is_not_null() & (entity != "pod") & (entity != "world"))
        .then(entity)
        .otherwise(pl.col(f"{side}_key"))
    )
    return (
        pl.when(ns.is_not_null()).then(pl.concat_str([ns, pl.lit("/"), within])).otherwise(outside)
    )


def edge_aggregations(columns: set[str]) -> list[pl.Expr]:
    """Aggregations of connection rows into one row per edge (use with ``group_by(EDGE_KEYS)``)."""
    denied = pl.col(c.OUTCOME) == c.DENIED
    return [
        pl.col(c.CONNECTIONS).sum().alias("connections"),
        pl.col(c.EVENTS).sum().alias("events"),
        pl.col(c.CONNECTIONS).filter(denied).sum().alias("denied"),
        pl.col(c.FIRST_SEEN).min().alias("first_seen"),
        pl.col(c.LAST_SEEN).max().alias("last_seen"),
        pl.col(c.SRC_KEY).n_unique().alias("src_endpoints"),
        pl.col(c.DST_KEY).n_unique().alias("dst_endpoints"),
        pl.col(c.SRC_NAMESPACE).first().alias("src_namespace"),
        pl.col(c.DST_NAMESPACE).first().alias("dst_namespace"),
        pl.col(c.SRC_ENTITY).first().alias("src_entity"),
        pl.col(c.DST_ENTITY).first().alias("dst_entity"),
        _display_name("src", columns).min().alias("src_name"),
        _display_name("dst", columns).min().alias("dst_name"),
    ]


def edge_features(window_start: datetime | None, window_span_us: float) -> list[pl.Expr]:
    """Per-edge features that need only the edge row and the observation window."""
    start = pl.lit(window_start, dtype=pl.Datetime("us", "UTC"))
    since_start = (pl.col("first_seen") - start).dt.total_microseconds()
    active = (pl.col("last_seen") - pl.col("first_seen")).dt.total_microseconds()
    port = pl.col(c.DST_PORT)
    return [
        (pl.col("denied") / pl.col("connections")).fill_nan(0.0).alias("denied_share"),
        (pl.col("events") / pl.col("connections")).fill_nan(1.0).alias("events_per_connection"),
        (since_start / window_span_us).clip(0.0, 1.0).alias("first_seen_at"),
        ((pl.col("last_seen") - start).dt.total_microseconds() / window_span_us)
        .clip(0.0, 1.0)
        .alias("last_seen_at"),
        (1.0 - active / window_span_us).clip(0.0, 1.0).alias("inactive_share"),
        pl.col("connections").log1p().alias("log_connections"),
        (
            pl.col("src_namespace").is_not_null()
            & pl.col("dst_namespace").is_not_null()
            & (pl.col("src_namespace") != pl.col("dst_namespace"))
        )
        .fill_null(False)
        .cast(pl.Float64)
        .alias("cross_namespace"),
        ((pl.col(c.PROTOCOL) == "TCP") & port.is_in(sorted(DATABASE_PORTS)))
        .fill_null(False)
        .cast(pl.Float64)
        .alias("database_port"),
    ]


def server_features() -> list[pl.Expr]:
    """Features of an edge relative to the other clients of its server."""
    server = [c.DST_GROUP]
    clients_on_port = pl.col(c.SRC_GROUP).n_unique().over([c.DST_GROUP, c.PROTOCOL, c.DST_PORT])
    clients_of_server = pl.col(c.SRC_GROUP).n_unique().over(server)
    return [
        clients_on_port.alias("clients_on_port"),
        clients_of_server.alias("clients_of_server"),
        # Ports no other client of the same server uses: the only client on this port of a
        # server that has other clients elsewhere.
        ((clients_on_port == 1) & (clients_of_server > 1)).cast(pl.Float64).alias("unshared_port"),
        (clients_on_port == 1).cast(pl.Float64).alias("sole_client"),
        clients_on_port.log1p().alias("log_clients_on_port"),
        pl.col(c.SRC_GROUP)
        .n_unique()
        .over([c.DST_GROUP, c.PROTOCOL, c.DST_PORT, "src_namespace"])
        .alias("namespace_clients_on_port"),
        (pl.col("connections") / pl.col("connections").sum().over(server)).alias("server_share"),
        # Rarity of the port and of the namespace pair across the whole store.
        pl.col(c.SRC_GROUP).n_unique().over([c.PROTOCOL, c.DST_PORT]).alias("port_sources"),
        pl.col(c.SRC_GROUP)
        .n_unique()
        .over(["src_namespace", "dst_namespace"])
        .alias("ns_pair_sources"),
    ]


def shape_features() -> list[pl.Expr]:
    """Scan and sweep shapes: what one source did to one server, or on one port.

    ``dst_endpoints`` summed over a port counts distinct targets because a destination endpoint
    belongs to exactly one group. Needs the columns of `server_features`.
    """
    pair = [c.SRC_GROUP, c.DST_GROUP]
    sweep = [c.SRC_GROUP, c.PROTOCOL, c.DST_PORT]
    return [
        # Scan shape: how many ports this source reached on this destination group.
        pl.col(c.DST_PORT).n_unique().over(pair).alias("pair_ports"),
        (pl.col("denied").sum().over(pair) / pl.col("connections").sum().over(pair)).alias(
            "pair_denied_share"
        ),
        pl.col("sole_client").mean().over(pair).alias("pair_unshared_share"),
        (pl.col("last_seen_at").max() - pl.col("first_seen_at").min())
        .over(pair)
        .alias("pair_span"),
        (pl.col("denied") > 0).sum().over(pair).alias("pair_denied_ports"),
        # Sweep shape: how many destinations this source reached on this port.
        pl.col("dst_endpoints").sum().over(sweep).alias("sweep_targets"),
        pl.col(c.DST_GROUP).n_unique().over(sweep).alias("sweep_groups"),
        (pl.col("denied").sum().over(sweep) / pl.col("connections").sum().over(sweep)).alias(
            "sweep_denied_share"
        ),
        pl.col("sole_client").mean().over(sweep).alias("sweep_unshared_share"),
        pl.col("inactive_share").median().over(sweep).alias("sweep_inactive_share"),
        # Share of the window between the first and the last contact on this port: a sweep is
        # one burst, a scraper or an ingress controller keeps coming back.
        (pl.col("last_seen_at").max() - pl.col("first_seen_at").min())
        .over(sweep)
        .alias("sweep_span"),
        # When the source itself first appeared: a pod that shows up late and at once reaches
        # many peers is new to the cluster, not part of its steady state.
        pl.col("first_seen_at").min().over(c.SRC_GROUP).alias("src_first_seen_at"),
        (pl.col("connections").sum().over(sweep) / pl.col("dst_endpoints").sum().over(sweep)).alias(
            "sweep_connections_per_target"
        ),
    ]


def source_aggregations() -> list[pl.Expr]:
    """One row per source group from the edge frame (use with ``group_by(src_group)``).

    This is what the model scores: a workload's behaviour over the window. Scoring sources, not
    edges, gives every workload one vote, so a scanner's hundreds of edges cannot pass for a
    normal crowd.
    """
    return [
        pl.col("src_fanout_dsts").first().log1p().alias("log_fanout_destinations"),
        pl.col("src_fanout_ports").first().log1p().alias("log_fanout_ports"),
        pl.col("src_fanout_namespaces").first().alias("fanout_namespaces"),
        pl.col("src_denied_share").first().alias("denied_share"),
        pl.col("first_seen_at").min().alias("first_seen_at"),
        (pl.col("last_seen_at").max() - pl.col("first_seen_at").min()).alias("span"),
        pl.col("sole_client").mean().alias("unshared_share"),
        (pl.col("connections").sum() / pl.len()).log1p().alias("log_connections_per_edge"),
        (pl.col("events").sum() / pl.col("connections").sum()).alias("events_per_connection"),
        pl.col("src_bare").max().alias("bare"),
        pl.col("novelty_surprise").max().alias("max_novelty_surprise"),
        pl.col("first_env_crossing").sum().alias("first_crossings"),
        pl.col("new_external").sum().alias("new_externals"),
        pl.col("unlike_score").max().alias("max_unlike"),
    ]


def compute_source_features(edges: pl.DataFrame) -> pl.DataFrame:
    """One row per source group with the columns of `SOURCE_MODEL_FEATURES`, sorted by group."""
    return edges.group_by(c.SRC_GROUP).agg(source_aggregations()).sort(c.SRC_GROUP)


def _source_features(frame: pl.DataFrame) -> pl.DataFrame:
    """Fan-out of each source group over distinct destination endpoints, ports and namespaces."""
    denied = pl.col(c.OUTCOME) == c.DENIED
    return frame.group_by(c.SRC_GROUP).agg(
        pl.col(c.DST_KEY).n_unique().alias("src_fanout_dsts"),
        pl.struct(c.PROTOCOL, c.DST_PORT).n_unique().alias("src_fanout_ports"),
        pl.col(c.DST_NAMESPACE)
        .drop_nulls()
        .n_unique()
        .cast(pl.Float64)
        .alias("src_fanout_namespaces"),
        (pl.col(c.CONNECTIONS).filter(denied).sum() / pl.col(c.CONNECTIONS).sum()).alias(
            "src_denied_share"
        ),
    )


def compute_features(frame: pl.DataFrame, *, steady_share: float = 0.5) -> pl.DataFrame:
    """One row per edge with every feature of this module.

    Parameters
    ----------
    frame
        ``Connections.frame`` (see docs/architecture.md); must not be empty.
    steady_share
        Share of the window an answered edge must span to count as established
        (`RuleThresholds.steady_active_share`).

    Returns
    -------
    pl.DataFrame
        The edge keys, display names, raw counts and times, and every column named in
        `MODEL_FEATURES`, plus the shape columns the rules read (``pair_*``, ``sweep_*``).
    """
    times = [
        (
            pl.col(col).dt.replace_time_zone("UTC")
            if getattr(frame.schema[col], "time_zone", None) is None
            else pl.col(col)
        ).cast(pl.Datetime("us", "UTC"))
        for col in (c.FIRST_SEEN, c.LAST_SEEN)
    ]
    frame = frame.with_columns(
        *times,
        pl.col(c.CONNECTIONS).cast(pl.Int64, strict=False),
        pl.col(c.EVENTS).cast(pl.Int64, strict=False),
        pl.col(c.DST_PORT).cast(pl.Int32, strict=False),
    ).with_columns(
        pl.col(c.SRC_GROUP).fill_null(pl.col(c.SRC_KEY)),
        pl.col(c.DST_GROUP).fill_null(pl.col(c.DST_KEY)),
        pl.col(c.CONNECTIONS).fill_null(1).clip(lower_bound=1),
        pl.col(c.EVENTS).fill_null(1).clip(lower_bound=1),
        pl.col(c.LAST_SEEN).fill_null(pl.col(c.FIRST_SEEN)),
    )
    bounds = frame.select(
        pl.col(c.FIRST_SEEN).min().alias("start"), pl.col(c.LAST_SEEN).max().alias("end")
    ).row(0)
    start, end = bounds
    # A window of one instant still needs a positive span to divide by.
    span_us = max((end - start).total_seconds() * 1e6, 1.0) if start and end else 1.0
    edges = (
        frame.group_by(list(c.EDGE_KEYS))
        .agg(edge_aggregations(set(frame.columns)))
        .with_columns(edge_features(start, span_us))
        .with_columns(server_features())
        .with_columns(shape_features())
        .join(_source_features(frame), on=c.SRC_GROUP, how="left")
    )
    edges = with_lone_replica(frame, stealth_features(frame, edges, steady_share))
    return edges.with_columns(
        pl.col("src_fanout_dsts").log1p().alias("log_src_fanout_dsts"),
        pl.col("src_fanout_ports").log1p().alias("log_src_fanout_ports"),
        pl.col("pair_ports").log1p().alias("log_pair_ports"),
        pl.col("sweep_targets").log1p().alias("log_sweep_targets"),
        pl.col("port_sources").log1p().alias("log_port_sources"),
        pl.col("ns_pair_sources").log1p().alias("log_ns_pair_sources"),
    ).sort(list(c.EDGE_KEYS), nulls_last=True)
