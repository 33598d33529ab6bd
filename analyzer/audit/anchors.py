"""Candidate lookup for containment proofs: which selectors or rules *could* contain another.

Proving rule A redundant means finding a rule B whose subject selector and peers contain A's.
Trying every B of the namespace grows with the square of the policies in it. A selector B can
only contain A when each of B's requirements is implied by one of A's, and a requirement is
implied only by one on the same key (``app In (web)`` by ``app=web``, ``app Exists`` by any
``app`` value, ...). So B is filed under *anchors* taken from its first requirement, and A looks
up the anchors its own requirements imply: the candidates are the few B that share A's labels,
plus the selectors with no requirement at all. Rules are filed the same way by their peers.
The lookup only narrows; every candidate is still proved by ``redundancy.py``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from analyzer.policy.model import LabelSelector, PolicyPeer, PolicyRule

__all__ = ["AnchorIndex", "rule_anchors", "rule_lookups", "selector_anchors", "selector_lookups"]

Anchor = tuple[Hashable, ...]
_EVERYTHING: Anchor = ("*",)


def selector_anchors(selector: LabelSelector) -> list[Anchor]:
    """Where a selector is filed: its first requirement (or ``*`` when it has none)."""
    reqs = selector.requirements()
    if not reqs:
        return [_EVERYTHING]
    first = reqs[0]
    if first.operator == "In":
        return [(first.key, "=", v) for v in first.values]
    return [(first.key, first.operator)]


def selector_lookups(selector: LabelSelector) -> list[Anchor]:
    """Every anchor under which a selector containing ``selector`` can be filed."""
    out: list[Anchor] = [_EVERYTHING]
    for req in selector.requirements():
        if req.operator == "In":
            # B's ``k In Vb`` needs ``Va <= Vb``, so Vb holds A's first value.
            out += [(req.key, "=", req.values[0])] if req.values else []
            out += [(req.key, "Exists"), (req.key, "NotIn")]
        elif req.operator == "Exists":
            out.append((req.key, "Exists"))
        elif req.operator == "NotIn":
            out.append((req.key, "NotIn"))
        else:  # DoesNotExist implies NotIn and DoesNotExist
            out += [(req.key, "NotIn"), (req.key, "DoesNotExist")]
    return out


def _peer_anchors(peer: PolicyPeer) -> list[Anchor]:
    if peer.entities:
        return [("entity", e) for e in peer.entities]
    if peer.ip_block is not None:
        return [("ip", ":" in peer.ip_block.cidr)]
    return [("pod", *a) for a in selector_anchors(peer.pod_selector or LabelSelector())]


def _peer_lookups(peer: PolicyPeer) -> list[Anchor]:
    if peer.entities:
        return [("entity", sorted(peer.entities)[0])]
    if peer.ip_block is not None:
        return [("ip", ":" in peer.ip_block.cidr)]
    return [("pod", *a) for a in selector_lookups(peer.pod_selector or LabelSelector())]


def rule_anchors(rule: PolicyRule) -> list[Anchor]:
    """Where a (covering) rule is filed: ``*`` for every peer, else each peer's anchors."""
    if not rule.peers:
        return [_EVERYTHING]
    return [a for peer in rule.peers for a in _peer_anchors(peer)]


def rule_lookups(rule: PolicyRule) -> list[Anchor]:
    """Anchors of the rules that may contain ``rule``: each of its peers must be contained in
    one of theirs, so the first peer decides; a rule admitting every peer needs the same."""
    if not rule.peers:
        return [_EVERYTHING]
    return [_EVERYTHING, *_peer_lookups(rule.peers[0])]


class AnchorIndex:
    """Items (numbered in insertion order) filed under anchors."""

    def __init__(self) -> None:
        self._buckets: dict[Anchor, list[int]] = {}
        self._count = 0

    def add(self, anchors: Iterable[Anchor]) -> int:
        number = self._count
        self._count += 1
        for anchor in set(anchors):
            self._buckets.setdefault(anchor, []).append(number)
        return number

    def lookup(self, anchors: Iterable[Anchor]) -> list[int]:
        """Items filed under any of ``anchors``, in insertion order, each once."""
        found: set[int] = set()
        for anchor in anchors:
            found.update(self._buckets.get(anchor, ()))
        return sorted(found)
