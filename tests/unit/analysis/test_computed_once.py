"""One report run derives the connections once, scores anomalies once and reads each policy
file once (before the analysis layer: the detector three times with three scopes, the policies
loaded three times)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import analyzer.anomaly._detect as detect_module
import analyzer.connections as connections_module
import analyzer.policy.load as load_module
from analyzer.analysis import analyse
from analyzer.generate import ScenarioConfig, build_scenario, generate
from analyzer.report.build import build_report
from analyzer.store import ingest


def _counting(calls: Counter[str], name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return func(*args, **kwargs)

    return wrapper


def test_a_report_computes_each_result_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = build_scenario(ScenarioConfig(seed=3))
    files = generate(scenario, tmp_path / "capture", flows=12_000)
    ingest(tmp_path / "store", [str(files.files[0])], progress=False)
    # derive from the raw flows (the rollup would answer without deriving at all)
    monkeypatch.setenv("ANALYZER_NO_ROLLUP", "1")
    calls: Counter[str] = Counter()
    for module, name in (
        (detect_module, "_scored_edges"),
        (connections_module, "_stats"),
        (load_module, "read_documents"),
    ):
        monkeypatch.setattr(module, name, _counting(calls, name, getattr(module, name)))
    analysis = analyse(
        tmp_path / "store",
        policies=tmp_path / "capture" / "existing-policies.yaml",
        inventory=tmp_path / "capture" / "inventory.json",
    )
    model = build_report(analysis)
    assert model.anomalies and model.findings and model.sections
    assert calls == {"_scored_edges": 1, "_stats": 1, "read_documents": 1}
    # the audit and the recommendation shown are the analysis' own, asked again for free
    assert analysis.audit() is analysis.audit()
    assert calls["_scored_edges"] == 1
