"""A generated capture ingested into a store, shared by the end-to-end modules that need one
store seen through every command (one truth, determinism)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.generate import ScenarioConfig, build_scenario, generate
from analyzer.store import ingest


@pytest.fixture(scope="session")
def generated_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A capture of the seed world plus two extra namespaces (12,000 Hubble records, the
    compromised debug pod included), its inventory and existing policies, and its store."""
    base = tmp_path_factory.mktemp("generated")
    scenario = build_scenario(ScenarioConfig(seed=5, extra_namespaces=2, lost_events=2))
    result = generate(scenario, base / "capture", flows=12_000)
    ingest(base / "store", [str(result.files[0])], progress=False)
    capture = base / "capture"
    return {
        "store": base / "store",
        "flows": result.files[0],
        "policies": capture / "existing-policies.yaml",
        "inventory": capture / "inventory.json",
        "base": base,
    }
