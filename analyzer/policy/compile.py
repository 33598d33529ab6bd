"""Compile policies once into matchers: one tagged-union variant per semantic case.

Peers: :class:`AllPeers` (no ``from``/``to``, or an empty list), :class:`NoPeers` (Cilium's
``{}`` rule), :class:`PodPeers` (pod selector within the policy namespace, within namespaces
matching a selector, or anywhere), :class:`IPPeers` (ipBlock as integer ranges),
:class:`EntityPeers` (Cilium entities). Ports: :class:`AllPorts`, :class:`ProtocolPorts`,
:class:`PortRange`, :class:`NamedPort`. Every :class:`CompiledRule` carries its reference
``namespace/name#ingress[0]``, so a verdict can always say which rule allowed it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from analyzer.policy.model import (
    EGRESS,
    INGRESS,
    LabelSelector,
    NetworkPolicy,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
)

__all__ = [
    "IPBLOCK_MODES",
    "CLUSTER_ENTITIES",
    "AllPeers",
    "NoPeers",
    "PodPeers",
    "IPPeers",
    "EntityPeers",
    "PeerMatcher",
    "AllPorts",
    "ProtocolPorts",
    "PortRange",
    "NamedPort",
    "PortMatcher",
    "CompiledRule",
    "CompiledPolicy",
    "CompiledPolicies",
    "compile_policies",
    "ip_key",
]

IPBLOCK_MODES = ("kubernetes", "cilium")
IpblockMode = Literal["kubernetes", "cilium"]
# Entities Cilium counts as "cluster"; CIDR rules (Cilium reading) never match them.
CLUSTER_ENTITIES = frozenset(
    {"pod", "host", "remote-node", "kube-apiserver", "health", "init", "ingress", "unmanaged"}
)


class PeerLike(Protocol):
    """What a matcher needs to know about the other end (see ``evaluate.Endpoint``)."""

    @property
    def kind(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def namespace_labels(self) -> Mapping[str, str]: ...
    @property
    def ip(self) -> str | None: ...
    @property
    def entity(self) -> str | None: ...


def ip_key(ip: str | None) -> tuple[int, int] | None:
    """``(version, integer)`` of an address, or ``None`` when absent or unparsable."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    return addr.version, int(addr)


def _range(cidr: str) -> tuple[int, int, int]:
    net = ipaddress.ip_network(cidr, strict=False)
    return net.version, int(net.network_address), int(net.broadcast_address)


@dataclass(frozen=True, slots=True)
class AllPeers:
    """Every peer: a rule without ``from``/``to``, or with an empty list."""

    def matches(self, other: PeerLike, mode: str) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class NoPeers:
    """No peer at all (Cilium ``{}`` rule, or a rule whose only peers are not evaluated)."""

    def matches(self, other: PeerLike, mode: str) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class PodPeers:
    """Pods matching ``pod_selector`` in: ``namespace`` (when set), namespaces matching
    ``namespace_selector`` (when set), or any namespace (neither set)."""

    pod_selector: LabelSelector
    namespace: str | None = None
    namespace_selector: LabelSelector | None = None

    def matches(self, other: PeerLike, mode: str) -> bool:
        if other.kind != "pod":
            return False
        if self.namespace is not None and other.namespace != self.namespace:
            return False
        if self.namespace_selector is not None and not self.namespace_selector.matches(
            other.namespace_labels
        ):
            return False
        return self.pod_selector.matches(other.labels)


@dataclass(frozen=True, slots=True)
class IPPeers:
    """``ipBlock``: ``cidr`` minus ``excepts``, as inclusive integer ranges per IP version."""

    cidr: str
    excepts: tuple[str, ...]
    external_only: bool
    ranges: tuple[tuple[int, int, int], ...]
    except_ranges: tuple[tuple[int, int, int], ...]

    def matches_ip(self, key: tuple[int, int] | None) -> bool:
        if key is None:
            return False
        version, value = key
        if not any(v == version and lo <= value <= hi for v, lo, hi in self.ranges):
            return False
        return not any(v == version and lo <= value <= hi for v, lo, hi in self.except_ranges)

    def applies_to(self, other: PeerLike, mode: str) -> bool:
        """Whether this block is consulted for ``other`` at all (Cilium: external only)."""
        if self.external_only or mode == "cilium":
            return other.kind != "pod" and (other.entity or "world") not in CLUSTER_ENTITIES
        return True

    def matches(self, other: PeerLike, mode: str) -> bool:
        return self.applies_to(other, mode) and self.matches_ip(ip_key(other.ip))


@dataclass(frozen=True, slots=True)
class EntityPeers:
    """Cilium entities (``world``, ``cluster``, ``host``, ...)."""

    entities: frozenset[str]

    def matches(self, other: PeerLike, mode: str) -> bool:
        if "all" in self.entities:
            return True
        entity = "pod" if other.kind == "pod" else (other.entity or "world")
        if entity in ("unknown", "public-network", "private-network"):
            entity = "world"
        if entity == "world":
            key = ip_key(other.ip)
            if "world" in self.entities:
                return True
            family = {4: "world-ipv4", 6: "world-ipv6"}.get(key[0] if key else 0)
            return family in self.entities
        if entity in CLUSTER_ENTITIES and "cluster" in self.entities:
            return True
        return entity in self.entities


PeerMatcher = AllPeers | NoPeers | PodPeers | IPPeers | EntityPeers


@dataclass(frozen=True, slots=True)
class AllPorts:
    """Every port and protocol (a rule without ``ports``)."""

    def matches(self, port: int | None, protocol: str, named: NamedPorts) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class ProtocolPorts:
    """Every port of one protocol (a ports entry with only ``protocol``)."""

    protocol: str

    def matches(self, port: int | None, protocol: str, named: NamedPorts) -> bool:
        return protocol == self.protocol


@dataclass(frozen=True, slots=True)
class PortRange:
    """``port`` or ``port``..``endPort`` (inclusive) of one protocol."""

    protocol: str
    low: int
    high: int

    def matches(self, port: int | None, protocol: str, named: NamedPorts) -> bool:
        return protocol == self.protocol and port is not None and self.low <= port <= self.high


@dataclass(frozen=True, slots=True)
class NamedPort:
    """A container-port name, resolved on the destination pod (same protocol only)."""

    protocol: str
    name: str

    def matches(self, port: int | None, protocol: str, named: NamedPorts) -> bool:
        if protocol != self.protocol or port is None:
            return False
        return (port, protocol) in named.get(self.name, ())


NamedPorts = Mapping[str, tuple[tuple[int, str], ...]]
PortMatcher = AllPorts | ProtocolPorts | PortRange | NamedPort


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule, ready to match, with its source reference."""

    ref: str  # "namespace/name#ingress[0]"
    policy: str  # "namespace/name"
    direction: str  # Ingress | Egress
    index: int
    peers: tuple[PeerMatcher, ...]
    ports: tuple[PortMatcher, ...]
    rule: PolicyRule

    def peer_matches(self, other: PeerLike, mode: str) -> bool:
        return any(p.matches(other, mode) for p in self.peers)

    def port_matches(self, port: int | None, protocol: str, named: NamedPorts) -> bool:
        return any(p.matches(port, protocol, named) for p in self.ports)


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A policy's subject and its rules per direction (``None``: does not isolate it)."""

    key: str
    namespace: str | None
    subject: LabelSelector
    subject_namespaces: LabelSelector | None
    ingress: tuple[CompiledRule, ...] | None
    egress: tuple[CompiledRule, ...] | None
    policy: NetworkPolicy

    def selects(
        self, namespace: str | None, labels: Mapping[str, str], namespace_labels: Mapping[str, str]
    ) -> bool:
        if self.namespace is not None and namespace != self.namespace:
            return False
        if self.subject_namespaces is not None and not self.subject_namespaces.matches(
            namespace_labels
        ):
            return False
        return self.subject.matches(labels)


@dataclass(frozen=True, slots=True)
class CompiledPolicies:
    """All policies, indexed by namespace (``None``: cluster-wide), compiled once."""

    policies: tuple[CompiledPolicy, ...]
    by_namespace: Mapping[str | None, tuple[CompiledPolicy, ...]]
    ipblock_mode: str
    ip_blocks: tuple[IPPeers, ...]

    def candidates(self, namespace: str | None) -> tuple[CompiledPolicy, ...]:
        """Policies that could select a pod of ``namespace``."""
        return self.by_namespace.get(namespace, ()) + self.by_namespace.get(None, ())


def compile_policies(
    policies: list[NetworkPolicy] | tuple[NetworkPolicy, ...], *, ipblock_mode: str = "kubernetes"
) -> CompiledPolicies:
    """Turn loaded policies into matchers.

    Parameters
    ----------
    policies
        From :func:`analyzer.policy.load.load_policies`.
    ipblock_mode
        ``kubernetes`` (ipBlock also matches pod IPs, as the upstream e2e tests require) or
        ``cilium`` (ipBlock applies only to addresses outside the cluster).
    """
    if ipblock_mode not in IPBLOCK_MODES:
        raise ValueError(f"ipblock_mode must be one of {IPBLOCK_MODES}, not {ipblock_mode!r}")
    compiled = tuple(_compile_policy(p) for p in policies)
    index: dict[str | None, list[CompiledPolicy]] = {}
    for cp in compiled:
        index.setdefault(cp.namespace, []).append(cp)
    blocks: dict[IPPeers, None] = {}
    for cp in compiled:
        for rules in (cp.ingress or (), cp.egress or ()):
            for rule in rules:
                for peer in rule.peers:
                    if isinstance(peer, IPPeers):
                        blocks[peer] = None
    return CompiledPolicies(
        policies=compiled,
        by_namespace={k: tuple(v) for k, v in index.items()},
        ipblock_mode=ipblock_mode,
        ip_blocks=tuple(blocks),
    )


def _compile_policy(policy: NetworkPolicy) -> CompiledPolicy:
    def rules(direction: str, items: tuple[PolicyRule, ...]) -> tuple[CompiledRule, ...]:
        section = direction.lower()
        return tuple(
            CompiledRule(
                ref=f"{policy.key}#{section}[{i}]",
                policy=policy.key,
                direction=direction,
                index=i,
                peers=_peers(rule, policy.namespace),
                ports=_ports(rule.ports),
                rule=rule,
            )
            for i, rule in enumerate(items)
        )

    return CompiledPolicy(
        key=policy.key,
        namespace=policy.namespace,
        subject=policy.pod_selector,
        subject_namespaces=policy.namespace_selector,
        ingress=rules(INGRESS, policy.ingress) if policy.isolates_ingress else None,
        egress=rules(EGRESS, policy.egress) if policy.isolates_egress else None,
        policy=policy,
    )


def _peers(rule: PolicyRule, namespace: str | None) -> tuple[PeerMatcher, ...]:
    if rule.match_nothing:
        return (NoPeers(),)
    if not rule.peers:  # absent or [] (Kubernetes: both mean every peer)
        return (AllPeers(),)
    return tuple(_peer(p, namespace) for p in rule.peers)


def _peer(peer: PolicyPeer, namespace: str | None) -> PeerMatcher:
    if peer.ip_block is not None:
        block = peer.ip_block
        return IPPeers(
            cidr=block.cidr,
            excepts=block.excepts,
            external_only=block.external_only,
            ranges=(_range(block.cidr),),
            except_ranges=tuple(_range(e) for e in block.excepts),
        )
    if peer.entities:
        return EntityPeers(frozenset(peer.entities))
    pods = peer.pod_selector if peer.pod_selector is not None else LabelSelector()
    if peer.namespace_selector is not None:
        # namespaceSelector (optionally AND podSelector): pods in matching namespaces.
        return PodPeers(pods, None, peer.namespace_selector)
    if peer.any_namespace:
        return PodPeers(pods, None, None)
    # podSelector alone: pods of the policy's own namespace.
    return PodPeers(pods, namespace, None)


def _ports(ports: tuple[PolicyPort, ...] | None) -> tuple[PortMatcher, ...]:
    if not ports:  # absent or []: every port
        return (AllPorts(),)
    out: list[PortMatcher] = []
    for p in ports:
        if p.port is None:
            out.append(ProtocolPorts(p.protocol))
        elif isinstance(p.port, str):
            out.append(NamedPort(p.protocol, p.port))
        else:
            out.append(PortRange(p.protocol, p.port, p.end_port or p.port))
    return tuple(out)
