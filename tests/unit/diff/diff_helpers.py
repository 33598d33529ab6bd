"""Shared by the diff tests: a small cluster, policy loading from text, and an independent
check of a diff against single-connection evaluation at concrete points."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import yaml

from analyzer.diff import Change, PolicyDiff
from analyzer.identity import group_key
from analyzer.k8s.inventory import Inventory, inventory_from_objects
from analyzer.policy.compile import compile_policies
from analyzer.policy.evaluate import Endpoint, evaluate
from analyzer.policy.load import LoadResult, parse_documents
from analyzer.policy.model import NetworkPolicy

NAMESPACES = {
    "develop": {"env": "dev"},
    "monitoring": {"env": "ops"},
    "production": {"env": "prod"},
    "kube-system": {},
}
# (namespace, name, labels, ip, named ports)
PODS: list[tuple[str, str, dict[str, str], str, dict[str, tuple[int, str]]]] = [
    ("develop", "frontend-1", {"app": "frontend"}, "192.168.1.10", {}),
    ("develop", "frontend-2", {"app": "frontend"}, "192.168.1.11", {}),
    ("develop", "backend-1", {"app": "backend"}, "192.168.1.20", {"metrics": (9090, "TCP")}),
    ("develop", "debug-1", {"app": "debug"}, "192.168.1.30", {}),
    ("develop", "prom-sidecar", {"app": "prometheus"}, "192.168.1.40", {}),
    ("monitoring", "prometheus-0", {"app": "prometheus"}, "192.168.2.10", {}),
    ("monitoring", "grafana-0", {"app": "grafana"}, "192.168.2.20", {}),
    ("production", "api-1", {"app": "api"}, "10.1.0.5", {"http": (8080, "TCP")}),
    ("kube-system", "coredns-1", {"k8s-app": "kube-dns"}, "192.168.3.10", {}),
]


def cluster_inventory() -> Inventory:
    objects: list[dict[str, Any]] = [
        {"kind": "Namespace", "metadata": {"name": ns, "labels": labels}}
        for ns, labels in NAMESPACES.items()
    ]
    for ns, name, labels, ip, ports in PODS:
        objects.append(
            {
                "kind": "Pod",
                "metadata": {"namespace": ns, "name": name, "labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "ports": [
                                {"name": n, "containerPort": p, "protocol": proto}
                                for n, (p, proto) in ports.items()
                            ],
                        }
                    ]
                },
                "status": {"podIP": ip},
            }
        )
    return inventory_from_objects(objects)


def policies(text: str) -> list[NetworkPolicy]:
    result = LoadResult()
    parse_documents(list(yaml.safe_load_all(text)), "test.yaml", result)
    assert not result.problems, result.problems
    return result.policies


def pod_peers(inventory: Inventory) -> list[Endpoint]:
    return [
        Endpoint(
            kind="pod",
            namespace=p.namespace,
            name=p.name,
            labels=dict(p.labels),
            namespace_labels=dict(inventory.namespaces.get(p.namespace) or {}),
            ip=p.ip,
            ports=p.ports,
        )
        for p in inventory.pods.values()
    ]


def summary(diff: PolicyDiff) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """The changes as (kind, src, dst, ports): addresses by their ranges."""
    out = set()
    for c in diff.changes():
        src = ", ".join(c.src_addresses) if c.src_addresses else c.src_display
        dst = ", ".join(c.dst_addresses) if c.dst_addresses else c.dst_display
        out.add((c.kind, src, dst, c.ports))
    return out


def _peer_group(peer: Endpoint) -> str:
    labels = [f"{k}={v}" for k, v in peer.labels.items()]
    return group_key(peer.namespace, labels, "pod", peer.ip)


def _in_ports(change: Change, protocol: str, port: int) -> bool:
    for item in change.ports:
        proto, _, span = item.partition(" ")
        low, _, high = span.partition("-")
        if proto == protocol and int(low) <= port <= int(high or low):
            return True
    return False


def _in_addresses(ranges: Iterable[str], ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    for item in ranges:
        if "-" in item:
            first, _, last = item.partition("-")
            a, b = ipaddress.ip_address(first), ipaddress.ip_address(last)
            if a.version == addr.version and a <= addr <= b:  # type: ignore[operator]
                return True
        elif addr in ipaddress.ip_network(item):
            return True
    return False


def claimed(diff: PolicyDiff, src: Endpoint, dst: Endpoint, protocol: str, port: int) -> str | None:
    """What the diff says happens to this concrete connection: a change kind, or None."""
    found = []
    for c in diff.changes():
        if c.probes == 0 or not _in_ports(c, protocol, port):
            continue
        if not _matches_end(c.src, c.src_addresses, src) or not _matches_end(
            c.dst, c.dst_addresses, dst
        ):
            continue
        found.append(c.kind)
    assert len(found) <= 1, f"{src.display} -> {dst.display} {protocol} {port} in {found}"
    return found[0] if found else None


def _matches_end(group: str, addresses: tuple[str, ...], peer: Endpoint) -> bool:
    if peer.kind == "pod":
        return group == _peer_group(peer)
    if peer.entity not in (None, "world"):
        return group == f"entity:{peer.entity}"
    return group == "addresses" and peer.ip is not None and _in_addresses(addresses, peer.ip)


def check_against_engine(
    diff: PolicyDiff,
    old: list[NetworkPolicy],
    new: list[NetworkPolicy],
    peers: list[Endpoint],
    ports: Iterable[tuple[str, int]],
    *,
    ipblock_mode: str = "kubernetes",
) -> int:
    """Every concrete connection between ``peers`` (at least one a pod) on ``ports``: the
    diff's claim must equal evaluating OLD and NEW on it one by one. Returns the count."""
    old_c = compile_policies(old, ipblock_mode=ipblock_mode)
    new_c = compile_policies(new, ipblock_mode=ipblock_mode)
    checked = 0
    ports = list(ports)
    for src in peers:
        for dst in peers:
            if src.kind != "pod" and dst.kind != "pod":
                continue
            for protocol, port in ports:
                before = evaluate(old_c, src, dst, port, protocol).allowed
                after = evaluate(new_c, src, dst, port, protocol).allowed
                truth = None
                if before and not after:
                    truth = "newly_denied"
                elif after and not before:
                    truth = "newly_allowed"
                got = claimed(diff, src, dst, protocol, port)
                assert got == truth, (
                    f"{src.display} -> {dst.display} {protocol} {port}: "
                    f"engine says {truth}, diff says {got}"
                )
                checked += 1
    return checked


def address_peers(ips: Iterable[str]) -> list[Endpoint]:
    return [Endpoint(kind="ip", ip=ip, entity="world") for ip in ips]
