"""Fold groups with identical rules into one policy, and peers into one element.

Two selectors merge when they have the same keys and differ in exactly one label's value;
the result is ``key In [v1, v2, ...]``. Because only selectors that agree on every other label
merge, the merged selector selects exactly the union of what the inputs selected (a product of
one value set with fixed labels), so merging never widens what the rules allow.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

from analyzer.recommend.model import AllowedPeer, Selector

__all__ = ["merge_owners", "merge_peers", "merge_selectors"]

T = TypeVar("T", bound=Hashable)

# Naming labels are the most natural key to merge on (app In [backend, backend-primary]).
_PREFERRED_KEYS = ("app.kubernetes.io/name", "app", "k8s-app", "name", "component")


def _key_order(keys: Iterable[str]) -> list[str]:
    def rank(key: str) -> tuple[int, str]:
        return (_PREFERRED_KEYS.index(key) if key in _PREFERRED_KEYS else len(_PREFERRED_KEYS), key)

    return sorted(set(keys), key=rank)


def merge_selectors(items: Sequence[tuple[Selector, T]]) -> list[tuple[Selector, tuple[T, ...]]]:
    """Merge plain ``matchLabels`` selectors that differ in one label's value.

    Returns ``(selector, payloads)`` pairs, in a deterministic order. Selectors that already
    carry expressions are passed through unchanged.
    """
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


def merge_owners(
    items: Sequence[tuple[Selector, str, Hashable]],
) -> list[tuple[Selector, tuple[str, ...]]]:
    """Merge owner groups with the same rule ``shape`` whose selectors differ in one value.

    ``items`` are ``(selector, owner key, shape)``; owners merge only within one shape.
    Returns ``(selector, owners)`` in a deterministic order.
    """
    by_shape: dict[Hashable, list[tuple[Selector, str]]] = defaultdict(list)
    for sel, owner, shape in items:
        by_shape[shape].append((sel, owner))
    out: list[tuple[Selector, tuple[str, ...]]] = []
    for members in by_shape.values():
        for sel, owners in merge_selectors(members):
            out.append((sel, tuple(sorted(owners))))
    return sorted(out)


def merge_peers(peers: Sequence[AllowedPeer]) -> list[AllowedPeer]:
    """Merge pod peers: selectors differing in one value, then namespaces with equal selectors."""
    pods = [p for p in peers if p.kind == "pod"]
    others = sorted(set(p for p in peers if p.kind != "pod"))
    by_ns: dict[tuple[str, ...], list[AllowedPeer]] = defaultdict(list)
    for p in pods:
        by_ns[p.namespaces].append(p)
    step1: list[AllowedPeer] = []
    for namespaces, members in by_ns.items():
        for sel, _ in merge_selectors([(m.selector, m) for m in members]):
            step1.append(AllowedPeer("pod", namespaces=namespaces, selector=sel))
    by_sel: dict[Selector, list[str]] = defaultdict(list)
    for p in step1:
        by_sel[p.selector].extend(p.namespaces)
    merged = [
        AllowedPeer("pod", namespaces=tuple(sorted(set(nss))), selector=sel)
        for sel, nss in by_sel.items()
    ]
    return sorted(merged) + others
