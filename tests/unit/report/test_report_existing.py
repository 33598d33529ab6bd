"""Existing policies: normalised manifests per namespace, YAML for the diff, coverage."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from analyzer.errors import PolicyError
from analyzer.policy.compile import compile_policies
from analyzer.policy.load import load_policies
from analyzer.report.existing import coverage_rows, manifests_by_namespace, manifests_yaml

POLICIES = """\
apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: backend-in, namespace: web, resourceVersion: "12"}
  spec:
    podSelector: {matchLabels: {app: backend}}
    policyTypes: [Ingress]
    ingress:
    - from: [{podSelector: {matchLabels: {app: frontend}}}]
      ports: [{protocol: TCP, port: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: all-egress, namespace: web}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-policy}
"""


def _conns() -> pl.DataFrame:
    def row(sp: str, sl: str, dp: str, dl: str, port: int, n: int) -> dict[str, object]:
        return {
            "src_namespace": "web",
            "src_pod": sp,
            "src_labels": [sl],
            "src_entity": "pod",
            "src_namespace_labels": ["team=a"],
            "src_ip": "10.0.0.1",
            "src_node": "n1",
            "dst_namespace": "web",
            "dst_pod": dp,
            "dst_labels": [dl],
            "dst_entity": "pod",
            "dst_namespace_labels": ["team=a"],
            "dst_ip": "10.0.0.2",
            "dst_node": "n1",
            "protocol": "TCP",
            "dst_port": port,
            "connections": n,
        }

    return pl.DataFrame(
        [
            row("fe-1", "app=frontend", "be-1", "app=backend", 8080, 5),
            row("fe-2", "app=frontend", "be-1", "app=backend", 9999, 2),
            row("fe-1", "app=frontend", "cache-1", "app=cache", 6379, 1),
        ],
        schema_overrides={"dst_port": pl.Int32},
    )


def test_manifests_grouped_normalised_and_sorted(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICIES)
    by_ns = manifests_by_namespace(load_policies(tmp_path).documents)
    assert list(by_ns) == ["web"]
    assert [m["metadata"]["name"] for m in by_ns["web"]] == ["all-egress", "backend-in"]
    assert "resourceVersion" not in manifests_yaml(by_ns["web"])
    assert manifests_yaml(by_ns["web"]).count("kind: NetworkPolicy") == 2


def test_missing_and_broken_files_raise(tmp_path: Path) -> None:
    with pytest.raises(PolicyError):
        load_policies(tmp_path / "nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    with pytest.raises(PolicyError):
        load_policies(bad)


def test_coverage_counts_isolated_pods_and_verdicts(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICIES)
    compiled = compile_policies(load_policies(tmp_path).policies)
    rows = coverage_rows(compiled, _conns())
    assert len(rows) == 1
    web = rows[0]
    # 4 pods: fe-1, fe-2, be-1, cache-1; only be-1 is selected for ingress; all for egress.
    assert (web.namespace, web.pods, web.ingress_isolated, web.egress_isolated) == ("web", 4, 1, 4)
    # 8080 from frontend allowed (5); 9999 to backend denied (2); cache is open (1).
    assert (web.allowed, web.denied) == (6, 2)


def test_coverage_without_policies_counts_pods_only() -> None:
    rows = coverage_rows(None, _conns())
    assert [(r.namespace, r.pods, r.ingress_isolated, r.allowed) for r in rows] == [
        ("web", 4, None, None)
    ]
