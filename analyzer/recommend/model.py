"""The flavour-neutral model of a recommendation: selectors, peers, ports, rules, evidence.

``analyzer.recommend.synthesize`` builds these from observed connections; ``render`` turns them
into Kubernetes, Cilium or Calico manifests; ``merge`` folds them together. Everything here is a
frozen, ordered value so that merging and rendering are deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import polars as pl

__all__ = [
    "DNS_NAMESPACE",
    "DNS_SELECTORS",
    "NAMESPACE_NAME_LABEL",
    "Direction",
    "Evidence",
    "GroupLike",
    "Note",
    "AllowedPeer",
    "PolicyKind",
    "PolicySpec",
    "Port",
    "AllowRule",
    "Selector",
    "SynthesisOptions",
    "SynthesisResult",
    "EdgeEvidence",
    "combine_evidence",
]


Direction = Literal["ingress", "egress"]
PolicyKind = Literal["default-deny", "dns", "allow"]

# Both label schemes of the cluster DNS pods (the seed's allow-dns-egress).
DNS_SELECTORS: tuple[tuple[str, str], ...] = (
    ("k8s-app", "kube-dns"),
    ("app.kubernetes.io/name", "coredns"),
)
DNS_NAMESPACE = "kube-system"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# Protocols a NetworkPolicy port can name; anything else (ICMP) has no port rule.
PORT_PROTOCOLS = ("TCP", "UDP", "SCTP")
EXAMPLES_PER_EDGE = 2
MANY_ADDRESSES = 16
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


class GroupLike(Protocol):
    """What synthesis needs of an identity group (``analyzer.identity.graph.IdentityGroup``)."""

    @property
    def key(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def labels(self) -> Any: ...
    @property
    def selector(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True, order=True)
class Selector:
    """A label selector: ``matchLabels`` plus at most a few ``key In [values]`` expressions."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_in: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def of(cls, labels: Mapping[str, str]) -> Selector:
        return cls(match_labels=tuple(sorted(labels.items())))

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_in

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a pod with ``labels`` is selected (used for the guardrail and probes)."""
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            labels.get(k) in vs for k, vs in self.match_in
        )

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.match_labels]
        parts += [f"{k} in ({','.join(vs)})" for k, vs in self.match_in]
        return ",".join(parts) or "(all pods)"


@dataclass(frozen=True, slots=True, order=True)
class Port:
    protocol: str
    port: int


@dataclass(frozen=True, slots=True, order=True)
class AllowedPeer:
    """One peer element. ``pod``: namespaces AND selector in ONE element; ``cidr``: an ipBlock;
    ``entity``: a reserved peer (Cilium entity; ipBlocks of ``cidrs`` elsewhere)."""

    kind: Literal["pod", "cidr", "entity"]
    namespaces: tuple[str, ...] = ()
    selector: Selector = field(default_factory=Selector)
    cidr: str = ""
    entity: str = ""
    cidrs: tuple[str, ...] = ()
    fqdns: tuple[str, ...] = ()
    excepts: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "pod":
            return f"{'|'.join(self.namespaces)}/{self.selector.describe()}"
        if self.kind == "cidr":
            return self.cidr + (" except private ranges" if self.excepts else "")
        return f"entity:{self.entity}"


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a rule exists: counts, first/last seen, a couple of example flows."""

    connections: int
    first_seen: datetime | None
    last_seen: datetime | None
    examples: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "examples": list(self.examples),
        }


@dataclass(frozen=True, slots=True)
class AllowRule:
    peers: tuple[AllowedPeer, ...]
    ports: tuple[Port, ...]
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A flavour-neutral policy: one direction, one selector, rules with evidence."""

    name: str
    namespace: str
    kind: PolicyKind
    directions: tuple[Direction, ...]
    selector: Selector
    rules: tuple[AllowRule, ...] = ()
    groups: tuple[str, ...] = ()

    @property
    def evidence(self) -> Evidence:
        return combine_evidence([r.evidence for r in self.rules])


@dataclass(frozen=True, slots=True)
class Note:
    level: Literal["info", "warning"]
    namespace: str
    message: str


@dataclass(frozen=True, slots=True)
class SynthesisOptions:
    ipblock_prefix: int | None = None  # widen IPv4 /32 to /N (IPv6 stays /128)
    cilium: bool = False  # keep reserved peers as entities and DNS names for toFQDNs


@dataclass(frozen=True, slots=True)
class SynthesisResult:
    policies: tuple[PolicySpec, ...]
    notes: tuple[Note, ...]
    # edges (connections-frame rows' keys) that rules deliberately do not cover
    uncovered: pl.DataFrame


@dataclass(frozen=True, slots=True)
class EdgeEvidence:
    connections: int
    first_seen: datetime | None
    last_seen: datetime | None
    examples: tuple[str, ...]

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> EdgeEvidence:
        return cls(
            int(row["connections"] or 0),
            row["first_seen"],
            row["last_seen"],
            tuple(row["examples"] or ()),
        )

    def add(self, other: EdgeEvidence) -> EdgeEvidence:
        return EdgeEvidence(
            self.connections + other.connections,
            _min(self.first_seen, other.first_seen),
            _max(self.last_seen, other.last_seen),
            (self.examples + other.examples)[:EXAMPLES_PER_EDGE],
        )


def combine_evidence(items: Iterable[Evidence | EdgeEvidence]) -> Evidence:
    conns = 0
    first: datetime | None = None
    last: datetime | None = None
    examples: tuple[str, ...] = ()
    for ev in items:
        conns += ev.connections
        first, last = _min(first, ev.first_seen), _max(last, ev.last_seen)
        examples = (examples + tuple(ev.examples))[:EXAMPLES_PER_EDGE]
    return Evidence(conns, first, last, examples)


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")
