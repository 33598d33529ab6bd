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

import polars as pl

from analyzer.policy.classes import ip_classes, port_classes, side_blocks
from analyzer.policy.compile import CompiledPolicies, CompiledPolicy
from analyzer.policy.evaluate import Endpoint, evaluate_direction, selecting_policies
from analyzer.policy.model import EGRESS, INGRESS

if TYPE_CHECKING:
    from analyzer.k8s.inventory import Inventory

__all__ = ["RESULT_COLUMNS", "evaluate_connections", "parse_labels"]

RESULT_COLUMNS = (
    "allowed",
    "ingress_rules",
    "egress_rules",
    "ingress_isolated",
    "egress_isolated",
    "reason",
)
_SIDES = ("src", "dst")
_LIST_COLS = ("labels", "namespace_labels")
_STR_COLS = ("namespace", "pod", "ip", "entity", "node")
_EP = ("namespace", "pod", "ip", "labels", "namespace_labels", "entity", "node")


def parse_labels(items: list[str] | None) -> dict[str, str]:
    """``["app=web", "tier="]`` -> ``{"app": "web", "tier": ""}`` (split on the first ``=``)."""
    out: dict[str, str] = {}
    for item in items or ():
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _prepare(frame: pl.DataFrame) -> pl.DataFrame:
    """The columns evaluation reads, with their types; missing ones as nulls."""

    def column(name: str, dtype: pl.DataType, default: object = None) -> pl.Expr:
        if name in frame.columns:
            return pl.col(name).cast(dtype, strict=False)
        return pl.lit(default, dtype=dtype).alias(name)

    exprs = [column(f"{side}_{col}", pl.String()) for side in _SIDES for col in _STR_COLS] + [
        column(f"{side}_{col}", pl.List(pl.String())) for side in _SIDES for col in _LIST_COLS
    ]
    exprs += [column("dst_port", pl.Int32()), column("protocol", pl.String(), "TCP")]
    return frame.with_columns(exprs)


def _overlay_inventory(ep: pl.DataFrame, inventory: Inventory, s: str) -> pl.DataFrame:
    """Inventory labels, namespace labels, node and named ports win over the flow's.

    ``ep`` is one side's endpoint table (columns ``{s}_namespace``, ``{s}_pod``, ...).
    """
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
    # A pod known only by its IP (e.g. Calico aggregates) gets its name from the inventory.
    by_ip_only = pl.col(f"{s}_pod").is_null() & pl.col("_ippod").is_not_null()
    ep = (
        ep.join(ip_rows, left_on=f"{s}_ip", right_on="_ip", how="left")
        .with_columns(
            pl.when(by_ip_only)
            .then(pl.col("_ipns"))
            .otherwise(pl.col(f"{s}_namespace"))
            .alias(f"{s}_namespace"),
            pl.when(by_ip_only)
            .then(pl.lit("pod"))
            .otherwise(pl.col(f"{s}_entity"))
            .alias(f"{s}_entity"),
            pl.coalesce(f"{s}_pod", "_ippod").alias(f"{s}_pod"),
        )
        .drop("_ipns", "_ippod")
    )
    ep = (
        ep.join(
            pod_rows, left_on=[f"{s}_namespace", f"{s}_pod"], right_on=["_ns", "_pod"], how="left"
        )
        .with_columns(
            pl.coalesce("_labels", f"{s}_labels").alias(f"{s}_labels"),
            pl.coalesce(f"{s}_node", "_node").alias(f"{s}_node"),
            pl.coalesce("_ports", pl.lit("")).alias("_ports"),
        )
        .drop("_labels", "_node")
    )
    return (
        ep.join(ns_rows, left_on=f"{s}_namespace", right_on="_ns", how="left")
        .with_columns(
            pl.coalesce("_nslabels", f"{s}_namespace_labels").alias(f"{s}_namespace_labels")
        )
        .drop("_nslabels")
    )


def _ports_key(ports: Mapping[str, tuple[tuple[int, str], ...]]) -> str:
    return ",".join(f"{name}:{n}/{p}" for name in sorted(ports) for n, p in ports[name])


def _ports_from_key(key: str) -> dict[str, tuple[tuple[int, str], ...]]:
    out: dict[str, tuple[tuple[int, str], ...]] = {}
    for item in filter(None, key.split(",")):
        name, _, rest = item.partition(":")
        number, _, proto = rest.partition("/")
        out[name] = out.get(name, ()) + ((int(number), proto),)
    return out


def _endpoints(
    work: pl.DataFrame,
    s: str,
    compiled: CompiledPolicies,
    inventory: Inventory | None,
) -> pl.DataFrame:
    """One side's distinct endpoints with their identity key (``_ident``) and display name."""
    ep = work.select(*(f"{s}_{c}" for c in _EP), f"_{s}_eid").unique(subset=f"_{s}_eid")
    if inventory is not None:
        ep = _overlay_inventory(ep, inventory, s)
    else:
        ep = ep.with_columns(pl.lit("").alias("_ports"))
    if s == "src":
        ep = ep.with_columns(pl.lit("").alias("_ports"))  # named ports live on the destination
    is_pod = (pl.col(f"{s}_entity") == "pod") | (
        pl.col(f"{s}_entity").is_null() & pl.col(f"{s}_namespace").is_not_null()
    )
    ep = ep.with_columns(
        pl.when(is_pod).then(pl.lit("pod")).otherwise(pl.lit("ip")).alias("_kind"),
        _display(s).alias("_disp"),
    )
    # ipBlocks of ingress rules judge the source, those of egress rules the destination.
    blocks = side_blocks(compiled, INGRESS if s == "src" else EGRESS)
    if blocks:
        ips = ep[f"{s}_ip"].drop_nulls().unique().to_list()
        classes = pl.DataFrame(
            {"_ip": ips, "_ipclass": ip_classes(ips, blocks)},
            schema={"_ip": pl.String, "_ipclass": pl.String},
        )
        ep = ep.join(classes, left_on=f"{s}_ip", right_on="_ip", how="left")
    else:
        ep = ep.with_columns(pl.lit("").alias("_ipclass"))
    pod = pl.col("_kind") == "pod"
    parts = [
        pl.col("_kind"),
        pl.when(pod).then(pl.col(f"{s}_namespace")),
        pl.when(pod).then(pl.col(f"{s}_labels").list.join("\x1f")),
        pl.when(pod).then(pl.col(f"{s}_namespace_labels").list.join("\x1f")),
        pl.col(f"{s}_entity"),
        pl.col("_ipclass"),
        pl.col("_ports"),
    ]
    return ep.with_columns(
        pl.concat_str([p.fill_null("\x00") for p in parts], separator="\x1e").alias("_ident")
    )


def evaluate_connections(
    compiled: CompiledPolicies, frame: pl.DataFrame, inventory: Inventory | None = None
) -> pl.DataFrame:
    """Add the verdict columns (:data:`RESULT_COLUMNS`) to ``frame``.

    ``frame`` has the connection columns of docs/architecture.md (``src_namespace``,
    ``src_pod``, ``src_labels``, ``src_namespace_labels``, ``src_ip``, ``src_entity``,
    ``src_node``, the same for ``dst``, ``protocol``, ``dst_port``); missing ones count as null.
    Rows keep their order and their original columns.
    """
    # Endpoints are hashed to find the distinct ones; everything per endpoint (inventory
    # overlay, address classes, identity) is then computed on that small table. A 64-bit
    # collision between two endpoints of one frame is ~n^2/2^65: negligible.
    frame = frame.drop([c for c in RESULT_COLUMNS if c in frame.columns])  # stale verdicts
    work = _prepare(frame).with_columns(
        pl.struct([f"{s}_{c}" for c in _EP]).hash(seed=7).alias(f"_{s}_eid") for s in _SIDES
    )
    endpoints = {s: _endpoints(work, s, compiled, inventory) for s in _SIDES}
    for s in _SIDES:
        ep = endpoints[s].select(
            f"_{s}_eid",
            pl.col("_ident").alias(f"_k_{s}"),
            pl.col(f"{s}_entity").alias(f"_{s}_ent"),
            pl.col(f"{s}_node").alias(f"_{s}_nd"),
            pl.col("_disp").alias(f"_{s}_disp"),
        )
        work = work.join(ep, on=f"_{s}_eid", how="left", maintain_order="left")
    # The nodes matter only for host -> pod (exemption on the pod's own node).
    host_src = pl.col("_src_ent") == "host"
    work = work.with_columns(
        pl.when(host_src).then(pl.col("_src_nd")).alias("_k_src_node"),
        pl.when(host_src).then(pl.col("_dst_nd")).alias("_k_dst_node"),
        pl.col("protocol").str.to_uppercase().alias("_k_protocol"),
    )
    work = port_classes(compiled, work, inventory)
    key_cols = ["_k_src", "_k_dst", "_k_src_node", "_k_dst_node", "_k_protocol", "_k_port"]
    edges = work.group_by(key_cols).agg(pl.col("dst_port").first().cast(pl.Int64).alias("_port"))
    reps = {
        s: {
            row["_ident"]: row
            for row in endpoints[s].unique(subset="_ident", keep="first").iter_rows(named=True)
        }
        for s in _SIDES
    }
    results = _evaluate_edges(compiled, edges.to_dicts(), reps)
    edges = pl.concat(
        [edges.select(key_cols), pl.DataFrame(results, schema=_RESULT_SCHEMA, orient="row")],
        how="horizontal",
    )
    out = work.join(edges, on=key_cols, how="left", nulls_equal=True, maintain_order="left")
    # Reasons were written once per edge with placeholders; each row gets its own names.
    out = out.with_columns(
        pl.col("reason")
        .str.replace_all(_SRC, pl.col("_src_disp"), literal=True)
        .str.replace_all(_DST, pl.col("_dst_disp"), literal=True)
        .str.replace_all(_PORT, pl.col("dst_port").cast(pl.String).fill_null("-"), literal=True)
    )
    # Joins kept the row order: the caller's columns come back untouched (types included).
    return pl.concat([frame, out.select(RESULT_COLUMNS)], how="horizontal")


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


_RESULT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "allowed": pl.Boolean,
    "ingress_rules": pl.List(pl.String),
    "egress_rules": pl.List(pl.String),
    "ingress_isolated": pl.Boolean,
    "egress_isolated": pl.Boolean,
    "reason": pl.String,
}


def _peer(ep: dict[str, Any], s: str, node: str | None) -> Endpoint:
    label = _SRC if s == "src" else _DST
    if ep["_kind"] == "pod":
        return Endpoint(
            kind="pod",
            namespace=ep[f"{s}_namespace"],
            labels=parse_labels(ep[f"{s}_labels"]),
            namespace_labels=parse_labels(ep[f"{s}_namespace_labels"]),
            ip=ep[f"{s}_ip"],
            node=node,
            label=label,
            ports=_ports_from_key(ep["_ports"]),
        )
    return Endpoint(
        kind="ip", ip=ep[f"{s}_ip"], entity=ep[f"{s}_entity"] or "world", node=node, label=label
    )


def _evaluate_edges(
    compiled: CompiledPolicies,
    rows: list[dict[str, Any]],
    reps: dict[str, dict[str, dict[str, Any]]],
) -> list[tuple[Any, ...]]:
    # Selection depends only on the subject's identity: cache it across edges.
    selected: dict[tuple[Any, ...], tuple[CompiledPolicy, ...]] = {}

    def select(peer: Endpoint, direction: str) -> tuple[CompiledPolicy, ...]:
        key = (
            direction,
            peer.namespace,
            tuple(sorted(peer.labels.items())),
            tuple(sorted(peer.namespace_labels.items())),
        )
        if key not in selected:
            selected[key] = selecting_policies(compiled, peer, direction)
        return selected[key]

    # An endpoint takes part in many edges: build it (labels parsed, named ports) and find the
    # policies selecting it once per identity and node, not once per edge. Endpoints are
    # frozen, so sharing one between edges changes nothing.
    peers: dict[tuple[str, str, str | None], Endpoint] = {}
    chosen: dict[tuple[str, str, str | None], tuple[CompiledPolicy, ...] | None] = {}

    def endpoint(s: str, ident: str, node: str | None, direction: str) -> Endpoint:
        key = (s, ident, node)
        peer = peers.get(key)
        if peer is None:
            peer = peers[key] = _peer(reps[s][ident], s, node)
            chosen[key] = select(peer, direction) if peer.kind == "pod" else None
        return peer

    out: list[tuple[Any, ...]] = []
    for row in rows:
        src_key = ("src", row["_k_src"], row["_k_src_node"])
        dst_key = ("dst", row["_k_dst"], row["_k_dst_node"])
        src = endpoint(*src_key, EGRESS)
        dst = endpoint(*dst_key, INGRESS)
        port, protocol = row["_port"], row["_k_protocol"] or "TCP"
        eg = evaluate_direction(
            compiled,
            src,
            dst,
            port,
            protocol,
            EGRESS,
            dst.ports,
            selecting=chosen[src_key],
        )
        ing = evaluate_direction(
            compiled,
            dst,
            src,
            port,
            protocol,
            INGRESS,
            dst.ports,
            selecting=chosen[dst_key],
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
