"""The inventory is shaped like `kubectl get pods,namespaces -A -o json`; truth and policies."""

from __future__ import annotations

import ipaddress

import yaml

from analyzer.generate import ScenarioConfig, build_scenario
from analyzer.generate.policies import blocked_paths, existing_policies_yaml, policies_truth


def test_inventory_is_a_kubectl_list() -> None:
    s = build_scenario(ScenarioConfig(seed=2))
    inv = s.inventory()
    assert inv["kind"] == "List" and inv["apiVersion"] == "v1"
    pods = [i for i in inv["items"] if i["kind"] == "Pod"]
    namespaces = [i for i in inv["items"] if i["kind"] == "Namespace"]
    assert len(pods) == len(s.pods)
    assert {n["metadata"]["name"] for n in namespaces} == {
        "develop",
        "traefik",
        "kube-system",
        "production",
        "monitoring",
    }
    for ns in namespaces:
        assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == ns["metadata"]["name"]
    ips = set()
    for pod in pods:
        md, spec, status = pod["metadata"], pod["spec"], pod["status"]
        assert md["namespace"] and md["name"] and md["labels"]
        assert spec["nodeName"].startswith("worker-")
        assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network("10.244.0.0/16")
        ips.add(status["podIP"])
        for c in spec["containers"]:
            for port in c.get("ports", []):
                assert set(port) == {"containerPort", "name", "protocol"}
    assert len(ips) == len(pods)  # stable, unique pod IPs
    backend = [p for p in pods if p["metadata"]["labels"].get("app") == "backend"]
    assert backend and all("pod-template-hash" in p["metadata"]["labels"] for p in backend)
    assert backend[0]["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    coredns = [p for p in pods if p["metadata"]["labels"].get("k8s-app") == "kube-dns"]
    assert coredns and coredns[0]["metadata"]["namespace"] == "kube-system"
    debug = [p for p in pods if p["metadata"]["name"] == "debug"]
    assert debug and debug[0]["metadata"]["labels"] == {"app": "debug"}


def test_extra_namespaces_scale_identities() -> None:
    s = build_scenario(ScenarioConfig(seed=2, extra_namespaces=50, workloads_per_namespace=5))
    identities = {w.identity for w in s.workloads}
    assert len(identities) == len(s.workloads) >= 250
    assert len({p.ip for p in s.pods}) == len(s.pods)
    assert sum(ns.name.startswith("extra-") for ns in s.namespaces) == 50


def test_policies_yaml_is_a_kubectl_list_with_the_seed_policy() -> None:
    s = build_scenario(ScenarioConfig(seed=2))
    doc = yaml.safe_load(existing_policies_yaml(s))
    assert doc["kind"] == "List"
    names = {f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in doc["items"]}
    assert "develop/allow-backend-ingress" in names
    seed = next(i for i in doc["items"] if i["metadata"]["name"] == "allow-backend-ingress")
    assert seed["spec"]["ingress"][1]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}
    ]


def test_policy_truth_names_every_planted_category_and_consistent_breaks() -> None:
    s = build_scenario(ScenarioConfig(seed=2, extra_namespaces=2))
    truth = policies_truth(s)
    categories = {p["category"] for p in truth["problems"]}
    assert categories == {
        "unused-policy",
        "unused-rule",
        "broad",
        "redundant",
        "missing-dns",
        "would-break",
        "no-default-deny",
    }
    flagged = {(p["policy"], p["rule"]) for p in truth["problems"]}
    for clean in truth["clean"]:
        for rule in clean["rules"]:
            assert (clean["policy"], rule) not in flagged
            assert f"{clean['policy']}#{rule}" in truth["used_rules"]
    assert "production/allow-db-ingress#ingress[1]" not in truth["used_rules"]
    breaks = {b for p in truth["problems"] for b in p.get("breaks", [])}
    assert breaks == {p.id for p in blocked_paths(s)}
    assert "traefik/traefik->develop/backend:TCP/8080" in breaks
    assert "traefik/traefik->extra-001/svc-0:TCP/8080" in breaks
    assert "monitoring/prometheus->kube-system/coredns:UDP/53" in breaks
    # The proposed policies stop the lateral movement to the database.
    assert "lateral:develop/debug->production/postgres:TCP/5432" in truth["attack_paths_denied"]
