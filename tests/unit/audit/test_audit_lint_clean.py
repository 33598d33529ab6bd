"""No false lint findings on tight, correct policies: what ``analyzer recommend`` writes for a
generated cluster (several scenarios, both flavours) audits clean of every lint category."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.audit import audit
from analyzer.connections import derive_connections
from analyzer.generate import build_scenario, write_flows
from analyzer.generate.model import ScenarioConfig
from analyzer.ingest import read_flow_file
from analyzer.k8s.inventory import inventory_from_objects
from analyzer.policy.load import LoadResult, parse_documents
from analyzer.recommend import recommend

LINT = {"ignored-rules", "policy-types-defaulting", "metadata-egress", "risky-port",
        "no-effect-policy", "ipblock-cluster-range"}


@pytest.mark.parametrize(
    ("seed", "extra", "flavor"),
    [(7, 0, "kubernetes"), (7, 0, "cilium"), (11, 3, "kubernetes"), (23, 2, "cilium")],
)
def test_recommended_policies_have_no_lint_findings(
    tmp_path: Path, seed: int, extra: int, flavor: str
) -> None:
    scenario = build_scenario(ScenarioConfig(seed=seed, extra_namespaces=extra))
    flows_file = write_flows(scenario, tmp_path / "flows.jsonl", "hubble", 60_000)
    flows = read_flow_file(flows_file).frame
    connections = derive_connections(flows)
    rec = recommend(connections, flavor=flavor)
    loaded = LoadResult()
    parse_documents([dict(m) for m in rec.manifests], "recommended", loaded)
    assert not loaded.problems, loaded.problems[:3]
    inventory = inventory_from_objects(scenario.inventory()["items"])
    result = audit(
        loaded.policies, connections, inventory=inventory, anomalies=False,
        ipblock_mode="cilium" if flavor == "cilium" else "kubernetes",
        service_cidrs=["10.96.0.0/12"],
    )
    lint = [(f.category, f.policy, f.rule, f.explanation) for f in result.findings
            if f.category in LINT]
    assert not lint, lint
