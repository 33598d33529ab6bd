"""``audit()``: hold existing policies against observed traffic and list what a reviewer must see.

policies -> compiled matchers; connections -> verdicts per connection (``evaluate_connections``)
-> per-rule usage -> findings: unused policies and rules, broad rules (structure and usage),
redundant rules, would-break, missing DNS, namespaces and pods left open, and allowed edges the
anomaly detector flags. Each finding names the policy and rule and says why, in words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl

from analyzer.audit.breakage import breakage_findings
from analyzer.audit.coverage import coverage_findings
from analyzer.audit.dns import dns_findings, dns_targets
from analyzer.audit.findings import AuditResult, Finding, Replacement, Severity, max_severity
from analyzer.audit.redundant_rules import redundant_findings
from analyzer.audit.render import window_text
from analyzer.audit.replace import remove_policy, remove_rule, replacement_for
from analyzer.audit.structural import BreadthReason, describe_ports, rule_breadth, rule_severity
from analyzer.audit.suspicious import detect_flagged, suspicious_findings
from analyzer.audit.universe import Universe, build_universe
from analyzer.audit.usage import RuleUsage, breadth, describe_breadth, rule_key, rule_usage
from analyzer.connections import Connections
from analyzer.inventory import Inventory
from analyzer.policy.compile import CompiledPolicies, CompiledPolicy, CompiledRule, compile_policies
from analyzer.policy.evaluate import evaluate_connections
from analyzer.policy.model import NetworkPolicy

__all__ = ["EMPIRICAL_MIN_WORKLOADS", "audit"]

# A rule that is tight by shape is reported as empirically broad only when it admits at least
# this many known workloads and at least EMPIRICAL_RATIO times as many as used it.
EMPIRICAL_MIN_WORKLOADS = 4
EMPIRICAL_RATIO = 3
_RELATIVE = frozenset({"namespace-only", "any-namespace", "all-pods"})


def audit(
    policies: Sequence[NetworkPolicy],
    connections: Connections | pl.DataFrame,
    *,
    inventory: Inventory | None = None,
    namespaces: Sequence[str] | None = None,
    anomalies: bool = True,
    ipblock_mode: str = "kubernetes",
    random_state: int = 0,
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
    """
    if isinstance(connections, Connections):
        frame = connections.frame
        window: tuple[datetime | None, datetime | None] = tuple(  # type: ignore[assignment]
            connections.stats.window or (None, None)
        )
    else:
        frame = connections
        window = _window(frame)
    compiled = compile_policies(list(policies), ipblock_mode=ipblock_mode)
    evaluated = evaluate_connections(compiled, frame, inventory)
    universe = build_universe(frame, inventory)
    scope = _scope(policies, universe, namespaces)
    wanted = set(scope) if namespaces is not None else None
    in_scope = [cp for cp in compiled.policies if wanted is None or cp.namespace in wanted]
    usage = rule_usage(compiled, evaluated, list(wanted) if wanted is not None else None)
    groups = _groups(connections, frame)

    findings: list[Finding] = []
    span = window_text(window)
    unused_policies = _unused_policies(in_scope, universe, findings, span)
    redundant, shadowing = redundant_findings(in_scope, universe, compiled.ipblock_mode)
    findings.extend(redundant)
    for cp in in_scope:
        for rule in (cp.ingress or ()) + (cp.egress or ()):
            _rule_findings(
                cp, rule, usage, universe, compiled, evaluated, groups, unused_policies,
                shadowing, findings, span,
            )
    warnings: list[str] = []
    known = {p.namespace for p in policies} | set(universe.namespaces)
    if wanted is not None:
        warnings.extend(
            f"namespace {ns}: no policy and no observed pod; nothing to audit there"
            for ns in sorted(wanted - known)
        )
    flagged = (
        detect_flagged(evaluated, wanted, random_state, warnings)
        if anomalies and evaluated.height
        else None
    )
    findings.extend(
        breakage_findings(compiled, evaluated, list(wanted) if wanted else None, flagged)
    )
    findings.extend(
        dns_findings(compiled, universe, dns_targets(universe, frame), list(wanted) if wanted
                     else None)
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
            sorted((u.stat for u in usage.values()), key=lambda s: (s.policy, s.rule))
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


def _groups(connections: Connections | pl.DataFrame, frame: pl.DataFrame) -> Mapping[str, Any]:
    """Identity groups (stable-label selectors) for synthesis; {} without the graph module."""
    if not isinstance(connections, Connections) or frame.height == 0:
        return {}
    try:
        from analyzer.graph import build_graph
    except ImportError:  # the graph module is optional for synthesis (labels are the fallback)
        return {}
    return build_graph(connections).groups


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


def _rule_findings(
    cp: CompiledPolicy,
    rule: CompiledRule,
    usage: Mapping[str, RuleUsage],
    universe: Universe,
    compiled: CompiledPolicies,
    evaluated: pl.DataFrame,
    groups: Mapping[str, Any],
    unused_policies: set[str],
    shadowing: Mapping[str, list[str]],
    findings: list[Finding],
    span: str,
) -> None:
    direction = rule.direction.lower()
    path = f"spec.{direction}[{rule.index}]"
    key = rule_key(cp.key, direction, rule.index)
    use = usage.get(key)
    hits = use.stat.hits if use else 0
    reasons = rule_breadth(cp.policy, direction, rule.rule)
    b = breadth(rule, universe, compiled.ipblock_mode)
    ports = describe_ports(rule.rule.ports)
    empirical = describe_breadth(b, ports, use)
    used_peers = len(use.peer_workloads) if use else 0
    if len(b.workloads) <= max(used_peers, 1):
        # Selector-wide peers (namespace-only, any namespace, every pod of the namespace) are
        # broad only if a tighter selector would admit less: when they match nothing but the
        # workload that uses the rule (kube-dns in "any namespace"), it would not.
        reasons = [r for r in reasons if r.code not in _RELATIVE]
    if not reasons and hits and len(b.workloads) >= EMPIRICAL_MIN_WORKLOADS and (
        len(b.workloads) >= EMPIRICAL_RATIO * max(used_peers, 1)
    ):
        reasons = [BreadthReason("empirical", "admits far more workloads than use it", "low")]
    replacement: Replacement | None = None
    if reasons or hits == 0:
        exclusive = use.exclusive if use else 0
        replacement = _replacement(cp, rule, direction, path, evaluated, hits, exclusive, groups)
    first, last = (use.stat.first_hit, use.stat.last_hit) if use else (None, None)
    if reasons:
        sev = rule_severity(reasons)
        if hits == 0:
            # Broad and unused: pure exposure.
            sev = max_severity(sev, "medium")
        extra = ""
        if use and use.dropped:
            extra = (
                f"; it would also admit {use.dropped} connection(s) observed dropped "
                f"({', '.join(use.dropped_examples)})"
            )
        findings.append(
            Finding(
                severity=sev,
                category="broad-rule",
                policy=cp.key,
                rule=path,
                namespace=cp.namespace,
                direction=direction,
                explanation=f"{'; '.join(r.text for r in reasons)}. Observed: {empirical}{extra}",
                hits=hits,
                first_hit=first,
                last_hit=last,
                replacement=replacement,
                evidence={
                    "reasons": [r.code for r in reasons],
                    "admitted_workloads": len(b.workloads),
                    "admitted_namespaces": len(b.namespaces),
                    "any_address": b.any_address,
                    "used_by": list(use.peer_workloads) if use else [],
                    "ports_used": list(use.ports) if use else [],
                    "shadows": shadowing.get(key, []),
                },
            )
        )
    if hits == 0:
        in_unused = cp.key in unused_policies
        findings.append(
            Finding(
                severity="info" if in_unused else "low",
                category="unused-rule",
                policy=cp.key,
                rule=path,
                namespace=cp.namespace,
                direction=direction,
                explanation=(
                    f"admitted no observed connection in the window ({span}); it "
                    f"{empirical.removesuffix('; nothing used it in the window')}"
                    + ("; the whole policy selects no observed pod" if in_unused else "")
                ),
                hits=0,
                replacement=replacement if replacement is not None else remove_rule(
                    "nothing used it in the window"
                ),
                evidence={"dropped_it_would_admit": use.dropped if use else 0},
            )
        )


def _replacement(
    cp: CompiledPolicy,
    rule: CompiledRule,
    direction: str,
    path: str,
    evaluated: pl.DataFrame,
    hits: int,
    exclusive: int,
    groups: Mapping[str, Any],
) -> Replacement | None:
    if hits == 0:
        return remove_rule(f"nothing used {cp.key} {path} in the window")
    if cp.namespace is None:
        return None  # cluster-wide policies: synthesis writes namespaced policies only
    if exclusive == 0:
        return remove_rule(
            f"each of the {hits} connection(s) {cp.key} {path} admitted is also admitted by "
            f"another {direction} rule"
        )
    ref = rule_key(cp.key, direction, rule.index)
    # Only what this rule alone admitted: traffic other rules admit needs no replacement.
    rules = pl.col(f"{direction}_rules")
    admitted = evaluated.filter(
        (pl.col("outcome") == "allowed") & rules.list.contains(ref) & (rules.list.len() == 1)
    )
    return replacement_for(
        admitted, cp.namespace, direction, groups, f"{cp.key} {path}", cp.policy.name
    )
