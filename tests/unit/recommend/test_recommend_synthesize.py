"""Synthesis on the seed's develop namespace: the policies a reviewer would write by hand."""

from __future__ import annotations

from typing import Any

import pytest
from recommend_fixtures import (
    conn,
    entity,
    frame,
    groups_of,
    pod,
    seed_scenario,
    validate_manifest,
    world,
)

from analyzer.recommend.render import render
from analyzer.recommend.synthesize import SynthesisOptions, synthesize


def _by_name(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests}


@pytest.fixture(scope="module")
def seed() -> tuple[Any, dict[str, dict[str, Any]]]:
    conns, groups = seed_scenario()
    result = synthesize(conns, groups, ["develop"])
    return result, _by_name(render(result.policies))


def test_backend_ingress_is_at_least_as_tight_as_the_seed(seed: Any) -> None:
    _, docs = seed
    spec = docs["allow-backend-ingress"]["spec"]
    assert spec["podSelector"] == {
        "matchExpressions": [
            {"key": "app", "operator": "In", "values": ["backend", "backend-primary"]}
        ]
    }
    assert spec["policyTypes"] == ["Ingress"]
    web, scrape = spec["ingress"]
    assert web["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert web["from"] == [
        {"podSelector": {"matchExpressions": [
            {"key": "app", "operator": "In", "values": ["frontend", "frontend-primary"]}]}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}},
         "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}}},
    ]
    assert scrape["ports"] == [{"protocol": "TCP", "port": 9090}]
    assert scrape["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
         "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}},
    ]


def test_dns_guardrail_matches_the_seed(seed: Any) -> None:
    _, docs = seed
    spec = docs["allow-dns-egress"]["spec"]
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Egress"]
    (rule,) = spec["egress"]
    ks = {"kubernetes.io/metadata.name": "kube-system"}
    assert rule["to"] == [
        {"namespaceSelector": {"matchLabels": ks},
         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
        {"namespaceSelector": {"matchLabels": ks},
         "podSelector": {"matchLabels": {"app.kubernetes.io/name": "coredns"}}},
    ]
    assert rule["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def test_default_deny_comes_last_and_isolates_both_directions(seed: Any) -> None:
    result, docs = seed
    assert result.policies[-1].name == "default-deny"
    assert result.policies[0].name == "allow-dns-egress"
    assert docs["default-deny"]["spec"] == {
        "podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_dns_traffic_is_left_to_the_guardrail_and_host_probes_get_no_rule(seed: Any) -> None:
    result, docs = seed
    text = repr([d["spec"] for n, d in docs.items() if n != "allow-dns-egress"])
    assert "kube-system" not in text and "53" not in text
    assert "172.18.0.3" not in text  # the node's kubelet: no ipBlock for it
    assert any("kubelet probes" in n.message and "need no rule" in n.message
               for n in result.notes)


def test_external_and_apiserver_egress_are_single_addresses(seed: Any) -> None:
    _, docs = seed
    egress = docs["allow-backend-egress"]["spec"]["egress"]
    assert {"to": [{"ipBlock": {"cidr": "140.82.112.3/32"}}],
            "ports": [{"protocol": "TCP", "port": 443}]} in egress
    assert {"to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}],
            "ports": [{"protocol": "TCP", "port": 6443}]} in egress


def test_denied_flows_never_become_allows_and_idle_workloads_are_named(seed: Any) -> None:
    result, docs = seed
    assert "production" not in repr([d["spec"] for d in docs.values()])
    assert "allow-debug-egress" not in docs
    warnings = [n.message for n in result.notes if n.level == "warning"]
    assert any("app=debug" in w and "isolates it completely" in w for w in warnings)


def test_every_rule_carries_evidence(seed: Any) -> None:
    import json

    _, docs = seed
    ann = docs["allow-backend-ingress"]["metadata"]["annotations"]
    assert ann["analyzer.io/connections"] == "24"
    start, end = ann["analyzer.io/observed-window"].split("/")
    assert start.startswith("2026-11-01T12:00") and end > start
    evidence = json.loads(ann["analyzer.io/evidence"])
    assert [e["rule"] for e in evidence] == ["ingress[0]", "ingress[1]"]
    assert evidence[0]["connections"] == 18 and evidence[0]["ports"] == ["TCP/8080"]
    assert evidence[0]["examples"] and "-> develop/backend" in evidence[0]["examples"][0]
    assert evidence[0]["examples"][0].endswith("seen on node-1")
    assert evidence[0]["first_seen"] and evidence[0]["last_seen"]


def test_all_manifests_validate(seed: Any) -> None:
    _, docs = seed
    for doc in docs.values():
        validate_manifest(doc)


def test_ipv6_is_128_and_prefix_widens_ipv4_only() -> None:
    app = pod("develop", app="app")
    rows = [conn(app, world("2001:db8::7"), 443), conn(app, world("93.184.216.34"), 443),
            conn(app, world("93.184.216.99"), 443)]
    groups = groups_of([app])
    plain = _by_name(render(synthesize(frame(rows), groups, ["develop"]).policies))
    cidrs = [p["ipBlock"]["cidr"] for r in plain["allow-app-egress"]["spec"]["egress"]
             for p in r["to"]]
    assert cidrs == ["2001:db8::7/128", "93.184.216.34/32", "93.184.216.99/32"]
    wide = synthesize(frame(rows), groups, ["develop"], SynthesisOptions(ipblock_prefix=24))
    docs = _by_name(render(wide.policies))
    cidrs = [p["ipBlock"]["cidr"] for r in docs["allow-app-egress"]["spec"]["egress"]
             for p in r["to"]]
    assert cidrs == ["2001:db8::7/128", "93.184.216.0/24"]


def test_peers_with_different_ports_stay_in_separate_rules() -> None:
    a, b, c = pod("ns1", app="a"), pod("ns1", app="b"), pod("ns1", app="c")
    rows = [conn(a, c, 80), conn(b, c, 81)]
    docs = _by_name(render(synthesize(frame(rows), groups_of([a, b, c]), ["ns1"]).policies))
    ingress = docs["allow-c-ingress"]["spec"]["ingress"]
    # a may reach 80 only and b 81 only: never a cross product {a,b} x {80,81}
    assert [(r["from"][0]["podSelector"]["matchLabels"]["app"], r["ports"][0]["port"])
            for r in ingress] == [("a", 80), ("b", 81)]


def test_cross_namespace_peers_are_one_element_and_merge_namespaces() -> None:
    dst = pod("shop", app="api")
    s1, s2 = pod("team-a", app="client"), pod("team-b", app="client")
    rows = [conn(s1, dst, 443), conn(s2, dst, 443)]
    docs = _by_name(render(synthesize(frame(rows), groups_of([dst, s1, s2]), ["shop"]).policies))
    (rule,) = docs["allow-api-ingress"]["spec"]["ingress"]
    assert rule["from"] == [{
        "namespaceSelector": {"matchExpressions": [{
            "key": "kubernetes.io/metadata.name", "operator": "In",
            "values": ["team-a", "team-b"]}]},
        "podSelector": {"matchLabels": {"app": "client"}},
    }]


def test_icmp_is_reported_not_allowed() -> None:
    a, b = pod("ns1", app="a"), pod("ns1", app="b")
    result = synthesize(frame([conn(a, b, None, "ICMPv4")]), groups_of([a, b]), ["ns1"])
    assert [p.name for p in result.policies] == ["allow-dns-egress", "default-deny"]
    assert any("ICMPv4" in n.message for n in result.notes)
    assert result.uncovered.height == 2


def test_apiserver_and_fqdns_in_cilium_mode() -> None:
    a = pod("ns1", app="a")
    rows = [conn(a, entity("kube-apiserver", "10.96.0.1"), 443),
            conn(a, world("140.82.112.3", "api.github.com"), 443)]
    result = synthesize(frame(rows), groups_of([a]), ["ns1"], SynthesisOptions(cilium=True))
    docs = _by_name(render(result.policies, "cilium"))
    egress = docs["allow-a-egress"]["spec"]["egress"]
    kinds = sorted(k for r in egress for k in r if k != "toPorts")
    assert kinds == ["toEntities", "toFQDNs"]
    assert {"toFQDNs": [{"matchName": "api.github.com"}],
            "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]} in egress
    assert any(r.get("toEntities") == ["kube-apiserver"] for r in egress)


@pytest.mark.parametrize(
    "hostile",
    ["<script>alert(1)</script>.evil.com", "evil.com\n- toEntities: [all]", "a..b", "x" * 300,
     "ends-with-dash-.com", ""],
)
def test_invalid_dns_name_is_skipped_with_a_warning_not_fatal(hostile: str) -> None:
    # issue 16 item 14: one bad name from an untrusted flow must not abort the Cilium flavour.
    a = pod("ns1", app="a")
    rows = [conn(a, world("140.82.112.3", "api.github.com"), 443),
            conn(a, world("203.0.113.9", hostile), 443),
            conn(a, world("198.51.100.7", "ok.example.org", hostile), 8443)]
    result = synthesize(frame(rows), groups_of([a]), ["ns1"], SynthesisOptions(cilium=True))
    docs = _by_name(render(result.policies, "cilium"))  # raised VerificationError before
    egress = docs["allow-a-egress"]["spec"]["egress"]
    names = sorted(m["matchName"] for r in egress for m in r.get("toFQDNs", ()))
    assert names == ["api.github.com", "ok.example.org"]
    cidrs = [c["cidr"] for r in egress for c in r.get("toCIDRSet", ())]
    assert cidrs == ["203.0.113.9/32"]  # the address rule stays for the refused name
    warnings = [n.message for n in result.notes if n.level == "warning"]
    assert sum("is not a DNS name" in w and "skipped" in w for w in warnings) == 2
    assert all("\n" not in w for w in warnings)


def test_calico_aggregated_public_destination_is_a_flagged_port_restricted_block() -> None:
    app = pod("develop", app="app")
    public = entity("public-network")
    probes = entity("private-network")
    rows = [conn(app, public, 443), conn(probes, app, 8080), conn(public, app, 8443),
            conn(app, entity("private-network"), 6443)]
    result = synthesize(frame(rows), groups_of([app]), ["develop"])
    docs = _by_name(render(result.policies))
    public_block = {"ipBlock": {"cidr": "0.0.0.0/0",
                                "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}
    assert docs["allow-app-egress"]["spec"]["egress"] == [
        {"to": [public_block], "ports": [{"protocol": "TCP", "port": 443}]},
        {"to": [{"ipBlock": {"cidr": c}} for c in ("10.0.0.0/8", "172.16.0.0/12",
                                                   "192.168.0.0/16")],
         "ports": [{"protocol": "TCP", "port": 6443}]},
    ]
    # public clients of an ingress controller: the public ranges on the observed port only
    assert docs["allow-app-ingress"]["spec"]["ingress"] == [
        {"from": [public_block], "ports": [{"protocol": "TCP", "port": 8443}]}]
    warnings = " ".join(n.message for n in result.notes if n.level == "warning")
    assert "public address ranges are allowed on this port only" in warnings
    assert "private address ranges" in warnings and "kubelet probes" in warnings
    # none can be replayed without addresses: all are excluded from verification
    assert result.uncovered.height == 4
    cilium = synthesize(frame(rows), groups_of([app]), ["develop"], SynthesisOptions(cilium=True))
    egress = _by_name(render(cilium.policies, "cilium"))["allow-app-egress"]["spec"]["egress"]
    assert {"toEntities": ["world"],
            "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]} in egress
    # a Cilium entity without addresses never renders as an empty (= any) Kubernetes peer list
    k8s = _by_name(render(cilium.policies, "kubernetes"))["allow-app-egress"]["spec"]["egress"]
    assert all(rule["to"] for rule in k8s)


def test_ingress_merges_loosely_only_groups_serving_the_same_ports() -> None:
    client = pod("shop", app="client")
    web, web2, api = pod("shop", app="web"), pod("shop", app="web-canary"), pod("shop", app="api")
    rows = [conn(client, web, 8080), conn(client, api, 9000), conn(web, web2, 8080)]
    docs = _by_name(render(synthesize(frame(rows), groups_of([client, web, web2, api]),
                                      ["shop"]).policies))
    # web and web-canary both serve 8080 to callers of this namespace: one policy
    assert "allow-web-ingress" in docs
    assert docs["allow-web-ingress"]["spec"]["podSelector"]["matchExpressions"][0]["values"] == [
        "web", "web-canary"]
    # api serves 9000: it keeps its own policy even though its callers are also internal
    assert docs["allow-api-ingress"]["spec"]["podSelector"] == {"matchLabels": {"app": "api"}}
