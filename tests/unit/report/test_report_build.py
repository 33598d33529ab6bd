"""build_report on a generated capture (H2's seed world with the compromised debug pod)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_samples import hostile_capture

from analyzer.analysis import analyse
from analyzer.errors import PolicyError
from analyzer.report.build import build_report
from analyzer.report.model import ReportModel
from analyzer.report.render import render_report
from analyzer.store import ingest


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("capture")
    files = hostile_capture(base / "cluster", flows=10_000, seed=11)
    ingest(base / "store", [str(files["flows"])], progress=False)
    return {**files, "store": base / "store"}


@pytest.fixture(scope="module")
def model(capture: dict[str, Path]) -> ReportModel:
    return build_report(
        analyse(capture["store"], policies=capture["policies"], inventory=capture["inventory"])
    )


def test_summary_counts_flows_window_and_lost_events(model: ReportModel) -> None:
    s = model.summary
    assert s.flows == 10_000
    assert s.window_start is not None and s.window_end is not None
    assert s.window_start < s.window_end
    assert {"develop", "production", "kube-system"} <= set(s.namespaces)
    assert s.lost_events > 2  # events lost, as the two lost_events records of the capture say
    assert 0 < s.connections
    assert s.identities == len(model.graph.nodes)
    assert sum(n for _, n in s.findings_by_severity) == len(model.findings)


def test_graph_has_identities_dns_and_marks_the_attack(model: ReportModel) -> None:
    # nodes carry the names `analyzer graph` prints (less the namespace of their box)
    nodes = {n.label: n for n in model.graph.nodes}
    assert "app=debug" in nodes and nodes["app=debug"].namespace == "develop"
    assert "k8s-app=kube-dns" in nodes or "app=coredns" in nodes
    debug = nodes["app=debug"].key
    assert any(e.src == debug and e.anomalous for e in model.graph.edges)
    # Edges carry ports and every edge end is a node.
    keys = {n.key for n in model.graph.nodes}
    assert all(e.src in keys and e.dst in keys and e.ports for e in model.graph.edges)


def test_anomalies_left_out_are_the_debug_pod(model: ReportModel) -> None:
    assert model.anomalies
    assert all(a.score >= 0 for a in model.anomalies)
    assert (
        sum(a.src.startswith("develop/debug") for a in model.anomalies) >= len(model.anomalies) // 2
    )


def test_suspected_workloads_are_named(model: ReportModel) -> None:
    assert any(s.startswith("develop/debug looks compromised (") for s in model.suspects)
    html = render_report(model)
    assert "Suspected workloads" in html and "develop/debug looks compromised" in html


def test_sections_have_policies_evidence_and_diffs(model: ReportModel) -> None:
    by_ns = {s.namespace: s for s in model.sections}
    assert "develop" in by_ns and "production" in by_ns
    develop = by_ns["develop"]
    assert any(p.name == "default-deny" for p in develop.policies)
    ruled = [r for p in develop.policies for r in p.rules]
    assert ruled and all(r.connections > 0 and r.evidence for r in ruled)
    assert all("kind: NetworkPolicy" in p.yaml for p in develop.policies)
    assert develop.diff is not None and "+++ recommended/develop" in develop.diff


def test_audit_findings_and_coverage(model: ReportModel) -> None:
    assert model.findings
    codes = {f.code for f in model.findings}
    assert "missing-dns" in codes or "would-break" in codes or "broad-rule" in codes
    assert {c.namespace for c in model.summary.coverage} >= {"develop", "production"}
    develop = next(c for c in model.summary.coverage if c.namespace == "develop")
    assert develop.pods > 0 and develop.ingress_isolated is not None


def test_plan_has_rollout_rollback_and_probes(model: ReportModel) -> None:
    plan = model.plan
    assert plan.rollout and plan.rollback
    assert {p.expect for p in plan.probes} == {"allowed", "denied"}
    assert all(p.command.startswith("kubectl ") for p in plan.probes)


def test_namespace_scope_limits_graph_and_sections(capture: dict[str, Path]) -> None:
    scoped = build_report(analyse(capture["store"], namespaces=["production"]))
    assert [s.namespace for s in scoped.sections] == ["production"]
    assert scoped.findings == ()
    assert [(c.namespace, c.ingress_isolated) for c in scoped.summary.coverage][0][1] is None
    for e in scoped.graph.edges:
        ends = {n.namespace for n in scoped.graph.nodes if n.key in (e.src, e.dst)}
        assert "production" in ends


def test_missing_policies_path_is_a_policy_error(capture: dict[str, Path]) -> None:
    with pytest.raises(PolicyError):
        build_report(analyse(capture["store"], policies=capture["store"] / "nope.yaml"))
