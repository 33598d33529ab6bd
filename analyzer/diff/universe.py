"""The finite universe a semantic diff enumerates: endpoints and port classes.

Endpoints are the known pod identities (observed in the store, plus the inventory's pods), the
reserved entities (observed, or named by a Cilium rule) and the *address classes*: the
intervals the ipBlocks of both sets cut the IPv4 and IPv6 spaces into. Port classes are the
intervals the port ranges of both sets cut 1-65535 into, per protocol (TCP, UDP, SCTP), with
every port a named-port rule can resolve to on its own. Within one class no rule of either
set tells two members apart, so one representative decides for all of them: the enumeration
is finite and exact.

A pod identity is what a verdict can depend on: namespace, labels, namespace labels, which
ipBlocks contain its address, and its named container ports (only names some rule uses).
Labels, namespace labels and named ports come from the inventory when it knows the pod, as in
``evaluate_connections``.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from analyzer.identity import group_key, stable_labels
from analyzer.k8s.inventory import Inventory
from analyzer.policy.classes import ip_classes
from analyzer.policy.compile import (
    CLUSTER_ENTITIES,
    CompiledPolicies,
    EntityPeers,
    IPPeers,
    NamedPort,
    PortRange,
    ip_key,
)
from analyzer.policy.evaluate import Endpoint
from analyzer.policy.frame import parse_labels

__all__ = [
    "ADDRESSES",
    "PROTOCOLS",
    "Endpoint",
    "PortClass",
    "Universe",
    "build_universe",
    "endpoint_hash",
    "range_text",
]

ADDRESSES = "addresses"  # group of every address class
PROTOCOLS = ("TCP", "UDP", "SCTP")  # what a NetworkPolicy port can name
ADDRESS_TOKEN = "\x00ADDR"  # stands for an address class in reasons until a row names it
_ENTITIES = tuple(sorted(CLUSTER_ENTITIES - {"pod"}))
_SPACE = {4: (1 << 32) - 1, 6: (1 << 128) - 1}
_EP_COLS = ("namespace", "pod", "ip", "entity", "labels", "namespace_labels")


@dataclass(frozen=True, slots=True)
class UniverseEntry:
    """One endpoint of the universe: a pod identity, a reserved entity or an address class.

    ``peer`` is what the engine evaluates (its ``label`` is ``display``, or a token for an
    address class). ``span`` is ``(version, first, last)`` for an address class.
    """

    index: int
    kind: str  # pod | entity | addresses
    group: str
    display: str
    namespace: str | None
    peer: Endpoint
    named: str
    members: int
    span: tuple[int, int, int] | None = None


@dataclass(frozen=True, slots=True)
class PortClass:
    """Ports ``low``..``high`` of ``protocol`` that no rule of either set tells apart."""

    protocol: str
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class Universe:
    """Endpoints (pods first, then entities, then address classes) and port classes.

    ``observed`` maps each distinct observed endpoint (``endpoint_hash`` of its columns) to
    the index of its endpoint (``_ep``, null when it has none: a peer without an address).
    """

    endpoints: tuple[UniverseEntry, ...]
    ports: tuple[PortClass, ...]
    observed: pl.DataFrame

    def count(self, kind: str) -> int:
        return sum(1 for e in self.endpoints if e.kind == kind)


def endpoint_hash(side: str) -> pl.Expr:
    """A 64-bit key of one side's endpoint columns (collisions ~n^2/2^65: negligible)."""
    return pl.struct([pl.col(f"{side}_{c}").alias(c) for c in _EP_COLS]).hash(seed=11)


def build_universe(
    edges: pl.DataFrame,
    inventory: Inventory | None,
    sets: Sequence[CompiledPolicies],
) -> Universe:
    """Collect every endpoint and port class the policy sets ``sets`` can tell apart.

    ``edges`` is a connections frame (``analyzer.connections`` columns); its endpoints and the
    inventory's pods are the known identities.
    """
    blocks = tuple(dict.fromkeys(b for s in sets for b in s.ip_blocks))
    names = {
        p.name
        for s in sets
        for cp in s.policies
        for rules in (cp.ingress or (), cp.egress or ())
        for r in rules
        for p in r.ports
        if isinstance(p, NamedPort)
    }
    rows = _observed_rows(edges, inventory)
    if inventory is not None:
        rows += _inventory_rows(inventory, {(r["namespace"], r["pod"]) for r in rows})
    ips = sorted({r["ip"] for r in rows if r["ip"]})
    ip_class = dict(zip(ips, ip_classes(ips, blocks), strict=True)) if blocks else {}

    pods: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    entities: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        cls = ip_class.get(row["ip"] or "", "")
        if row["kind"] == "pod":
            named = {k: v for k, v in row["ports"].items() if k in names}
            key = (
                row["namespace"],
                tuple(sorted(row["labels"].items())),
                tuple(sorted(row["ns_labels"].items())),
                cls,
                _ports_key(named),
            )
            row["named"] = named
            pods.setdefault(key, []).append(row)
        elif row["kind"] == "entity":
            entities.setdefault((row["entity"], cls), []).append(row)
    for entity in _named_entities(sets):
        if not any(e == entity for e, _ in entities):
            entities[(entity, "")] = []

    endpoints: list[UniverseEntry] = []
    by_row: dict[int, int] = {}
    for key in sorted(pods, key=lambda k: (k[0], _pod_group(k), k)):
        members = pods[key]
        endpoints.append(_pod_endpoint(len(endpoints), key, members))
        by_row.update((id(m), endpoints[-1].index) for m in members)
    for (entity, _cls), members in sorted(entities.items()):
        ip = next((m["ip"] for m in members if m["ip"]), None)
        peer = Endpoint(kind="ip", entity=entity, ip=ip, label=f"entity:{entity}")
        endpoints.append(
            UniverseEntry(
                len(endpoints),
                "entity",
                f"entity:{entity}",
                f"entity:{entity}",
                None,
                peer,
                "",
                len(members),
            )
        )
        by_row.update((id(m), endpoints[-1].index) for m in members)
    spans = _address_spans(blocks)
    first_address = len(endpoints)
    for version, first, last in spans:
        peer = Endpoint(
            kind="ip", entity="world", ip=str(_address(version, first)), label=ADDRESS_TOKEN
        )
        endpoints.append(
            UniverseEntry(
                len(endpoints),
                ADDRESSES,
                ADDRESSES,
                range_text(version, first, last),
                None,
                peer,
                "",
                0,
                (version, first, last),
            )
        )
    starts = [(v, f) for v, f, _ in spans]
    for row in rows:
        if row["kind"] == "addresses":
            address = ip_key(row["ip"])
            if address is not None:
                by_row[id(row)] = first_address + bisect.bisect_right(starts, address) - 1
    observed = pl.DataFrame(
        {
            "_eid": [r["eid"] for r in rows if r["eid"] is not None],
            "_ep": [by_row.get(id(r)) for r in rows if r["eid"] is not None],
        },
        schema={"_eid": pl.UInt64, "_ep": pl.Int32},
    )
    return Universe(tuple(endpoints), _port_classes(sets, endpoints), observed)


def _observed_rows(edges: pl.DataFrame, inventory: Inventory | None) -> list[dict[str, Any]]:
    """Distinct endpoints of both sides, resolved against the inventory as the engine does."""
    if edges.height == 0:
        return []
    sides = [
        edges.select(
            endpoint_hash(s).alias("eid"), *(pl.col(f"{s}_{c}").alias(c) for c in _EP_COLS)
        )
        for s in ("src", "dst")
    ]
    distinct = (
        pl.concat(sides)
        .unique(subset="eid")
        .sort(["namespace", "pod", "ip", "entity", "eid"], nulls_last=True)
    )
    by_ip = {}
    if inventory is not None:
        by_ip = {ip: p for p in inventory.pods.values() if not p.host_network for ip in p.ips}
    out = []
    for r in distinct.iter_rows(named=True):
        namespace, pod, entity = r["namespace"], r["pod"], r["entity"]
        found = by_ip.get(r["ip"] or "") if pod is None else None
        if found is not None:  # known only by its address (e.g. Calico aggregates)
            namespace, pod, entity = found.namespace, found.name, "pod"
        is_pod = entity == "pod" or (entity is None and namespace is not None)
        row = {"eid": r["eid"], "namespace": namespace, "pod": pod, "ip": r["ip"]}
        if is_pod:
            info = inventory.pod(namespace, pod) if inventory and pod else None
            ns_labels = inventory.namespace_labels(namespace) if inventory else None
            row |= {
                "kind": "pod",
                "labels": dict(info.labels) if info else parse_labels(r["labels"]),
                "ns_labels": dict(ns_labels)
                if ns_labels is not None
                else parse_labels(r["namespace_labels"]),
                "ports": dict(info.ports) if info else {},
            }
        elif entity in _ENTITIES:
            row |= {"kind": "entity", "entity": entity}
        else:  # world and the like: judged by address only
            row |= {"kind": "addresses"}
        out.append(row)
    return out


def _inventory_rows(inventory: Inventory, seen: set[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """Inventory pods no flow mentions (host-network pods are the node, not pods)."""
    out = []
    for key in sorted(inventory.pods):
        info = inventory.pods[key]
        if info.host_network or (info.namespace, info.name) in seen:
            continue
        ns_labels = inventory.namespace_labels(info.namespace)
        out.append(
            {
                "eid": None,
                "kind": "pod",
                "namespace": info.namespace,
                "pod": info.name,
                "ip": info.ip,
                "labels": dict(info.labels),
                "ns_labels": dict(ns_labels or {}),
                "ports": dict(info.ports),
            }
        )
    return out


def _pod_group(key: tuple[Any, ...]) -> str:
    return group_key(key[0], [f"{k}={v}" for k, v in key[1]], "pod", None)


def _pod_endpoint(index: int, key: tuple[Any, ...], members: list[dict[str, Any]]) -> UniverseEntry:
    namespace, labels = key[0], dict(key[1])
    rep = min(members, key=lambda m: (m["pod"] or "", m["ip"] or ""))
    display = f"{namespace}:{{{','.join(stable_labels(f'{k}={v}' for k, v in key[1]))}}}"
    peer = Endpoint(
        kind="pod",
        namespace=namespace,
        labels=labels,
        namespace_labels=dict(key[2]),
        ip=rep["ip"],
        ports=rep["named"],
        label=display,
    )
    pods = {(m["namespace"], m["pod"] or m["ip"]) for m in members}
    return UniverseEntry(index, "pod", _pod_group(key), display, namespace, peer, key[4], len(pods))


def _ports_key(ports: Mapping[str, tuple[tuple[int, str], ...]]) -> str:
    return ",".join(f"{name}:{n}/{p}" for name in sorted(ports) for n, p in ports[name])


def _named_entities(sets: Sequence[CompiledPolicies]) -> list[str]:
    """Reserved entities a Cilium rule of either set names (``cluster``/``all``: every one)."""
    named: set[str] = set()
    for s in sets:
        for cp in s.policies:
            for rules in (cp.ingress or (), cp.egress or ()):
                for r in rules:
                    for p in r.peers:
                        if isinstance(p, EntityPeers):
                            named.update(p.entities)
    if named & {"cluster", "all"}:
        named.update(_ENTITIES)
    return sorted(named & set(_ENTITIES))


def _address_spans(blocks: Iterable[IPPeers]) -> list[tuple[int, int, int]]:
    """The intervals every range and exception of ``blocks`` cut both address spaces into."""
    cuts: dict[int, set[int]] = {4: {0}, 6: {0}}
    for block in blocks:
        for version, first, last in block.ranges + block.except_ranges:
            cuts[version].update(p for p in (first, last + 1) if p <= _SPACE[version])
    spans = []
    for version in (4, 6):
        points = sorted(cuts[version]) + [_SPACE[version] + 1]
        spans += [(version, a, b - 1) for a, b in zip(points, points[1:], strict=False)]
    return spans


def range_text(version: int, first: int, last: int) -> str:
    """``10.0.0.0/8`` when the interval is one CIDR, else ``first-last``."""
    a, b = _address(version, first), _address(version, last)
    nets = list(ipaddress.summarize_address_range(a, b))
    return str(nets[0]) if len(nets) == 1 else f"{a}-{b}"


def _address(version: int, value: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


def _port_classes(
    sets: Sequence[CompiledPolicies], endpoints: list[UniverseEntry]
) -> tuple[PortClass, ...]:
    cuts: dict[str, set[int]] = {p: {1} for p in PROTOCOLS}
    for s in sets:
        for cp in s.policies:
            for rules in (cp.ingress or (), cp.egress or ()):
                for r in rules:
                    for p in r.ports:
                        if isinstance(p, PortRange) and p.protocol in cuts:
                            cuts[p.protocol].update((p.low, p.high + 1))
    for ep in endpoints:
        for entries in ep.peer.ports.values():
            for number, protocol in entries:
                if protocol in cuts:
                    cuts[protocol].update((number, number + 1))
    out = []
    for protocol in PROTOCOLS:
        points = sorted(p for p in cuts[protocol] if 1 <= p <= 65535) + [65536]
        out += [PortClass(protocol, a, b - 1) for a, b in zip(points, points[1:], strict=False)]
    return tuple(out)
