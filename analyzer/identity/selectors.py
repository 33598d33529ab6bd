"""Selector choice: the matchLabels that name one identity group and no other.

Each group gets a selector built from its stable naming labels (`labels.NAMING_KEYS` first,
never version-like labels) that selects no other observed group of its namespace; when the
groups cannot be told apart by matchLabels, the choice says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from analyzer.identity.labels import (
    NAMING_KEYS,
    NON_NAMING_KEYS,
    is_valid_label_key,
    is_valid_label_value,
    is_version_like,
    is_volatile,
)

__all__ = ["SelectorChoice", "choose_selectors"]


@dataclass(frozen=True, slots=True)
class SelectorChoice:
    """The matchLabels chosen for one group.

    ``unique`` is False when the selector also selects another observed group of the namespace
    (the groups are indistinguishable by matchLabels); ``collides_with`` names those groups.
    """

    selector: dict[str, str]
    unique: bool
    collides_with: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def _candidates(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """Labels usable in a selector, most preferred first."""
    usable = {
        k: v
        for k, v in labels.items()
        if not is_volatile(k)
        and is_valid_label_key(k)
        and is_valid_label_value(v)
        and not is_version_like(k, v)
    }
    rank = {k: i for i, k in enumerate(NAMING_KEYS)}
    if usable.get("app") is not None and usable.get("app") == usable.get("app.kubernetes.io/name"):
        # the same name under both keys: `app` is what hand-written policies (and the seed's
        # allow-backend-ingress) select on
        rank["app"] = -1
    return sorted(
        usable.items(),
        key=lambda kv: (rank.get(kv[0], len(rank) + (kv[0] in NON_NAMING_KEYS)), kv[0]),
    )


def _choose_one(
    labels: Mapping[str, str],
    others: frozenset[str],
    index: Mapping[tuple[str, str], frozenset[str]],
) -> SelectorChoice:
    candidates = _candidates(labels)
    notes: list[str] = []
    usable = {k for k, _ in candidates}
    rejected = sorted(k for k in labels if k not in usable and not is_volatile(k))
    if rejected:
        shown = ", ".join(k if is_valid_label_key(k) else "<invalid key>" for k in rejected)
        notes.append(f"not used in a selector (version-like or invalid): {shown}")
    if not candidates:
        notes.append("no stable, valid label to select this group by")
        return SelectorChoice(
            {}, unique=not others, collides_with=tuple(sorted(others)), notes=tuple(notes)
        )
    selector: dict[str, str] = {}
    remaining = list(candidates)
    clashing = set(others)
    # Greedy: start from the most preferred naming label, then add the label that excludes the
    # most still-colliding groups (ties broken by preference), until no other group matches.
    while remaining:
        if selector:
            best = max(
                remaining,
                key=lambda kv: (len(clashing - index.get(kv, frozenset())), -remaining.index(kv)),
            )
        else:
            best = remaining[0]
        remaining.remove(best)
        selector[best[0]] = best[1]
        clashing &= index.get(best, frozenset())
        if not clashing:
            return SelectorChoice(selector, unique=True, notes=tuple(notes))
    notes.append("indistinguishable by matchLabels from: " + ", ".join(sorted(clashing)))
    return SelectorChoice(
        dict(candidates), unique=False, collides_with=tuple(sorted(clashing)), notes=tuple(notes)
    )


def choose_selectors(
    groups: Mapping[str, tuple[str, Mapping[str, str]]],
    *,
    workloads: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, SelectorChoice]:
    """Choose matchLabels for every group, unique within its namespace where possible.

    Parameters
    ----------
    groups
        group key -> (namespace, labels) for every observed pod group (any namespaces).
    workloads
        group key -> owning workload names, when known. Groups of one workload (e.g. two
        versions mid-rollout) may share a selector: it selects no *other* workload.

    Returns
    -------
    dict
        group key -> `SelectorChoice`. A chosen selector never contains a volatile,
        version-like or syntactically invalid label, and selects no other observed group of
        the namespace unless ``unique`` is False (then ``collides_with`` says which).
    """
    by_ns: dict[str, dict[str, Mapping[str, str]]] = {}
    for key, (namespace, labels) in groups.items():
        by_ns.setdefault(namespace, {})[key] = labels
    out: dict[str, SelectorChoice] = {}
    for members in by_ns.values():
        index: dict[tuple[str, str], set[str]] = {}
        for key, labels in members.items():
            for item in labels.items():
                index.setdefault(item, set()).add(key)
        frozen = {item: frozenset(keys) for item, keys in index.items()}
        everyone = frozenset(members)
        owners = {k: frozenset((workloads or {}).get(k, ())) for k in members}
        for key, labels in members.items():
            mine = owners[key]
            siblings = frozenset(k for k in everyone if mine and owners[k] and owners[k] <= mine)
            choice = _choose_one(labels, everyone - {key} - siblings, frozen)
            shared = sorted(k for k in siblings - {key} if _selects(choice.selector, members[k]))
            if shared:
                note = "also selects groups of the same workload: " + ", ".join(shared)
                choice = replace(choice, notes=(*choice.notes, note))
            out[key] = choice
    return out


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
