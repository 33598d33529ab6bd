"""Per-direction verdict tables over the whole universe, decided by the policy engine.

A connection's verdict is the source's egress verdict AND the destination's ingress verdict
(``policy.evaluate``). For one subject (the source for egress, the destination for ingress)
``evaluate_direction`` reads the other end only through its kind and entity (and its node,
for the host exemption: unknown for every endpoint here) and the peer matchers of the rules
of the policies selecting the subject; it reads the port only through those rules' port
matchers. So for each subject the other endpoints fall into a few classes (kind, entity, and
which of its rules' peers match them) and the port classes into a few signatures (which of
its rules' ports match them); ``evaluate_direction`` runs once per (subject, other class,
port signature) and the answer holds for every member. Matchers are the engine's own
(``CompiledRule``'s peers and ports); nothing here re-decides what a rule means.

Verdicts are interned: a :class:`Verdicts` registry maps each distinct
``DirectionVerdict`` (with the other end and the port replaced by tokens in its reason) to a
small integer, so the tables are integer arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from analyzer.diff.universe import PortClass, Universe, UniverseEntry
from analyzer.policy.compile import CompiledPolicies, CompiledRule, PeerMatcher, PortMatcher
from analyzer.policy.evaluate import (
    DirectionVerdict,
    Endpoint,
    evaluate_direction,
    selecting_policies,
)
from analyzer.policy.model import INGRESS

__all__ = ["OTHER_TOKEN", "PORT_TOKEN", "SubjectTable", "Verdicts", "direction_tables"]

OTHER_TOKEN = "\x00OTHER"  # the other end, named per row when a change is written
PORT_TOKEN = "\x00PORT"  # the port, written as the row's port ranges

IntArray = np.ndarray[Any, np.dtype[np.int32]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(slots=True)
class Verdicts:
    """Interned direction verdicts: id -> verdict and verdict -> id."""

    items: list[DirectionVerdict] = field(default_factory=list)
    index: dict[DirectionVerdict, int] = field(default_factory=dict)

    def intern(self, verdict: DirectionVerdict) -> int:
        found = self.index.get(verdict)
        if found is None:
            found = self.index[verdict] = len(self.items)
            self.items.append(verdict)
        return found

    def allowed(self) -> BoolArray:
        return np.array([v.allowed for v in self.items], dtype=np.bool_)


@dataclass(frozen=True, slots=True)
class SubjectTable:
    """One subject's verdicts: ``verdicts[others[j], c]`` is the id for other end ``j`` on
    port class ``c``."""

    others: IntArray
    verdicts: IntArray

    def row(self, others: IntArray | slice) -> IntArray:
        return self.verdicts[self.others[others]]


def direction_tables(
    compiled: CompiledPolicies, universe: Universe, direction: str, registry: Verdicts
) -> list[SubjectTable]:
    """For every endpoint as subject of ``direction``, its verdicts against every other
    endpoint on every port class."""
    endpoints, ports = universe.endpoints, universe.ports
    # Named ports live on the destination: the other end for egress, the subject for ingress.
    named_of: dict[str, int] = {}
    named_group = np.array([named_of.setdefault(e.named, len(named_of)) for e in endpoints])
    named_maps = {named_of[e.named]: e.peer.ports for e in endpoints}
    others = [replace(e.peer, label=OTHER_TOKEN) for e in endpoints]
    mode = compiled.ipblock_mode
    matcher_hits: dict[PeerMatcher, BoolArray] = {}
    port_hits: dict[tuple[tuple[PortMatcher, ...], int], BoolArray] = {}

    def peer_vector(rule: CompiledRule) -> BoolArray:
        out = np.zeros(len(endpoints), dtype=np.bool_)
        for matcher in rule.peers:
            if matcher not in matcher_hits:
                matcher_hits[matcher] = np.array(
                    [matcher.matches(o, mode) for o in others], dtype=np.bool_
                )
            out |= matcher_hits[matcher]
        return out

    def port_vector(rule: CompiledRule, group: int) -> BoolArray:
        key = (rule.ports, group)
        if key not in port_hits:
            named = named_maps[group]
            port_hits[key] = np.array(
                [rule.port_matches(p.low, p.protocol, named) for p in ports], dtype=np.bool_
            )
        return port_hits[key]

    # The other end enters evaluate_direction only through its kind, its entity and its node
    # (the host exemption; every node is unknown here) and through the rules' matchers.
    kinds: dict[tuple[str, str | None], int] = {}
    kind_of = np.array([kinds.setdefault((o.kind, o.entity), len(kinds)) for o in others])
    tables = []
    for subject in endpoints:
        selecting = selecting_policies(compiled, subject.peer, direction)
        rules = [
            r
            for cp in selecting
            for r in ((cp.ingress if direction == INGRESS else cp.egress) or ())
        ]
        columns = [kind_of]
        if direction != INGRESS:
            columns.append(named_group)
        columns += [peer_vector(r) for r in rules]
        keys = np.stack(columns, axis=1)
        _, reps, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        rows = []
        for rep in reps.tolist():
            group = int(named_group[rep]) if direction != INGRESS else named_of[subject.named]
            rows.append(
                _port_row(
                    compiled,
                    subject,
                    others[rep],
                    named_maps[group],
                    ports,
                    direction,
                    selecting,
                    [port_vector(r, group) for r in rules],
                    registry,
                )
            )
        tables.append(
            SubjectTable(inverse.reshape(-1).astype(np.int32), np.stack(rows).astype(np.int32))
        )
    return tables


def _port_row(
    compiled: CompiledPolicies,
    subject: UniverseEntry,
    other: Endpoint,
    named: Any,
    ports: tuple[PortClass, ...],
    direction: str,
    selecting: Any,
    vectors: list[BoolArray],
    registry: Verdicts,
) -> IntArray:
    """Verdict ids of ``subject`` against ``other`` on every port class."""
    if vectors:
        signature = np.stack(vectors, axis=1)
        _, reps, inverse = np.unique(signature, axis=0, return_index=True, return_inverse=True)
    else:
        reps, inverse = np.array([0]), np.zeros(len(ports), dtype=np.int64)
    ids = []
    for rep in reps.tolist():
        port = ports[rep]
        verdict = evaluate_direction(
            compiled,
            subject.peer,
            other,
            port.low,
            port.protocol,
            direction,
            named,
            selecting=selecting,
        )
        text = verdict.reason.replace(f" on {port.protocol} {port.low}", f" on {PORT_TOKEN}")
        ids.append(registry.intern(replace(verdict, reason=text)))
    return np.array(ids, dtype=np.int32)[inverse.reshape(-1)]
