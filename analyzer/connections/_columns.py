"""Column names and schemas of the connection frame, and the working columns behind it."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from analyzer import schema as S


def side_columns(side: str, *fields: str) -> list[pl.Expr]:
    """The ``{side}_{field}`` columns of one endpoint side, named ``field``.

    Graph, report and audit all look at both ends of a connection the same way: select one
    side under neutral names, then stack the two sides.
    """
    return [pl.col(f"{side}_{name}").alias(name) for name in fields]


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
_REQUEST, _REPLY, _UNDECIDED, _IGNORED, _SOCK, _VIP = 1, 2, 3, 4, 5, 6

_CLASS = "_class"


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

_ROW = "_row"

_LISTS = (S.SRC_LABELS, S.DST_LABELS, S.SRC_NAMESPACE_LABELS, S.DST_NAMESPACE_LABELS)
