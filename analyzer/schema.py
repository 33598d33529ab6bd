"""Every column name: the canonical flow schema every reader produces (DESIGN.md, "The
canonical flow schema"), the connection frame, identity edges and anomaly columns.

One row per flow record (a Hubble event, a Calico aggregate), replies and drops included.
Columns are only ever added, never renamed. Column names are used through the constants
below, never as scattered string literals.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

__all__ = [
    "FLOW_SCHEMA",
    "CONNECTION_SCHEMA",
    "EDGE_KEYS",
    "FLOW_POLARS_SCHEMA",
    "FLOW_COLUMNS",
    "VERDICTS",
    "DIRECTIONS",
    "ENTITIES",
    "SOURCE_FORMATS",
    "empty_flows",
    "conform",
    "to_arrow",
]

# --- column names (the contract of DESIGN.md) ------------------------------------------------
TIME = "time"
SOURCE_FORMAT = "source_format"
NODE = "node"
VERDICT = "verdict"
DROP_REASON = "drop_reason"
DIRECTION = "direction"
IS_REPLY = "is_reply"
PROTOCOL = "protocol"
SRC_IP = "src_ip"
DST_IP = "dst_ip"
SRC_PORT = "src_port"
DST_PORT = "dst_port"
SRC_NAMESPACE = "src_namespace"
DST_NAMESPACE = "dst_namespace"
SRC_POD = "src_pod"
DST_POD = "dst_pod"
SRC_WORKLOAD = "src_workload"
DST_WORKLOAD = "dst_workload"
SRC_LABELS = "src_labels"
DST_LABELS = "dst_labels"
SRC_NAMESPACE_LABELS = "src_namespace_labels"
DST_NAMESPACE_LABELS = "dst_namespace_labels"
SRC_ENTITY = "src_entity"
DST_ENTITY = "dst_entity"
SRC_IDENTITY = "src_identity"
DST_IDENTITY = "dst_identity"
DST_NAMES = "dst_names"
DNS_QUERY = "dns_query"
FLOW_COUNT = "flow_count"

# --- additional columns (additive to the contract) --------------------------------------------
END_TIME = "end_time"  # Calico aggregation window end; null for per-event formats
FLOW_TYPE = "flow_type"  # Hubble Type: L3_L4, L7, SOCK; Calico: aggregate
EVENT_TYPE = "event_type"  # Hubble monitor event type (1 drop, 4 trace, 5 policy verdict, 129 L7)
OBSERVATION_POINT = "observation_point"  # Hubble trace_observation_point, e.g. TO_ENDPOINT
TRACE_REASON = "trace_reason"  # Hubble conntrack state: NEW, ESTABLISHED, REPLY, ...
TCP_FLAGS = "tcp_flags"  # sorted, comma-joined set flags, e.g. "ACK,SYN"; null when not TCP/unknown
ICMP_TYPE = "icmp_type"
ICMP_CODE = "icmp_code"
L7_TYPE = "l7_type"  # request, response, sample
L7_PROTOCOL = "l7_protocol"  # dns, http, kafka
HTTP_METHOD = "http_method"
HTTP_URL = "http_url"
DNS_RCODE = "dns_rcode"
SRC_NAMES = "src_names"
SRC_SERVICE = "src_service"  # "namespace/name" of a Service frontend, when known
DST_SERVICE = "dst_service"
REPORTER = "reporter"  # Calico: src or dst; null for Hubble
POLICIES_ENFORCED = "policies_enforced"  # Calico enforced policy trace / Hubble *_allowed_by
POLICIES_PENDING = "policies_pending"  # Calico staged-policy trace
BYTES = "bytes"
PACKETS = "packets"
INGEST_ID = "ingest_id"  # content hash of the input this row came from (see the manifest)


# --- connection frame columns (analyzer.connections; beside the flow names it reuses) ---------
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
OUTCOMES = (ALLOWED, DENIED)

_LS = pl.List(pl.String())
_TS = pl.Datetime("us", "UTC")

CONNECTION_SCHEMA: pl.Schema = pl.Schema(
    {
        SRC_KEY: pl.String(),
        DST_KEY: pl.String(),
        SRC_NAMESPACE: pl.String(),
        DST_NAMESPACE: pl.String(),
        SRC_POD: pl.String(),
        DST_POD: pl.String(),
        SRC_WORKLOAD: pl.String(),
        DST_WORKLOAD: pl.String(),
        SRC_IP: pl.String(),
        DST_IP: pl.String(),
        SRC_ENTITY: pl.String(),
        DST_ENTITY: pl.String(),
        SRC_LABELS: _LS,
        DST_LABELS: _LS,
        SRC_NAMESPACE_LABELS: _LS,
        DST_NAMESPACE_LABELS: _LS,
        SRC_GROUP: pl.String(),
        DST_GROUP: pl.String(),
        DST_NAMES: _LS,
        SRC_NAMES: _LS,
        PROTOCOL: pl.String(),
        DST_PORT: pl.Int32(),
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

# --- identity edge columns (analyzer.identity.graph; beside the connection names) -------------
NODE_LOCAL = "node_local"  # every connection stayed on one node (true/false/null = unknown)
EVIDENCE = "evidence"  # list of {first_seen, last_seen, src, dst, nodes, connections}
# An edge is what a policy rule would allow: source identity -> destination identity on a port.
EDGE_KEYS: tuple[str, ...] = (SRC_GROUP, DST_GROUP, PROTOCOL, DST_PORT)

# --- anomaly columns (analyzer.anomaly) ---------------------------------------------------------
SCORE = "score"  # 0-1, higher is more anomalous
REASONS = "reasons"  # list of sentences
RULE = "rule"  # the rule that fired, null for a model-only flag
# what the detector reads of a connection frame
ANOMALY_INPUT_COLUMNS: tuple[str, ...] = (
    SRC_KEY,
    DST_KEY,
    SRC_NAMESPACE,
    DST_NAMESPACE,
    SRC_ENTITY,
    DST_ENTITY,
    SRC_GROUP,
    DST_GROUP,
    PROTOCOL,
    DST_PORT,
    OUTCOME,
    CONNECTIONS,
    EVENTS,
    FIRST_SEEN,
    LAST_SEEN,
)

_S = pa.string()
_LS = pa.list_(pa.string())

FLOW_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field(TIME, pa.timestamp("us", tz="UTC")),
        pa.field(SOURCE_FORMAT, _S),
        pa.field(NODE, _S),
        pa.field(VERDICT, _S),
        pa.field(DROP_REASON, _S),
        pa.field(DIRECTION, _S),
        pa.field(IS_REPLY, pa.bool_()),
        pa.field(PROTOCOL, _S),
        pa.field(SRC_IP, _S),
        pa.field(DST_IP, _S),
        pa.field(SRC_PORT, pa.int32()),
        pa.field(DST_PORT, pa.int32()),
        pa.field(SRC_NAMESPACE, _S),
        pa.field(DST_NAMESPACE, _S),
        pa.field(SRC_POD, _S),
        pa.field(DST_POD, _S),
        pa.field(SRC_WORKLOAD, _S),
        pa.field(DST_WORKLOAD, _S),
        pa.field(SRC_LABELS, _LS),
        pa.field(DST_LABELS, _LS),
        pa.field(SRC_NAMESPACE_LABELS, _LS),
        pa.field(DST_NAMESPACE_LABELS, _LS),
        pa.field(SRC_ENTITY, _S),
        pa.field(DST_ENTITY, _S),
        pa.field(SRC_IDENTITY, pa.int64()),
        pa.field(DST_IDENTITY, pa.int64()),
        pa.field(DST_NAMES, _LS),
        pa.field(DNS_QUERY, _S),
        pa.field(FLOW_COUNT, pa.int64()),
        pa.field(END_TIME, pa.timestamp("us", tz="UTC")),
        pa.field(FLOW_TYPE, _S),
        pa.field(EVENT_TYPE, pa.int32()),
        pa.field(OBSERVATION_POINT, _S),
        pa.field(TRACE_REASON, _S),
        pa.field(TCP_FLAGS, _S),
        pa.field(ICMP_TYPE, pa.int32()),
        pa.field(ICMP_CODE, pa.int32()),
        pa.field(L7_TYPE, _S),
        pa.field(L7_PROTOCOL, _S),
        pa.field(HTTP_METHOD, _S),
        pa.field(HTTP_URL, _S),
        pa.field(DNS_RCODE, pa.int32()),
        pa.field(SRC_NAMES, _LS),
        pa.field(SRC_SERVICE, _S),
        pa.field(DST_SERVICE, _S),
        pa.field(REPORTER, _S),
        pa.field(POLICIES_ENFORCED, _LS),
        pa.field(POLICIES_PENDING, _LS),
        pa.field(BYTES, pa.int64()),
        pa.field(PACKETS, pa.int64()),
        pa.field(INGEST_ID, _S),
    ]
)

FLOW_COLUMNS: tuple[str, ...] = tuple(FLOW_SCHEMA.names)

# from an empty table of batches: ``Schema.empty_table()`` imports pandas (half a second of
# every command's start)
FLOW_POLARS_SCHEMA: pl.Schema = pl.Schema(
    pl.from_arrow(pa.Table.from_batches([], schema=FLOW_SCHEMA)).schema  # type: ignore[union-attr]
)

VERDICTS = (
    "forwarded",
    "dropped",
    "audit",
    "redirected",
    "error",
    "traced",
    "translated",
    "unknown",
)
DIRECTIONS = ("ingress", "egress", "unknown")
ENTITIES = (
    "pod",
    "world",
    "host",
    "remote-node",
    "kube-apiserver",
    "health",
    "ingress",
    "unmanaged",
    "init",
    "network-set",
    "host-endpoint",
    "private-network",
    "public-network",
    "unknown",
)
SOURCE_FORMATS = ("hubble", "calico", "goldmane", "whisker")


def empty_flows() -> pl.DataFrame:
    """An empty frame with the canonical schema."""
    return pl.DataFrame(schema=FLOW_POLARS_SCHEMA)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Add missing canonical columns as nulls, cast to canonical types, order columns.

    Readers build only the columns they know; this makes every frame the same shape.
    Extra columns are an error: the schema grows here, not in readers.
    """
    from analyzer.errors import SchemaError

    extra = [c for c in frame.columns if c not in FLOW_POLARS_SCHEMA]
    if extra:
        raise SchemaError(f"columns not in the canonical flow schema: {', '.join(extra)}")
    return frame.select(
        [
            (
                pl.col(name).cast(dtype, strict=False)
                if name in frame.columns
                else pl.lit(None, dtype=dtype).alias(name)
            )
            for name, dtype in FLOW_POLARS_SCHEMA.items()
        ]
    )


def to_arrow(frame: pl.DataFrame) -> pa.Table:
    """The frame as an Arrow table with exactly FLOW_SCHEMA (polars exports large_string)."""
    return conform(frame).to_arrow().cast(FLOW_SCHEMA)
