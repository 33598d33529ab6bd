"""Inventory loading and the Cilium-specific model (entities, namespaces, default deny)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from analyzer.errors import InventoryError
from analyzer.k8s.inventory import load_inventory
from analyzer.policy.compile import compile_policies
from analyzer.policy.evaluate import Endpoint, evaluate
from analyzer.policy.load import LoadResult, parse_documents

KUBECTL = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "shop", "labels": {"team": "a"}},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {
                "nodeName": "n1",
                "containers": [
                    {
                        "name": "c",
                        "ports": [
                            {"name": "http", "containerPort": 8080},
                            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                        ],
                    }
                ],
            },
            "status": {"podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]},
        },
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ignored"}},
    ],
}


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_load_inventory(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"inv.{fmt}"
    path.write_text(json.dumps(KUBECTL) if fmt == "json" else yaml.safe_dump(KUBECTL))
    inv = load_inventory(path)
    pod = inv.pod("shop", "web-1")
    assert pod is not None and pod.node == "n1" and pod.ips == ("10.0.0.5", "fd00::5")
    assert pod.ports == {"http": ((8080, "TCP"),), "dns": ((53, "UDP"),)}
    assert inv.namespace_labels("shop") == {"team": "a", "kubernetes.io/metadata.name": "shop"}
    assert inv.pod_by_ip("fd00::5") is pod


def test_inventory_errors(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json: [")
    with pytest.raises(InventoryError, match="not valid JSON or YAML"):
        load_inventory(bad)
    empty = tmp_path / "empty.json"
    empty.write_text('{"kind": "List", "items": []}')
    with pytest.raises(InventoryError, match="no pods or namespaces"):
        load_inventory(empty)


def _compile(text: str) -> object:
    result = LoadResult()
    parse_documents(list(yaml.safe_load_all(text)), "c.yaml", result)
    assert not result.problems, [str(p) for p in result.problems]
    return compile_policies(result.policies)


def test_cilium_empty_ingress_rule_isolates_and_entities() -> None:
    compiled = _compile("""
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: lockdown, namespace: shop}
spec:
  endpointSelector: {}
  ingress: [{}]
  egress:
  - toEntities: [cluster]
  - toEndpoints: [{}]
""")
    a = Endpoint(namespace="shop", name="a", labels={"app": "a"})
    b = Endpoint(namespace="shop", name="b", labels={"app": "b"})
    other = Endpoint(namespace="other", name="c", labels={})
    world = Endpoint(kind="ip", ip="8.8.8.8", entity="world")
    host = Endpoint(kind="ip", ip="172.18.0.2", entity="kube-apiserver")
    assert not evaluate(compiled, other, a, 80).allowed  # type: ignore[arg-type]
    assert evaluate(compiled, a, other, 80).allowed  # type: ignore[arg-type]
    assert evaluate(compiled, a, host, 443).allowed  # type: ignore[arg-type]
    assert not evaluate(compiled, a, world, 443).allowed  # type: ignore[arg-type]
    verdict = evaluate(compiled, a, b, 80)  # type: ignore[arg-type]
    assert verdict.egress.allowed and not verdict.ingress.allowed
    assert [str(r) for r in verdict.egress.allowed_by] == [
        "shop/lockdown#egress[0]",
        "shop/lockdown#egress[1]",
    ]


def test_cilium_default_deny_disabled_does_not_isolate() -> None:
    compiled = _compile("""
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: soft, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: a}}
  enableDefaultDeny: {ingress: false}
  ingress:
  - fromEndpoints: [{matchLabels: {app: b}}]
""")
    a = Endpoint(namespace="shop", labels={"app": "a"})
    c = Endpoint(namespace="shop", labels={"app": "c"})
    assert evaluate(compiled, c, a, 80).allowed  # type: ignore[arg-type]


def test_clusterwide_policy_selects_across_namespaces() -> None:
    compiled = _compile("""
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: only-monitoring}
spec:
  endpointSelector: {matchLabels: {"io.cilium.k8s.namespace.labels.team": a}}
  ingress:
  - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": monitoring}}]
""")
    shop = Endpoint(namespace="shop", labels={"app": "a"}, namespace_labels={"team": "a"})
    other = Endpoint(namespace="misc", labels={"app": "a"}, namespace_labels={"team": "b"})
    mon = Endpoint(namespace="monitoring", labels={"app": "prom"})
    dev = Endpoint(namespace="dev", labels={"app": "prom"})
    assert evaluate(compiled, mon, shop, 9090).allowed  # type: ignore[arg-type]
    assert not evaluate(compiled, dev, shop, 9090).allowed  # type: ignore[arg-type]
    assert evaluate(compiled, dev, other, 9090).allowed  # type: ignore[arg-type]


def test_cilium_reserved_label_selector_is_an_entity() -> None:
    compiled = _compile("""
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: from-host, namespace: shop}
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints: [{matchLabels: {"reserved:remote-node": ""}}]
""")
    a = Endpoint(namespace="shop", labels={"app": "a"}, node="n1")
    remote = Endpoint(kind="ip", ip="172.18.0.3", entity="remote-node")
    world = Endpoint(kind="ip", ip="8.8.8.8", entity="world")
    assert evaluate(compiled, remote, a, 10250).allowed  # type: ignore[arg-type]
    assert not evaluate(compiled, world, a, 10250).allowed  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  "items:\n" + "".join(" " * (i + 1) + "- \n" for i in range(600))])
def test_deeply_nested_inventory_is_one_line_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "inventory.json"
    path.write_text(text)
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
