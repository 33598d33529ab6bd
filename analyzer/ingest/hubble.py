"""Cilium Hubble flows: ``hubble observe -o json|jsonpb``, exporter files, bare legacy lines.

Spellings accepted: the ``{"flow": ...}`` envelope and bare Flow objects; snake_case proto names
and lowerCamelCase (grpcurl, gRPC-web); enums as names or integers. Non-flow exporter records
(``lost_events``, ``agent_event``, ``debug_event``, ``node_status``) are skipped and counted.
See docs/hubble-flow-format.md in the shared design notes for the field semantics.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from analyzer import schema as S
from analyzer.ingest import _hubble_enums as E
from analyzer.ingest._format import (
    FastResult,
    FormatSpec,
    Prepared,
    Skip,
    arrow_schema,
    enum_name,
    read_ndjson,
    snake_keys,
)

__all__ = ["SPEC", "FLOW_SCHEMA_RAW", "normalize", "prepare", "sniff"]

_STR = pl.String()
_INT = pl.Int64()
_PORTS = pl.Struct({"source_port": _INT, "destination_port": _INT})
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
                "TCP": pl.Struct({"source_port": _INT, "destination_port": _INT, "flags": _FLAGS}),
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

_NON_FLOW = ("lost_events", "agent_event", "debug_event", "node_status")
_ENVELOPE_SCHEMA = pl.Schema(
    {
        "flow": pl.Struct(FLOW_SCHEMA_RAW),
        "node_name": _STR,
        "lost_events": pl.Struct({"num_events_lost": _STR}),
        "agent_event": pl.Struct({"type": _STR}),
        "debug_event": pl.Struct({"type": _STR}),
        "node_status": pl.Struct({"state_change": _STR}),
    }
)
_ENVELOPE_ARROW = arrow_schema(_ENVELOPE_SCHEMA)
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
        if not flow.get("node_name") and isinstance(obj.get("node_name"), str):
            flow = {**flow, "node_name": obj["node_name"]}
        return [flow]
    for kind in _NON_FLOW:
        if kind in obj:
            return [Skip(f"{kind} records", _lost(obj[kind]) if kind == "lost_events" else 0)]
    if _FLOW_KEYS.intersection(obj):
        return [obj]
    return [Skip("records that are not Hubble flows")]


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
    env = read_ndjson(chunk, _ENVELOPE_ARROW)
    flow = pl.col("flow")
    raw = env.select(
        flow.struct.field(c).alias(c)
        if c != "node_name"
        else pl.coalesce(flow.struct.field("node_name"), pl.col("node_name")).alias("node_name")
        for c in FLOW_SCHEMA_RAW
    )
    if env["flow"].null_count() == 0:  # the common case: nothing but flows
        _check_spelling(raw)
        return FastResult(
            raw=raw, skip_reason=pl.repeat(None, env.height, dtype=_STR, eager=True), lost_events=0
        )
    reason = pl.when(flow.is_null()).then(
        pl.coalesce(
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


# Every combination of TCP flags, as sorted comma-joined names, keyed by bitmask.
_FLAG_TEXT = {
    m: ",".join(sorted(f for i, f in enumerate(E.TCP_FLAGS) if m >> i & 1))
    for m in range(1, 1 << len(E.TCP_FLAGS))
}


# --- normalization: raw Flow columns -> canonical columns (pure polars expressions) -------------


def _labels_clean(labels: pl.Expr) -> pl.Expr:
    """Pod labels: drop reserved/cidr/fqdn labels and Cilium bookkeeping, strip the source."""
    el = pl.element().str.replace(E.SOURCE_PREFIX, "")
    keep = ~pl.element().str.contains(E.NON_POD_SOURCE) & ~el.str.contains(E.BOOKKEEPING)
    return labels.list.eval(pl.element().filter(keep).str.replace(E.SOURCE_PREFIX, "")).list.sort()


def _ns_labels(labels: pl.Expr) -> pl.Expr:
    el = pl.element().str.replace(E.SOURCE_PREFIX, "")
    return labels.list.eval(
        el.filter(el.str.starts_with(E.NS_LABEL_PREFIX)).str.strip_prefix(E.NS_LABEL_PREFIX)
    ).list.sort()


def _label_table(raw: pl.DataFrame, ep: str, side: str) -> pl.DataFrame:
    """Label-derived columns, computed once per distinct label list of endpoint ``ep``.

    Label lists repeat massively (one per identity), so this is where normalization saves
    most of its work; rows find their entry by the hash of their label list.
    """
    labels = pl.col(ep).struct.field("labels")
    distinct = raw.select(labels.alias("labels"), labels.hash().alias("_h")).unique(subset="_h")
    lab = pl.col("labels")
    cidr = lab.list.eval(pl.element().str.contains(r"^(?:cidr|fqdn|cidrgroup):")).list.any()
    entity = pl.coalesce(
        *(pl.when(lab.list.contains(k)).then(pl.lit(v)) for k, v in E.RESERVED_ENTITY),
        pl.when(cidr).then(pl.lit("world")),
        pl.when(lab.list.len() > 0).then(pl.lit("pod")),
    )
    ns_from_label = lab.list.eval(
        pl.element()
        .filter(pl.element().str.starts_with(E.NS_LABEL_FULL))
        .str.strip_prefix(E.NS_LABEL_FULL)
    ).list.first()
    return distinct.select(
        pl.col("_h").alias(f"_h_{side}"),
        _labels_clean(lab).alias(f"{side}_labels"),
        _ns_labels(lab).alias(f"{side}_namespace_labels"),
        ns_from_label.alias(f"_ns_{side}"),
        entity.alias(f"_ent_{side}"),
    )


def _endpoint_columns(ep: str, side: str) -> list[pl.Expr]:
    """Columns of one endpoint, after ``_label_table`` has been joined in."""
    e = pl.col(ep)
    identity = e.struct.field("identity")
    pod_known = e.struct.field("pod_name").is_not_null()
    ns_known = e.struct.field("namespace").is_not_null()
    # First decisive signal wins: reserved labels, CIDR/FQDN labels, pod labels, then the
    # numeric identity and endpoint metadata (field-masked flows have no labels).
    entity = pl.coalesce(
        pl.col(f"_ent_{side}"),
        identity.replace_strict(E.IDENTITY_ENTITY, default=None, return_dtype=_STR),
        pl.when(pod_known | ns_known | (identity >= 256)).then(pl.lit("pod")),
        pl.lit("unknown"),
    )
    return [
        pl.coalesce(e.struct.field("namespace").replace("", None), pl.col(f"_ns_{side}")).alias(
            f"{side}_namespace"
        ),
        e.struct.field("pod_name").replace("", None).alias(f"{side}_pod"),
        e.struct.field("workloads").list.first().struct.field("name").alias(f"{side}_workload"),
        pl.col(f"{side}_labels"),
        pl.col(f"{side}_namespace_labels"),
        entity.alias(f"{side}_entity"),
        identity.alias(f"{side}_identity"),
    ]


def _policies(col: str) -> pl.Expr:
    p = pl.element()
    ns = p.struct.field("namespace")
    name = p.struct.field("name")
    text = (
        pl.when(ns.is_null() | (ns == ""))
        .then(name)
        .otherwise(pl.concat_str(ns, pl.lit("/"), name))
    )
    return pl.col(col).list.eval(text.drop_nulls())


def normalize(raw: pl.DataFrame) -> pl.DataFrame:
    """Raw Hubble Flow rows (``FLOW_SCHEMA_RAW``) -> canonical flow rows. Pure."""
    l4 = pl.col("l4")
    tcp = l4.struct.field("TCP")
    ports = [tcp, l4.struct.field("UDP"), l4.struct.field("SCTP")]
    icmp = pl.coalesce(l4.struct.field("ICMPv4"), l4.struct.field("ICMPv6"))
    protocol = pl.coalesce(
        pl.when(l4.struct.field(name).is_not_null()).then(pl.lit(name))
        for name in ("TCP", "UDP", "SCTP", "ICMPv4", "ICMPv6", "VRRP", "IGMP")
    )
    flags = tcp.struct.field("flags")
    mask = pl.sum_horizontal(
        pl.when(flags.struct.field(f)).then(pl.lit(1 << i)).otherwise(pl.lit(0))
        for i, f in enumerate(E.TCP_FLAGS)
    )
    l7 = pl.col("l7")
    verdict = enum_name(pl.col("verdict"), E.VERDICT).str.to_lowercase()
    drop_desc = enum_name(pl.col("drop_reason_desc"), E.DROP_REASON)
    drop_code = (
        pl.col("drop_reason").cast(_STR).replace({str(k): v for k, v in E.DROP_REASON.items()})
    )
    agg = pl.col("aggregate")
    agg_total = (
        agg.struct.field("ingress_flow_count").fill_null(0)
        + agg.struct.field("egress_flow_count").fill_null(0)
        + agg.struct.field("unknown_direction_flow_count").fill_null(0)
    )
    direction = enum_name(pl.col("traffic_direction"), E.DIRECTION).str.to_lowercase()
    for ep, side in (("source", "src"), ("destination", "dst")):
        table = _label_table(raw, ep, side)
        raw = raw.with_columns(pl.col(ep).struct.field("labels").hash().alias(f"_h_{side}")).join(
            table, on=f"_h_{side}", how="left", maintain_order="left"
        )
    frame = raw.select(
        pl.col("time")
        .str.to_datetime(
            format="%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="us", time_zone="UTC", strict=False
        )
        .alias(S.TIME),
        pl.lit("hubble").alias(S.SOURCE_FORMAT),
        pl.col("node_name").replace("", None).alias(S.NODE),
        pl.when(verdict.is_in(S.VERDICTS))
        .then(verdict)
        .otherwise(pl.lit("unknown"))
        .alias(S.VERDICT),
        pl.coalesce(drop_desc.replace("DROP_REASON_UNKNOWN", None), drop_code).alias(S.DROP_REASON),
        pl.when(direction.is_in(["ingress", "egress"]))
        .then(direction)
        .otherwise(pl.lit("unknown"))
        .alias(S.DIRECTION),
        pl.coalesce(pl.col("is_reply"), pl.when(pl.col("reply")).then(pl.lit(True))).alias(
            S.IS_REPLY
        ),
        protocol.alias(S.PROTOCOL),
        pl.col("IP").struct.field("source").alias(S.SRC_IP),
        pl.col("IP").struct.field("destination").alias(S.DST_IP),
        pl.coalesce(p.struct.field("source_port") for p in ports)
        .replace(0, None)
        .alias(S.SRC_PORT),
        pl.coalesce(p.struct.field("destination_port") for p in ports)
        .replace(0, None)
        .alias(S.DST_PORT),
        *_endpoint_columns("source", "src"),
        *_endpoint_columns("destination", "dst"),
        pl.col("destination_names").alias(S.DST_NAMES),
        pl.col("source_names").alias(S.SRC_NAMES),
        l7.struct.field("dns").struct.field("query").str.strip_suffix(".").alias(S.DNS_QUERY),
        pl.when(agg.is_not_null()).then(agg_total).otherwise(pl.lit(1, _INT)).alias(S.FLOW_COUNT),
        enum_name(pl.col("Type"), E.FLOW_TYPE).replace("UNKNOWN_TYPE", None).alias(S.FLOW_TYPE),
        pl.col("event_type").struct.field("type").alias(S.EVENT_TYPE),
        enum_name(pl.col("trace_observation_point"), E.OBSERVATION_POINT)
        .replace("UNKNOWN_POINT", None)
        .alias(S.OBSERVATION_POINT),
        enum_name(pl.col("trace_reason"), E.TRACE_REASON)
        .replace("TRACE_REASON_UNKNOWN", None)
        .alias(S.TRACE_REASON),
        pl.when(flags.is_not_null() & (mask > 0))
        .then(mask.replace_strict(_FLAG_TEXT, default=None, return_dtype=_STR))
        .alias(S.TCP_FLAGS),
        pl.when(icmp.is_not_null()).then(icmp.struct.field("type").fill_null(0)).alias(S.ICMP_TYPE),
        pl.when(icmp.is_not_null()).then(icmp.struct.field("code").fill_null(0)).alias(S.ICMP_CODE),
        enum_name(l7.struct.field("type"), E.L7_TYPE)
        .str.to_lowercase()
        .replace("unknown_l7_type", None)
        .alias(S.L7_TYPE),
        pl.when(l7.struct.field("dns").is_not_null())
        .then(pl.lit("dns"))
        .when(l7.struct.field("http").is_not_null())
        .then(pl.lit("http"))
        .when(l7.struct.field("kafka").is_not_null())
        .then(pl.lit("kafka"))
        .alias(S.L7_PROTOCOL),
        l7.struct.field("http").struct.field("method").alias(S.HTTP_METHOD),
        l7.struct.field("http").struct.field("url").alias(S.HTTP_URL),
        l7.struct.field("dns").struct.field("rcode").alias(S.DNS_RCODE),
        *(
            pl.when(pl.col(c).struct.field("name").is_not_null())
            .then(
                pl.concat_str(
                    pl.col(c).struct.field("namespace").fill_null(""),
                    pl.lit("/"),
                    pl.col(c).struct.field("name"),
                )
            )
            .alias(out)
            for c, out in (
                ("source_service", S.SRC_SERVICE),
                ("destination_service", S.DST_SERVICE),
            )
        ),
        pl.when(
            pl.col("egress_allowed_by").is_not_null() | pl.col("ingress_allowed_by").is_not_null()
        )
        .then(
            pl.concat_list(
                _policies("egress_allowed_by").fill_null([]),
                _policies("ingress_allowed_by").fill_null([]),
            )
        )
        .alias(S.POLICIES_ENFORCED),
    )
    return S.conform(frame)


SPEC = FormatSpec(
    name="hubble",
    raw_schema=FLOW_SCHEMA_RAW,
    prepare=prepare,
    normalize=normalize,
    sniff=sniff,
    fast_read=fast_read,
)
BARE_SPEC = FormatSpec(
    name="hubble",
    raw_schema=FLOW_SCHEMA_RAW,
    prepare=prepare,
    normalize=normalize,
    sniff=sniff,
    fast_read=fast_read_bare,
)
