"""The lint rules (issue 13, "the lint rules users expect"): each planted problem is reported with
its severity, explanation and fix; the tight, correct variant of the same policy is not."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from audit_shop import shop_connections

from analyzer.audit import AuditResult, audit, render_table
from analyzer.k8s.inventory import inventory_from_objects
from analyzer.policy.load import LoadResult, parse_documents
from analyzer.policy.model import NetworkPolicy

LINT = {"ignored-rules", "policy-types-defaulting", "metadata-egress", "risky-port",
        "no-effect-policy", "ipblock-cluster-range"}
TRAFFIC = [
    ("frontend", "backend", "TCP", 8080, 5, "forwarded"),
    ("backend", "db", "TCP", 5432, 5, "forwarded"),
    ("frontend", "coredns", "UDP", 53, 3, "forwarded"),
    ("payments-api", "payments-worker", "TCP", 9000, 1, "forwarded"),
    ("tools", "debug", "TCP", 22, 1, "forwarded"),
    ("prometheus", "backend", "TCP", 9090, 2, "forwarded"),
    ("traefik", "frontend", "TCP", 8080, 2, "forwarded"),
]


def _policies(*docs: str) -> list[NetworkPolicy]:
    loaded = LoadResult()
    parse_documents([yaml.safe_load(d) for d in docs], "lint.yaml", loaded)
    assert not loaded.problems, loaded.problems
    return loaded.policies


def _run(*docs: str, **kw: Any) -> AuditResult:
    return audit(_policies(*docs), shop_connections(TRAFFIC), anomalies=False, **kw)


def _lint(result: AuditResult, category: str | None = None) -> list[Any]:
    return [f for f in result.findings
            if f.category in LINT and (category is None or f.category == category)]


def _np(name: str, spec: str, ns: str = "shop") -> str:
    return (f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
            f"metadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}")


def _assert_fix(finding: Any) -> None:
    assert finding.severity in ("low", "medium", "high")
    assert finding.explanation and finding.replacement is not None
    assert finding.replacement.note
    assert f"[{finding.category}]" in render_table(
        AuditResult((finding,), (), (None, None), 1, 0)
    )


DNS_RULE = """\
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
"""
BACKEND_FROM_FRONTEND = """\
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{protocol: TCP, port: 8080}]
"""


# --- rules for a direction policyTypes leaves out -----------------------------------------------


def test_rules_for_a_left_out_direction_are_reported() -> None:
    spec = ("  podSelector: {matchLabels: {app: frontend}}\n  policyTypes: [Ingress]\n"
            "  ingress: []\n  egress:\n" + DNS_RULE)
    [f] = _lint(_run(_np("frontend", spec)), "ignored-rules")
    assert f.severity == "medium" and f.rule == "spec.egress" and f.direction == "egress"
    assert "leaves out Egress" in f.explanation and "ignored" in f.explanation
    assert "add Egress to policyTypes" in f.replacement.note
    _assert_fix(f)
    fixed = spec.replace("[Ingress]", "[Ingress, Egress]")
    assert not _lint(_run(_np("frontend", fixed)), "ignored-rules")


# --- policyTypes defaulting ---------------------------------------------------------------------


def test_egress_only_rules_without_policy_types_also_deny_ingress() -> None:
    spec = "  podSelector: {matchLabels: {app: frontend}}\n  egress:\n" + DNS_RULE
    [f] = _lint(_run(_np("frontend-dns", spec)), "policy-types-defaulting")
    assert f.direction == "ingress" and "denies ALL ingress" in f.explanation
    assert "policyTypes: [Egress]" in f.replacement.note
    _assert_fix(f)
    explicit = spec.replace("  egress:", "  policyTypes: [Egress]\n  egress:")
    assert not _lint(_run(_np("frontend-dns", explicit)))


def test_empty_egress_without_policy_types_isolates_nothing() -> None:
    spec = "  podSelector: {}\n  egress: []\n"
    [f] = _lint(_run(_np("deny-egress", spec)), "policy-types-defaulting")
    assert f.rule == "spec.egress" and "does not restrict egress" in f.explanation
    _assert_fix(f)
    explicit = "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  egress: []\n"
    assert not _lint(_run(_np("deny-egress", explicit)), "policy-types-defaulting")


def test_the_default_deny_idiom_is_not_a_surprise() -> None:
    assert not _lint(_run(_np("default-deny", "  podSelector: {}\n")))
    assert not _lint(_run(_np("backend", BACKEND_FROM_FRONTEND)))


# --- egress to the cloud metadata address -------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "ports", "address"),
    [
        ('[{ipBlock: {cidr: "0.0.0.0/0"}}]', None, "169.254.169.254"),
        ('[{ipBlock: {cidr: "0.0.0.0/0", except: ["10.0.0.0/8"]}}]', 80, "169.254.169.254"),
        ('[{ipBlock: {cidr: "169.254.0.0/16"}}]', 80, "169.254.169.254"),
        ('[{ipBlock: {cidr: "::/0"}}]', None, "fd00:ec2::254"),
        (None, 80, "169.254.169.254"),
    ],
)
def test_egress_reaching_the_metadata_service(to: str | None, ports: int | None,
                                              address: str) -> None:
    rule = "  - " + (f"to: {to}" if to else "ports: [{protocol: TCP, port: 80}]") + "\n"
    if to and ports:
        rule += f"    ports: [{{protocol: TCP, port: {ports}}}]\n"
    spec = ("  podSelector: {matchLabels: {app: backend}}\n  policyTypes: [Egress]\n"
            "  egress:\n" + DNS_RULE + rule)
    found = _lint(_run(_np("backend-out", spec)), "metadata-egress")
    assert [f.rule for f in found] == ["spec.egress[1]"]
    assert address in found[0].explanation and found[0].severity == "medium"
    _assert_fix(found[0])


@pytest.mark.parametrize(
    "rule",
    [
        '  - to: [{ipBlock: {cidr: "0.0.0.0/0", except: ["169.254.169.254/32"]}}]\n',
        '  - to: [{ipBlock: {cidr: "0.0.0.0/0", except: ["169.254.0.0/16", "10.0.0.0/8"]}}]\n',
        '  - to: [{ipBlock: {cidr: "0.0.0.0/0"}}]\n    ports: [{protocol: TCP, port: 443}]\n',
        '  - to: [{ipBlock: {cidr: "203.0.113.0/24"}}]\n',
    ],
)
def test_egress_that_keeps_the_metadata_service_out(rule: str) -> None:
    spec = ("  podSelector: {matchLabels: {app: backend}}\n  policyTypes: [Egress]\n"
            "  egress:\n" + DNS_RULE + rule)
    assert not _lint(_run(_np("backend-out", spec)), "metadata-egress")


# --- risky ports ------------------------------------------------------------------------------


def _ingress(peer: str, ports: str | None) -> str:
    rule = f"  - from: [{peer}]\n" if peer else ""
    if ports:
        rule += f"    ports: {ports}\n" if peer else f"  - ports: {ports}\n"
    return "  podSelector: {matchLabels: {app: db}}\n  policyTypes: [Ingress]\n  ingress:\n" + rule


@pytest.mark.parametrize(
    ("peer", "ports", "severity", "words"),
    [
        ('{ipBlock: {cidr: "0.0.0.0/0"}}', "[{port: 22}]", "high", "SSH"),
        ("", "[{port: 6379}]", "high", "Redis"),
        ('{ipBlock: {cidr: "0.0.0.0/0"}}', None, "high", "every port"),
        ('{ipBlock: {cidr: "192.168.0.0/16"}}', "[{port: 5432}]", "medium", "outside the cluster"),
        ("{namespaceSelector: {}}", "[{port: 5432}]", "medium", "PostgreSQL"),
        ("{namespaceSelector: {}}", "[{port: 2370, endPort: 2390}]", "medium", "etcd"),
        ("{namespaceSelector: {}, podSelector: {matchExpressions: [{key: app, operator: Exists}]}}",
         "[{port: 10250}]", "medium", "kubelet"),
    ],
)
def test_risky_ports_from_broad_or_outside_peers(peer: str, ports: str | None, severity: str,
                                                 words: str) -> None:
    [f] = _lint(_run(_np("db-in", _ingress(peer, ports))), "risky-port")
    assert f.severity == severity and words in f.explanation
    assert f.rule == "spec.ingress[0]"
    _assert_fix(f)


@pytest.mark.parametrize(
    ("peer", "ports"),
    [
        ("{podSelector: {matchLabels: {app: backend}}}", "[{port: 5432}]"),
        ('{ipBlock: {cidr: "198.51.100.7/32"}}', "[{port: 22}]"),  # one known client
        ("{namespaceSelector: {}}", "[{port: 8080}]"),  # broad, but not a risky port
        ("{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}},"
         " podSelector: {matchLabels: {app: prometheus}}}", "[{port: 9187}]"),
    ],
)
def test_risky_port_not_reported_for_tight_peers(peer: str, ports: str) -> None:
    assert not _lint(_run(_np("db-in", _ingress(peer, ports))), "risky-port")


# --- a policy with no effect ------------------------------------------------------------------


def test_duplicate_policy_has_no_effect_once() -> None:
    result = _run(_np("backend-a", BACKEND_FROM_FRONTEND), _np("backend-b", BACKEND_FROM_FRONTEND))
    found = _lint(result, "no-effect-policy")
    assert [f.policy for f in found] == ["shop/backend-b"]
    assert "shop/backend-a" in found[0].explanation
    assert found[0].replacement.action == "remove-policy"
    _assert_fix(found[0])
    # redundant-rule agrees on which copy goes: the later one (it named the first before)
    assert [(f.policy, f.rule) for f in result.findings if f.category == "redundant-rule"] == [
        ("shop/backend-b", "spec.ingress[0]")
    ]


def test_second_default_deny_has_no_effect() -> None:
    deny = "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n"
    found = _lint(_run(_np("deny-1", deny), _np("deny-2", deny)), "no-effect-policy")
    assert [f.policy for f in found] == ["shop/deny-2"]
    assert "no rule of its own" in found[0].explanation


def test_narrower_policy_fully_contained_by_a_tight_one() -> None:
    wide = ("  podSelector: {matchExpressions: [{key: app, operator: In, values: [backend, db]}]}"
            "\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: frontend}}},"
            " {podSelector: {matchLabels: {app: backend}}}]\n"
            "    ports: [{protocol: TCP, port: 8080}, {protocol: TCP, port: 5432}]\n")
    result = _run(_np("backend", BACKEND_FROM_FRONTEND), _np("backend-and-db", wide))
    assert [f.policy for f in _lint(result, "no-effect-policy")] == ["shop/backend"]


def test_no_effect_not_claimed_when_the_cover_is_broad_or_partial() -> None:
    broad = "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {}}]\n"
    assert not _lint(_run(_np("backend", BACKEND_FROM_FRONTEND), _np("open", broad)),
                     "no-effect-policy")
    egress_too = BACKEND_FROM_FRONTEND + "  egress:\n" + DNS_RULE
    # one policy isolates egress too: the other does not do all it does
    result = _run(_np("backend", BACKEND_FROM_FRONTEND), _np("backend-full", egress_too))
    assert [f.policy for f in _lint(result, "no-effect-policy")] == ["shop/backend"]


# --- ipBlock peers that are pod or Service ranges ------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "pods"),
    [("10.0.1.0/24", 3), ("10.0.1.20/32", 1), ("10.0.0.0/8", 10)],
)
def test_ipblock_holding_pod_addresses(cidr: str, pods: int) -> None:
    spec = ("  podSelector: {matchLabels: {app: db}}\n  policyTypes: [Ingress]\n  ingress:\n"
            f'  - from: [{{ipBlock: {{cidr: "{cidr}"}}}}]\n    ports: [{{port: 5432}}]\n')
    [f] = _lint(_run(_np("db-in", spec)), "ipblock-cluster-range")
    assert f.evidence["pod_count"] == pods and f.severity == "medium"
    assert "known pod" in f.explanation and "podSelector" in f.replacement.note
    _assert_fix(f)
    [cilium] = _lint(_run(_np("db-in", spec), ipblock_mode="cilium"), "ipblock-cluster-range")
    assert "admits nothing" in cilium.explanation


def test_ipblock_of_outside_or_excepted_addresses_is_fine() -> None:
    for block in ('{cidr: "203.0.113.0/24"}', '{cidr: "10.0.1.0/24", except: ["10.0.1.0/24"]}'):
        if "except" in block:
            block = '{cidr: "10.0.0.0/16", except: ["10.0.0.0/17"]}'
        spec = ("  podSelector: {matchLabels: {app: db}}\n  policyTypes: [Egress]\n  egress:\n"
                f"  - to: [{{ipBlock: {block}}}]\n    ports: [{{port: 443}}]\n")
        assert not _lint(_run(_np("db-out", spec)), "ipblock-cluster-range"), block


def test_service_range_from_the_option() -> None:
    spec = ("  podSelector: {matchLabels: {app: db}}\n  policyTypes: [Egress]\n  egress:\n"
            '  - to: [{ipBlock: {cidr: "172.20.0.0/16"}}]\n    ports: [{port: 443}]\n')
    assert not _lint(_run(_np("db-out", spec)))
    [f] = _lint(_run(_np("db-out", spec), service_cidrs=["172.20.0.0/12"]),
                "ipblock-cluster-range")
    assert "Service range 172.16.0.0/12" in f.explanation


def test_host_network_pod_addresses_are_node_addresses() -> None:
    # a hostNetwork pod (kube-proxy) has the node's address: an ipBlock for the node is fine.
    inventory = inventory_from_objects([
        {"kind": "Pod", "metadata": {"name": "kube-proxy-x", "namespace": "kube-system"},
         "spec": {"hostNetwork": True}, "status": {"podIP": "172.18.0.3"}},
        {"kind": "Pod", "metadata": {"name": "agent", "namespace": "kube-system"},
         "spec": {}, "status": {"podIP": "172.18.1.3"}},
    ])
    for address, expected in (("172.18.0.3/32", 0), ("172.18.1.3/32", 1)):
        spec = ("  podSelector: {matchLabels: {app: db}}\n  policyTypes: [Egress]\n  egress:\n"
                f'  - to: [{{ipBlock: {{cidr: "{address}"}}}}]\n    ports: [{{port: 6443}}]\n')
        result = audit(_policies(_np("db-out", spec)), shop_connections(TRAFFIC),
                       inventory=inventory, anomalies=False)
        assert len(_lint(result, "ipblock-cluster-range")) == expected, address


# --- namespaces with mixed isolation ------------------------------------------------------------


def test_mixed_isolation_is_named() -> None:
    result = _run(_np("backend", BACKEND_FROM_FRONTEND))
    mixed = [f for f in result.findings
             if f.category == "unprotected-pods" and f.namespace == "shop"
             and f.direction == "ingress"]
    assert mixed and "mixed isolation" in mixed[0].explanation
    assert "frontend" in mixed[0].explanation
