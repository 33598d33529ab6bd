"""Evaluate a whole connections frame: each distinct edge once, joined back with polars.

An edge is what a verdict can depend on: for each end its kind, namespace, labels, namespace
labels and entity; which ipBlocks contain its address (an "address class", computed once per
distinct IP, so pods that differ only by IP still collapse when no ipBlock tells them apart);
its node only when the source is the node itself (host traffic is exempt); the destination's
named container ports; the protocol and port. A million connections typically collapse to a
few thousand such edges.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from analyzer.policy.compile import CompiledPolicies, CompiledPolicy, IPPeers, PortRange, ip_key
from analyzer.policy.evaluate import Peer, evaluate_direction, selecting_policies
from analyzer.policy.model import EGRESS, INGRESS

if TYPE_CHECKING:
    from analyzer.inventory import Inventory

__all__ = ["RESULT_COLUMNS", "evaluate_frame", "parse_labels"]

RESULT_COLUMNS = (
    "allowed",
    "ingress_rules",
    "egress_rules",
    "ingress_isolated",
    "egress_isolated",
    "reason",
)
_SIDES = ("src", "dst")
_MASK64 = (1 << 64) - 1
_OCTET = r"(0|[1-9]\d{0,2})"
_V4 = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"
_LIST_COLS = ("labels", "namespace_labels")
_STR_COLS = ("namespace", "pod", "ip", "entity", "node")


def parse_labels(items: list[str] | None) -> dict[str, str]:
    """``["app=web", "tier="]`` -> ``{"app": "web", "tier": ""}`` (split on the first ``=``)."""
    out: dict[str, str] = {}
    for item in items or ():
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _prepare(frame: pl.DataFrame) -> pl.DataFrame:
    """Add missing optional columns as nulls so the rest can rely on them."""
    add = []
    for side in _SIDES:
        for col in _STR_COLS:
            if f"{side}_{col}" not in frame.columns:
                add.append(pl.lit(None, dtype=pl.String).alias(f"{side}_{col}"))
        for col in _LIST_COLS:
            if f"{side}_{col}" not in frame.columns:
                add.append(pl.lit(None, dtype=pl.List(pl.String)).alias(f"{side}_{col}"))
    if "dst_port" not in frame.columns:
        add.append(pl.lit(None, dtype=pl.Int32).alias("dst_port"))
    if "protocol" not in frame.columns:
        add.append(pl.lit("TCP").alias("protocol"))
    return frame.with_columns(add) if add else frame


def _overlay_inventory(frame: pl.DataFrame, inventory: Inventory) -> pl.DataFrame:
    """Inventory labels, namespace labels, node and named ports win over the flow's."""
    pods = list(inventory.pods.values())
    by_ip = {ip: p for p in pods if not p.host_network for ip in p.ips}
    pod_rows = pl.DataFrame(
        {
            "_ns": [p.namespace for p in pods],
            "_pod": [p.name for p in pods],
            "_labels": [sorted(f"{k}={v}" for k, v in p.labels.items()) for p in pods],
            "_node": [p.node for p in pods],
            "_ports": [_ports_key(p.ports) for p in pods],
        },
        schema={
            "_ns": pl.String,
            "_pod": pl.String,
            "_labels": pl.List(pl.String),
            "_node": pl.String,
            "_ports": pl.String,
        },
    )
    ns_rows = pl.DataFrame(
        {
            "_ns": list(inventory.namespaces),
            "_nslabels": [
                sorted(f"{k}={v}" for k, v in lab.items()) for lab in inventory.namespaces.values()
            ],
        },
        schema={"_ns": pl.String, "_nslabels": pl.List(pl.String)},
    )
    ip_rows = pl.DataFrame(
        {
            "_ip": list(by_ip),
            "_ipns": [p.namespace for p in by_ip.values()],
            "_ippod": [p.name for p in by_ip.values()],
        },
        schema={"_ip": pl.String, "_ipns": pl.String, "_ippod": pl.String},
    )
    for side in _SIDES:
        s = side
        # A pod known only by its IP (e.g. Calico aggregates) gets its name from the inventory.
        frame = (
            frame.join(ip_rows, left_on=f"{s}_ip", right_on="_ip", how="left")
            .with_columns(
                pl.when(pl.col(f"{s}_pod").is_null() & pl.col("_ippod").is_not_null())
                .then(pl.col("_ipns"))
                .otherwise(pl.col(f"{s}_namespace"))
                .alias(f"{s}_namespace"),
                pl.coalesce(f"{s}_pod", "_ippod").alias(f"{s}_pod"),
                pl.when(pl.col("_ippod").is_not_null() & pl.col(f"{s}_pod").is_null())
                .then(pl.lit("pod"))
                .otherwise(pl.col(f"{s}_entity"))
                .alias(f"{s}_entity"),
            )
            .drop("_ipns", "_ippod")
        )
        frame = (
            frame.join(
                pod_rows,
                left_on=[f"{s}_namespace", f"{s}_pod"],
                right_on=["_ns", "_pod"],
                how="left",
            )
            .with_columns(
                pl.coalesce("_labels", f"{s}_labels").alias(f"{s}_labels"),
                pl.coalesce(f"{s}_node", "_node").alias(f"{s}_node"),
                pl.coalesce("_ports", pl.lit("")).alias(f"_{s}_ports"),
            )
            .drop("_labels", "_node", "_ports")
        )
        frame = (
            frame.join(ns_rows, left_on=f"{s}_namespace", right_on="_ns", how="left")
            .with_columns(
                pl.coalesce("_nslabels", f"{s}_namespace_labels").alias(f"{s}_namespace_labels")
            )
            .drop("_nslabels")
        )
    return frame


def _ports_key(ports: Mapping[str, tuple[tuple[int, str], ...]]) -> str:
    return ",".join(f"{name}:{n}/{p}" for name in sorted(ports) for n, p in ports[name])


def _ports_from_key(key: str) -> dict[str, tuple[tuple[int, str], ...]]:
    out: dict[str, tuple[tuple[int, str], ...]] = {}
    for item in filter(None, key.split(",")):
        name, _, rest = item.partition(":")
        number, _, proto = rest.partition("/")
        out[name] = out.get(name, ()) + ((int(number), proto),)
    return out


def _ip_classes(ips: list[str], blocks: tuple[IPPeers, ...]) -> list[str]:
    """Per IP, which of ``blocks`` contain it (``"0,3"``); equal classes give equal verdicts.

    Vectorised over IPs: addresses become 128-bit (high, low) uint64 pairs, and each block
    range is one comparison over all of them.
    """
    n = len(ips)
    series = pl.Series(ips, dtype=pl.String)
    octets = series.str.extract_groups(_V4).struct.unnest().cast(pl.UInt64, strict=False)
    ints = octets.with_columns(
        pl.when(pl.all_horizontal(pl.all() < 256))
        .then(pl.col("1") * 16777216 + pl.col("2") * 65536 + pl.col("3") * 256 + pl.col("4"))
        .alias("_int")
    )["_int"]
    version = np.where(ints.is_not_null().to_numpy(), 4, 0).astype(np.int8)
    hi = np.zeros(n, dtype=np.uint64)
    lo = ints.fill_null(0).to_numpy().astype(np.uint64)
    for i in np.flatnonzero(version == 0).tolist():
        key = ip_key(ips[i])  # IPv6 and anything unusual: the slow, exact path
        if key is not None:
            version[i] = key[0]
            hi[i], lo[i] = key[1] >> 64, key[1] & _MASK64

    def inside(v: int, first: int, last: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
        fh, fl, lh, ll = first >> 64, first & _MASK64, last >> 64, last & _MASK64
        above = (hi > fh) | ((hi == fh) & (lo >= fl))
        below = (hi < lh) | ((hi == lh) & (lo <= ll))
        return (version == v) & above & below  # type: ignore[no-any-return]

    member = np.zeros((n, len(blocks)), dtype=np.bool_)
    for j, block in enumerate(blocks):
        col = np.zeros(n, dtype=np.bool_)
        for v, first, last in block.ranges:
            col |= inside(v, first, last)
        for v, first, last in block.except_ranges:
            col &= ~inside(v, first, last)
        member[:, j] = col
    packed = np.packbits(member, axis=1)
    return [row.tobytes().hex() for row in packed]


def _side_blocks(compiled: CompiledPolicies, direction: str) -> tuple[IPPeers, ...]:
    """ipBlocks of ``direction`` rules: they judge the other end (src for ingress)."""
    found: dict[IPPeers, None] = {}
    for cp in compiled.policies:
        for rule in (cp.ingress if direction == INGRESS else cp.egress) or ():
            for peer in rule.peers:
                if isinstance(peer, IPPeers):
                    found[peer] = None
    return tuple(found)


def evaluate_frame(
    compiled: CompiledPolicies, frame: pl.DataFrame, inventory: Inventory | None = None
) -> pl.DataFrame:
    """Add the verdict columns (:data:`RESULT_COLUMNS`) to ``frame``.

    ``frame`` has the connection columns of docs/architecture.md (``src_namespace``,
    ``src_pod``, ``src_labels``, ``src_namespace_labels``, ``src_ip``, ``src_entity``,
    ``src_node``, the same for ``dst``, ``protocol``, ``dst_port``); missing ones count as null.
    """
    original = frame.columns
    work = _prepare(frame).with_row_index("_row")
    if inventory is not None:
        work = _overlay_inventory(work, inventory)
    else:
        work = work.with_columns(pl.lit("").alias("_src_ports"), pl.lit("").alias("_dst_ports"))
    keys: list[pl.Expr] = []
    for s in _SIDES:
        is_pod = (pl.col(f"{s}_entity") == "pod") | (
            pl.col(f"{s}_entity").is_null() & pl.col(f"{s}_namespace").is_not_null()
        )
        keys += [
            pl.when(is_pod).then(pl.lit("pod")).otherwise(pl.lit("ip")).alias(f"_k_{s}_kind"),
            pl.when(is_pod).then(pl.col(f"{s}_namespace")).alias(f"_k_{s}_ns"),
            pl.when(is_pod).then(pl.col(f"{s}_labels").list.join("\x1f")).alias(f"_k_{s}_labels"),
            pl.when(is_pod)
            .then(pl.col(f"{s}_namespace_labels").list.join("\x1f"))
            .alias(f"_k_{s}_nslabels"),
            pl.col(f"{s}_entity").alias(f"_k_{s}_entity"),
        ]
    # The node matters only for host -> pod (exemption on the pod's own node).
    host_src = pl.col("src_entity") == "host"
    keys += [
        pl.when(host_src).then(pl.col("src_node")).alias("_k_src_node"),
        pl.when(host_src).then(pl.col("dst_node")).alias("_k_dst_node"),
        pl.col("_dst_ports").alias("_k_dst_ports"),
        pl.col("protocol").str.to_uppercase().alias("_k_protocol"),
    ]
    work = work.with_columns(keys)
    work = _port_classes(compiled, work, inventory)
    for s, direction in (("src", INGRESS), ("dst", EGRESS)):
        blocks = _side_blocks(compiled, direction)
        if not blocks:
            work = work.with_columns(pl.lit("").alias(f"_k_{s}_ipclass"))
            continue
        ips = work[f"{s}_ip"].drop_nulls().unique().to_list()
        classes = pl.DataFrame(
            {"_ip": ips, "_class": _ip_classes(ips, blocks)},
            schema={"_ip": pl.String, "_class": pl.String},
        )
        work = work.join(classes, left_on=f"{s}_ip", right_on="_ip", how="left").rename(
            {"_class": f"_k_{s}_ipclass"}
        )
    key_cols = [c for c in work.columns if c.startswith("_k_")]
    edges = work.group_by(key_cols).agg(
        pl.col("src_ip").first().alias("_src_ip"),
        pl.col("dst_ip").first().alias("_dst_ip"),
        pl.col("src_pod").first().alias("_src_pod"),
        pl.col("dst_pod").first().alias("_dst_pod"),
        pl.col("dst_port").first().cast(pl.Int64).alias("_port"),
    )
    results = _evaluate_edges(compiled, edges.to_dicts())
    edges = pl.concat(
        [edges.select(key_cols), pl.DataFrame(results, schema=_RESULT_SCHEMA, orient="row")],
        how="horizontal",
    )
    out = work.join(edges, on=key_cols, how="left", nulls_equal=True).sort("_row")
    # Reasons were written once per edge with placeholders; each row gets its own names.
    out = out.with_columns(
        pl.col("reason")
        .str.replace_all(_SRC, _display("src"), literal=True)
        .str.replace_all(_DST, _display("dst"), literal=True)
        .str.replace_all(_PORT, pl.col("dst_port").cast(pl.String).fill_null("-"), literal=True)
    )
    return out.select([*original, *RESULT_COLUMNS])


_SRC, _DST, _PORT = "\x00SRC", "\x00DST", "\x00PORT"


def _display(side: str) -> pl.Expr:
    pod = pl.col(f"{side}_namespace") + pl.lit("/") + pl.col(f"{side}_pod")
    labels = pl.col(f"{side}_labels").list.join(",")
    by_labels = pl.col(f"{side}_namespace") + pl.lit(":{") + labels + pl.lit("}")
    return pl.coalesce(
        pod,
        by_labels,
        pl.col(f"{side}_ip"),
        pl.lit("reserved:") + pl.col(f"{side}_entity"),
        pl.lit("?"),
    )


def _port_classes(
    compiled: CompiledPolicies, work: pl.DataFrame, inventory: Inventory | None
) -> pl.DataFrame:
    """Replace the port in the edge key by its class: which port ranges contain it, plus the
    port itself only where a named port could resolve to it. Ports no rule tells apart (e.g.
    high ports) then share one evaluation."""
    ranges = sorted(
        {
            (p.protocol, p.low, p.high)
            for cp in compiled.policies
            for rules in (cp.ingress or (), cp.egress or ())
            for rule in rules
            for p in rule.ports
            if isinstance(p, PortRange)
        }
    )
    named: set[tuple[int, str]] = set()
    if inventory is not None:
        for pod in inventory.pods.values():
            for entries in pod.ports.values():
                named.update(entries)
    pairs = work.select("_k_protocol", pl.col("dst_port").cast(pl.Int64)).unique()
    classes = []
    for proto, port in pairs.iter_rows():
        if port is None:
            classes.append("-")
            continue
        bits = "".join("1" if (proto == rp and lo <= port <= hi) else "0" for rp, lo, hi in ranges)
        classes.append(f"{bits}#{port}" if (port, proto) in named else bits)
    table = pairs.with_columns(pl.Series("_k_port", classes, dtype=pl.String))
    return (
        work.with_columns(pl.col("dst_port").cast(pl.Int64).alias("_port_i64"))
        .join(
            table,
            left_on=["_k_protocol", "_port_i64"],
            right_on=["_k_protocol", "dst_port"],
            how="left",
            nulls_equal=True,
        )
        .drop("_port_i64")
    )


_RESULT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "allowed": pl.Boolean,
    "ingress_rules": pl.List(pl.String),
    "egress_rules": pl.List(pl.String),
    "ingress_isolated": pl.Boolean,
    "egress_isolated": pl.Boolean,
    "reason": pl.String,
}


def _peer(row: dict[str, Any], s: str) -> Peer:
    kind = row[f"_k_{s}_kind"]
    if kind == "pod":
        labels = dict(
            i.partition("=")[::2] for i in (row[f"_k_{s}_labels"] or "").split("\x1f") if i
        )
        ns_labels = dict(
            i.partition("=")[::2] for i in (row[f"_k_{s}_nslabels"] or "").split("\x1f") if i
        )
        return Peer(
            kind="pod",
            namespace=row[f"_k_{s}_ns"],
            labels=labels,
            namespace_labels=ns_labels,
            ip=row[f"_{s}_ip"],
            node=row[f"_k_{s}_node"],
            label=_SRC if s == "src" else _DST,
            ports=_ports_from_key(row["_k_dst_ports"]) if s == "dst" else {},
        )
    return Peer(
        kind="ip",
        ip=row[f"_{s}_ip"],
        entity=row[f"_k_{s}_entity"] or "world",
        node=row[f"_k_{s}_node"],
        label=_SRC if s == "src" else _DST,
    )


def _evaluate_edges(
    compiled: CompiledPolicies, rows: list[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    # Selection depends only on the subject's identity: cache it across edges.
    selected: dict[tuple[Any, ...], tuple[CompiledPolicy, ...]] = {}

    def select(peer: Peer, direction: str) -> tuple[CompiledPolicy, ...]:
        key = (
            direction,
            peer.namespace,
            tuple(sorted(peer.labels.items())),
            tuple(sorted(peer.namespace_labels.items())),
        )
        if key not in selected:
            selected[key] = selecting_policies(compiled, peer, direction)
        return selected[key]

    out: list[tuple[Any, ...]] = []
    for row in rows:
        src, dst = _peer(row, "src"), _peer(row, "dst")
        port, protocol = row["_port"], row["_k_protocol"] or "TCP"
        eg = evaluate_direction(
            compiled,
            src,
            dst,
            port,
            protocol,
            EGRESS,
            dst.ports,
            selecting=select(src, EGRESS) if src.kind == "pod" else None,
        )
        ing = evaluate_direction(
            compiled,
            dst,
            src,
            port,
            protocol,
            INGRESS,
            dst.ports,
            selecting=select(dst, INGRESS) if dst.kind == "pod" else None,
        )
        reasons = [v.reason for v in (eg, ing) if not v.allowed] or [eg.reason, ing.reason]
        out.append(
            (
                eg.allowed and ing.allowed,
                [str(r) for r in ing.allowed_by],
                [str(r) for r in eg.allowed_by],
                ing.isolated,
                eg.isolated,
                "; ".join(reasons).replace(f" on {protocol} {port}", f" on {protocol} {_PORT}"),
            )
        )
    return out
