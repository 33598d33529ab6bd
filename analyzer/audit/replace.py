"""Tighter replacements for broad or unused rules, from the recommend engine.

The replacement of a rule is what ``analyzer.recommend.synthesize`` writes for the policy's
namespace and the rule's direction when it sees only the observed connections that rule
admitted: one allow policy per subject group, naming exactly the peers and ports used. A rule
nothing used is replaced by nothing ("remove the rule").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from analyzer.audit.findings import Replacement
from analyzer.errors import AnalyzerError
from analyzer.recommend.render import render
from analyzer.recommend.synthesize import synthesize

__all__ = ["remove_policy", "remove_rule", "replacement_for"]


def remove_rule(reason: str) -> Replacement:
    return Replacement(action="remove-rule", note=reason, manifest=None, source="analyzer.audit")


def remove_policy(reason: str) -> Replacement:
    return Replacement(
        action="remove-policy", note=reason, manifest=None, source="analyzer.audit"
    )


def replacement_for(
    admitted: pl.DataFrame,
    namespace: str,
    direction: str,
    groups: Mapping[str, Any],
    rule_label: str,
    policy_name: str = "",
) -> Replacement | None:
    """A manifest admitting only ``admitted`` (allowed connection rows the rule admitted).

    Returns None when the recommend engine cannot express the traffic as a rule (e.g. ICMP
    only, host traffic that needs no rule); the finding then carries no replacement.
    """
    if admitted.height == 0:
        return remove_rule(f"nothing used {rule_label} in the window")
    try:
        result = synthesize(admitted, groups, [namespace])
        specs = [
            s for s in result.policies if s.kind == "allow" and direction in s.directions
        ]
        if not specs:
            return None
        manifests = [
            _renamed(m, policy_name, i, len(specs), rule_label)
            for i, m in enumerate(render(specs, "kubernetes"))
        ]
    except AnalyzerError:
        # A selector the renderer refuses (hostile labels): no replacement rather than a bad one.
        return None
    manifest: dict[str, Any]
    if len(manifests) == 1:
        manifest = manifests[0]
    else:
        manifest = {"apiVersion": "v1", "kind": "List", "items": manifests}
    count = int(admitted["connections"].sum())
    plural = "policy" if len(manifests) == 1 else "policies"
    return Replacement(
        action="replace",
        note=(
            f"replace {rule_label} with {len(manifests)} {plural} admitting only the {count} "
            "observed connection(s) it admitted that no other tight rule admits"
        ),
        manifest=manifest,
        source="analyzer.recommend.synthesize",
    )


def _renamed(
    manifest: dict[str, Any], policy_name: str, index: int, count: int, rule_label: str
) -> dict[str, Any]:
    """Name the replacement after the policy it tightens, so applying it overwrites nothing."""
    if not policy_name:
        return manifest
    suffix = "-tight" if count == 1 else f"-tight-{index + 1}"
    metadata = dict(manifest.get("metadata", {}))
    metadata["name"] = policy_name[: 253 - len(suffix)] + suffix
    annotations = dict(metadata.get("annotations", {}))
    annotations["analyzer.io/replaces"] = rule_label
    metadata["annotations"] = annotations
    return {**manifest, "metadata": metadata}
