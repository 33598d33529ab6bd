"""redundant-rule findings from the containment proofs of ``redundancy.py``.

A rule covered by a *broad* rule is not reported as redundant: tightening the broad rule is the
fix, after which the covered rule is needed; the broad rule's finding lists it as shadowed.
Of two rules that cover each other, only the later one is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.audit.findings import Finding
from analyzer.audit.redundancy import find_covers, find_semantic_covers
from analyzer.audit.replace import remove_rule
from analyzer.audit.structural import describe_ports, rule_breadth
from analyzer.audit.universe import Universe
from analyzer.audit.usage import rule_key
from analyzer.policy.compile import CompiledPolicy
from analyzer.policy.model import NetworkPolicy

__all__ = ["Covered", "redundant_findings"]


@dataclass(frozen=True, slots=True)
class _Pair:
    policy: NetworkPolicy
    direction: str
    index: int
    by_policy: NetworkPolicy
    by_index: int
    proof: str  # "structural" or "known-pods"
    detail: str

    @property
    def key(self) -> tuple[str, str, int, str, int]:
        return (self.policy.key, self.direction, self.index, self.by_policy.key, self.by_index)


# (policy, direction, rule index) -> {(covering policy, its rule index): proof}
Covered = dict[tuple[str, str, int], dict[tuple[str, int], str]]


def redundant_findings(
    in_scope: Sequence[CompiledPolicy], universe: Universe, mode: str
) -> tuple[list[Finding], dict[str, list[str]], Covered]:
    """``redundant-rule`` findings, the rules each broad rule shadows (by rule key), and every
    proved cover by a rule that is not broad itself (for ``no-effect-policy``)."""
    ns_labels = {name: ns.labels for name, ns in universe.namespaces.items()}
    pairs = [
        _Pair(c.policy, c.direction, c.index, c.by_policy, c.by_index, "structural", "")
        for c in find_covers([cp.policy for cp in in_scope], ns_labels)
    ]
    proved = {p.key for p in pairs}
    pairs += [
        _Pair(
            c.policy.policy, c.direction, c.index, c.by_policy.policy, c.by_index, "known-pods",
            f" (shown over the pods known today: {c.subjects} selected pod(s), {c.peers} "
            "admitted peer pod(s); a pod added later may differ)",
        )
        for c in find_semantic_covers(in_scope, universe, mode, proved)
        # B inside A by structure and A inside B only over today's pods: B is the redundant one.
        if (c.by_policy.key, c.direction, c.by_index, c.policy.key, c.index) not in proved
    ]
    keys = {p.key for p in pairs}
    covered: Covered = {}
    findings: list[Finding] = []
    shadowing: dict[str, list[str]] = {}
    reported: set[str] = set()
    broad: dict[str, bool] = {}
    for c in sorted(pairs, key=lambda p: (p.proof != "structural", p.key)):
        me = rule_key(c.policy.key, c.direction, c.index)
        by = rule_key(c.by_policy.key, c.direction, c.by_index)
        if by not in broad:
            rules_b = c.by_policy.ingress if c.direction == "ingress" else c.by_policy.egress
            broad[by] = bool(rule_breadth(c.by_policy, c.direction, rules_b[c.by_index]))
        if broad[by]:
            if me not in shadowing.setdefault(by, []):
                shadowing[by].append(me)
            continue
        covered.setdefault((c.policy.key, c.direction, c.index), {}).setdefault(
            (c.by_policy.key, c.by_index), c.proof
        )
        mutual = (c.by_policy.key, c.direction, c.by_index, c.policy.key, c.index) in keys
        if mutual and (c.policy.key, c.index) < (c.by_policy.key, c.by_index):
            continue  # equivalent rules: report the later one only
        if me in reported:
            continue
        reported.add(me)
        rules_a = c.policy.ingress if c.direction == "ingress" else c.policy.egress
        findings.append(
            Finding(
                severity="low",
                category="redundant-rule",
                policy=c.policy.key,
                rule=f"spec.{c.direction}[{c.index}]",
                namespace=c.policy.namespace,
                direction=c.direction,
                explanation=(
                    f"everything this rule admits ({describe_ports(rules_a[c.index].ports)} to "
                    f"pods {c.policy.pod_selector.describe()}) is also admitted by "
                    f"{c.by_policy.key} spec.{c.direction}[{c.by_index}], which selects "
                    f"{c.by_policy.pod_selector.describe()} and admits a superset of its peers "
                    f"and ports{c.detail}; removing it changes nothing"
                ),
                replacement=remove_rule(
                    f"covered by {c.by_policy.key} spec.{c.direction}[{c.by_index}]"
                ),
                evidence={
                    "covered_by": f"{c.by_policy.key}#spec.{c.direction}[{c.by_index}]",
                    "proof": c.proof,
                },
            )
        )
    return findings, shadowing, covered
