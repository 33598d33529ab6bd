"""Pieces the three Calico renderings share: enums, placeholders, endpoints, policy traces."""

from __future__ import annotations

import re

import polars as pl

from analyzer import schema as S
from analyzer.ingest._screen import EPOCH_RANGE

__all__ = [
    "HIT",
    "PLACEHOLDER",
    "epoch_seconds",
    "rfc3339",
    "verdict",
    "direction",
    "protocol",
    "entity",
    "pod",
    "workload",
    "clean",
    "labels_list",
    "policy_strings",
    "policy_hits",
    "to_int",
    "port",
    "traffic_totals",
]

_S = pl.String()
_I64 = pl.Int64()
PLACEHOLDER = ("-", "", "*")
HIT = pl.Struct(
    {
        "kind": _S,
        "namespace": _S,
        "name": _S,
        "tier": _S,
        "action": _S,
        "policy_index": _S,
        "rule_index": _S,
        "trigger": pl.Struct({"kind": _S, "namespace": _S, "name": _S}),
    }
)
_ACTION = {"allow": "forwarded", "1": "forwarded", "deny": "dropped", "2": "dropped"}
_REPORTER = {"dst": "ingress", "2": "ingress", "src": "egress", "1": "egress"}
_PROTO = {
    "tcp": "TCP",
    "udp": "UDP",
    "sctp": "SCTP",
    "icmp": "ICMPv4",
    "icmp6": "ICMPv6",
    "icmpv6": "ICMPv6",
    "6": "TCP",
    "17": "UDP",
    "132": "SCTP",
    "1": "ICMPv4",
    "58": "ICMPv6",
}
_ENDPOINT_TYPE = {
    "wep": "pod",
    "workloadendpoint": "pod",
    "1": "pod",
    "hep": "host-endpoint",
    "hostendpoint": "host-endpoint",
    "2": "host-endpoint",
    "ns": "network-set",
    "networkset": "network-set",
    "3": "network-set",
    "net": "network",
    "network": "network",
    "4": "network",
}
_NETWORK_NAME = {
    "pvt": "private-network",
    "private network": "private-network",
    "pub": "public-network",
    "public network": "public-network",
}
# ReplicaSet pod-template-hash alphabet (no vowels) then the aggregation star.
_RS_SUFFIX = r"-[bcdfghjklmnpqrstvwxz2456789]{6,10}-\*$"


def to_int(expr: pl.Expr, dtype: pl.DataType = _I64) -> pl.Expr:
    """int64 fields arrive as numbers (file, emitter) or strings (protojson)."""
    return expr.cast(_S).str.strip_chars().cast(dtype, strict=False)


def epoch_seconds(expr: pl.Expr) -> pl.Expr:
    """Epoch seconds -> UTC time; null outside the representable range (the reader skips such
    records; the guard keeps the multiplication to microseconds from overflowing)."""
    seconds = to_int(expr)
    return (
        pl.when(seconds.is_between(*EPOCH_RANGE))
        .then(pl.from_epoch(seconds, time_unit="s"))
        .dt.replace_time_zone("UTC")
    )


def port(expr: pl.Expr) -> pl.Expr:
    """An int32 port; null when absent, a placeholder, not an integer, or outside 0..65535
    (the reader skips such records; here they are never rounded or wrapped)."""
    value = to_int(clean(expr.cast(_S)))
    return pl.when(value.is_between(0, 65535)).then(value.cast(pl.Int32()))


def rfc3339(expr: pl.Expr) -> pl.Expr:
    return expr.str.to_datetime(
        format="%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="us", time_zone="UTC", strict=False
    )


def clean(expr: pl.Expr) -> pl.Expr:
    """Aggregation placeholders become null."""
    return pl.when(expr.is_in(PLACEHOLDER)).then(pl.lit(None, _S)).otherwise(expr)


def _lower(expr: pl.Expr) -> pl.Expr:
    return expr.cast(_S).str.strip_chars().str.to_lowercase()


def verdict(action: pl.Expr) -> pl.Expr:
    return _lower(action).replace_strict(_ACTION, default="unknown", return_dtype=_S)


def direction(reporter: pl.Expr) -> pl.Expr:
    return _lower(reporter).replace_strict(_REPORTER, default="unknown", return_dtype=_S)


def protocol(proto: pl.Expr) -> pl.Expr:
    text = _lower(proto)
    return (
        pl.when(text.is_in(list(_PROTO)))
        .then(text.replace_strict(_PROTO, default=None, return_dtype=_S))
        .otherwise(clean(proto.cast(_S).str.to_uppercase()))
    )


def entity(endpoint_type: pl.Expr | None, name: pl.Expr, namespace: pl.Expr) -> pl.Expr:
    """Calico endpoint kind -> canonical entity; ``net`` endpoints by their pvt/pub name."""
    net = _lower(name).replace_strict(_NETWORK_NAME, default="unknown", return_dtype=_S)
    if endpoint_type is None:  # Whisker has no type: infer from the name and namespace
        return (
            pl.when(_lower(name).is_in(list(_NETWORK_NAME)))
            .then(net)
            .when(clean(namespace).is_not_null())
            .then(pl.lit("pod"))
            .otherwise(pl.lit("unknown"))
        )
    kind = _lower(endpoint_type).replace_strict(_ENDPOINT_TYPE, default="unknown", return_dtype=_S)
    return pl.when(kind == "network").then(net).otherwise(kind)


def pod(entity_expr: pl.Expr, name: pl.Expr, name_aggr: pl.Expr | None = None) -> pl.Expr:
    """The pod name, or the aggregated ``prefix-*`` name when the pod name was folded away."""
    best = clean(name) if name_aggr is None else pl.coalesce(clean(name), clean(name_aggr))
    return pl.when(entity_expr == "pod").then(best)


def workload(entity_expr: pl.Expr, name_aggr: pl.Expr) -> pl.Expr:
    """Owning workload: the aggregated pod prefix without ReplicaSet hash; for host endpoints
    and network sets, their own name."""
    aggr = clean(name_aggr)
    base = aggr.str.replace(_RS_SUFFIX, "").str.replace(r"-\*$", "")
    return (
        pl.when(entity_expr == "pod")
        .then(pl.when(aggr.str.ends_with("*")).then(base))
        .when(entity_expr.is_in(["host-endpoint", "network-set"]))
        .then(aggr)
    )


def labels_list(labels: pl.Expr) -> pl.Expr:
    return labels.list.eval(pl.element().filter(~pl.element().is_in(PLACEHOLDER))).list.sort()


# --- policy traces -----------------------------------------------------------------------

_NEW_KIND = re.compile(r"^(np|gnp|knp|snp|sgnp|sknp|kcnp|kanp|kbanp|pro|eot):(.*)$")
_STAGED_KINDS = {"snp", "sgnp", "sknp"}


def parse_policy_string(text: str) -> tuple[int, str | None, bool]:
    """``<hit>|<tier>|<id>|<action>[|<rule>]`` (both id grammars) -> (hit, name, staged).

    Names come out as ``ns/name`` or ``name`` (tier prefixes removed); profile hits as
    ``profile:kns.<ns>``; end-of-tier-without-policy hits as ``None``.
    """
    parts = text.split("|")
    if len(parts) < 3:
        return (1 << 30, text or None, False)
    try:
        hit = int(parts[0])
    except ValueError:
        hit = 1 << 30
    tier, pid = parts[1], parts[2]
    m = _NEW_KIND.match(pid)
    if m:
        kind, rest = m.groups()
        if kind == "eot":
            return (hit, None, False)
        if kind == "pro":
            return (hit, f"profile:{rest}", False)
        return (hit, rest, kind in _STAGED_KINDS)
    if tier == "__PROFILE__":
        return (hit, "profile:" + pid.removeprefix("__PROFILE__."), False)
    ns, rest = pid.split("/", 1) if "/" in pid else ("", pid)
    staged = "staged:" in rest
    rest = rest.removeprefix("staged:")
    for prefix in (
        "knp.default.",
        "kanp.adminnetworkpolicy.",
        "kbanp.baselineadminnetworkpolicy.",
        f"{tier}.",
    ):
        if rest.startswith(prefix):
            rest = rest[len(prefix) :]
            break
    rest = rest.removeprefix("staged:")
    return (hit, f"{ns}/{rest}" if ns else rest, staged)


def policy_strings(values: pl.Expr, staged: bool | None, frame: pl.DataFrame, col: str) -> pl.Expr:
    """Map a list of Calico policy strings to names, ordered by hit index.

    Parsing runs once per distinct string of the batch (they are few), the mapping in polars.
    ``staged`` keeps only staged (True), only enforced (False) or all (None) hits.
    """
    distinct = frame.select(pl.col(col).explode().drop_nulls().unique()).to_series().to_list()
    mapping: dict[str, str | None] = {}
    for text in distinct:
        hit, name, is_staged = parse_policy_string(str(text))
        keep = name is not None and (staged is None or is_staged == staged)
        mapping[str(text)] = f"{hit:010d}\t{name}" if keep else None
    keyed = values.list.eval(
        pl.element().replace_strict(mapping, default=None, return_dtype=_S).drop_nulls().sort()
    )
    return keyed.list.eval(pl.element().str.replace(r"^\d+\t", ""))


_HIT_KIND_PROFILE = ("profile", "9")
_HIT_KIND_EOT = ("endoftier", "10")


def policy_hits(values: pl.Expr) -> pl.Expr:
    """Goldmane/Whisker PolicyHit structs -> names (``ns/name``, ``name``, ``profile:...``)."""
    e = pl.element()

    def named(ns: pl.Expr, name: pl.Expr) -> pl.Expr:
        return (
            pl.when(clean(ns).is_null()).then(name).otherwise(pl.concat_str(ns, pl.lit("/"), name))
        )

    kind = _lower(e.struct.field("kind"))
    trigger = e.struct.field("trigger")
    text = (
        pl.when(kind.is_in(_HIT_KIND_PROFILE))
        .then(pl.concat_str(pl.lit("profile:"), e.struct.field("name")))
        .when(kind.is_in(_HIT_KIND_EOT))
        .then(named(trigger.struct.field("namespace"), trigger.struct.field("name")))
        .otherwise(named(e.struct.field("namespace"), e.struct.field("name")))
    )
    order = to_int(e.struct.field("policy_index")).fill_null(0)
    return values.list.eval(text.sort_by(order).drop_nulls())


def traffic_totals() -> list[pl.Expr]:
    """Bytes and packets of both directions of a Calico record (canonical columns are totals)."""
    return [
        (to_int(pl.col("bytes_in")).fill_null(0) + to_int(pl.col("bytes_out")).fill_null(0)).alias(
            S.BYTES
        ),
        (
            to_int(pl.col("packets_in")).fill_null(0) + to_int(pl.col("packets_out")).fill_null(0)
        ).alias(S.PACKETS),
    ]
