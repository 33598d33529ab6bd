"""no-effect-policy: a policy another one already does everything of.

Policy P has no effect when a single other policy Q of its namespace selects every pod P
selects (its podSelector's requirements imply Q's), isolates every direction P isolates, and
contains every rule of P by a rule that is not broad itself (the redundancy proofs of
``redundancy.py``; a tight policy covered only by a broad rule is needed once that rule is
tightened, so it is not reported). Removing P then changes
no verdict. Of two policies that do each other's work, only the later one is reported. A policy
that selects no known pod is ``unused-policy``'s business, not this one's.
"""

from __future__ import annotations

from collections.abc import Sequence

from analyzer.audit.findings import Finding
from analyzer.audit.redundancy import selector_subset
from analyzer.audit.redundant_rules import Covered
from analyzer.audit.replace import remove_policy
from analyzer.audit.universe import Universe
from analyzer.policy.compile import CompiledPolicy

__all__ = ["no_effect_findings"]


def no_effect_findings(
    in_scope: Sequence[CompiledPolicy], universe: Universe, covered: Covered
) -> list[Finding]:
    """One ``no-effect-policy`` finding per policy whose whole effect another policy has."""
    subjects = {cp.key: universe.selected_ids(cp) for cp in in_scope}
    selecting: dict[int, list[CompiledPolicy]] = {}
    for cp in in_scope:
        for i in subjects[cp.key]:
            selecting.setdefault(i, []).append(cp)

    def covers(q: CompiledPolicy, p: CompiledPolicy) -> str | None:
        """How ``q`` does all ``p`` does ("structural"/"known-pods"), or None."""
        if q is p or q.namespace != p.namespace or q.namespace is None:
            return None
        proofs: set[str] = set()
        for direction in ("ingress", "egress"):
            rules_p, rules_q = getattr(p, direction), getattr(q, direction)
            if rules_p is None:
                continue
            if rules_q is None:
                return None  # q does not isolate this direction
            for rule in rules_p:
                by = {
                    proof for (policy, _), proof in
                    covered.get((p.key, direction, rule.index), {}).items() if policy == q.key
                }
                if not by:
                    return None
                proofs |= by
        # The subject must be contained by structure: a default-deny's point is the pods to
        # come, which "the pods known today" cannot speak for.
        if q.subject_namespaces != p.subject_namespaces or not selector_subset(
            p.subject, q.subject
        ):
            return None
        return "known-pods" if "known-pods" in proofs else "structural"

    findings: list[Finding] = []
    for p in in_scope:
        mine = subjects[p.key]
        if not mine or (p.ingress is None and p.egress is None):
            continue
        candidates = [q for q in selecting[min(mine)] if q is not p]
        for q in sorted(candidates, key=lambda c: c.key):
            proof = covers(q, p)
            if proof is None:
                continue
            if covers(p, q) is not None and p.key < q.key:
                continue  # each does the other's work: keep the first, report the later
            directions = [d for d in ("ingress", "egress") if getattr(p, d) is not None]
            detail = (
                " (shown over the pods known today; a pod added later may differ)"
                if proof == "known-pods" else ""
            )
            rules = sum(len(getattr(p, d)) for d in directions)
            admits = (
                f"admits everything its {rules} rule(s) admit" if rules
                else "it has no rule of its own"
            )
            findings.append(Finding(
                severity="low",
                category="no-effect-policy",
                policy=p.key,
                rule=None,
                namespace=p.namespace,
                explanation=(
                    f"{q.key} already selects every pod this policy selects "
                    f"({p.subject.describe()}), isolates it for {' and '.join(directions)} "
                    f"too, and {admits}{detail}: removing this policy changes no verdict"
                ),
                replacement=remove_policy(f"{q.key} does everything it does"),
                evidence={"covered_by": q.key, "proof": proof,
                          "selected_pods": universe.index.pod_count(mine)},
            ))
            break
    return findings
