"""Each attack of the compromised debug pod has its own shape in the flows."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from analyzer.generate import ScenarioConfig, build_scenario, write_flows


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    s = build_scenario(
        ScenarioConfig(seed=21, attacks=frozenset({"scan", "sweep", "lateral", "exfil"}))
    )
    out = write_flows(s, tmp_path_factory.mktemp("a") / "f.jsonl", "hubble", 14_000)
    return [json.loads(line)["flow"] for line in out.read_text().splitlines()]


def _from_debug(flows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in flows if f["source"].get("pod_name") == "debug"]


def test_scan_is_dropped_at_backends_and_reset_elsewhere(flows: list[dict[str, Any]]) -> None:
    debug = _from_debug(flows)
    drops = [f for f in debug if f.get("drop_reason_desc") == "POLICY_DENIED"]
    assert drops and {f["destination"]["workloads"][0]["name"] for f in drops} <= {
        "backend", "backend-primary"
    }  # fmt: skip
    ports = {f["l4"]["TCP"]["destination_port"] for f in drops}
    assert len(ports) >= 25  # many ports tried
    resets = [f for f in flows if f["destination"].get("pod_name") == "debug"
              and f["l4"].get("TCP", {}).get("flags", {}).get("RST")]  # fmt: skip
    assert resets


def test_sweep_reaches_addresses_nobody_answers(flows: list[dict[str, Any]]) -> None:
    debug = _from_debug(flows)
    swept = {f["IP"]["destination"] for f in debug
             if f["destination"].get("labels") == ["reserved:world"]
             and f["l4"].get("TCP", {}).get("destination_port") == 80}  # fmt: skip
    answered = {f["IP"]["source"] for f in flows if f["destination"].get("pod_name") == "debug"}
    assert len(swept) >= 10 and not swept & answered


def test_lateral_reaches_the_database_and_exfil_uploads(flows: list[dict[str, Any]]) -> None:
    debug = _from_debug(flows)
    db = [f for f in debug if f["destination"].get("pod_name") == "postgres-0"
          and f["l4"]["TCP"]["destination_port"] == 5432]  # fmt: skip
    assert db and all(f["verdict"] == "FORWARDED" for f in db)
    assert any(f["l4"]["TCP"]["flags"].get("PSH") for f in db)
    exfil = [f for f in debug if f["destination"].get("labels") == ["reserved:world"]
             and f["l4"].get("TCP", {}).get("destination_port") == 443]  # fmt: skip
    per_conn = Counter(
        f["l4"]["TCP"]["source_port"] for f in exfil if f["l4"]["TCP"]["flags"].get("PSH")
    )
    assert per_conn and min(per_conn.values()) >= 10


def test_exfil_in_calico_is_a_lopsided_upload(tmp_path: Path) -> None:
    s = build_scenario(ScenarioConfig(seed=21, attacks=frozenset({"exfil"})))
    out = write_flows(s, tmp_path / "c.jsonl", "calico", 1500)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    up = [r for r in recs if r["source_name_aggr"] == "debug" and r["dest_name_aggr"] == "pub"]
    assert up and all(r["bytes_out"] > 10 * r["bytes_in"] for r in up)
    truth = s.truth()
    assert [p["category"] for p in truth["attack_paths"]] == ["exfil"]
