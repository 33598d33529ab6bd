"""``audit()``: hold existing policies against observed traffic and list what a reviewer must see.

policies -> compiled matchers; connections -> verdicts per connection (``evaluate_connections``)
-> per-rule usage -> findings: unused policies and rules, broad rules (structure and usage),
redundant rules and policies without effect, would-break and intended denials, missing DNS,
namespaces and pods left open, allowed edges the anomaly detector flags, and the lint rules on
policy shape (ignored rules, policyTypes defaulting, metadata egress, risky ports, ipBlocks of
cluster ranges). Each finding names the policy and rule and says why, in words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl

from analyzer.audit.breakage import breakage_findings
from analyzer.audit.coverage import coverage_findings
from analyzer.audit.dns import dns_findings, dns_targets
from analyzer.audit.findings import AuditResult, Finding, Severity
from analyzer.audit.lint import lint_findings, risky_port_findings
from analyzer.audit.no_effect import no_effect_findings
from analyzer.audit.ranges import ClusterRanges, cluster_range_findings, parse_service_cidrs
from analyzer.audit.redundant_rules import redundant_findings
from analyzer.audit.render import window_text
from analyzer.audit.replace import remove_policy
from analyzer.audit.rules import judge_rules, rule_findings
from analyzer.audit.suspicious import detect_flagged, suspicious_findings
from analyzer.audit.universe import Universe, build_universe
from analyzer.audit.usage import rule_usage
from analyzer.connections import Connections
from analyzer.identity.graph import build_graph
from analyzer.k8s.inventory import Inventory
from analyzer.policy.compile import CompiledPolicies, CompiledPolicy, compile_policies
from analyzer.policy.frame import evaluate_connections
from analyzer.policy.model import NetworkPolicy

__all__ = ["audit"]



def audit(
    policies: Sequence[NetworkPolicy],
    connections: Connections | pl.DataFrame,
    *,
    inventory: Inventory | None = None,
    namespaces: Sequence[str] | None = None,
    anomalies: bool = True,
    ipblock_mode: str = "kubernetes",
    random_state: int = 0,
    service_cidrs: Sequence[str] = (),
    compiled: CompiledPolicies | None = None,
    evaluated: pl.DataFrame | None = None,
    groups: Mapping[str, Any] | None = None,
    flagged: pl.DataFrame | None = None,
) -> AuditResult:
    """Audit ``policies`` against observed ``connections``.

    Parameters
    ----------
    policies
        Loaded policies (``load_policies(...).policies``).
    connections
        ``derive_connections`` output (or its frame).
    inventory
        Pods and namespaces (labels, named ports) beyond what the flows show.
    namespaces
        Audit only policies and pods of these namespaces (None: every namespace seen).
    anomalies
        Run the anomaly detector and report allowed edges it flags (``suspicious-allowed``).
    ipblock_mode
        ``kubernetes`` or ``cilium`` ipBlock semantics (see ``compile_policies``).
    random_state
        Seed of the anomaly detector.
    service_cidrs
        The cluster's Service ranges (``--service-cidr``), for ``ipblock-cluster-range``; pod
        addresses are learned from the flows and the inventory.
    compiled, evaluated, groups, flagged
        What the caller computed already for the same inputs (``compile_policies``,
        ``evaluate_connections`` of the frame, ``build_graph(...).groups``, the flagged
        connection rows of the anomaly detector for ``namespaces``); computed here when None.
    """
    if isinstance(connections, Connections):
        frame = connections.frame
        window: tuple[datetime | None, datetime | None] = tuple(  # type: ignore[assignment]
            connections.stats.window or (None, None)
        )
    else:
        frame = connections
        window = _window(frame)
    if compiled is None:
        compiled = compile_policies(list(policies), ipblock_mode=ipblock_mode)
    if evaluated is None:
        evaluated = evaluate_connections(compiled, frame, inventory)
    universe = build_universe(frame, inventory)
    scope = _scope(policies, universe, namespaces)
    wanted = set(scope) if namespaces is not None else None
    only = sorted(wanted) if wanted is not None else None
    in_scope = [cp for cp in compiled.policies if wanted is None or cp.namespace in wanted]
    usage = rule_usage(compiled, evaluated, None)
    if groups is None:
        groups = _groups(frame)

    findings: list[Finding] = []
    span = window_text(window)
    unused_policies = _unused_policies(in_scope, universe, findings, span)
    redundant, shadowing, covered = redundant_findings(
        in_scope, universe, compiled.ipblock_mode
    )
    findings.extend(redundant)
    findings.extend(no_effect_findings(in_scope, universe, covered))
    views = judge_rules(compiled.policies, usage, universe, compiled.ipblock_mode)
    scoped = {cp.key for cp in in_scope}
    findings.extend(
        f
        for f in rule_findings(views, evaluated, groups, unused_policies, shadowing, span)
        if f.policy in scoped
    )
    ranges = ClusterRanges(universe, parse_service_cidrs(service_cidrs))
    findings.extend(lint_findings(in_scope))
    findings.extend(risky_port_findings([v for v in views if v.policy.key in scoped], ranges))
    findings.extend(cluster_range_findings(in_scope, ranges, compiled.ipblock_mode))
    warnings: list[str] = []
    known = {p.namespace for p in policies} | set(universe.namespaces)
    if wanted is not None:
        warnings.extend(
            f"namespace {ns}: no policy and no observed pod; nothing to audit there"
            for ns in sorted(wanted - known)
        )
    if not anomalies or not evaluated.height:
        flagged = None
    elif flagged is None:
        flagged = detect_flagged(evaluated, wanted, random_state, warnings)
    findings.extend(
        breakage_findings(compiled, evaluated, only, flagged)
    )
    findings.extend(
        dns_findings(compiled, universe, dns_targets(universe, frame), only)
    )
    findings.extend(coverage_findings(compiled, universe, [n for n in scope if n in known]))
    if flagged is not None:
        findings.extend(suspicious_findings(evaluated, flagged))
    if evaluated.height == 0:
        warnings.append(
            "no observed connections: every rule counts as unused; ingest flows first"
        )
    return AuditResult(
        findings=tuple(sorted(findings, key=Finding.sort_key)),
        rule_stats=tuple(
            sorted(
                (u.stat for u in usage.values() if u.stat.policy in scoped),
                key=lambda s: (s.policy, s.rule),
            )
        ),
        window=window,
        policies=len(in_scope),
        connections=int(frame["connections"].sum()) if frame.height else 0,
        namespaces=tuple(scope),
        warnings=tuple(warnings),
    )


def _window(frame: pl.DataFrame) -> tuple[datetime | None, datetime | None]:
    if frame.height == 0 or "first_seen" not in frame.columns:
        return (None, None)
    return (frame["first_seen"].min(), frame["last_seen"].max())  # type: ignore[return-value]


def _scope(
    policies: Sequence[NetworkPolicy], universe: Universe, namespaces: Sequence[str] | None
) -> list[str]:
    if namespaces is not None:
        return sorted(set(namespaces))
    seen = {p.namespace for p in policies if p.namespace} | set(universe.namespaces)
    return sorted(seen)


def _groups(frame: pl.DataFrame) -> Mapping[str, Any]:
    """Identity groups (stable-label selectors) for the replacements' synthesis."""
    return build_graph(frame).groups if frame.height else {}


def _unused_policies(
    in_scope: Sequence[CompiledPolicy], universe: Universe, findings: list[Finding], span: str
) -> set[str]:
    unused: set[str] = set()
    for cp in in_scope:
        if universe.selected_by(cp, observed_only=True):
            continue
        unused.add(cp.key)
        known = universe.selected_by(cp)
        if known:
            detail = (
                f"it selects {len(known)} pod(s) in the inventory "
                f"({', '.join(sorted(p.key for p in known)[:4])}) that sent and received nothing"
            )
            severity: Severity = "low"
        else:
            detail = "no known pod matches it; it may be left over from a removed workload"
            severity = "medium"
        findings.append(
            Finding(
                severity=severity,
                category="unused-policy",
                policy=cp.key,
                rule=None,
                namespace=cp.namespace,
                explanation=(
                    f"podSelector {cp.subject.describe()} selects no pod observed in the "
                    f"window ({span}); {detail}"
                ),
                replacement=remove_policy("it selects no observed pod") if not known else None,
                evidence={"selector": cp.subject.describe(), "inventory_pods": len(known)},
            )
        )
    return unused
