"""The working columns and parameters behind the derivation of connections (the frame's own
column names are in ``analyzer.schema``)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from analyzer import schema as S
from analyzer.schema import (
    AUDIT,
    CONNECTION_SCHEMA,
    CONNECTIONS,
    DST_KEY,
    DST_NODE,
    EVENTS,
    FIRST_SEEN,
    LAST_SEEN,
    NODES,
    OUTCOME,
    SRC_KEY,
    SRC_NODE,
)


def side_columns(side: str, *fields: str) -> list[pl.Expr]:
    """The ``{side}_{field}`` columns of one endpoint side, named ``field``.

    Graph, report and audit all look at both ends of a connection the same way: select one
    side under neutral names, then stack the two sides.
    """
    return [pl.col(f"{side}_{name}").alias(name) for name in fields]


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

# row classes
_REQUEST, _REPLY, _UNDECIDED, _IGNORED, _SOCK, _VIP = 1, 2, 3, 4, 5, 6

_CLASS = "_class"


# working columns of the request rows
_SPK, _DPK, _SK, _DK = "_src_pk", "_dst_pk", "_src_k", "_dst_k"

_DEN, _L7, _AUD, _SN, _DN, _LAST = "_denied", "_l7", "_audit", "_src_n", "_dst_n", "_last"

_EDGE = [SRC_KEY, DST_KEY, S.PROTOCOL, S.DST_PORT, OUTCOME]

_SRC_H, _DST_H = "_src_h", "_dst_h"

_BUCKET = "bucket"  # the time bucket of a connection (analyzer.connections.buckets)

# one row per edge before the endpoints' attributes are joined back
_EDGE_SCHEMA = pl.Schema(
    {
        c: CONNECTION_SCHEMA[c]
        for c in (*_EDGE, CONNECTIONS, EVENTS, FIRST_SEEN, LAST_SEEN, NODES, SRC_NODE, DST_NODE,
                  AUDIT)
    }
)

_ROW = "_row"



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
