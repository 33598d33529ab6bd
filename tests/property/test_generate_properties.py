"""For any small configuration: exact size, every truth path observed, nothing else requested."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.generate import ATTACKS, ScenarioConfig, build_scenario, write_flows
from tests.unit.generate._helpers import path_key, requests

configs = st.builds(
    ScenarioConfig,
    seed=st.integers(0, 2**31),
    nodes=st.integers(1, 5),
    extra_namespaces=st.integers(0, 3),
    workloads_per_namespace=st.integers(1, 4),
    attacks=st.frozensets(st.sampled_from(ATTACKS)),
    dns_visibility=st.booleans(),
    policy_verdicts=st.booleans(),
    sweep_hosts=st.integers(1, 12),
    scan_ports=st.lists(st.integers(1, 65535), min_size=1, max_size=8, unique=True).map(tuple),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs)
def test_hubble_capture_matches_its_truth(config: ScenarioConfig) -> None:
    scenario = build_scenario(config)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "flows.jsonl"
        write_flows(scenario, out, "hubble", 10_000)
        lines = out.read_text().splitlines()
    assert len(lines) == 10_000
    seen = requests(scenario, lines)
    truth = scenario.truth()
    legit = {path_key(p) for p in truth["legit_paths"]}
    attack = {path_key(p) for p in truth["attack_paths"]}
    assert legit <= seen
    assert attack <= seen
    assert seen <= legit | attack
    assert bool(attack) == bool(config.attacks)
