"""Resolve an endpoint named on the command line to the peer the engine evaluates.

``explain`` must see an endpoint exactly as ``simulate`` sees the same endpoint in the flows,
whichever way it is named (``namespace/pod``, ``namespace:key=value,...``, an IP). So every
form resolves the same way, in the same order as the connections and ``policy/frame.py`` do:

1. the flow store: the endpoint's latest non-empty pod labels (volatile labels removed, as in
   ``analyzer.connections``), the namespace labels its flows carried, its address;
2. the inventory, when given, overlays what it knows: the pod's labels, its namespace's
   labels, node, addresses and named container ports.

A label form names every observed or inventoried pod of the namespace whose labels include the
given ones; it resolves to their full label set when they share one, is refused as ambiguous
when they do not, and stands for a pod with exactly the given labels when none matches.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from analyzer.errors import UsageError
from analyzer.identity import drop_volatile_expr
from analyzer.identity.seen import SeenTable, seen_endpoints
from analyzer.policy.evaluate import Endpoint
from analyzer.policy.frame import parse_labels

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from analyzer.k8s.inventory import Inventory, PodInfo

__all__ = ["Resolved", "resolve_endpoint", "resolve_peer"]

MAX_LISTED = 5
# where endpoints are looked up: the flow rows, or the endpoint table computed from them
# (``identity.seen``; the rollup carries it), or nothing
Flows = pl.LazyFrame | SeenTable | None


@dataclass(frozen=True, slots=True)
class Resolved:
    """The peer, and one sentence saying where its labels came from."""

    peer: Endpoint
    note: str


def resolve_peer(
    text: str, inventory: Inventory | None, flows: Flows = None
) -> Endpoint:
    """The peer named by ``text``; see :func:`resolve_endpoint`."""
    return resolve_endpoint(text, inventory, flows).peer


def resolve_endpoint(
    text: str, inventory: Inventory | None, flows: Flows = None
) -> Resolved:
    """A peer from ``namespace/pod``, ``namespace:key=value,...``, an IP, or ``entity:NAME``.

    Raises
    ------
    UsageError
        The text is none of these forms, a named pod is in neither the inventory nor the
        flows, or a label form matches pods with different label sets.
    """
    text = text.strip()
    if text.startswith(("entity:", "reserved:")):
        entity = text.split(":", 1)[1] or "world"
        return Resolved(Endpoint(kind="ip", entity=entity), f"{text}: the reserved peer {entity}")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return _by_ip(text, inventory, flows)
    if ":" in text:
        namespace, _, spec = text.partition(":")
        return _by_labels(text, namespace, _given_labels(text, spec), inventory, flows)
    if "/" in text:
        namespace, _, name = text.partition("/")
        found = _by_name(namespace, name, inventory, flows)
        if found is None:
            raise UsageError(f"pod {text} is not in the inventory or the flow store")
        return found
    raise UsageError(
        f"peer {text!r}: expected namespace/pod, namespace:key=value,..., an IP, or entity:NAME"
    )


def _given_labels(text: str, spec: str) -> dict[str, str]:
    labels = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"peer {text!r}: labels must be key=value, separated by commas")
        labels[key] = value
    return labels


# --- the flow store ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Seen:
    """One endpoint as the flows show it (the view of ``analyzer.connections``)."""

    namespace: str | None
    pod: str | None
    ip: str | None
    entity: str | None
    labels: dict[str, str]
    namespace_labels: dict[str, str]


def _store_endpoints(flows: Flows, where: Callable[[str], pl.Expr]) -> list[_Seen]:
    """Endpoints of the rows where ``where(side + "_")`` holds, the latest seen first.

    Labels and namespace labels are each the latest non-empty list seen for the endpoint (row
    order is ingest order), as ``connections.endpoint_scalars`` picks them. ``where(prefix)``
    names the columns ``{prefix}namespace``, ``{prefix}pod``, ``{prefix}ip``: a filter on the
    rows' sides (``src_``, ``dst_``) and on the endpoint table (``""``) alike, so the table the
    rollup carries and the one computed here from the matching rows give the same answer.
    """
    if flows is None:
        return []
    if isinstance(flows, SeenTable):
        rows = flows.frame.filter(where(""))
    else:  # only the rows that name the peer (predicate pushdown into the Parquet scan)
        rows = seen_endpoints(flows.filter(where("src_") | where("dst_"))).filter(where(""))
    if rows.is_empty():
        return []

    def latest(column: str) -> pl.Expr:
        return pl.col(column).filter(pl.col(column).list.len() > 0).last()

    table = (
        rows.sort("at")
        .group_by("key", maintain_order=True)
        .agg(
            pl.col("namespace").drop_nulls().last(),
            pl.col("pod").drop_nulls().last(),
            pl.col("ip").drop_nulls().last(),
            pl.when(pl.col("is_pod").any())
            .then(pl.lit("pod"))
            .otherwise(pl.col("entity").drop_nulls().last())
            .first()
            .alias("entity"),
            latest("labels").alias("labels"),
            latest("namespace_labels").alias("namespace_labels"),
            pl.col("at").max(),
        )
        .with_columns(drop_volatile_expr("labels").alias("labels"))
        .sort("at", descending=True)
    )
    return [
        _Seen(
            r["namespace"],
            r["pod"],
            r["ip"],
            r["entity"],
            parse_labels(r["labels"]),
            parse_labels(r["namespace_labels"]),
        )
        for r in table.iter_rows(named=True)
    ]


def _namespace_labels(
    namespace: str, inventory: Inventory | None, flows: Flows
) -> tuple[dict[str, str], str]:
    """A namespace's labels: the inventory's, else the latest the flows carried."""
    known = inventory.namespace_labels(namespace) if inventory is not None else None
    if known is not None:
        return dict(known), "the inventory"
    seen = _store_endpoints(flows, lambda s: pl.col(f"{s}namespace") == namespace)
    for endpoint in seen:  # latest first
        if endpoint.namespace_labels:
            return endpoint.namespace_labels, "the flow store"
    return {}, "nowhere (only kubernetes.io/metadata.name is assumed)"


# --- the three forms --------------------------------------------------------------------------


def _by_name(
    namespace: str, name: str, inventory: Inventory | None, flows: Flows
) -> Resolved | None:
    seen = _store_endpoints(
        flows, lambda s: (pl.col(f"{s}namespace") == namespace) & (pl.col(f"{s}pod") == name)
    )
    pod = inventory.pod(namespace, name) if inventory is not None else None
    if pod is None and not seen:
        return None
    found = _pod_peer(namespace, name, seen[0] if seen else None, pod, inventory)
    return Resolved(found.peer, f"{namespace}/{name}: {found.note}")


def _pod_peer(
    namespace: str,
    name: str,
    seen: _Seen | None,
    pod: PodInfo | None,
    inventory: Inventory | None,
) -> Resolved:
    """Store first, the inventory overlaid (``frame._overlay_inventory`` does the same)."""
    labels = dict(pod.labels) if pod is not None else dict(seen.labels if seen else {})
    ns_labels = seen.namespace_labels if seen is not None else {}
    ns_from = "the flow store" if seen is not None else "nowhere"
    known = inventory.namespace_labels(namespace) if inventory is not None else None
    if known is not None:
        ns_labels, ns_from = dict(known), "the inventory"
    peer = Endpoint(
        kind="pod",
        namespace=namespace,
        name=name,
        labels=labels,
        namespace_labels=ns_labels,
        ip=(seen.ip if seen is not None else None) or (pod.ip if pod is not None else None),
        node=pod.node if pod is not None else None,
        ports=pod.ports if pod is not None else {},
    )
    where = "the inventory" if pod is not None else "the flow store"
    note = (
        f"pod labels {_show(labels)} from {where}, "
        f"namespace labels {_show(ns_labels)} from {ns_from}"
    )
    return Resolved(peer, note)


def _by_ip(ip: str, inventory: Inventory | None, flows: Flows) -> Resolved:
    pod = inventory.pod_by_ip(ip) if inventory is not None else None
    if pod is not None:
        found = _by_name(pod.namespace, pod.name, inventory, flows)
        assert found is not None  # the inventory knows the pod
        return Resolved(found.peer, f"{ip} is pod {found.note}")
    seen = _store_endpoints(flows, lambda s: pl.col(f"{s}ip") == ip)
    for endpoint in seen:
        if endpoint.entity == "pod" and endpoint.namespace and endpoint.pod:
            resolved = _pod_peer(endpoint.namespace, endpoint.pod, endpoint, None, inventory)
            return Resolved(
                resolved.peer, f"{ip} is pod {endpoint.namespace}/{endpoint.pod}: {resolved.note}"
            )
    entity = next((e.entity for e in seen if e.entity), None) or "world"
    where = "the flow store" if seen else "not seen in the flows: assumed outside the cluster"
    return Resolved(Endpoint(kind="ip", ip=ip, entity=entity), f"{ip}: {entity} ({where})")


def _by_labels(
    text: str,
    namespace: str,
    given: Mapping[str, str],
    inventory: Inventory | None,
    flows: Flows,
) -> Resolved:
    label = f"{namespace}:{{{','.join(f'{k}={v}' for k, v in sorted(given.items()))}}}"
    candidates: dict[str, tuple[_Seen | None, PodInfo | None]] = {}
    seen = _store_endpoints(flows, lambda s: pl.col(f"{s}namespace") == namespace)
    for observed in seen:
        if observed.entity == "pod" and observed.pod:
            pod = inventory.pod(namespace, observed.pod) if inventory is not None else None
            candidates[observed.pod] = (observed, pod)
    if inventory is not None:
        for pod in inventory.pods.values():
            if pod.namespace == namespace and not pod.host_network:
                candidates.setdefault(pod.name, (None, pod))
    matches: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for name, (maybe_seen, pod) in sorted(candidates.items()):
        labels = pod.labels if pod is not None else maybe_seen.labels if maybe_seen else {}
        if all(labels.get(k) == v for k, v in given.items()):
            matches.setdefault(tuple(sorted(labels.items())), []).append(name)
    if len(matches) > 1:
        shown = "; ".join(
            f"{_show(dict(labels))} ({', '.join(names[:2])}{', ...' if len(names) > 2 else ''})"
            for labels, names in list(matches.items())[:MAX_LISTED]
        )
        raise UsageError(
            f"{text} matches pods with {len(matches)} different label sets in namespace "
            f"{namespace}: {shown}; add labels to tell them apart, or name a pod (namespace/pod)"
        )
    if matches:
        (names,) = matches.values()
        first_seen, first_pod = candidates[names[0]]
        resolved = _pod_peer(namespace, names[0], first_seen, first_pod, inventory)
        peer = Endpoint(
            kind="pod",
            namespace=namespace,
            labels=resolved.peer.labels,
            namespace_labels=resolved.peer.namespace_labels,
            ip=resolved.peer.ip,
            node=resolved.peer.node,
            ports=resolved.peer.ports,
            label=label,
        )
        more = f" and {len(names) - 1} more with the same labels" if len(names) > 1 else ""
        return Resolved(peer, f"{text} is pod {namespace}/{names[0]}{more}: {resolved.note}")
    ns_labels, ns_from = _namespace_labels(namespace, inventory, flows)
    peer = Endpoint(
        kind="pod",
        namespace=namespace,
        labels=dict(given),
        namespace_labels=ns_labels,
        label=label,
    )
    note = (
        f"{text}: no pod of namespace {namespace} in the flow store or inventory has these "
        f"labels; a pod with exactly {_show(dict(given))}, namespace labels {_show(ns_labels)} "
        f"from {ns_from}"
    )
    return Resolved(peer, note)


def _show(labels: Mapping[str, str]) -> str:
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(none)"
    return "".join(c if c.isprintable() else "?" for c in text)[:300]
