"""What several store tests build: a generated capture split per exporter node."""

from __future__ import annotations

from pathlib import Path

from analyzer.generate import Scenario, ScenarioConfig, build_scenario, write_flows
from benchmarks.split_nodes import split_by_node


def node_capture(
    directory: Path, seed: int, events: int = 10_000
) -> tuple[Scenario, Path, list[Path]]:
    """The scenario of ``seed``, its Hubble capture of ``events`` events, and that capture
    split into one file per node (at least three: the two ends of a connection apart)."""
    scenario = build_scenario(ScenarioConfig(seed=seed))
    capture = write_flows(scenario, directory / "all.jsonl", "hubble", events)
    files = split_by_node(capture, directory / "nodes")
    assert len(files) >= 3
    return scenario, capture, files
