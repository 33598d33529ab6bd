"""The planted shop policy set: every planted problem reported under its category, nothing of
those categories on the tight, used rules."""

from __future__ import annotations

from typing import Any

import pytest

from analyzer.audit import AuditResult, audit
from analyzer.connections import Connections

RULE_CATEGORIES = {"unused-rule", "broad-rule", "redundant-rule", "would-break", "missing-dns"}


@pytest.fixture(scope="module")
def result(shop_policies: list[Any], shop_conns: Connections) -> AuditResult:
    return audit(shop_policies, shop_conns)


def _matches(finding: Any, planted: dict[str, Any]) -> bool:
    if finding.category != planted["category"]:
        return False
    if planted.get("policy") is not None and finding.policy != planted["policy"]:
        return False
    if planted.get("namespace") is not None and finding.namespace != planted["namespace"]:
        return False
    return planted.get("rule") is None or finding.rule == planted["rule"]


def test_every_planted_problem_is_reported(result: AuditResult, shop_truth: dict[str, Any]) -> None:
    missing = [
        p for p in shop_truth["planted"] if not any(_matches(f, p) for f in result.findings)
    ]
    assert not missing, f"planted problems not reported: {missing}"


def test_tight_used_rules_are_clean(result: AuditResult, shop_truth: dict[str, Any]) -> None:
    for clean in shop_truth["clean"]:
        bad = [
            f
            for f in result.findings
            if f.category in RULE_CATEGORIES
            and f.policy == clean["policy"]
            and f.rule in (clean["rule"], None)
        ]
        assert not bad, f"{clean} has findings: {[(f.category, f.explanation) for f in bad]}"
        stat = next(
            s for s in result.rule_stats
            if s.policy == clean["policy"] and s.rule == clean["rule"]
        )
        assert stat.hits > 0 and stat.first_hit is not None and stat.last_hit is not None


def test_seed_backend_rule_counts_frontend_traffic(result: AuditResult) -> None:
    stat = next(
        s for s in result.rule_stats
        if s.policy == "shop/allow-backend-ingress" and s.rule == "spec.ingress[0]"
    )
    # 40 + 25 connections from the two frontend pods to backend:8080
    assert stat.hits == 65
    assert stat.ports_used == ("TCP 8080",)
    assert stat.peers_used == ("shop/frontend",)


def test_broad_rule_states_what_it_admits_and_what_used_it(result: AuditResult) -> None:
    broad = next(
        f for f in result.findings
        if f.category == "broad-rule" and f.policy == "shop/allow-metrics-scrape"
    )
    assert "namespaceSelector: {}" in broad.explanation
    assert "every pod of 5 namespaces" in broad.explanation
    assert "on all ports" in broad.explanation
    assert "monitoring/prometheus" in broad.explanation
    # the tight rules it shadows are named, not reported as redundant
    assert "shop/allow-backend-ingress#ingress[0]" in broad.evidence["shadows"]
    assert broad.replacement is not None and broad.replacement.action == "replace"
    manifest = broad.replacement.manifest
    assert manifest is not None
    text = repr(manifest)
    # the replacement admits prometheus on the ports it used, and the develop tools (which
    # only another broad rule admits), never the debug pod whose attempts were dropped
    assert "prometheus" in text and "9090" in text and "9187" in text
    assert "'app': 'tools'" in text and "debug" not in text
    # frontend -> backend 8080 is admitted by the seed's tight rule: not repeated here
    assert "frontend" not in text
    # a rollout of the replacement must not overwrite an existing policy
    names = [m["metadata"]["name"] for m in manifest.get("items", [manifest])]
    assert all(n.startswith("allow-metrics-scrape-tight") for n in names)


def test_unused_rule_gets_remove_replacement(result: AuditResult) -> None:
    unused = next(
        f for f in result.findings
        if f.category == "unused-rule" and f.policy == "shop/allow-backend-ingress"
    )
    assert unused.rule == "spec.ingress[1]"
    assert unused.hits == 0
    assert unused.replacement is not None and unused.replacement.action == "remove-rule"


def test_would_break_is_high_and_names_the_edge(result: AuditResult) -> None:
    wb = next(
        f for f in result.findings
        if f.category == "would-break" and f.policy == "shop/default-deny-all"
    )
    assert wb.severity == "high"
    assert "payments/payments-api TCP 8443" in wb.explanation
    assert wb.hits == 15


def test_dropped_attack_is_flagged_for_review(result: AuditResult) -> None:
    sus = [f for f in result.findings if f.category == "suspicious-allowed"]
    assert any(
        f.policy == "shop/allow-metrics-scrape" and "develop/debug -> shop/db" in f.explanation
        for f in sus
    )


def test_window_and_summary(result: AuditResult) -> None:
    first, last = result.window
    assert first is not None and last is not None and first < last
    summary = result.summary()
    assert summary["findings"] == len(result.findings)
    assert summary["by_severity"]["high"] >= 3
    assert result.reaches("high") and result.reaches("info")


def test_namespace_only_peer_is_broad_only_when_a_pod_selector_would_narrow(
    result: AuditResult, shop_truth: dict[str, Any]
) -> None:
    for entry in shop_truth["not_broad"]:
        assert not [
            f for f in result.findings
            if f.category == "broad-rule" and f.policy == entry["policy"]
            and f.rule == entry["rule"]
        ]
    dev = next(
        f for f in result.findings
        if f.category == "broad-rule" and f.policy == "shop/allow-dev-tools"
    )
    assert dev.severity == "low"
    assert "namespace-only" in dev.explanation and "develop/tools" in dev.explanation


def _apply_fixes(policies: list[Any], result: AuditResult) -> list[Any]:
    """The policy set after applying every replace/remove the audit proposes for rules."""
    import dataclasses

    from analyzer.policy.load import LoadResult, parse_documents

    drop: dict[str, set[tuple[str, int]]] = {}
    added: list[Any] = []
    for f in result.findings:
        r = f.replacement
        if f.rule is None or r is None or r.action not in ("replace", "remove-rule"):
            continue
        direction, index = f.rule.removeprefix("spec.").rstrip("]").split("[")
        drop.setdefault(f.policy, set()).add((direction, int(index)))
        if r.action == "replace" and r.manifest is not None:
            loaded = LoadResult()
            parse_documents([dict(r.manifest)], "replacement", loaded)
            assert not loaded.problems, loaded.problems
            added.extend(loaded.policies)
    out = []
    for p in policies:
        gone = drop.get(p.key, set())
        out.append(
            dataclasses.replace(
                p,
                ingress=tuple(r for i, r in enumerate(p.ingress) if ("ingress", i) not in gone),
                egress=tuple(r for i, r in enumerate(p.egress) if ("egress", i) not in gone),
            )
        )
    return out + added


def _broken(result: AuditResult) -> set[tuple[str, str, str, Any]]:
    return {
        (f.evidence["subject"], e["peer"], e["protocol"], e["port"])
        for f in result.findings
        if f.category == "would-break" and f.evidence["observed"] == "allowed"
        for e in f.evidence["edges"]
    }


def test_applying_every_proposed_fix_breaks_nothing_new(
    result: AuditResult, shop_policies: list[Any], shop_conns: Connections
) -> None:
    fixed = _apply_fixes(shop_policies, result)
    after = audit(fixed, shop_conns)
    assert _broken(after) <= _broken(result)
    # and the broad, unused and redundant rules are gone
    assert not [
        f for f in after.findings
        if f.category in ("broad-rule", "unused-rule", "redundant-rule")
        and f.policy in ("shop/allow-metrics-scrape", "shop/allow-dev-tools",
                         "shop/allow-frontend-to-backend-dup", "shop/allow-frontend-world")
    ]
    # the develop debug pod's dropped attempts are no longer admitted by anything
    assert not [f for f in after.findings if f.category == "suspicious-allowed"]
