"""Recommendation and audit results as report sections: policies with evidence, diffs, findings,
and the rollout/rollback plan with probes."""

from __future__ import annotations

import shlex
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analyzer.audit.findings import AuditResult
from analyzer.recommend import Recommendation
from analyzer.recommend.bundle import apply_command, bundle_files
from analyzer.recommend.model import AllowRule, PolicySpec
from analyzer.recommend.render import to_yaml
from analyzer.report.existing import manifests_yaml
from analyzer.report.model import (
    FindingRow,
    NamespaceSection,
    PolicyView,
    ProbeRow,
    RolloutPlan,
    RuleEvidence,
)
from analyzer.report.render import unified_diff

__all__ = ["findings_from_audit", "plan_from_recommendation", "sections_from_recommendation"]

BUNDLE_DOCUMENTS = ("ROLLOUT.md", "rollback.sh", "probes.sh")


def _describe_rule(direction: str, rule: AllowRule) -> str:
    peers = ", ".join(p.describe() for p in rule.peers) or "anywhere"
    ports = ", ".join(f"{p.protocol}/{p.port}" for p in rule.ports) or "any port"
    word = "from" if direction.lower() == "ingress" else "to"
    return f"{word} {peers} on {ports}"


def _policy_view(spec: PolicySpec, manifest: Mapping[str, Any] | None) -> PolicyView:
    direction = spec.directions[0] if spec.directions else "ingress"
    rules = tuple(
        RuleEvidence(
            rule=f"{direction.lower()}[{i}]",
            description=_describe_rule(direction, r),
            evidence=r.evidence.examples,
            connections=r.evidence.connections,
        )
        for i, r in enumerate(spec.rules)
    )
    notes = [f"selects {spec.selector.describe()} for {', '.join(spec.directions) or 'nothing'}"]
    ev = spec.evidence if spec.rules else None
    if ev is not None and ev.first_seen is not None and ev.last_seen is not None:
        notes.append(f"evidence seen {ev.first_seen.isoformat()} to {ev.last_seen.isoformat()}")
    text = to_yaml([dict(manifest)]) if manifest is not None else ""
    return PolicyView(spec.name, spec.namespace, text, rules, tuple(notes))


def sections_from_recommendation(
    rec: Recommendation, existing: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
) -> tuple[NamespaceSection, ...]:
    """One section per namespace: its recommended policies and, when ``existing`` policies are
    given (by namespace), a unified diff from them to the recommendation. A namespace without
    existing policies gets no diff (every line would be the recommended YAML again; at 10,000
    workloads that was 16 of the page's 99 MB): its section says they are all new."""
    manifests = {(m["metadata"]["namespace"], m["metadata"]["name"]): m for m in rec.manifests}
    by_ns: dict[str, list[PolicyView]] = defaultdict(list)
    for spec in rec.policies:
        by_ns[spec.namespace].append(_policy_view(spec, manifests.get((spec.namespace, spec.name))))
    notes: dict[str, list[str]] = defaultdict(list)
    for note in rec.notes:
        if note.namespace:
            notes[note.namespace].append(f"{note.level}: {note.message}")
    # Grouped once: filtering every manifest per namespace grew with namespaces x policies.
    recommended_by_ns: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for (mns, _), manifest in sorted(manifests.items()):
        recommended_by_ns[mns].append(manifest)
    sections = []
    for ns in sorted(set(by_ns) | set(rec.namespaces)):
        diff = None
        before = existing.get(ns, ()) if existing is not None else ()
        present = None if existing is None else len(before)
        if before:
            recommended = recommended_by_ns.get(ns, [])
            diff = (
                unified_diff(
                    manifests_yaml(before),
                    manifests_yaml(recommended) if recommended else "",
                    before_name=f"existing/{ns}",
                    after_name=f"recommended/{ns}",
                )
                or None
            )
        views = tuple(sorted(by_ns.get(ns, ()), key=lambda v: v.name))
        sections.append(NamespaceSection(ns, views, diff, tuple(notes.get(ns, ())), present))
    return tuple(sections)


def findings_from_audit(result: AuditResult) -> tuple[FindingRow, ...]:
    out = []
    for f in result.findings:
        detail = []
        if f.rule:
            detail.append(f.rule)
        if f.hits is not None:
            detail.append(f"{f.hits} hits")
        if f.last_hit is not None:
            detail.append(f"last hit {f.last_hit.isoformat()}")
        fix = f.replacement.note if f.replacement is not None else ""
        out.append(
            FindingRow(
                severity=str(f.severity),
                code=f.category,
                message=f.explanation,
                policy=f.policy or "",
                namespace=f.namespace or "",
                detail=tuple(detail),
                fix=fix,
            )
        )
    return tuple(out)


def plan_from_recommendation(
    rec: Recommendation, bundle_dir: Path | None = None, shown_bundle: str | None = None
) -> RolloutPlan:
    """Rollout and rollback steps for the recommendation, its probes, and the bundle's own
    ROLLOUT.md / rollback.sh / probes.sh when the bundle was written. ``shown_bundle`` is the
    bundle's path as the report shows it (relative to the report, never the build machine's
    absolute path); the apply steps are the bundle's real files, one command per namespace."""
    ns_args = " ".join(f"--namespace {shlex.quote(ns)}" for ns in rec.namespaces)
    where = shlex.quote(shown_bundle or "BUNDLE_DIR") if bundle_dir is not None else "BUNDLE_DIR"
    write = () if bundle_dir is not None else (
        "Write the bundle of these policies: analyzer recommend --out BUNDLE_DIR "
        "(same store and namespaces).",
    )  # fmt: skip
    applies = tuple(
        f"Apply namespace {ns} (DNS guardrail and allows before its default-deny), then watch "
        f"its drops before the next: {apply_command(files)}"
        for ns, files in bundle_files(rec)
    )
    rollout = (
        *write,
        "Snapshot the policies in place: kubectl get networkpolicy -A -o yaml "
        "> pre-change-networkpolicies.yaml",
        "Review the policies and the evidence of each rule in this report; investigate the "
        "anomalies that were left out and the denied flows.",
        "Prefer an audit mode first (Cilium policy-audit-mode, Calico staged policies) and watch "
        "for would-be drops over a full business cycle.",
        f"In the bundle directory (cd {where}), one namespace at a time:",
        *applies,
        "Run the probes below: every 'allowed' probe must connect, every 'denied' probe must "
        "time out.",
        f"Watch drops for a while: hubble observe {ns_args} --verdict DROPPED "
        "(or the Calico flow logs).",
    )
    rollback = (
        "Delete the default-deny policies first, so traffic flows again at once: "
        "kubectl delete networkpolicy default-deny -n NAMESPACE",
        f"Run the bundle's rollback script: {where}/rollback.sh",
        "Restore the snapshot: kubectl apply -f pre-change-networkpolicies.yaml",
    )
    probes = tuple(
        ProbeRow(
            description=f"{p.namespace}: {p.reason}",
            command=p.command,
            expect="allowed" if p.expect == "succeed" else "denied",
        )
        for p in rec.probes
    )
    documents: list[tuple[str, str]] = []
    if bundle_dir is not None:
        for name in BUNDLE_DOCUMENTS:
            path = Path(bundle_dir) / name
            if path.is_file():
                documents.append((name, path.read_text("utf-8", errors="replace")))
    return RolloutPlan(rollout, rollback, probes, tuple(documents))
