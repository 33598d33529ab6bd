"""Single checks on small policy sets: DNS guardrail, empirical breadth, unused policies with an
inventory, coverage, rendering."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import yaml
from audit_shop import shop_connections

from analyzer.audit import AuditResult, audit, parse_severity, render_json, render_table
from analyzer.k8s.inventory import inventory_from_objects
from analyzer.policy.load import LoadResult, parse_documents
from analyzer.policy.model import NetworkPolicy

INTERNAL = [
    ("frontend", "backend", "TCP", 8080, 5, "forwarded"),
    ("backend", "db", "TCP", 5432, 5, "forwarded"),
    ("frontend", "coredns", "UDP", 53, 3, "forwarded"),
]


def _policies(text: str) -> list[NetworkPolicy]:
    loaded = LoadResult()
    parse_documents(list(yaml.safe_load_all(text)), "test.yaml", loaded)
    assert not loaded.problems, loaded.problems
    return loaded.policies


def _run(text: str, traffic: list[Any] | None = None, **kw: Any) -> AuditResult:
    return audit(_policies(text), shop_connections(traffic or INTERNAL), anomalies=False, **kw)


def _cats(result: AuditResult, category: str) -> list[Any]:
    return [f for f in result.findings if f.category == category]


EGRESS_FRONTEND = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: frontend-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: frontend}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: backend}}}]
    ports: [{protocol: TCP, port: 8080}]
"""


def test_missing_dns_when_egress_restricted_without_guardrail() -> None:
    res = _run(EGRESS_FRONTEND)
    dns = _cats(res, "missing-dns")
    assert [(f.policy, f.severity) for f in dns] == [("shop/frontend-egress", "high")]
    assert "shop/frontend" in dns[0].explanation
    # and the lookups it saw are what a rollout would break
    wb = _cats(res, "would-break")
    assert wb and "kube-system/coredns UDP 53" in wb[0].explanation


def test_udp_only_dns_is_low_and_full_guardrail_is_clean() -> None:
    udp_only = EGRESS_FRONTEND + """
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{protocol: UDP, port: 53}]
"""
    res = _run(udp_only)
    assert [(f.policy, f.severity) for f in _cats(res, "missing-dns")] == [
        ("shop/frontend-egress", "low")
    ]
    full = udp_only.replace(
        "[{protocol: UDP, port: 53}]", "[{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]"
    )
    assert not _cats(_run(full), "missing-dns")


def test_dns_check_uses_a_synthetic_pod_when_none_is_observed() -> None:
    text = EGRESS_FRONTEND.replace("app: frontend}}\n  policyTypes", "app: ghost}}\n  policyTypes")
    res = _run(text)
    assert [f.policy for f in _cats(res, "missing-dns")] == ["shop/frontend-egress"]
    assert [f.policy for f in _cats(res, "unused-policy")] == ["shop/frontend-egress"]


EGRESS_ANYWHERE = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: frontend-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: frontend}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: "CIDR"}}]
"""


def _dns_edges_denied(res: AuditResult) -> bool:
    return any(
        e["port"] == 53 for f in _cats(res, "would-break") for e in f.evidence["edges"]
    )


def test_missing_dns_asks_the_engine_in_the_audit_ipblock_mode() -> None:
    # issue 13 item 3: `to: [ipBlock: 0.0.0.0/0]`, no ports, allows DNS to the kube-dns pod's
    # address in the Kubernetes reading; only in the Cilium reading is it denied.
    text = EGRESS_ANYWHERE.replace("CIDR", "0.0.0.0/0")
    kube = _run(text)
    assert not _cats(kube, "missing-dns") and not _dns_edges_denied(kube)
    cilium = _run(text, ipblock_mode="cilium")
    assert [f.policy for f in _cats(cilium, "missing-dns")] == ["shop/frontend-egress"]
    assert _dns_edges_denied(cilium)  # would-break and missing-dns agree


def test_missing_dns_and_would_break_agree_on_ip_blocks() -> None:
    for cidr, dns_allowed in (("10.0.0.0/24", True), ("10.0.0.10/32", True),
                              ("10.0.1.0/24", False), ("::/0", False)):
        res = _run(EGRESS_ANYWHERE.replace("CIDR", cidr))
        assert bool(_cats(res, "missing-dns")) is not dns_allowed, cidr
        assert _dns_edges_denied(res) is not dns_allowed, cidr


def test_whole_range_ipblock_admits_an_unseen_dns_pod() -> None:
    # No DNS traffic observed: the canonical kube-dns pod, address unknown, is still admitted
    # by a block spanning all IPv4 addresses (a pod always has one), not by a partial one.
    traffic = [("frontend", "backend", "TCP", 8080, 5, "forwarded")]
    assert not _cats(_run(EGRESS_ANYWHERE.replace("CIDR", "0.0.0.0/0"), traffic), "missing-dns")
    assert _cats(_run(EGRESS_ANYWHERE.replace("CIDR", "10.0.0.0/8"), traffic), "missing-dns")


EMPIRICAL = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector: {matchExpressions: [{key: team, operator: Exists}]}
      podSelector: {matchExpressions: [{key: app, operator: Exists}]}
    ports: [{protocol: TCP, port: 5432}]
"""

UNIVERSE = INTERNAL + [
    ("payments-api", "payments-worker", "TCP", 9000, 1, "forwarded"),
    ("tools", "debug", "TCP", 22, 1, "forwarded"),
]


def test_empirical_breadth_of_a_rule_tight_in_shape() -> None:
    res = _run(EMPIRICAL, UNIVERSE)
    broad = _cats(res, "broad-rule")
    assert [(f.policy, f.rule, f.severity) for f in broad] == [
        ("shop/db-ingress", "spec.ingress[0]", "low")
    ]
    text = broad[0].explanation
    assert "7 workload(s) in 3 namespace(s)" in text and "1 peer(s) used it (shop/backend)" in text
    assert broad[0].evidence["reasons"] == ["empirical"]
    # the replacement admits backend only
    repl = broad[0].replacement
    assert repl is not None and repl.action == "replace" and repl.manifest is not None
    spec = repl.manifest["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app": "db"}}
    assert spec["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app": "backend"}}}]


def test_tight_rule_with_few_workloads_is_not_empirically_broad() -> None:
    res = _run(EMPIRICAL, INTERNAL)  # the universe holds only shop's workloads
    assert not _cats(res, "broad-rule")


CACHE = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cache, namespace: shop}
spec:
  podSelector: {matchLabels: {app: memcached}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: backend}}}]
    ports: [{protocol: TCP, port: 11211}]
"""


def test_unused_policy_is_low_when_the_inventory_has_silent_pods() -> None:
    inv = inventory_from_objects([
        {"kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "shop"}}},
        {"kind": "Pod", "metadata": {"name": "memcached-0", "namespace": "shop",
                                     "labels": {"app": "memcached"}},
         "status": {"podIP": "10.0.1.99"}},
    ])
    with_inv = _cats(_run(CACHE, inventory=inv), "unused-policy")
    without = _cats(_run(CACHE), "unused-policy")
    assert [(f.severity, f.replacement) for f in with_inv] == [("low", None)]
    assert without[0].severity == "medium"
    assert without[0].replacement is not None
    assert without[0].replacement.action == "remove-policy"


def test_coverage_of_a_namespace_with_and_without_policies() -> None:
    res = _run(EGRESS_FRONTEND, UNIVERSE, namespaces=["shop", "develop"])
    ndd = {(f.namespace, f.direction, f.severity) for f in _cats(res, "no-default-deny")}
    assert ("develop", "ingress", "medium") in ndd
    assert ("develop", "egress", "low") in ndd
    assert ("shop", "egress", "info") in ndd  # has egress policies, no default-deny
    assert ("shop", "ingress", "medium") in ndd  # nothing isolates ingress in shop
    open_pods = _cats(res, "unprotected-pods")
    assert [(f.namespace, f.direction) for f in open_pods] == [("shop", "egress")]
    assert open_pods[0].evidence["open_workloads"] == ["backend", "db"]
    assert all(f.namespace in ("shop", "develop") for f in res.findings)


def test_render_table_and_json_round_trip() -> None:
    res = _run(EGRESS_FRONTEND)
    table = render_table(res)
    assert "HIGH (" in table and "[missing-dns] shop/frontend-egress" in table
    assert "window 2026-11-20" in table
    doc = json.loads(render_json(res))
    assert [f["category"] for f in doc["findings"]] == [f.category for f in res.findings]
    assert doc["summary"]["by_severity"]["high"] == sum(
        1 for f in res.findings if f.severity == "high"
    )
    empty = audit([], shop_connections([]), anomalies=False)
    assert empty.findings == () and "No findings." in render_table(empty)
    assert json.loads(render_json(empty))["window"] == {"first": None, "last": None}


def test_parse_severity() -> None:
    assert parse_severity(" High ") == "high"
    try:
        parse_severity("urgent")
    except Exception as exc:  # noqa: BLE001
        assert "unknown severity" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("accepted an unknown severity")


def test_table_escapes_control_characters_from_flows() -> None:
    traffic = [("frontend", "backend", "TCP", 8080, 2, "forwarded")]
    conns = shop_connections(traffic)
    frame = conns.frame.with_columns(
        conns.frame["src_workload"].str.replace("frontend", "front\x1b[31mend\nFAKE")
    )
    res = audit(_policies(CACHE.replace("memcached", "backend")), frame, anomalies=False)
    table = render_table(res)
    assert "\x1b" not in table and "\\x1b[31m" in table
    assert "\nFAKE" not in table


SEMANTIC = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: backend}}}]
    ports: [{protocol: TCP, port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-data, namespace: shop}
spec:
  podSelector: {matchLabels: {tier: data}}
  ingress:
  - from: [{podSelector: {matchLabels: {tier: api}}}]
    ports: [{protocol: TCP, port: 5432}, {protocol: TCP, port: 9187}]
"""


def _tiered(extra_pods: bool) -> Any:
    traffic = INTERNAL + ([("tools", "debug", "TCP", 22, 1, "forwarded")] if extra_pods else [])
    frame = shop_connections(traffic).frame
    tiers = {"db": "tier=data", "backend": "tier=api"}
    for side in ("src", "dst"):
        for workload, label in tiers.items():
            frame = frame.with_columns(
                pl.when(pl.col(f"{side}_workload") == workload)
                .then(pl.col(f"{side}_labels").list.concat(pl.lit([label])).list.sort())
                .otherwise(pl.col(f"{side}_labels"))
                .alias(f"{side}_labels")
            )
    return frame


def test_semantic_redundancy_over_known_pods() -> None:
    res = audit(_policies(SEMANTIC), _tiered(False), anomalies=False)
    red = _cats(res, "redundant-rule")
    # a-db is inside b-data over today's pods (b-data also admits 9187); not the reverse
    assert [(f.policy, f.rule, f.evidence["proof"]) for f in red] == [
        ("shop/a-db", "spec.ingress[0]", "known-pods")
    ]
    assert "pods known today" in red[0].explanation


def test_semantic_redundancy_needs_the_other_rule_to_admit_every_known_peer() -> None:
    # b-data admits only tier=api; tag the backend differently and nothing is claimed
    frame = _tiered(False).with_columns(
        pl.col("src_labels").list.eval(pl.element().str.replace("tier=api", "tier=web"))
    )
    res = audit(_policies(SEMANTIC), frame, anomalies=False)
    assert not _cats(res, "redundant-rule")


NEAR_MISS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-from-frontend, namespace: shop}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{protocol: TCP, port: 8443}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-backend, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: backend}}}]
    ports: [{protocol: TCP, port: 5432}]
"""


def test_would_break_names_the_policy_that_forgot_the_port() -> None:
    traffic = INTERNAL + [("prometheus", "db", "TCP", 9187, 2, "forwarded")]
    res = _run(NEAR_MISS, traffic, namespaces=["shop"])
    blamed = {
        f.evidence["subject"]: (f.policy, f.severity) for f in _cats(res, "would-break")
    }
    # frontend -> backend 8080: backend-from-frontend admits frontend, on another port
    assert blamed["shop/backend"] == ("shop/backend-from-frontend", "high")
    # prometheus -> db 9187: no rule mentions prometheus; the pure default-deny is named
    assert blamed["shop/db"] == ("shop/default-deny", "high")


def test_dns_to_kube_dns_in_any_namespace_is_not_broad() -> None:
    text = EGRESS_FRONTEND + """
  - to:
    - namespaceSelector: {}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
"""
    res = _run(text, UNIVERSE)
    assert not [f for f in res.findings if f.category in ("broad-rule", "missing-dns")]
