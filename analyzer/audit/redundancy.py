"""redundant-rule: a rule whose every admitted connection another rule admits too.

The claim is proved structurally, never guessed from traffic: rule A is covered by rule B (same
direction, policies of the same namespace) when B's policy selects every pod A's policy selects,
every peer element of A is contained in one of B's, and every port of A in one of B's. Selector
containment is syntactic (B's requirements are implied by A's); namespace selectors are also
checked against the namespace's known labels when one side is the policy's own namespace.

Where structure cannot decide (``app=api`` versus ``tier=backend`` selecting the same pods),
:func:`find_semantic_covers` checks the known universe: every known pod A's policy selects is
selected by B's, every known pod each of A's peers admits is admitted by B (a peer matching
no known pod proves nothing), while ports and address peers must still be contained
structurally. Such a claim holds for today's pods and says so.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from analyzer.audit.anchors import (
    AnchorIndex,
    rule_anchors,
    rule_lookups,
    selector_anchors,
    selector_lookups,
)
from analyzer.audit.index import IdentityIndex, Ids
from analyzer.audit.universe import Pod, Universe
from analyzer.policy.compile import AllPeers, CompiledPolicy, CompiledRule, PodPeers
from analyzer.policy.model import (
    LabelRequirement,
    LabelSelector,
    NetworkPolicy,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
)

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

__all__ = [
    "Cover",
    "SemanticCover",
    "find_covers",
    "find_semantic_covers",
    "peer_covered",
    "ports_covered",
    "selector_subset",
]


@dataclass(frozen=True, slots=True)
class Cover:
    """Rule ``(policy, direction, index)`` is covered by ``by``."""

    policy: NetworkPolicy
    direction: str
    index: int
    by_policy: NetworkPolicy
    by_index: int


def find_covers(
    policies: list[NetworkPolicy], namespace_labels: Mapping[str, Mapping[str, str]]
) -> list[Cover]:
    """Every (rule, covering rule) pair among ``policies`` (namespaced policies only).

    Parameters
    ----------
    policies
        Policies to compare; only rules of policies in the same namespace are compared.
    namespace_labels
        Known labels per namespace (for own-namespace versus namespaceSelector peers).
    """
    covers: list[Cover] = []
    by_ns: dict[str, list[NetworkPolicy]] = {}
    for p in policies:
        if p.namespace is not None:
            by_ns.setdefault(p.namespace, []).append(p)
    for ns, group in by_ns.items():
        ns_labels = dict(namespace_labels.get(ns, {}))
        ns_labels.setdefault(NAMESPACE_NAME_LABEL, ns)
        covering = _covering_subjects(group)
        # Rules filed by their peers, per direction: A's candidates are the rules that may
        # contain its first peer, not every rule of the namespace (see anchors.py).
        entries: dict[str, list[tuple[NetworkPolicy, int, PolicyRule]]] = {}
        filed: dict[str, AnchorIndex] = {}
        for direction in ("ingress", "egress"):
            entries[direction], filed[direction] = [], AnchorIndex()
            for pb in group:
                for ib, rb in enumerate(pb.ingress if direction == "ingress" else pb.egress):
                    if not rb.match_nothing:
                        entries[direction].append((pb, ib, rb))
                        filed[direction].add(rule_anchors(rb))
        known: dict[tuple[int, int], bool] = {}
        interned: dict[PolicyRule, int] = {}
        for pa in group:
            subjects = covering[pa.pod_selector]
            for direction in ("ingress", "egress"):
                rules_a = pa.ingress if direction == "ingress" else pa.egress
                for ia, ra in enumerate(rules_a):
                    if ra.match_nothing:
                        continue
                    id_a = interned.setdefault(ra, len(interned))
                    for number in filed[direction].lookup(rule_lookups(ra)):
                        pb, ib, rb = entries[direction][number]
                        if (pb is pa and ib == ia) or pb.pod_selector not in subjects:
                            continue
                        pair = (id_a, interned.setdefault(rb, len(interned)))
                        if pair not in known:
                            known[pair] = rule_covered(ra, rb, ns_labels)
                        if known[pair]:
                            covers.append(Cover(pa, direction, ia, pb, ib))
    return covers


def _covering_subjects(group: Sequence[NetworkPolicy]) -> dict[LabelSelector, set[LabelSelector]]:
    """For each distinct podSelector of ``group``: the distinct ones that contain it."""
    distinct = list(dict.fromkeys(p.pod_selector for p in group))
    filed = AnchorIndex()
    for selector in distinct:
        filed.add(selector_anchors(selector))
    return {
        a: {
            distinct[n] for n in filed.lookup(selector_lookups(a))
            if selector_subset(a, distinct[n])
        }
        for a in distinct
    }


def rule_covered(a: PolicyRule, b: PolicyRule, own_ns_labels: Mapping[str, str]) -> bool:
    """Every peer and port of ``a`` is admitted by ``b`` (same subject assumed)."""
    return ports_covered(a.ports, b.ports) and _peers_covered(a, b, own_ns_labels)


def _peers_covered(a: PolicyRule, b: PolicyRule, own_ns_labels: Mapping[str, str]) -> bool:
    if not b.peers:
        return True
    if not a.peers:
        return False
    return all(any(peer_covered(pa, pb, own_ns_labels) for pb in b.peers) for pa in a.peers)


def peer_covered(a: PolicyPeer, b: PolicyPeer, own_ns_labels: Mapping[str, str]) -> bool:
    """Everything peer element ``a`` admits, ``b`` admits (provably)."""
    if a.entities or b.entities:
        return bool(a.entities) and set(a.entities) <= set(b.entities)
    if a.ip_block is not None or b.ip_block is not None:
        if a.ip_block is None or b.ip_block is None:
            return False
        if b.ip_block.external_only and not a.ip_block.external_only:
            return False
        return _cidr_covered(a.ip_block.cidr, a.ip_block.excepts, b.ip_block.cidr,
                             b.ip_block.excepts)
    if not _namespaces_covered(a, b, own_ns_labels):
        return False
    pod_b = b.pod_selector or LabelSelector()
    pod_a = a.pod_selector or LabelSelector()
    return selector_subset(pod_a, pod_b)


def _scope(peer: PolicyPeer) -> str:
    if peer.any_namespace or (
        peer.namespace_selector is not None and peer.namespace_selector.is_empty
    ):
        return "any"
    return "selector" if peer.namespace_selector is not None else "own"


def _namespaces_covered(a: PolicyPeer, b: PolicyPeer, own: Mapping[str, str]) -> bool:
    sa, sb = _scope(a), _scope(b)
    if sb == "any":
        return True
    if sa == "any":
        return False
    if sb == "own":
        # kubernetes.io/metadata.name is immutable and equal to the name: pinning it to the
        # policy's own namespace is the same as no namespaceSelector.
        own_name = own.get(NAMESPACE_NAME_LABEL)
        return sa == "own" or (
            sa == "selector"
            and a.namespace_selector is not None
            and own_name is not None
            and any(
                r.key == NAMESPACE_NAME_LABEL and r.operator == "In" and r.values == (own_name,)
                for r in a.namespace_selector.requirements()
            )
        )
    assert b.namespace_selector is not None
    if sa == "own":
        return b.namespace_selector.matches(own)
    assert a.namespace_selector is not None
    return selector_subset(a.namespace_selector, b.namespace_selector)


@functools.lru_cache(maxsize=65536)
def selector_subset(a: LabelSelector, b: LabelSelector) -> bool:
    """Every label set ``a`` matches, ``b`` matches: each requirement of ``b`` is implied."""
    reqs_a = a.requirements()
    return all(any(_implies(ra, rb) for ra in reqs_a) for rb in b.requirements())


def _implies(a: LabelRequirement, b: LabelRequirement) -> bool:
    if a.key != b.key:
        return False
    if b.operator == "In":
        return a.operator == "In" and set(a.values) <= set(b.values)
    if b.operator == "Exists":
        return a.operator in ("In", "Exists")
    if b.operator == "NotIn":
        if a.operator == "In":
            return not set(a.values) & set(b.values)
        if a.operator == "NotIn":
            return set(b.values) <= set(a.values)
        return a.operator == "DoesNotExist"
    return a.operator == "DoesNotExist"  # b: DoesNotExist


def _cidr_covered(
    a_cidr: str, a_except: tuple[str, ...], b_cidr: str, b_except: tuple[str, ...]
) -> bool:
    try:
        na = ipaddress.ip_network(a_cidr, strict=False)
        nb = ipaddress.ip_network(b_cidr, strict=False)
        ea = [ipaddress.ip_network(e, strict=False) for e in a_except]
        eb = [ipaddress.ip_network(e, strict=False) for e in b_except]
    except ValueError:
        return False
    if na.version != nb.version or not na.subnet_of(nb):  # type: ignore[arg-type]
        return False
    for hole in eb:
        if hole.version != na.version or not hole.overlaps(na):
            continue
        # b refuses part of a's range: covered only if a refuses that part too.
        if not any(hole.version == e.version and hole.subnet_of(e) for e in ea):  # type: ignore[arg-type]
            return False
    return True


def ports_covered(
    a: tuple[PolicyPort, ...] | None, b: tuple[PolicyPort, ...] | None
) -> bool:
    """Every port of ``a`` is in some port of ``b`` (absent/empty: every port)."""
    if not b:
        return True
    if not a:
        return False
    return all(any(_port_in(pa, pb) for pb in b) for pa in a)


def _port_in(a: PolicyPort, b: PolicyPort) -> bool:
    if a.protocol != b.protocol:
        return False
    if b.port is None:
        return True
    if a.port is None:
        return False
    if isinstance(a.port, str) or isinstance(b.port, str):
        return a.port == b.port and a.end_port is None and b.end_port is None
    a_hi = a.end_port if a.end_port is not None else a.port
    b_hi = b.end_port if b.end_port is not None else b.port
    return b.port <= a.port and a_hi <= b_hi


@dataclass(frozen=True, slots=True)
class SemanticCover:
    """Rule ``(policy, direction, index)`` is covered by ``by`` over the known pods.

    Proved for today's pods only: ``subjects`` pods selected by both policies, ``peers`` known
    pods the rule admits; ports and address peers are still proved structurally.
    """

    policy: CompiledPolicy
    direction: str
    index: int
    by_policy: CompiledPolicy
    by_index: int
    subjects: int
    peers: int


def find_semantic_covers(
    policies: Sequence[CompiledPolicy],
    universe: Universe,
    mode: str,
    proved: set[tuple[str, str, int, str, int]],
) -> list[SemanticCover]:
    """Covers that hold over the known pods but that structure alone cannot prove.

    Parameters
    ----------
    policies
        Compiled policies in scope.
    universe
        Known pods and namespaces.
    mode
        ipBlock mode of the compiled policies.
    proved
        ``(policy, direction, index, by_policy, by_index)`` already proved structurally.
    """
    index = universe.index
    subjects = {cp.key: universe.selected_ids(cp) for cp in policies}
    by_ns: dict[str, list[CompiledPolicy]] = {}
    for cp in policies:
        if cp.namespace is not None:
            by_ns.setdefault(cp.namespace, []).append(cp)
    out: list[SemanticCover] = []
    for ns, group in by_ns.items():
        own = dict(universe.namespace_labels(ns))
        # Only a policy that selects every pod A's policy selects can cover A's rules: look the
        # candidates up by one of A's pods instead of trying every policy of the namespace.
        selecting: dict[int, list[CompiledPolicy]] = {}
        for cp in group:
            for i in subjects[cp.key]:
                selecting.setdefault(i, []).append(cp)
        interned: dict[PolicyRule, int] = {}
        known: dict[tuple[int, int], int | None] = {}
        for direction in ("ingress", "egress"):
            for ca in group:
                mine = subjects[ca.key]
                if not mine:
                    continue
                rules_a = [r for r in getattr(ca, direction) or () if _semantic_candidate(r)]
                if not rules_a:
                    continue
                covering = [
                    cb for cb in selecting[min(mine)] if mine <= subjects[cb.key]
                ]
                for ra in rules_a:
                    sets_a = [
                        index.admitted(m) if isinstance(m, PodPeers) else None for m in ra.peers
                    ]
                    id_a = interned.setdefault(ra.rule, len(interned))
                    for cb in covering:
                        for rb in getattr(cb, direction) or ():
                            if rb is ra or rb.rule.match_nothing or (
                                ca.key, direction, ra.index, cb.key, rb.index
                            ) in proved:
                                continue
                            # Within a namespace the answer depends on the two rules only, and
                            # generated policy sets repeat rules: decide each pair once.
                            pair = (id_a, interned.setdefault(rb.rule, len(interned)))
                            if pair not in known:
                                known[pair] = (
                                    _semantic_peers(ra, sets_a, rb, index, own)
                                    if ports_covered(ra.rule.ports, rb.rule.ports)
                                    else None
                                )
                            admitted = known[pair]
                            if admitted is not None:
                                out.append(
                                    SemanticCover(ca, direction, ra.index, cb, rb.index,
                                                  index.pod_count(mine), admitted)
                                )
    return out


def _semantic_candidate(rule: CompiledRule) -> bool:
    return (
        not rule.rule.match_nothing
        and bool(rule.rule.peers)
        and len(rule.peers) == len(rule.rule.peers or ())
    )


def _semantic_peers(
    a: CompiledRule,
    sets_a: list[Ids | None],
    b: CompiledRule,
    index: IdentityIndex[Pod],
    own: Mapping[str, str],
) -> int | None:
    """Known pods ``a`` admits when ``b`` admits all of them (None when it does not)."""
    if any(isinstance(m, AllPeers) for m in b.peers):
        return sum(index.pod_count(s) for s in sets_a if s is not None)
    b_ids: Ids = frozenset().union(
        *(index.admitted(m) for m in b.peers if isinstance(m, PodPeers))
    )
    b_model = b.rule.peers or ()
    total = 0
    for position, ids in enumerate(sets_a):
        model_peer = a.rule.peers[position] if a.rule.peers else None
        if ids is None:
            # addresses and entities: only a structural proof counts
            if model_peer is None or not any(peer_covered(model_peer, pb, own) for pb in b_model):
                return None
            continue
        if not ids or not ids <= b_ids:
            return None  # a peer matching no known pod proves nothing
        total += index.pod_count(ids)
    return total
