"""Other spellings of a Hubble capture carry the same flows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.errors import UsageError
from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from analyzer.generate.spellings import HUBBLE_STYLES

FLOWS = 10_000


@pytest.fixture(scope="module")
def flows_by_style(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    scenario = build_scenario(ScenarioConfig(seed=4, lost_events=2))
    tmp = tmp_path_factory.mktemp("styles")
    return {
        style: write_flows(
            scenario, tmp / f"{style}.json", "hubble", FLOWS, style=style
        ).read_text()
        for style in HUBBLE_STYLES
    }


def _envelope_flows(text: str) -> list[dict[str, object]]:
    return [json.loads(line)["flow"] for line in text.splitlines() if line.startswith('{"flow"')]


def test_bare_is_the_inner_flow(flows_by_style: dict[str, str]) -> None:
    bare = [json.loads(line) for line in flows_by_style["bare"].splitlines()]
    flows = [b for b in bare if "lost_events" not in b]
    assert flows == _envelope_flows(flows_by_style["envelope"])


def test_camel_renames_keys_only(flows_by_style: dict[str, str]) -> None:
    camel = [json.loads(line) for line in flows_by_style["camel"].splitlines()]
    envelope = [json.loads(line) for line in flows_by_style["envelope"].splitlines()]
    assert len(camel) == len(envelope)
    first = camel[0]
    assert set(first) == {"flow", "nodeName", "time"}
    assert "traceObservationPoint" in first["flow"] or "eventType" in first["flow"]
    text = flows_by_style["camel"]
    assert '"node_name"' not in text and '"is_reply"' not in text
    assert '"TO_ENDPOINT"' in text  # enum values untouched
    assert '"k8s:io.cilium.k8s.policy.cluster=default"' in text  # labels untouched


def test_cri_wraps_each_line_with_its_time(flows_by_style: dict[str, str]) -> None:
    lines = flows_by_style["cri"].splitlines()
    assert len(lines) == FLOWS + 2
    for line in lines[:200]:
        stamp, stream, tag, payload = line.split(" ", 3)
        assert (stream, tag) == ("stdout", "F")
        assert json.loads(payload)["time"] == stamp


def test_array_is_one_json_document(flows_by_style: dict[str, str]) -> None:
    items = json.loads(flows_by_style["array"])
    assert isinstance(items, list) and len(items) == FLOWS + 2
    assert [i["flow"] for i in items if "flow" in i] == _envelope_flows(flows_by_style["envelope"])


def test_styles_belong_to_their_format(tmp_path: Path) -> None:
    scenario = build_scenario(ScenarioConfig(seed=4))
    with pytest.raises(UsageError, match="does not apply to calico"):
        write_flows(scenario, tmp_path / "x", "calico", 2000, style="camel")
    with pytest.raises(UsageError, match="does not apply to hubble"):
        write_flows(scenario, tmp_path / "x", "hubble", 20_000, style="yaml")
    assert not (tmp_path / "x").exists()


def test_goldmane_bare_and_whisker_items(tmp_path: Path) -> None:
    scenario = build_scenario(ScenarioConfig(seed=4))
    result = write_flows(scenario, tmp_path / "r", "goldmane", 1200).read_text().splitlines()
    bare = write_flows(scenario, tmp_path / "b", "goldmane", 1200, style="bare").read_text()
    assert [json.loads(line)["flow"] for line in result] == [
        json.loads(line) for line in bare.splitlines()
    ]
    lines = write_flows(scenario, tmp_path / "l", "whisker", 1200).read_text().splitlines()
    doc = json.loads(
        write_flows(scenario, tmp_path / "i", "whisker", 1200, style="items").read_text()
    )
    assert set(doc) == {"total", "items"}
    assert doc["items"] == [json.loads(line) for line in lines]
