"""Hubble output of the generator: shape, determinism, size, and agreement with the truth."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from analyzer.errors import UsageError
from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from tests.unit.generate._helpers import path_key, requests

FLOWS = 12_000


@pytest.fixture(scope="module")
def scenario():  # type: ignore[no-untyped-def]
    return build_scenario(ScenarioConfig(seed=3, lost_events=3))


@pytest.fixture(scope="module")
def hubble_file(tmp_path_factory, scenario) -> Path:  # type: ignore[no-untyped-def]
    return write_flows(scenario, tmp_path_factory.mktemp("h") / "flows.jsonl", "hubble", FLOWS)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_exact_number_of_flow_lines_plus_lost_events(hubble_file: Path) -> None:
    objs = [json.loads(line) for line in _lines(hubble_file)]
    assert sum("flow" in o for o in objs) == FLOWS
    lost = [o for o in objs if "lost_events" in o]
    assert len(lost) == 3
    assert all(set(o) == {"lost_events", "node_name", "time"} for o in lost)
    assert all(int(o["lost_events"]["num_events_lost"]) > 0 for o in lost)


def test_envelope_and_field_shapes(hubble_file: Path) -> None:
    for line in _lines(hubble_file):
        obj = json.loads(line)
        if "flow" not in obj:
            continue
        assert set(obj) == {"flow", "node_name", "time"}
        flow = obj["flow"]
        assert flow["time"] == obj["time"] and flow["node_name"] == obj["node_name"]
        assert flow["time"].endswith("Z") and len(flow["uuid"]) == 36
        assert flow["Type"] in ("L3_L4", "L7")
        assert flow["verdict"] in ("FORWARDED", "DROPPED")
        assert obj["node_name"].startswith("worker-")
        for side in ("source", "destination"):
            ep = flow[side]
            assert ep["labels"] == sorted(ep["labels"])
            if "pod_name" in ep:
                assert "k8s:io.cilium.k8s.policy.cluster=default" in ep["labels"]
                assert f"k8s:io.kubernetes.pod.namespace={ep['namespace']}" in ep["labels"]
                assert not any("pod-template-hash" in label for label in ep["labels"])
        if flow["verdict"] == "DROPPED":
            assert "is_reply" not in flow and "drop_reason_desc" in flow
        if "ethernet" in flow:
            assert set(flow["ethernet"]) == {"source", "destination"}


def test_connection_shapes_are_realistic(hubble_file: Path) -> None:
    flows = [json.loads(line)["flow"] for line in _lines(hubble_file) if '"flow"' in line[:8]]
    points = {
        (f.get("trace_observation_point"), f.get("traffic_direction"), f.get("is_reply"))
        for f in flows
        if f["event_type"]["type"] == 4
    }
    assert ("TO_OVERLAY", "EGRESS", False) in points
    assert ("TO_ENDPOINT", "INGRESS", False) in points
    assert ("TO_ENDPOINT", "EGRESS", True) in points
    assert ("TO_OVERLAY", None, None) in points  # reply leg with unknown direction
    synack = [f for f in flows if f["l4"].get("TCP", {}).get("flags") == {"SYN": True, "ACK": True}]
    assert synack and all(f.get("is_reply") is not False for f in synack)
    assert all(f["l4"]["TCP"]["destination_port"] >= 32768 for f in synack)
    types = {f["event_type"]["type"] for f in flows}
    assert types >= {1, 4, 5, 129}
    dns = [f for f in flows if f["Type"] == "L7"]
    assert all(f["l7"]["dns"]["query"].endswith(".") for f in dns)
    assert any(f.get("destination_names") == ["api.stripe.com"] for f in flows)
    drops = [f for f in flows if f.get("drop_reason_desc") == "POLICY_DENIED"]
    assert drops and all(f["destination"]["namespace"] == "develop" for f in drops)
    probes = [f for f in flows if f["source"].get("labels") == ["reserved:host"]]
    assert probes and all(f["source"]["identity"] == 1 for f in probes)


def test_every_truth_path_appears_as_a_request(scenario, hubble_file: Path) -> None:  # type: ignore[no-untyped-def]
    seen = requests(scenario, _lines(hubble_file))
    truth = scenario.truth()
    missing = [p["id"] for p in truth["legit_paths"] if path_key(p) not in seen]
    assert not missing
    attack_keys = {path_key(p) for p in truth["attack_paths"]}
    assert attack_keys <= seen
    legit_keys = {path_key(p) for p in truth["legit_paths"]}
    # Nothing else makes requests: every request is a legit or an attack path.
    assert seen <= legit_keys | attack_keys


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    def digest(seed: int, name: str) -> str:
        s = build_scenario(ScenarioConfig(seed=seed))
        out = write_flows(s, tmp_path / name, "hubble", 10_000)
        return hashlib.sha256(out.read_bytes()).hexdigest()

    assert digest(5, "a.jsonl") == digest(5, "b.jsonl")
    assert digest(5, "c.jsonl.gz") == digest(5, "d.jsonl.gz")
    assert digest(5, "e.jsonl") != digest(6, "f.jsonl")


def test_too_few_flows_is_a_usage_error(scenario, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="too small"):
        write_flows(scenario, tmp_path / "x.jsonl", "hubble", 100)
    assert not (tmp_path / "x.jsonl").exists()


def test_no_attack_means_no_debug_pod(tmp_path: Path) -> None:
    s = build_scenario(ScenarioConfig(seed=3, attacks=frozenset()))
    assert not s.attack_paths
    assert all(p.name != "debug" for p in s.pods)
    out = write_flows(s, tmp_path / "f.jsonl", "hubble", 3000)
    assert "debug" not in out.read_text()


def test_time_window_is_respected(scenario, hubble_file: Path) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timedelta

    start = scenario.config.start
    end = start + timedelta(seconds=scenario.config.window_seconds)
    times = [datetime.fromisoformat(json.loads(line)["time"]) for line in _lines(hubble_file)]
    assert min(times) >= start and max(times) <= end
    assert max(times) - min(times) > timedelta(seconds=scenario.config.window_seconds * 0.8)


def test_progress_reports_lines_written(scenario, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seen: list[int] = []
    write_flows(scenario, tmp_path / "p.jsonl", "hubble", FLOWS, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == FLOWS + 3  # flows plus lost-events lines
