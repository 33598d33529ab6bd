"""Identities: label identities of endpoints, selector choice, and the identity graph.

An identity is a namespace plus the pod's labels minus *volatile* labels (labels that change on
every rollout, or name a single pod). Groups of pods with the same identity are the nodes of the
identity graph (`analyzer.identity.graph`, the one builder every view uses); each group gets a
selector built from its stable naming labels that selects no other observed group of its
namespace (`analyzer.identity.selectors`).

Labels come from flow records, i.e. from untrusted input: every label that enters a selector is
checked against Kubernetes label syntax first (`is_valid_label_key` / `is_valid_label_value`).
"""

from __future__ import annotations

from analyzer.identity.labels import (
    CLUSTER_ENTITIES,
    NAMING_KEYS,
    VOLATILE_KEYS,
    VOLATILE_PREFIXES,
    drop_volatile_expr,
    group_key,
    group_key_expr,
    is_valid_label_key,
    is_valid_label_value,
    is_version_like,
    is_volatile,
    parse_labels,
    stable_labels,
)
from analyzer.identity.selectors import SelectorChoice, choose_selectors

__all__ = [
    "VOLATILE_KEYS",
    "VOLATILE_PREFIXES",
    "NAMING_KEYS",
    "CLUSTER_ENTITIES",
    "SelectorChoice",
    "is_volatile",
    "is_valid_label_key",
    "is_valid_label_value",
    "is_version_like",
    "parse_labels",
    "stable_labels",
    "drop_volatile_expr",
    "group_key",
    "group_key_expr",
    "choose_selectors",
]
