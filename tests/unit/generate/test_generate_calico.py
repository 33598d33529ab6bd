"""Calico Enterprise, Goldmane (protojson and emitter) and Whisker output of the generator."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from analyzer.errors import UsageError
from analyzer.generate import Scenario, ScenarioConfig, build_scenario, write_flows
from analyzer.generate.aggregate import _net_name

FLOWS = 2500


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario(ScenarioConfig(seed=9))


def _write(scenario: Scenario, tmp: Path, fmt: str, flows: int = FLOWS) -> list[dict[str, Any]]:
    out = write_flows(scenario, tmp / f"{fmt}.jsonl", fmt, flows)
    return [json.loads(line) for line in out.read_text().splitlines()]


def _end(scenario: Scenario, desc: dict[str, Any], host_ip: str = "10.244.0.1") -> tuple[str, str]:
    if desc["kind"] == "pod":
        w = scenario.workload(f"{desc['namespace']}/{desc['workload']}")
        return desc["namespace"], w.pod_prefix()
    ips = desc.get("ips") or [desc.get("ip") or host_ip]
    return "-", _net_name(ips[0])


def _keys(scenario: Scenario, paths: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    keys = set()
    for p in paths:
        src, dst = _end(scenario, p["source"]), _end(scenario, p["destination"])
        keys.add((src, dst, p["protocol"].lower(), p["port"]))
    return keys


def test_calico_records_shape_and_truth(scenario: Scenario, tmp_path: Path) -> None:
    recs = _write(scenario, tmp_path, "calico")
    assert len(recs) == FLOWS
    first = recs[0]
    assert len(first) == 54 and first["end_time"] - first["start_time"] == 300
    for r in recs:
        assert r["reporter"] in ("src", "dst") and r["action"] in ("allow", "deny")
        assert r["num_flows"] >= 1 and isinstance(r["source_labels"]["labels"], list)
        for pol in r["policies"]["enforced_policies"]:
            assert len(pol.split("|")) == 5
        if r["action"] == "allow":
            assert r["source_ip"] is None and r["dest_name"] == "-"
        else:
            assert r["source_ip"] and r["dest_ip"] and r["source_name"] == "debug"
            assert r["policies"]["enforced_policies"][0].endswith("|deny|-1")
        if r["source_type"] == "net":
            assert r["source_name_aggr"] in ("pub", "pvt") and r["source_namespace"] == "-"
    seen = {((r["source_namespace"], r["source_name_aggr"]), (r["dest_namespace"],
             r["dest_name_aggr"]), r["proto"], r["dest_port"]) for r in recs}  # fmt: skip
    truth = scenario.truth()
    assert _keys(scenario, truth["legit_paths"]) <= seen
    assert _keys(scenario, truth["attack_paths"]) <= seen
    # Both reporters for pod-to-pod paths; drops only where develop's backends are isolated.
    assert {r["reporter"] for r in recs if r["dest_name_aggr"].startswith("backend-")} == {
        "src",
        "dst",
    }
    assert {r["dest_name_aggr"].split("-")[0] for r in recs if r["action"] == "deny"} == {"backend"}
    stripe = [r for r in recs if r["dest_domains"] == ["api.stripe.com"]]
    assert stripe and all(r["dest_name_aggr"] == "pub" for r in stripe)


@pytest.mark.parametrize("fmt", ["goldmane", "goldmane-emitter"])
def test_goldmane_shapes(scenario: Scenario, tmp_path: Path, fmt: str) -> None:
    recs = _write(scenario, tmp_path, fmt)
    assert len(recs) == FLOWS
    for r in recs:
        flow = r["flow"] if fmt == "goldmane" else r
        key = flow["Key"]
        if fmt == "goldmane":
            assert r["id"].isdigit()
            assert isinstance(key["destPort"], str) and isinstance(flow["startTime"], str)
            assert key["reporter"] in ("Src", "Dst") and key["action"] in ("Allow", "Deny")
            assert key["sourceType"] in ("WorkloadEndpoint", "Network")
            assert int(flow["endTime"]) - int(flow["startTime"]) == 15
            for hit in key["policies"]["enforcedPolicies"]:
                assert isinstance(hit["kind"], str) and "ruleIndex" not in hit or isinstance(
                    hit["ruleIndex"], str)  # fmt: skip
        else:
            assert isinstance(key["dest_port"], int) and isinstance(flow["start_time"], int)
            assert key["reporter"] in (1, 2) and key["action"] in (1, 2)
            assert key["source_type"] in (1, 4)
            assert flow["end_time"] - flow["start_time"] == 300
            for hit in key["policies"]["enforced_policies"]:
                assert isinstance(hit["kind"], int)


def test_whisker_shape(scenario: Scenario, tmp_path: Path) -> None:
    recs = _write(scenario, tmp_path, "whisker")
    assert len(recs) == FLOWS
    for r in recs:
        assert r["start_time"].endswith("Z") and "protocol" in r and "proto" not in r
        assert isinstance(r["source_labels"], str) and r["reporter"] in ("Src", "Dst")
        assert set(r["policies"]) == {"enforced", "pending"}
        assert "source_type" not in r
    assert any(" | " in r["dest_labels"] for r in recs)
    assert any(r["source_name"] == "PUBLIC NETWORK" for r in recs)
    assert any(r["dest_name"] == "PRIVATE NETWORK" for r in recs)


@pytest.mark.parametrize("fmt", ["calico", "goldmane", "goldmane-emitter", "whisker"])
def test_aggregate_formats_are_deterministic(scenario: Scenario, tmp_path: Path, fmt: str) -> None:
    a = write_flows(scenario, tmp_path / "a", fmt, 1500).read_bytes()
    b = write_flows(build_scenario(ScenarioConfig(seed=9)), tmp_path / "b", fmt, 1500).read_bytes()
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()


def test_aggregate_too_few_records(scenario: Scenario, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="too small"):
        write_flows(scenario, tmp_path / "x", "calico", 10)
