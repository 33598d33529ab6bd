"""The policy domain: NetworkPolicy as frozen values, independent of YAML.

One model serves Kubernetes ``networking.k8s.io/v1`` NetworkPolicy, the L3/L4 part of
CiliumNetworkPolicy and Calico's StagedKubernetesNetworkPolicy. Absence is kept distinct from
emptiness wherever Kubernetes gives them different meanings: ``Rule.peers is None`` (no
``from``/``to``: every peer) versus ``()`` with ``peers_given`` (an empty list: also every peer in
Kubernetes), ``LabelSelector()`` (``{}``: everything) versus ``None`` (selector absent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "OPERATORS",
    "PROTOCOLS",
    "INGRESS",
    "EGRESS",
    "LabelRequirement",
    "LabelSelector",
    "IPBlock",
    "PolicyPeer",
    "PolicyPort",
    "PolicyRule",
    "NetworkPolicy",
    "PolicyProblem",
    "Unsupported",
]

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
PROTOCOLS = ("TCP", "UDP", "SCTP")
INGRESS = "Ingress"
EGRESS = "Egress"


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    """One ``matchExpressions`` entry."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            # Kubernetes: NotIn matches when the key is absent, too.
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        return not present  # DoesNotExist

    def describe(self) -> str:
        if self.operator in ("In", "NotIn"):
            return f"{self.key} {self.operator} ({', '.join(self.values)})"
        if self.operator == "Exists":
            return f"{self.key} exists"
        return f"no {self.key} label"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """``matchLabels`` and ``matchExpressions``, AND-ed; the empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[LabelRequirement, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def requirements(self) -> tuple[LabelRequirement, ...]:
        """Every condition as a requirement (``matchLabels k: v`` is ``k In (v)``)."""
        return tuple(LabelRequirement(k, "In", (v,)) for k, v in self.match_labels) + (
            self.match_expressions
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions)

    def describe(self) -> str:
        if self.is_empty:
            return "everything"
        parts = [f"{k}={v}" for k, v in self.match_labels]
        parts += [req.describe() for req in self.match_expressions]
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class IPBlock:
    """``ipBlock``: a CIDR minus exceptions (strings, validated by the loader).

    ``external_only`` marks Cilium CIDR rules, which never match cluster endpoints.
    """

    cidr: str
    excepts: tuple[str, ...] = ()
    external_only: bool = False


@dataclass(frozen=True, slots=True)
class PolicyPeer:
    """One element of ``from``/``to``.

    Kubernetes: exactly one of ``ip_block`` or (``pod_selector`` and/or ``namespace_selector``).
    Cilium adds ``entities``; an endpoint selector becomes ``pod_selector`` plus
    ``namespace_selector`` (``None`` meaning the policy's own namespace) or ``any_namespace``.
    """

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None
    entities: tuple[str, ...] = ()
    any_namespace: bool = False


@dataclass(frozen=True, slots=True)
class PolicyPort:
    """One ``ports`` entry. ``port`` is a number, a container-port name, or ``None`` (all)."""

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One ingress or egress rule.

    ``peers is None``: no ``from``/``to`` key, every peer. ``ports is None``: every port.
    Empty tuples keep the Kubernetes meaning of an empty list (also every peer/port) unless
    ``match_nothing`` is set (Cilium's ``ingress: [{}]``, which selects but allows nothing).
    """

    peers: tuple[PolicyPeer, ...] | None = None
    ports: tuple[PolicyPort, ...] | None = None
    match_nothing: bool = False


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """A namespaced policy in the common model.

    ``policy_types`` is already defaulted (Ingress always; Egress iff egress rules exist, when
    the manifest gives no policyTypes). ``namespace`` is ``None`` for cluster-wide policies.
    """

    name: str
    namespace: str | None
    pod_selector: LabelSelector
    policy_types: tuple[str, ...]
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()
    kind: str = "NetworkPolicy"
    source: str = ""
    # Cluster-wide (Cilium CCNP) subjects may be narrowed by namespace labels.
    namespace_selector: LabelSelector | None = None
    uid: str = field(default="", compare=False)
    # How the manifest said it, for the audit's lint rules: whether ``policyTypes`` was given,
    # and which sections were given as an empty list (``egress: []``).
    explicit_types: bool = field(default=True, compare=False)
    empty_sections: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> str:
        """``namespace/name`` (cluster-wide policies: the bare name)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def isolates_ingress(self) -> bool:
        return INGRESS in self.policy_types

    @property
    def isolates_egress(self) -> bool:
        return EGRESS in self.policy_types


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """A validation error: the policy is not loaded; the others are."""

    file: str
    policy: str
    field_path: str
    message: str

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.file, self.policy, self.field_path) if p)
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Unsupported:
    """Something recognised but not evaluated (L7 rules, toFQDNs, deny rules, staged policies)."""

    file: str
    policy: str
    field_path: str
    feature: str
    message: str

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.file, self.policy, self.field_path) if p)
        return f"{where}: not evaluated ({self.feature}): {self.message}"
