"""Request or reply: the classification of flow rows (DESIGN.md, "Connections, not events")."""

from __future__ import annotations

import polars as pl

from analyzer import schema as S
from analyzer.connections._derive_columns import (
    _AUD,
    _CLASS,
    _DEN,
    _DK,
    _DN,
    _DPK,
    _IGNORED,
    _L7,
    _LAST,
    _REPLY,
    _REQUEST,
    _SK,
    _SN,
    _SOCK,
    _SPK,
    _UNDECIDED,
    _VIP,
    CALICO_FORMATS,
    EPHEMERAL_MIN,
    POLICY_DROP_REASONS,
)


def _flag(name: str) -> pl.Expr:
    """Whether ``name`` is one of the comma-separated flags (``(^|,)NAME(,|$)``, matched
    with literal comparisons: a regex per row cost 3x more)."""
    flags = pl.col(S.TCP_FLAGS).fill_null("")
    return (
        (flags == name)
        | flags.str.starts_with(f"{name},")
        | flags.str.ends_with(f",{name}")
        | flags.str.contains(f",{name},", literal=True)
    )


def classify() -> pl.Expr:
    """Request / reply / undecided / ignored, from everything but ports."""
    verdict = pl.col(S.VERDICT).fill_null("unknown")
    reason = pl.col(S.DROP_REASON)
    syn, ack = _flag("SYN"), _flag("ACK")
    icmp = pl.col(S.ICMP_TYPE)
    proto = pl.col(S.PROTOCOL).fill_null("")
    l7 = pl.col(S.L7_TYPE).fill_null("").str.to_lowercase()
    trace = pl.col(S.TRACE_REASON).fill_null("").str.to_uppercase()
    # traffic_direction is the connection's direction relative to the endpoint local to the
    # observing node (hubble-flow-format.md §1.2, pitfall 14). At TO_ENDPOINT that endpoint is
    # the packet's destination: ingress = a request arriving, egress = a reply coming back. On
    # the way out of a local endpoint (FROM_ENDPOINT, TO_STACK, TO_OVERLAY) it is the source.
    direction = pl.col(S.DIRECTION).fill_null("")
    point = pl.col(S.OBSERVATION_POINT).fill_null("")
    inbound = point == "TO_ENDPOINT"
    outbound = point.is_in(["FROM_ENDPOINT", "TO_STACK", "TO_OVERLAY"])
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
        # addressed to a Service frontend before translation (iptables kube-proxy seen from the
        # client's node): the port is the Service's, not the pod's, and the backend is unknown
        .when(
            pl.col(S.DST_SERVICE).is_not_null()
            & pl.col(S.DST_POD).is_null()
            & (pl.col(S.DST_ENTITY).fill_null("unknown") != "pod")
        )
        .then(pl.lit(_VIP))
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
        .when((inbound & (direction == "ingress")) | (outbound & (direction == "egress")))
        .then(pl.lit(_REQUEST))
        .when((inbound & (direction == "egress")) | (outbound & (direction == "ingress")))
        .then(pl.lit(_REPLY))
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


def port_rule(ports: dict[str, list[int]]) -> pl.Expr:
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
    named, pod_key = _pod(side)
    # one when-chain, not a coalesce of alternatives: each branch is built only for the rows
    # that reach it (every branch is non-null where it applies, so the chains agree) — 2.4x
    # less CPU per row
    return (
        pl.when(named)
        .then(pod_key)
        .when((ip != "") & proxied)
        .then(pl.concat_str(ip, pl.lit("#"), identity.cast(pl.String())))
        .when(ip != "")
        .then(ip)
        .otherwise(
            pl.concat_str(pl.lit("reserved:"), pl.col(f"{side}_entity").fill_null("unknown"))
        )
    )


def _pod(side: str) -> tuple[pl.Expr, pl.Expr]:
    """Whether a row names the side's pod, and its ``ns/pod`` key where it does."""
    ns, pod = pl.col(f"{side}_namespace"), pl.col(f"{side}_pod")
    return (ns != "") & (pod != ""), pl.concat_str(ns, pl.lit("/"), pod)


def _pod_key(side: str) -> pl.Expr:
    named, key = _pod(side)
    return pl.when(named).then(key)


def request_rows(decided: pl.LazyFrame) -> pl.LazyFrame:
    return request_columns(decided.filter(pl.col(_CLASS) == _REQUEST))


def request_columns(rows: pl.LazyFrame) -> pl.LazyFrame:
    """The working columns of request rows (endpoint keys, denial, audit, nodes, last time)."""
    node = pl.col(S.NODE)
    direction = pl.col(S.DIRECTION).fill_null("")
    point = pl.col(S.OBSERVATION_POINT).fill_null("")
    return rows.with_columns(
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
