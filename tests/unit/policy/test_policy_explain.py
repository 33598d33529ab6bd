"""`explain` sentences, read as a person would."""

from __future__ import annotations

from typing import Any

import yaml

from analyzer.policy.compile import compile_policies
from analyzer.policy.evaluate import Endpoint
from analyzer.policy.explain import explain
from analyzer.policy.load import LoadResult, parse_documents


def _compiled(text: str, mode: str = "kubernetes") -> Any:
    result = LoadResult()
    parse_documents(list(yaml.safe_load_all(text)), "t.yaml", result)
    assert not result.problems, result.problems
    return compile_policies(result.policies, ipblock_mode=mode)


POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: a}}
      podSelector: {matchLabels: {app: api}}
    ports: [{port: 5432}]
  - from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.9.0.0/16]}}]
    ports: [{port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress, namespace: dev}
spec:
  podSelector: {}
  policyTypes: [Egress]
"""
DB = Endpoint(namespace="prod", name="db", labels={"app": "db"}, namespace_labels={"team": "a"})


def test_allowed_names_the_rule() -> None:
    api = Endpoint(
        namespace="prod", name="api", labels={"app": "api"}, namespace_labels={"team": "a"}
    )
    text = explain(_compiled(POLICIES), api, DB, 5432).text()
    assert text.splitlines()[0] == "ALLOWED: prod/api -> prod/db TCP 5432"
    assert "its rule ingress[0] admits pods with app=api in namespaces with team=a on TCP 5432" in (
        text
    )
    assert "which matches" in text


def test_denied_wrong_namespace_labels() -> None:
    api = Endpoint(
        namespace="qa", name="api", labels={"app": "api"}, namespace_labels={"team": "b"}
    )
    text = explain(_compiled(POLICIES), api, DB, 5432).text()
    assert text.startswith("DENIED")
    assert "but the source's namespace qa has team=b" in text
    assert "no ingress rule admits qa/api on TCP 5432, so it is denied" in text


def test_denied_by_except_for_ip() -> None:
    ip = Endpoint(kind="ip", ip="10.9.1.1", entity="world")
    text = explain(_compiled(POLICIES), ip, DB, 5432).text()
    assert "its rule ingress[1] admits addresses in 10.0.0.0/8 except 10.9.0.0/16" in text
    assert "10.9.1.1 is excluded by the except list (10.9.0.0/16)" in text


def test_policy_without_rules_denies_everything() -> None:
    dev = Endpoint(namespace="dev", name="x", labels={})
    text = explain(_compiled(POLICIES), dev, DB, 5432).text()
    assert "egress: DENIED" in text
    assert (
        "policy dev/deny-egress selects the source for egress and has no egress rules, "
        "so it allows no egress at all"
    ) in text


def test_cilium_mode_explains_ipblock_scope() -> None:
    pod = Endpoint(namespace="prod", name="p", labels={"app": "x"}, ip="10.1.1.1")
    text = explain(_compiled(POLICIES, mode="cilium"), pod, DB, 5432).text()
    assert "ipBlock applies only to external addresses" in text


def test_json_has_both_directions() -> None:
    outside = Endpoint(kind="ip", ip="1.1.1.1")
    data = explain(_compiled(POLICIES), outside, DB, 5432, "tcp").to_dict()
    assert data["protocol"] == "TCP" and data["allowed"] is False
    assert data["egress"]["applies"] is False
    assert data["ingress"]["selecting"] == ["prod/db"]
