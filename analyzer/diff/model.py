"""The typed result of a semantic diff: frozen, grouped, sorted and counted for presentation.

A :class:`PolicyDiff` answers "which connections change verdict between OLD and NEW". Two
kinds of connections are compared:

- **observed**: every distinct connection of the flow store (source endpoint, destination
  endpoint, protocol, port), judged exactly as ``analyzer simulate`` judges it;
- **probes**: every pair of known identities on every port class (a range of ports no rule of
  either set tells apart), so changes nobody has exercised yet show up too.

Changes are grouped by namespace pair (source namespace, destination namespace), then by
identity pair; each carries the decision of OLD and of NEW and, where observed traffic falls
in it, the evidence (edges, connections, first and last seen).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "Decision",
    "ObservedEvidence",
    "Change",
    "DiffCounts",
    "NamespacePairDiff",
    "PolicySetInfo",
    "UniverseInfo",
    "PolicyDiff",
    "FAIL_ON",
    "OUTSIDE",
    "SRC_TOKEN",
    "DST_TOKEN",
    "PORTS_TOKEN",
]

ChangeKind = Literal["newly_denied", "newly_allowed"]
# What --fail-on accepts: observed working traffic newly denied, any newly denied
# connection (observed or probe), or any change at all.
FAIL_ON = ("newly-denied-observed", "newly-denied", "any-change")
OUTSIDE = "(outside)"  # namespace column of a peer that is not a pod
# Placeholders of Decision.reason_template, filled from Decision.reason_values.
SRC_TOKEN, DST_TOKEN, PORTS_TOKEN = "\x00SRC", "\x00DST", "\x00PORTS"


@dataclass(frozen=True, slots=True)
class Decision:
    """How one policy set decides a connection, as the policy engine reported it.

    ``egress_rules``/``ingress_rules`` name every rule that admits the connection
    (``namespace/name#ingress[0]``); ``*_isolated`` says whether some policy selects that end
    for the direction and ``*_isolated_by`` names those policies (empty for a change only
    observed traffic shows: its ``reason`` names them). A denied side is isolated with no
    admitting rule. ``reason`` is the engine's explanation, in words.
    """

    allowed: bool
    egress_rules: tuple[str, ...]
    ingress_rules: tuple[str, ...]
    egress_isolated: bool
    ingress_isolated: bool
    egress_isolated_by: tuple[str, ...] = ()
    ingress_isolated_by: tuple[str, ...] = ()
    # The reason is written on demand: a large diff has ~N^2 changes and few are ever read.
    reason_template: str = ""
    reason_values: tuple[str, str, str] = ("", "", "")  # source, destination, ports

    @property
    def reason(self) -> str:
        src, dst, ports = self.reason_values
        return (
            self.reason_template.replace(SRC_TOKEN, src)
            .replace(DST_TOKEN, dst)
            .replace(PORTS_TOKEN, ports)
        )

    @property
    def denied_by(self) -> tuple[str, ...]:
        """The directions that deny: ``("egress",)``, ``("ingress",)``, both, or none."""
        out = []
        if self.egress_isolated and not self.egress_rules:
            out.append("egress")
        if self.ingress_isolated and not self.ingress_rules:
            out.append("ingress")
        return tuple(out)

    @property
    def rules(self) -> tuple[str, ...]:
        return self.egress_rules + self.ingress_rules

    def summary(self) -> str:
        """One short phrase: the deciding rules, or the isolation that denies."""
        if self.allowed:
            if self.rules:
                return "allowed by " + ", ".join(self.rules)
            return "allowed: no policy isolates either end"
        return "denied: " + " and ".join(self.denied_by or ("isolation",)) + " isolation"

    def to_dict(self, *, reason: bool = True) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "decided_by": self.summary(),
            "egress_rules": list(self.egress_rules),
            "ingress_rules": list(self.ingress_rules),
            "egress_isolated": self.egress_isolated,
            "ingress_isolated": self.ingress_isolated,
            "egress_isolated_by": list(self.egress_isolated_by),
            "ingress_isolated_by": list(self.ingress_isolated_by),
            "denied_by": list(self.denied_by),
            "reason": self.reason if reason else None,
        }


@dataclass(frozen=True, slots=True)
class ObservedEvidence:
    """Observed connections inside one change.

    ``edges`` counts distinct connections (source endpoint, destination endpoint, protocol,
    port); ``connections`` the connections they stand for; ``working_edges`` the edges the flow
    logs show as allowed (forwarded) at least once.
    """

    edges: int
    connections: int
    working_edges: int
    ports: tuple[str, ...]
    first_seen: datetime | None
    last_seen: datetime | None
    examples: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": self.edges,
            "connections": self.connections,
            "working_edges": self.working_edges,
            "ports": list(self.ports),
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "examples": list(self.examples),
        }


@dataclass(frozen=True, slots=True)
class Change:
    """Connections from ``src`` to ``dst`` on ``ports`` that OLD and NEW decide differently.

    ``src``/``dst`` are identity group keys (``pod:<ns>:<labels>``, ``entity:<name>``) or
    ``addresses`` with the address ranges in ``src_addresses``/``dst_addresses``. ``probes``
    counts the (source identity, destination identity, port class) probes in this change
    (0 when only observed traffic, that no probe covers, changed).
    """

    kind: ChangeKind
    src_namespace: str | None
    dst_namespace: str | None
    src: str
    dst: str
    src_display: str
    dst_display: str
    src_addresses: tuple[str, ...]
    dst_addresses: tuple[str, ...]
    ports: tuple[str, ...]
    probes: int
    old: Decision
    new: Decision
    observed: ObservedEvidence | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form. The engine's ``reason`` text is kept for changes with observed traffic
        only (null otherwise): an existing -> recommended diff has ~N^2 probe-only changes and
        the rules, isolating policies and ``decided_by`` already say what decides them."""
        observed = self.observed is not None
        return {
            "src_namespace": self.src_namespace,
            "dst_namespace": self.dst_namespace,
            "src": self.src,
            "dst": self.dst,
            "src_addresses": list(self.src_addresses),
            "dst_addresses": list(self.dst_addresses),
            "ports": list(self.ports),
            "probes": self.probes,
            "old": self.old.to_dict(reason=observed),
            "new": self.new.to_dict(reason=observed),
            "observed": self.observed.to_dict() if self.observed else None,
        }


@dataclass(frozen=True, slots=True)
class DiffCounts:
    """What changed, counted two ways.

    ``probes_*`` count probes: (source identity, destination identity, protocol, port class).
    ``observed_*_edges`` count distinct observed connections (source endpoint, destination
    endpoint, protocol, port) and ``observed_*_connections`` the connections they stand for.
    ``observed_newly_denied_working`` counts newly denied edges the flow logs show as allowed:
    traffic that works today and would break (what ``--fail-on newly-denied-observed`` gates).
    """

    probes_newly_denied: int = 0
    probes_newly_allowed: int = 0
    probes_unchanged_allowed: int = 0
    probes_unchanged_denied: int = 0
    observed_newly_denied_edges: int = 0
    observed_newly_denied_connections: int = 0
    observed_newly_denied_working: int = 0
    observed_newly_allowed_edges: int = 0
    observed_newly_allowed_connections: int = 0
    observed_unchanged_edges: int = 0
    observed_unchanged_connections: int = 0

    def __add__(self, other: DiffCounts) -> DiffCounts:
        names = DiffCounts.__dataclass_fields__
        return DiffCounts(**{n: getattr(self, n) + getattr(other, n) for n in names})

    @property
    def changed(self) -> bool:
        return bool(
            self.probes_newly_denied
            or self.probes_newly_allowed
            or self.observed_newly_denied_edges
            or self.observed_newly_allowed_edges
        )

    def to_dict(self) -> dict[str, int]:
        return {n: getattr(self, n) for n in DiffCounts.__dataclass_fields__}

    def unchanged_dict(self) -> dict[str, int]:
        return {
            "probes_allowed": self.probes_unchanged_allowed,
            "probes_denied": self.probes_unchanged_denied,
            "observed_edges": self.observed_unchanged_edges,
            "observed_connections": self.observed_unchanged_connections,
        }


@dataclass(frozen=True, slots=True)
class NamespacePairDiff:
    """Changes from pods (or addresses) of ``src_namespace`` to ``dst_namespace``.

    A namespace is ``None`` for a peer that is not a pod (addresses, host, ...).
    """

    src_namespace: str | None
    dst_namespace: str | None
    newly_denied: tuple[Change, ...]
    newly_allowed: tuple[Change, ...]
    counts: DiffCounts

    @property
    def title(self) -> str:
        return f"{self.src_namespace or OUTSIDE} -> {self.dst_namespace or OUTSIDE}"


@dataclass(frozen=True, slots=True)
class PolicySetInfo:
    """One side of the diff: where its policies came from and how many loaded."""

    label: str
    paths: tuple[str, ...]
    policies: int


@dataclass(frozen=True, slots=True)
class UniverseInfo:
    """What the probes enumerate (every pair with at least one pod, on every port class)."""

    pod_identities: int
    address_classes: int
    entities: int
    port_classes: int
    protocols: tuple[str, ...]
    probes: int
    enumerated: bool = True  # False with --no-probes: only observed connections compared

    def to_dict(self) -> dict[str, Any]:
        return {
            "pod_identities": self.pod_identities,
            "address_classes": self.address_classes,
            "entities": self.entities,
            "port_classes": self.port_classes,
            "protocols": list(self.protocols),
            "probes": self.probes,
            "enumerated": self.enumerated,
        }


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """The whole answer: per namespace pair, sorted by namespace pair; totals in ``counts``."""

    old: PolicySetInfo
    new: PolicySetInfo
    ipblock_mode: str
    namespaces: tuple[str, ...] | None
    universe: UniverseInfo
    groups: tuple[NamespacePairDiff, ...]
    counts: DiffCounts
    warnings: tuple[str, ...] = ()

    @property
    def newly_denied(self) -> tuple[Change, ...]:
        return tuple(c for g in self.groups for c in g.newly_denied)

    @property
    def newly_allowed(self) -> tuple[Change, ...]:
        return tuple(c for g in self.groups for c in g.newly_allowed)

    @property
    def breaking(self) -> tuple[Change, ...]:
        """Newly denied changes holding observed traffic that works today (what a rollout of
        NEW would break), most working edges first."""
        found = [c for c in self.newly_denied if c.observed and c.observed.working_edges]
        return tuple(sorted(found, key=lambda c: -c.observed.working_edges if c.observed else 0))

    def changes(self) -> Iterator[Change]:
        for group in self.groups:
            yield from group.newly_denied
            yield from group.newly_allowed

    def reaches(self, fail_on: str) -> bool:
        """Whether the diff meets a ``--fail-on`` condition (:data:`FAIL_ON`)."""
        if fail_on == "newly-denied-observed":
            return self.counts.observed_newly_denied_working > 0
        if fail_on == "newly-denied":
            return bool(self.counts.probes_newly_denied or self.counts.observed_newly_denied_edges)
        if fail_on == "any-change":
            return self.counts.changed
        raise ValueError(f"fail_on must be one of {FAIL_ON}, not {fail_on!r}")

    def to_dict(self, *, changes: bool = True) -> dict[str, Any]:
        """The ``-o json`` document (docs/diff.md); deterministic for the same inputs.

        ``changes=False`` leaves the two change lists empty (a writer streams them)."""
        return {
            "old": _set_dict(self.old),
            "new": _set_dict(self.new),
            "ipblock_mode": self.ipblock_mode,
            "namespaces": list(self.namespaces) if self.namespaces is not None else None,
            "universe": self.universe.to_dict(),
            "counts": self.counts.to_dict(),
            "newly_denied": [c.to_dict() for c in self.newly_denied] if changes else [],
            "newly_allowed": [c.to_dict() for c in self.newly_allowed] if changes else [],
            "unchanged": self.counts.unchanged_dict(),
            "namespace_pairs": [
                {
                    "src_namespace": g.src_namespace,
                    "dst_namespace": g.dst_namespace,
                    "counts": g.counts.to_dict(),
                }
                for g in self.groups
            ],
            "warnings": list(self.warnings),
        }


def _set_dict(info: PolicySetInfo) -> dict[str, Any]:
    return {"label": info.label, "paths": list(info.paths), "policies": info.policies}


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")
