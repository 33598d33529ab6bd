"""data/sample/ is exactly what the generator writes today (content, not gzip bytes)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml

from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from analyzer.generate.policies import existing_policies_yaml, policies_truth

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"
pytestmark = pytest.mark.skipif(not SAMPLE.is_dir(), reason="data/sample is not in this checkout")


@pytest.mark.parametrize(
    ("fmt", "flows", "lost"),
    [("hubble", 10_000, 2), ("calico", 800, 0), ("goldmane", 800, 0),
     ("goldmane-emitter", 800, 0), ("whisker", 800, 0)],
)  # fmt: skip
def test_flow_files_match_the_generator(tmp_path: Path, fmt: str, flows: int, lost: int) -> None:
    scenario = build_scenario(ScenarioConfig(seed=7, lost_events=lost))
    fresh = write_flows(scenario, tmp_path / "flows.jsonl", fmt, flows).read_bytes()
    with gzip.open(SAMPLE / f"{fmt}-flows.jsonl.gz", "rb") as fh:
        shipped = fh.read()
    assert shipped == fresh


def test_cluster_files_match_the_generator() -> None:
    scenario = build_scenario(ScenarioConfig(seed=7, lost_events=2))
    assert json.loads((SAMPLE / "inventory.json").read_text()) == scenario.inventory()
    assert json.loads((SAMPLE / "truth.json").read_text()) == scenario.truth()
    assert json.loads((SAMPLE / "policies-truth.json").read_text()) == policies_truth(scenario)
    shipped = yaml.safe_load((SAMPLE / "existing-policies.yaml").read_text())
    assert shipped == yaml.safe_load(existing_policies_yaml(scenario))
