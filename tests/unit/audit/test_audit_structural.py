"""Structural breadth, redundancy proofs and selector containment on small hand-written rules."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from analyzer.audit.redundancy import find_covers, selector_subset
from analyzer.audit.structural import rule_breadth
from analyzer.policy.load import LoadResult, parse_documents
from analyzer.policy.model import LabelRequirement, LabelSelector, NetworkPolicy


def _policy(spec: dict[str, Any], name: str = "p", ns: str = "shop") -> NetworkPolicy:
    doc = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }
    loaded = LoadResult()
    parse_documents([doc], "test", loaded)
    assert not loaded.problems, loaded.problems
    return loaded.policies[0]


def _codes(spec: dict[str, Any], direction: str = "ingress") -> set[str]:
    pol = _policy(spec)
    rules = pol.ingress if direction == "ingress" else pol.egress
    return {r.code for r in rule_breadth(pol, direction, rules[0])}


TIGHT = {"podSelector": {"matchLabels": {"app": "frontend"}}}
PORT = [{"protocol": "TCP", "port": 8080}]


@pytest.mark.parametrize(
    ("rule", "codes"),
    [
        ({"from": [TIGHT], "ports": PORT}, set()),
        ({"ports": PORT}, {"any-peer"}),
        ({"from": [], "ports": PORT}, {"any-peer"}),
        ({"from": [TIGHT]}, {"all-ports"}),
        ({"from": [{"namespaceSelector": {}}], "ports": PORT}, {"all-namespaces"}),
        (
            {"from": [{"namespaceSelector": {}, "podSelector": TIGHT["podSelector"]}],
             "ports": PORT},
            {"any-namespace"},
        ),
        ({"from": [{"podSelector": {}}], "ports": PORT}, {"all-pods"}),
        (
            {"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}], "ports": PORT},
            {"namespace-only"},
        ),
        ({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": PORT}, {"any-ip"}),
        ({"from": [{"ipBlock": {"cidr": "::/0"}}], "ports": PORT}, {"any-ip"}),
        ({"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": PORT}, {"large-private-range"}),
        ({"from": [{"ipBlock": {"cidr": "192.168.0.0/16"}}], "ports": PORT},
         {"large-private-range"}),
        ({"from": [{"ipBlock": {"cidr": "10.1.2.0/24"}}], "ports": PORT}, set()),
        ({"from": [{"ipBlock": {"cidr": "203.0.113.7/32"}}], "ports": PORT}, set()),
        ({"from": [TIGHT], "ports": [{"protocol": "TCP", "port": 1, "endPort": 65535}]},
         {"wide-port-range"}),
        ({"from": [TIGHT], "ports": [{"protocol": "TCP", "port": 8000, "endPort": 8010}]}, set()),
    ],
)
def test_structural_breadth(rule: dict[str, Any], codes: set[str]) -> None:
    assert _codes({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [rule]}) == codes


def test_world_ingress_is_high_and_egress_medium() -> None:
    world = [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    ing = _policy({"podSelector": {}, "ingress": [{"from": world, "ports": PORT}]})
    eg = _policy({"podSelector": {}, "policyTypes": ["Egress"],
                  "egress": [{"to": world, "ports": PORT}]})
    assert rule_breadth(ing, "ingress", ing.ingress[0])[0].severity == "high"
    assert rule_breadth(eg, "egress", eg.egress[0])[0].severity == "medium"


def test_seed_dns_guardrail_is_not_broad() -> None:
    seed = yaml.safe_load(
        """
        podSelector: {}
        policyTypes: [Egress]
        egress:
        - to:
          - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
            podSelector: {matchLabels: {k8s-app: kube-dns}}
          ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
        """
    )
    assert _codes(seed, "egress") == set()


def _sel(labels: dict[str, str] | None = None, *exprs: LabelRequirement) -> LabelSelector:
    return LabelSelector(tuple(sorted((labels or {}).items())), tuple(exprs))


@pytest.mark.parametrize(
    ("a", "b", "subset"),
    [
        (_sel({"app": "x"}), _sel(), True),
        (_sel(), _sel({"app": "x"}), False),
        (_sel({"app": "x", "tier": "web"}), _sel({"app": "x"}), True),
        (_sel({"app": "x"}), _sel({"app": "x", "tier": "web"}), False),
        (_sel({"app": "x"}), _sel(None, LabelRequirement("app", "In", ("x", "y"))), True),
        (_sel(None, LabelRequirement("app", "In", ("x", "y"))), _sel({"app": "x"}), False),
        (_sel({"app": "x"}), _sel(None, LabelRequirement("app", "Exists")), True),
        (_sel({"app": "x"}), _sel(None, LabelRequirement("app", "NotIn", ("y",))), True),
        (_sel({"app": "y"}), _sel(None, LabelRequirement("app", "NotIn", ("y",))), False),
        (_sel(None, LabelRequirement("app", "DoesNotExist")),
         _sel(None, LabelRequirement("app", "NotIn", ("y",))), True),
    ],
)
def test_selector_subset(a: LabelSelector, b: LabelSelector, subset: bool) -> None:
    assert selector_subset(a, b) is subset


def _covers(*specs: dict[str, Any]) -> set[tuple[str, int, str, int]]:
    pols = [_policy(s, name=f"p{i}") for i, s in enumerate(specs)]
    return {
        (c.policy.name, c.index, c.by_policy.name, c.by_index)
        for c in find_covers(pols, {"shop": {"kubernetes.io/metadata.name": "shop"}})
    }


def test_redundancy_subset_rule_is_covered() -> None:
    wide = {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchExpressions": [
                {"key": "app", "operator": "In", "values": ["api", "worker"]}]}}],
                "ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 9187}]}]}
    narrow = {"podSelector": {"matchLabels": {"app": "db", "tier": "data"}},
              "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                           "ports": [{"protocol": "TCP", "port": 5432}]}]}
    assert _covers(wide, narrow) == {("p1", 0, "p0", 0)}


@pytest.mark.parametrize(
    "narrow_rule",
    [
        # another port
        {"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
         "ports": [{"protocol": "TCP", "port": 5433}]},
        # UDP instead of TCP
        {"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
         "ports": [{"protocol": "UDP", "port": 5432}]},
        # a peer in another namespace
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}},
                   "podSelector": {"matchLabels": {"app": "api"}}}],
         "ports": [{"protocol": "TCP", "port": 5432}]},
        # all ports
        {"from": [{"podSelector": {"matchLabels": {"app": "api"}}}]},
        # an address range
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
         "ports": [{"protocol": "TCP", "port": 5432}]},
    ],
)
def test_redundancy_is_conservative(narrow_rule: dict[str, Any]) -> None:
    wide = {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                         "ports": [{"protocol": "TCP", "port": 5432}]}]}
    narrow = {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [narrow_rule]}
    assert ("p1", 0, "p0", 0) not in _covers(wide, narrow)


def test_redundancy_respects_ipblock_except() -> None:
    wide = {"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}]}
    inside = {"podSelector": {}, "policyTypes": ["Egress"],
              "egress": [{"to": [{"ipBlock": {"cidr": "10.2.0.0/16"}}]}]}
    hole = {"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.1.2.0/24"}}]}]}
    covers = _covers(wide, inside, hole)
    assert ("p1", 0, "p0", 0) in covers
    assert ("p2", 0, "p0", 0) not in covers


def test_redundancy_own_namespace_vs_namespace_selector() -> None:
    by_name = {"podSelector": {}, "ingress": [{"from": [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
        "podSelector": {"matchLabels": {"app": "web"}}}]}]}
    own = {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels":
                                                                      {"app": "web"}}}]}]}
    covers = _covers(by_name, own)
    assert ("p1", 0, "p0", 0) in covers
    assert ("p0", 0, "p1", 0) in covers  # identical in effect both ways
