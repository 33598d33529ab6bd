"""Fold groups with identical rules into one policy, and peers into one element.

Two selectors merge when they have the same keys and differ in exactly one label's value;
the result is ``key In [v1, v2, ...]``. Because only selectors that agree on every other label
merge, the merged selector selects exactly the union of what the inputs selected (a product of
one value set with fixed labels), so merging never widens what the rules allow.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from analyzer.policy.synthesize import Peer, Port, Rule, Selector

__all__ = ["MergedOwner", "merge_owners", "merge_peers", "merge_selectors"]

T = TypeVar("T", bound=Hashable)

# Naming labels are the most natural key to merge on (app In [backend, backend-primary]).
_PREFERRED_KEYS = ("app.kubernetes.io/name", "app", "k8s-app", "name", "component")


@dataclass(frozen=True, slots=True)
class MergedOwner:
    selector: Selector
    owners: tuple[str, ...]
    rules: tuple[Rule, ...]


def _key_order(keys: Iterable[str]) -> list[str]:
    def rank(key: str) -> tuple[int, str]:
        return (_PREFERRED_KEYS.index(key) if key in _PREFERRED_KEYS else len(_PREFERRED_KEYS), key)

    return sorted(set(keys), key=rank)


def merge_selectors(items: Sequence[tuple[Selector, T]]) -> list[tuple[Selector, tuple[T, ...]]]:
    """Merge plain ``matchLabels`` selectors that differ in one label's value.

    Returns ``(selector, payloads)`` pairs, in a deterministic order. Selectors that already
    carry expressions are passed through unchanged.
    """
    from analyzer.policy.synthesize import Selector

    remaining: dict[Selector, list[T]] = defaultdict(list)
    for sel, payload in items:
        remaining[sel].append(payload)
    out: list[tuple[Selector, tuple[T, ...]]] = []
    plain = [s for s in remaining if not s.match_in and s.match_labels]
    for key in _key_order(k for s in plain for k, _ in s.match_labels):
        buckets: dict[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], list[Selector]] = (
            defaultdict(list)
        )
        for sel in plain:
            labels = dict(sel.match_labels)
            if key in labels and sel in remaining:
                rest = tuple((k, v) for k, v in sel.match_labels if k != key)
                buckets[(tuple(sorted(labels)), rest)].append(sel)
        for (_, rest), members in sorted(buckets.items()):
            if len(members) < 2:
                continue
            values = tuple(sorted(dict(m.match_labels)[key] for m in members))
            payloads = tuple(p for m in sorted(members) for p in remaining.pop(m))
            out.append((Selector(match_labels=rest, match_in=((key, values),)), payloads))
    out.extend((sel, tuple(payloads)) for sel, payloads in remaining.items())
    return sorted(out, key=lambda item: item[0])


def merge_owners(items: Sequence[tuple[Selector, str, tuple[Rule, ...]]]) -> list[MergedOwner]:
    """Merge owner groups whose rules are identical (peers and ports; evidence is summed)."""
    from analyzer.policy.synthesize import Rule, combine_evidence

    Shape = tuple[tuple[tuple["Peer", ...], tuple["Port", ...]], ...]
    by_shape: dict[Shape, list[tuple[Selector, str, tuple[Rule, ...]]]] = defaultdict(list)
    for sel, owner, rules in items:
        by_shape[tuple((r.peers, r.ports) for r in rules)].append((sel, owner, rules))
    out: list[MergedOwner] = []
    for shape, members in by_shape.items():
        rules_of = {owner: rules for _, owner, rules in members}
        for sel, owners in merge_selectors([(s, o) for s, o, _ in members]):
            rules = tuple(
                Rule(
                    peers=peers,
                    ports=ports,
                    evidence=combine_evidence(rules_of[o][i].evidence for o in owners),
                )
                for i, (peers, ports) in enumerate(shape)
            )
            out.append(MergedOwner(selector=sel, owners=tuple(sorted(owners)), rules=rules))
    return sorted(out, key=lambda m: (m.selector, m.owners))


def merge_peers(peers: Sequence[Peer]) -> list[Peer]:
    """Merge pod peers: selectors differing in one value, then namespaces with equal selectors."""
    from analyzer.policy.synthesize import Peer

    pods = [p for p in peers if p.kind == "pod"]
    others = sorted(set(p for p in peers if p.kind != "pod"))
    by_ns: dict[tuple[str, ...], list[Peer]] = defaultdict(list)
    for p in pods:
        by_ns[p.namespaces].append(p)
    step1: list[Peer] = []
    for namespaces, members in by_ns.items():
        for sel, _ in merge_selectors([(m.selector, m) for m in members]):
            step1.append(Peer("pod", namespaces=namespaces, selector=sel))
    by_sel: dict[Selector, list[str]] = defaultdict(list)
    for p in step1:
        by_sel[p.selector].extend(p.namespaces)
    merged = [
        Peer("pod", namespaces=tuple(sorted(set(nss))), selector=sel)
        for sel, nss in by_sel.items()
    ]
    return sorted(merged) + others
