"""Hubble normalization: raw Flow columns -> canonical flow columns (pure polars expressions).

Kept apart from the reading side (``hubble.py``) so it can run on its own, e.g. inside Spark
``mapInArrow`` on raw batches.
"""

from __future__ import annotations

import functools

import polars as pl

from analyzer import schema as S
from analyzer.ingest import _hubble_enums as E
from analyzer.ingest._format import enum_name
from analyzer.ingest._screen import bad_port

__all__ = ["normalize"]

_STR = pl.String()
_INT = pl.Int64()


# Every combination of TCP flags, as sorted comma-joined names, keyed by bitmask.
_FLAG_TEXT = {
    m: ",".join(sorted(f for i, f in enumerate(E.TCP_FLAGS) if m >> i & 1))
    for m in range(1, 1 << len(E.TCP_FLAGS))
}


def _labels_clean(labels: pl.Expr) -> pl.Expr:
    """Pod labels: drop reserved/cidr/fqdn labels and Cilium bookkeeping, strip the source."""
    el = pl.element().str.replace(E.SOURCE_PREFIX, "")
    keep = ~pl.element().str.contains(E.NON_POD_SOURCE) & ~el.str.contains(E.BOOKKEEPING)
    # ``list.filter``, then an element-wise ``list.eval`` (here and in ``_ns_labels``): a
    # ``filter`` inside ``list.eval`` runs list by list, element-wise expressions over all
    # elements at once
    return labels.list.filter(keep).list.eval(el).list.sort()


def _ns_labels(labels: pl.Expr) -> pl.Expr:
    el = pl.element()
    return (
        labels.list.eval(el.str.replace(E.SOURCE_PREFIX, ""))
        .list.filter(el.str.starts_with(E.NS_LABEL_PREFIX))
        .list.eval(el.str.strip_prefix(E.NS_LABEL_PREFIX))
        .list.sort()
    )


def _label_table(raw: pl.DataFrame, ep: str, side: str) -> pl.DataFrame:
    """Label-derived columns, computed once per distinct label list of endpoint ``ep`` (whose
    hash ``raw`` holds in ``_h_<side>``).

    Label lists repeat massively (one per identity), so this is where normalization saves
    most of its work; rows find their entry by the hash of their label list.
    """
    labels = pl.col(ep).struct.field("labels")
    distinct = raw.select(labels.alias("labels"), pl.col(f"_h_{side}").alias("_h"))
    return distinct.unique(subset="_h").select(_label_columns(side))


@functools.cache
def _label_columns(side: str) -> list[pl.Expr]:
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
    return [
        pl.col("_h").alias(f"_h_{side}"),
        _labels_clean(lab).alias(f"{side}_labels"),
        _ns_labels(lab).alias(f"{side}_namespace_labels"),
        ns_from_label.alias(f"_ns_{side}"),
        entity.alias(f"_ent_{side}"),
    ]


def _endpoint_columns(ep: str, side: str) -> list[pl.Expr]:
    """Columns of one endpoint, after ``_label_table`` has been joined in."""
    e = pl.col(ep)
    identity = e.struct.field("identity")
    pod_known = e.struct.field("pod_name").is_not_null()
    ns_known = e.struct.field("namespace").is_not_null()
    # First decisive signal wins: reserved labels, CIDR/FQDN labels, pod labels, then the
    # numeric identity and endpoint metadata (field-masked flows have no labels).
    # the labels' entity when they gave one (most rows): the rest only for the others
    from_labels = pl.col(f"_ent_{side}")
    entity = (
        pl.when(from_labels.is_not_null())
        .then(from_labels)
        .otherwise(
            pl.coalesce(
                identity.replace_strict(E.IDENTITY_ENTITY, default=None, return_dtype=_STR),
                pl.when(pod_known | ns_known | (identity >= 256)).then(pl.lit("pod")),
                pl.lit("unknown"),
            )
        )
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


def _port(value: pl.Expr) -> pl.Expr:
    """An integer port; null when absent, 0, or invalid (the reader skips invalid records;
    here they are never rounded into a port that was not observed)."""
    return pl.when(~bad_port(value)).then(value.cast(_INT)).replace(0, None)


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


@functools.cache
def _columns() -> list[pl.Expr]:
    """The canonical columns as expressions over the raw frame (built once, reused per batch)."""
    l4 = pl.col("l4")
    tcp = l4.struct.field("TCP")
    ports = [tcp, l4.struct.field("UDP"), l4.struct.field("SCTP")]
    icmp = pl.coalesce(l4.struct.field("ICMPv4"), l4.struct.field("ICMPv6"))
    def has(name: str) -> pl.Expr:
        return l4.struct.field(name).is_not_null()

    # the first L4 layer present (a when-chain: cheaper than a coalesce of alternatives)
    protocol = (
        pl.when(has("TCP")).then(pl.lit("TCP"))
        .when(has("UDP")).then(pl.lit("UDP"))
        .when(has("SCTP")).then(pl.lit("SCTP"))
        .when(has("ICMPv4")).then(pl.lit("ICMPv4"))
        .when(has("ICMPv6")).then(pl.lit("ICMPv6"))
        .when(has("VRRP")).then(pl.lit("VRRP"))
        .when(has("IGMP")).then(pl.lit("IGMP"))
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
    return [
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
        _port(pl.coalesce(p.struct.field("source_port") for p in ports)).alias(S.SRC_PORT),
        _port(pl.coalesce(p.struct.field("destination_port") for p in ports)).alias(S.DST_PORT),
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
    ]


def normalize(raw: pl.DataFrame) -> pl.DataFrame:
    """Raw Hubble Flow rows (``FLOW_SCHEMA_RAW``) -> canonical flow rows. Pure."""
    raw = raw.with_columns(
        pl.col(ep).struct.field("labels").hash().alias(f"_h_{side}")
        for ep, side in (("source", "src"), ("destination", "dst"))
    )
    for ep, side in (("source", "src"), ("destination", "dst")):
        table = _label_table(raw, ep, side)
        raw = raw.join(table, on=f"_h_{side}", how="left", maintain_order="left")
    return S.conform(raw.select(_columns()))
