"""Which known identities a selector or peer admits, answered from inverted indexes.

The audit asks "which pods does this policy select" and "which pods does this peer admit" for
every policy and rule. Testing each identity against each policy grows with their product
(10,000 policies x 5,000 identities); here a selector is narrowed first by its most selective
requirement (``app=web`` -> the identities carrying that label, in the namespaces its scope
allows), and only those candidates are matched in full. Answers are sets of identity numbers,
cached by selector value: generated policy sets repeat the same selectors many times.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from analyzer.policy.compile import (
    AllPeers,
    EntityPeers,
    IPPeers,
    NoPeers,
    PeerMatcher,
    PodPeers,
    ip_key,
)
from analyzer.policy.model import LabelSelector

__all__ = ["IdentityIndex", "Ids"]


class _PodLike(Protocol):
    @property
    def namespace(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def ip(self) -> str | None: ...


Pod = TypeVar("Pod", bound=_PodLike)

Ids = frozenset[int]
_NONE: Ids = frozenset()
# Entities under which Cilium counts a pod.
_POD_ENTITIES = frozenset({"all", "cluster", "pod"})


@dataclass(slots=True)
class IdentityIndex(Generic[Pod]):
    """Identities (pods grouped by namespace, labels and namespace labels) with lookups.

    ``reps[i]`` is one pod of identity ``i``, ``members[i]`` all its pods.
    """

    reps: tuple[Pod, ...]
    members: tuple[tuple[Pod, ...], ...]
    namespace_labels: Mapping[str, Mapping[str, str]]
    all_ids: Ids = field(init=False)
    by_namespace: dict[str, Ids] = field(init=False)
    by_label: dict[tuple[str, str], set[int]] = field(init=False)
    by_key: dict[str, set[int]] = field(init=False)
    _ips: list[tuple[int, int, int]] = field(init=False)  # (version, address, pod number)
    _pods: list[Pod] = field(init=False)
    _cache: dict[object, Ids] = field(init=False)
    _ns_cache: dict[LabelSelector, tuple[str, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self.all_ids = frozenset(range(len(self.reps)))
        by_namespace: dict[str, set[int]] = {}
        self.by_label = {}
        self.by_key = {}
        for i, rep in enumerate(self.reps):
            by_namespace.setdefault(rep.namespace, set()).add(i)
            for key, value in rep.labels.items():
                self.by_label.setdefault((key, value), set()).add(i)
                self.by_key.setdefault(key, set()).add(i)
        self.by_namespace = {ns: frozenset(ids) for ns, ids in by_namespace.items()}
        self._pods = [p for group in self.members for p in group]
        ips: list[tuple[int, int, int]] = []
        for n, pod in enumerate(self._pods):
            address = ip_key(pod.ip)
            if address is not None:
                ips.append((address[0], address[1], n))
        self._ips = sorted(ips)
        self._cache = {}
        self._ns_cache = {}

    # --- identities --------------------------------------------------------------------------

    def pods(self, ids: Ids) -> list[Pod]:
        """Every pod of the identities ``ids``, in identity order."""
        return [p for i in sorted(ids) for p in self.members[i]]

    def pod_count(self, ids: Ids) -> int:
        return sum(len(self.members[i]) for i in ids)

    def namespaces_matching(self, selector: LabelSelector) -> tuple[str, ...]:
        """Known namespaces whose labels ``selector`` matches."""
        found = self._ns_cache.get(selector)
        if found is None:
            found = tuple(
                ns for ns, labels in self.namespace_labels.items() if selector.matches(labels)
            )
            self._ns_cache[selector] = found
        return found

    def scoped(
        self, namespace: str | None, namespace_selector: LabelSelector | None
    ) -> Ids:
        """Identities in ``namespace`` (when set) and in namespaces the selector matches."""
        key = ("scope", namespace, namespace_selector)
        found = self._cache.get(key)
        if found is not None:
            return found
        if namespace is not None:
            found = self.by_namespace.get(namespace, _NONE)
            if namespace_selector is not None and not namespace_selector.matches(
                self.namespace_labels.get(namespace, {})
            ):
                found = _NONE
        elif namespace_selector is not None:
            if namespace_selector.is_empty:
                found = self.all_ids
            else:
                found = frozenset().union(
                    *(self.by_namespace.get(ns, _NONE)
                      for ns in self.namespaces_matching(namespace_selector))
                )
        else:
            found = self.all_ids
        self._cache[key] = found
        return found

    def selecting(
        self, namespace: str | None, selector: LabelSelector,
        namespace_selector: LabelSelector | None = None,
    ) -> Ids:
        """Identities with labels ``selector`` matches, within the scope of :meth:`scoped`."""
        key = ("select", namespace, selector, namespace_selector)
        found = self._cache.get(key)
        if found is None:
            found = self._filter(selector, self.scoped(namespace, namespace_selector))
            self._cache[key] = found
        return found

    def admitted(self, matcher: PeerMatcher) -> Ids:
        """Identities a peer matcher admits as pods (ipBlocks: see :meth:`pods_in_block`)."""
        if isinstance(matcher, AllPeers):
            return self.all_ids
        if isinstance(matcher, PodPeers):
            return self.selecting(
                matcher.namespace, matcher.pod_selector, matcher.namespace_selector
            )
        if isinstance(matcher, EntityPeers):
            return self.all_ids if matcher.entities & _POD_ENTITIES else _NONE
        assert isinstance(matcher, IPPeers | NoPeers)
        return _NONE

    def pods_in_block(self, block: IPPeers, mode: str) -> list[Pod]:
        """Pods whose address an ipBlock matches (none where it only sees outside addresses)."""
        if block.external_only or mode == "cilium":
            return []
        out: list[tuple[int, int]] = []
        for version, lo, hi in block.ranges:
            start = bisect.bisect_left(self._ips, (version, lo, -1))
            for v, value, n in self._ips[start:]:
                if v != version or value > hi:
                    break
                if not any(
                    ev == version and elo <= value <= ehi
                    for ev, elo, ehi in block.except_ranges
                ):
                    out.append((n, value))
        return [self._pods[n] for n, _ in sorted(set(out))]

    def _filter(self, selector: LabelSelector, ids: Ids) -> Ids:
        if selector.is_empty or not ids:
            return ids
        narrowest: set[int] | frozenset[int] | None = None
        for k, v in selector.match_labels:
            narrowest = _smaller(narrowest, self.by_label.get((k, v), set()))
        for req in selector.match_expressions:
            if req.operator == "In":
                union: set[int] = set()
                for v in req.values:
                    union |= self.by_label.get((req.key, v), set())
                narrowest = _smaller(narrowest, union)
            elif req.operator == "Exists":
                narrowest = _smaller(narrowest, self.by_key.get(req.key, set()))
        candidates = ids if narrowest is None else ids & narrowest
        return frozenset(i for i in candidates if selector.matches(self.reps[i].labels))


def _smaller(
    current: set[int] | frozenset[int] | None, other: set[int] | frozenset[int]
) -> set[int] | frozenset[int]:
    return other if current is None or len(other) < len(current) else current

