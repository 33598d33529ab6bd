"""Decide whether a connection is allowed, and why (Kubernetes NetworkPolicy semantics).

Pod to pod: the source's egress AND the destination's ingress must allow it. A side that no
policy selects for that direction is open. IP to pod: ingress side only; pod to IP: egress side
only. Traffic from the destination pod's own node (source entity ``host``) is never restricted
(Kubernetes documents this; every CNI implements it). Every verdict carries its reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from analyzer.policy.compile import (
    CompiledPolicies,
    CompiledPolicy,
    CompiledRule,
    NamedPorts,
)
from analyzer.policy.model import EGRESS, INGRESS

if TYPE_CHECKING:

    pass

__all__ = [
    "NS_NAME_LABEL",
    "Endpoint",
    "RuleRef",
    "DirectionVerdict",
    "Verdict",
    "evaluate",
    "evaluate_direction",
    "selecting_policies",
    "matching_rules",
]

NS_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of a connection.

    ``kind`` is ``pod`` or ``ip`` (anything that is not a pod: world, host, node, ...; its
    ``entity`` says which). ``ports`` maps container-port names to ``(port, protocol)`` pairs,
    for named ports on a destination pod. The namespace's automatic
    ``kubernetes.io/metadata.name`` label is added when missing.
    """

    kind: str = "pod"
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None
    node: str | None = None
    ports: NamedPorts = field(default_factory=dict)
    entity: str | None = None
    name: str | None = None
    label: str | None = None  # overrides `display` (bulk evaluation fills it in afterwards)

    def __post_init__(self) -> None:
        if self.kind == "pod" and self.namespace and NS_NAME_LABEL not in self.namespace_labels:
            object.__setattr__(
                self, "namespace_labels", {**self.namespace_labels, NS_NAME_LABEL: self.namespace}
            )
        if self.kind == "pod" and self.entity is None:
            object.__setattr__(self, "entity", "pod")

    @property
    def display(self) -> str:
        """``ns/pod``, ``ns:{k=v,...}``, the IP, or the entity."""
        if self.label is not None:
            return self.label
        if self.kind == "pod":
            if self.name:
                return f"{self.namespace}/{self.name}"
            labels = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
            return f"{self.namespace}:{{{labels}}}"
        if self.ip:
            return self.ip if self.entity in (None, "world") else f"{self.ip} ({self.entity})"
        return f"reserved:{self.entity or 'unknown'}"


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A rule of a policy: ``namespace/name#ingress[0]``."""

    policy: str
    direction: str
    index: int

    def __str__(self) -> str:
        return f"{self.policy}#{self.direction.lower()}[{self.index}]"


@dataclass(frozen=True, slots=True)
class DirectionVerdict:
    """The ingress or egress half of a verdict."""

    applies: bool  # the end is a pod (else NetworkPolicy has no say in this direction)
    isolated: bool  # some policy selects it for this direction
    selecting: tuple[str, ...]  # policies selecting it for this direction
    allowed_by: tuple[RuleRef, ...]
    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """Allowed iff both directions allow; ``reasons`` in order egress, ingress."""

    allowed: bool
    ingress: DirectionVerdict
    egress: DirectionVerdict

    @property
    def reasons(self) -> list[str]:
        return [self.egress.reason, self.ingress.reason]


def selecting_policies(
    compiled: CompiledPolicies, pod: Endpoint, direction: str
) -> tuple[CompiledPolicy, ...]:
    """Policies that select ``pod`` and isolate it in ``direction``."""
    out = []
    for cp in compiled.candidates(pod.namespace):
        rules = cp.ingress if direction == INGRESS else cp.egress
        if rules is not None and cp.selects(pod.namespace, pod.labels, pod.namespace_labels):
            out.append(cp)
    return tuple(out)


def matching_rules(
    rules: tuple[CompiledRule, ...],
    other: Endpoint,
    port: int | None,
    protocol: str,
    named: NamedPorts,
    mode: str,
) -> list[CompiledRule]:
    """The rules among ``rules`` that admit ``other`` on ``port``/``protocol``."""
    return [
        r for r in rules if r.port_matches(port, protocol, named) and r.peer_matches(other, mode)
    ]


def evaluate_direction(
    compiled: CompiledPolicies,
    subject: Endpoint,
    other: Endpoint,
    port: int | None,
    protocol: str,
    direction: str,
    named: NamedPorts,
    *,
    selecting: tuple[CompiledPolicy, ...] | None = None,
) -> DirectionVerdict:
    """One side: ``subject`` is the pod whose policies apply (dst for ingress, src for egress).

    ``selecting`` may pass in the (cached) result of :func:`selecting_policies`.
    """
    word = direction.lower()
    role = "destination" if direction == INGRESS else "source"
    if subject.kind != "pod":
        return DirectionVerdict(
            False,
            False,
            (),
            (),
            True,
            f"the {role} {subject.display} is not a pod: no {word} policy applies",
        )
    if (
        direction == INGRESS
        and other.kind != "pod"
        and other.entity == "host"
        and (other.node is None or subject.node is None or other.node == subject.node)
    ):
        return DirectionVerdict(
            True,
            False,
            (),
            (),
            True,
            f"traffic from the node hosting {subject.display} is not restricted by NetworkPolicy",
        )
    if selecting is None:
        selecting = selecting_policies(compiled, subject, direction)
    keys = tuple(cp.key for cp in selecting)
    if not selecting:
        return DirectionVerdict(
            True,
            False,
            (),
            (),
            True,
            f"no policy selects the {role} {subject.display} for {word}: {word} is open",
        )
    allowed_by: list[RuleRef] = []
    for cp in selecting:
        rules = cp.ingress if direction == INGRESS else cp.egress
        for rule in matching_rules(
            rules or (), other, port, protocol, named, compiled.ipblock_mode
        ):
            allowed_by.append(RuleRef(rule.policy, rule.direction, rule.index))
    if allowed_by:
        refs = ", ".join(map(str, allowed_by))
        return DirectionVerdict(
            True, True, keys, tuple(allowed_by), True, f"{word} allowed by {refs}"
        )
    return DirectionVerdict(
        True,
        True,
        keys,
        (),
        False,
        f"the {role} {subject.display} is isolated for {word} by {', '.join(keys)} "
        f"and no {word} rule admits {other.display} on {protocol} {port}",
    )


def evaluate(
    compiled: CompiledPolicies,
    src: Endpoint,
    dst: Endpoint,
    port: int | None,
    protocol: str = "TCP",
) -> Verdict:
    """The verdict for one connection ``src`` -> ``dst`` on ``port``/``protocol``.

    Named ports are resolved on ``dst.ports`` (an unresolvable name matches nothing).
    """
    protocol = protocol.upper()
    egress = evaluate_direction(compiled, src, dst, port, protocol, EGRESS, dst.ports)
    ingress = evaluate_direction(compiled, dst, src, port, protocol, INGRESS, dst.ports)
    return Verdict(egress.allowed and ingress.allowed, ingress, egress)
