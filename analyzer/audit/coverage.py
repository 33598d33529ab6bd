"""Namespaces without a default-deny, and pods no policy isolates in a direction.

A pod that no policy selects for a direction is open in that direction (Kubernetes API), so
these findings say which traffic nothing restricts at all. ``no-default-deny`` is about the
namespace (a new pod starts open); ``unprotected-pods`` names the observed workloads that are
open today in a namespace that does have policies for that direction.
"""

from __future__ import annotations

from collections.abc import Sequence

from analyzer.audit.findings import Finding, Severity
from analyzer.audit.universe import Universe
from analyzer.policy.compile import CompiledPolicies

__all__ = ["coverage_findings", "SYSTEM_NAMESPACES"]

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
_TYPE = {"ingress": "Ingress", "egress": "Egress"}
_EXAMPLES = 8


def coverage_findings(
    compiled: CompiledPolicies, universe: Universe, namespaces: Sequence[str]
) -> list[Finding]:
    """``no-default-deny`` and ``unprotected-pods`` findings for ``namespaces``.

    Parameters
    ----------
    compiled
        All policies, compiled.
    universe
        Observed (and inventory) pods and namespaces.
    namespaces
        The namespaces in scope.
    """
    findings: list[Finding] = []
    for ns in sorted(namespaces):
        ns_pods = list(universe.by_namespace.get(ns, ()))
        ns_labels = universe.namespace_labels(ns)
        applicable = compiled.candidates(ns)
        for direction in ("ingress", "egress"):
            ptype = _TYPE[direction]
            isolating = [p for p in applicable if getattr(p, direction) is not None]
            default_deny = [
                p
                for p in isolating
                if p.subject.is_empty
                and (p.subject_namespaces is None or p.subject_namespaces.matches(ns_labels))
            ]
            if default_deny:
                continue
            open_pods = [
                pod
                for pod in ns_pods
                if not any(p.selects(ns, pod.labels, pod.namespace_labels) for p in isolating)
            ]
            workloads = sorted({p.workload for p in open_pods})
            sev = _severity(ns, direction)
            if not isolating:
                what = (
                    f"{len(workloads)} known workload(s) ({_names(workloads)})"
                    if workloads
                    else "no pods known yet"
                )
                findings.append(
                    Finding(
                        severity=sev,
                        category="no-default-deny",
                        policy=None,
                        rule=None,
                        namespace=ns,
                        direction=direction,
                        explanation=(
                            f"no policy in namespace {ns} isolates {direction}: every pod is open "
                            f"to all {direction} traffic ({what}); add a default-deny "
                            f"(podSelector: {{}}, policyTypes: [{ptype}])"
                        ),
                        evidence={"open_workloads": workloads},
                    )
                )
                continue
            findings.append(
                Finding(
                    severity="low" if direction == "ingress" else "info",
                    category="no-default-deny",
                    policy=None,
                    rule=None,
                    namespace=ns,
                    direction=direction,
                    explanation=(
                        f"namespace {ns} has {direction} policies but no default-deny "
                        f"(podSelector: {{}}): a new pod, or one whose labels change, starts "
                        f"open to all {direction} traffic"
                    ),
                    evidence={"isolating_policies": sorted(p.key for p in isolating)},
                )
            )
            if open_pods:
                findings.append(
                    Finding(
                        severity=sev,
                        category="unprotected-pods",
                        policy=None,
                        rule=None,
                        namespace=ns,
                        direction=direction,
                        explanation=(
                            f"mixed isolation: {len(workloads)} workload(s) in {ns} are "
                            f"selected by no policy that isolates {direction} and stay open to "
                            f"all {direction} traffic while others are isolated: "
                            f"{_names(workloads)}"
                        ),
                        evidence={
                            "open_workloads": workloads,
                            "open_pods": sorted(p.key for p in open_pods),
                            "isolating_policies": sorted(p.key for p in isolating),
                        },
                    )
                )
    return findings


def _severity(namespace: str, direction: str) -> Severity:
    if namespace in SYSTEM_NAMESPACES:
        return "info"
    return "medium" if direction == "ingress" else "low"


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_EXAMPLES])
    return shown + (f" and {len(items) - _EXAMPLES} more" if len(items) > _EXAMPLES else "")
