"""Cilium Hubble flows: ``hubble observe -o json|jsonpb``, exporter files, bare legacy lines.

Spellings accepted: the ``{"flow": ...}`` envelope and bare Flow objects; snake_case proto names
and lowerCamelCase (grpcurl, gRPC-web); enums as names or integers. Non-flow exporter records
(``lost_events``, ``agent_event``, ``debug_event``, ``node_status``) are skipped and counted.
See docs/hubble-flow-format.md in the shared design notes for the field semantics.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl

from analyzer.ingest import _hubble_enums as E
from analyzer.ingest._format import (
    SKIP_MARKER,
    FastResult,
    FormatSpec,
    Prepared,
    Skip,
    arrow_schema,
    read_ndjson,
    snake_keys,
)
from analyzer.ingest._hubble_normalize import normalize
from analyzer.ingest._screen import INVALID_PORT, TIME_OUT_OF_RANGE, bad_port, first_problem

__all__ = ["SPEC", "FLOW_SCHEMA_RAW", "normalize", "prepare", "sniff"]

_STR = pl.String()
_INT = pl.Int64()
# Ports are read as floats so that a port of 80.5 is seen (and refused), not truncated to 80.
_PORT = pl.Float64()
_PORTS = pl.Struct({"source_port": _PORT, "destination_port": _PORT})
_FLAGS = pl.Struct({f: pl.Boolean() for f in E.TCP_FLAGS})
_ICMP = pl.Struct({"type": _INT, "code": _INT})
_ENDPOINT = pl.Struct(
    {
        "identity": _INT,
        "namespace": _STR,
        "labels": pl.List(_STR),
        "pod_name": _STR,
        "workloads": pl.List(pl.Struct({"name": _STR, "kind": _STR})),
    }
)
_SERVICE = pl.Struct({"name": _STR, "namespace": _STR})
_POLICIES = pl.List(pl.Struct({"name": _STR, "namespace": _STR}))

FLOW_SCHEMA_RAW = pl.Schema(
    {
        "time": _STR,
        "verdict": _STR,
        "drop_reason": _INT,
        "drop_reason_desc": _STR,
        "IP": pl.Struct({"source": _STR, "destination": _STR}),
        "l4": pl.Struct(
            {
                "TCP": pl.Struct(
                    {"source_port": _PORT, "destination_port": _PORT, "flags": _FLAGS}
                ),
                "UDP": _PORTS,
                "SCTP": _PORTS,
                "ICMPv4": _ICMP,
                "ICMPv6": _ICMP,
                "VRRP": pl.Struct({"type": _INT}),
                "IGMP": pl.Struct({"type": _INT}),
            }
        ),
        "source": _ENDPOINT,
        "destination": _ENDPOINT,
        "Type": _STR,
        "node_name": _STR,
        "source_names": pl.List(_STR),
        "destination_names": pl.List(_STR),
        "l7": pl.Struct(
            {
                "type": _STR,
                "dns": pl.Struct({"query": _STR, "rcode": _INT}),
                "http": pl.Struct({"method": _STR, "url": _STR, "code": _INT}),
                "kafka": pl.Struct({"topic": _STR}),
            }
        ),
        "reply": pl.Boolean(),
        "is_reply": pl.Boolean(),
        "event_type": pl.Struct({"type": _INT, "sub_type": _INT}),
        "source_service": _SERVICE,
        "destination_service": _SERVICE,
        "traffic_direction": _STR,
        "trace_observation_point": _STR,
        "trace_reason": _STR,
        "egress_allowed_by": _POLICIES,
        "ingress_allowed_by": _POLICIES,
        "aggregate": pl.Struct(
            {
                "ingress_flow_count": _INT,
                "egress_flow_count": _INT,
                "unknown_direction_flow_count": _INT,
            }
        ),
    }
)

_ENVELOPE_COPIES = ("node_name", "time")
_NON_FLOW = ("lost_events", "agent_event", "debug_event", "node_status")
ENVELOPE_SCHEMA = pl.Schema(
    {
        "flow": pl.Struct(FLOW_SCHEMA_RAW),
        "node_name": _STR,
        "time": _STR,
        "lost_events": pl.Struct({"num_events_lost": _STR}),
        "agent_event": pl.Struct({"type": _STR}),
        "debug_event": pl.Struct({"type": _STR}),
        "node_status": pl.Struct({"state_change": _STR}),
        SKIP_MARKER: _STR,
    }
)
_ENVELOPE_ARROW = arrow_schema(ENVELOPE_SCHEMA)
_FLOW_ARROW = arrow_schema(FLOW_SCHEMA_RAW)
# Keys only a Flow has; used to tell a bare flow from arbitrary JSON.
_FLOW_KEYS = frozenset(
    {
        "verdict",
        "IP",
        "l4",
        "source",
        "destination",
        "Type",
        "event_type",
        "node_name",
        "traffic_direction",
        "trace_observation_point",
        "is_reply",
        "drop_reason_desc",
        "l7",
    }
)


_UPPER_OK = frozenset({"IP", "Type", "Summary"})
# A flow row where none of these parsed was written in a spelling the native reader does not
# know (camelCase keys): the per-line path rewrites it.
_CORE = ("time", "verdict", "IP", "l4", "source", "destination", "Type", "event_type")


def _check_spelling(raw: pl.DataFrame) -> None:
    empty = raw.select(pl.all_horizontal(pl.col(c).is_null() for c in _CORE).any())
    if empty.item():
        raise ValueError("flow rows without any known field (camelCase?)")


_L4 = pl.col("l4")
RAW_PROBLEMS = first_problem(
    (
        pl.any_horizontal(
            bad_port(_L4.struct.field(proto).struct.field(side))
            for proto in ("TCP", "UDP", "SCTP")
            for side in ("source_port", "destination_port")
        ),
        INVALID_PORT,
    ),
)


class _OutOfRange(Exception):
    pass


def _timestamp(value: dict[str, Any]) -> str | None:
    """gRPC-web clients render google.protobuf.Timestamp as {seconds, nanos}."""
    try:
        seconds = int(value.get("seconds", 0))
        nanos = int(value.get("nanos", 0))
    except (TypeError, ValueError):
        return None
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise _OutOfRange from exc
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos % 10**9:09d}Z"


def _with_time(flow: dict[str, Any]) -> dict[str, Any] | Skip:
    if not isinstance(flow.get("time"), dict):
        return flow
    try:
        return {**flow, "time": _timestamp(flow["time"])}
    except _OutOfRange:
        return Skip(TIME_OUT_OF_RANGE)


def _lost(value: Any) -> int:
    if isinstance(value, dict):
        try:
            return int(value.get("num_events_lost", 0) or 0)
        except (TypeError, ValueError):
            return 0
    return 0


def prepare(obj: Any) -> Prepared:
    """One decoded JSON value -> raw Flow dicts (snake_case) or a Skip."""
    if not isinstance(obj, dict):
        return [Skip("records that are not JSON objects")]
    if any(not k.islower() and k not in _UPPER_OK for k in obj):
        obj = snake_keys(obj)
    flow = obj.get("flow")
    if isinstance(flow, dict):
        if any(not k.islower() and k not in _UPPER_OK for k in flow):
            flow = snake_keys(flow)
        missing = {k: obj[k] for k in _ENVELOPE_COPIES if not flow.get(k) and obj.get(k)}
        if missing:
            flow = {**flow, **missing}
        return [_with_time(flow)]
    for kind in _NON_FLOW:
        if kind in obj:
            return [Skip(f"{kind} records", _lost(obj[kind]) if kind == "lost_events" else 0)]
    if _FLOW_KEYS.intersection(obj):
        return [_with_time(obj)]
    return [Skip("records that are not Hubble flows")]


def is_bare_flow(obj: dict[str, Any]) -> bool:
    """A Flow object without the ``{"flow": ...}`` envelope (legacy ``-o json``)."""
    return "flow" not in obj and len(_FLOW_KEYS.intersection(obj)) >= 2


def sniff(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    if isinstance(obj.get("flow"), dict):
        inner = obj["flow"]
        return "Key" not in inner and "key" not in inner
    if any(k in obj for k in (*_NON_FLOW, "lostEvents", "agentEvent", "debugEvent", "nodeStatus")):
        return True
    keys = set(obj)
    return len(keys & (_FLOW_KEYS | {"eventType", "nodeName", "trafficDirection"})) >= 2


def fast_read(chunk: bytes) -> FastResult:
    """Parse a chunk of snake_case envelope lines natively (raises on anything unusual)."""
    return classify_envelopes(read_ndjson(chunk, _ENVELOPE_ARROW))


def classify_envelopes(env: pl.DataFrame) -> FastResult:
    """Natively parsed envelope rows (``ENVELOPE_SCHEMA``) -> flow rows and per-row skip
    reasons. Raises ``ValueError`` on rows only the per-line path classifies exactly."""
    flow = pl.col("flow")
    # The envelope repeats node_name and time; a field mask may have dropped them from the flow.
    raw = env.select(
        pl.coalesce(flow.struct.field(c), pl.col(c)).alias(c)
        if c in _ENVELOPE_COPIES
        else flow.struct.field(c).alias(c)
        for c in FLOW_SCHEMA_RAW
    )
    if env["flow"].null_count() == 0:  # the common case: nothing but flows
        _check_spelling(raw)
        return FastResult(
            raw=raw, skip_reason=pl.repeat(None, env.height, dtype=_STR, eager=True), lost_events=0
        )
    reason = pl.when(flow.is_null()).then(
        pl.coalesce(
            pl.col(SKIP_MARKER),
            *(pl.when(pl.col(k).is_not_null()).then(pl.lit(f"{k} records")) for k in _NON_FLOW),
            pl.lit("records that are not Hubble flows"),
        )
    )
    skip = env.select(reason).to_series()
    if (skip == "records that are not Hubble flows").any():
        # Perhaps bare flows or odd spellings: let the per-line path classify them exactly.
        raise ValueError("unrecognised records in chunk")
    lost = env.select(
        pl.col("lost_events").struct.field("num_events_lost").cast(_INT, strict=False).sum()
    ).item()
    _check_spelling(raw.filter(skip.is_null()))
    return FastResult(raw=raw, skip_reason=skip, lost_events=int(lost or 0))


def fast_read_bare(chunk: bytes) -> FastResult:
    """Parse a chunk of legacy bare-flow lines natively."""
    raw = read_ndjson(chunk, _FLOW_ARROW)
    known = pl.any_horizontal(
        pl.col(c).is_not_null() for c in ("verdict", "IP", "l4", "source", "destination", "Type")
    )
    skip = raw.select(
        pl.when(known)
        .then(pl.lit(None, _STR))
        .otherwise(pl.lit("records that are not Hubble flows"))
    ).to_series()
    if skip.null_count() != len(skip):
        raise ValueError("unrecognised records in chunk")
    _check_spelling(raw)
    return FastResult(raw=raw, skip_reason=skip, lost_events=0)


SPEC = FormatSpec(
    name="hubble",
    raw_schema=FLOW_SCHEMA_RAW,
    prepare=prepare,
    normalize=normalize,
    sniff=sniff,
    fast_read=fast_read,
    fast_reads_markers=True,
    raw_problems=RAW_PROBLEMS,
)
BARE_SPEC = FormatSpec(
    name="hubble",
    raw_schema=FLOW_SCHEMA_RAW,
    prepare=prepare,
    normalize=normalize,
    sniff=sniff,
    fast_read=fast_read_bare,
    raw_problems=RAW_PROBLEMS,
)
