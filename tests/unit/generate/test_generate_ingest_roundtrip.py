"""Every generated format ingests with zero skipped records (H1's readers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.generate import ScenarioConfig, build_scenario, write_flows

ingest = pytest.importorskip("analyzer.ingest")


@pytest.mark.parametrize(
    ("fmt", "flows"),
    [("hubble", 12_000), ("calico", 1500), ("goldmane", 1500), ("goldmane-emitter", 1500),
     ("whisker", 1500)],
)  # fmt: skip
def test_generated_files_ingest_cleanly(tmp_path: Path, fmt: str, flows: int) -> None:
    s = build_scenario(ScenarioConfig(seed=11))
    path = write_flows(s, tmp_path / "flows.jsonl.gz", fmt, flows)
    result = ingest.read_flow_file(path)
    expected = "goldmane" if fmt.startswith("goldmane") else fmt
    assert result.format == expected
    assert result.frame.height == flows
    assert result.skipped == ()
    assert result.warnings == ()
    frame = result.frame
    assert frame["src_namespace"].null_count() < flows
    assert (frame["flow_count"] >= 1).all()


@pytest.mark.parametrize("style", ["bare", "camel", "cri", "array"])
def test_hubble_spellings_ingest_to_the_same_rows(tmp_path: Path, style: str) -> None:
    s = build_scenario(ScenarioConfig(seed=11))
    base = ingest.read_flow_file(write_flows(s, tmp_path / "a.jsonl", "hubble", 10_000))
    other = ingest.read_flow_file(
        write_flows(s, tmp_path / "b.json", "hubble", 10_000, style=style)
    )
    assert other.skipped == () and other.frame.height == 10_000
    keep = ["time", "src_ip", "dst_ip", "src_port", "dst_port", "is_reply", "verdict", "src_labels"]
    assert other.frame.select(keep).equals(base.frame.select(keep))


@pytest.mark.parametrize(("fmt", "style"), [("goldmane", "bare"), ("whisker", "items")])
def test_calico_spellings_ingest_to_the_same_rows(tmp_path: Path, fmt: str, style: str) -> None:
    s = build_scenario(ScenarioConfig(seed=11))
    base = ingest.read_flow_file(write_flows(s, tmp_path / "a.jsonl", fmt, 1200))
    other = ingest.read_flow_file(write_flows(s, tmp_path / "b.json", fmt, 1200, style=style))
    assert other.skipped == () and other.frame.height == 1200
    keep = ["time", "src_namespace", "dst_namespace", "dst_port", "verdict", "flow_count"]
    assert other.frame.select(keep).equals(base.frame.select(keep))
