"""Every probe of the shared Kubernetes e2e truth tables, through the library."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from policy_oracle_helpers import case_peers, case_policies, peer_for

from analyzer.policy.evaluate import evaluate

_BESIDE = Path(__file__).resolve().parents[3].parent / "shared"
_SHARED = os.environ.get("ANALYZER_SHARED") or str(_BESIDE)
ORACLE = Path(_SHARED) / "oracle" / "k8s-e2e-cases.json"


def _case_ids() -> list[str]:
    if not ORACLE.is_file():
        return ["oracle-absent"]
    return [c["id"] for c in json.loads(ORACLE.read_text())["cases"]]


@pytest.fixture(scope="module")
def cases(shared_dir: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((shared_dir / "oracle" / "k8s-e2e-cases.json").read_text())
    return {c["id"]: c for c in data["cases"]}


def test_oracle_has_52_cases_and_5507_probes(cases: dict[str, dict[str, Any]]) -> None:
    assert len(cases) == 52
    assert sum(len(c["probes"]) for c in cases.values()) == 5507


@pytest.mark.parametrize("case_id", _case_ids())
def test_oracle_case(case_id: str, cases: dict[str, dict[str, Any]]) -> None:
    case = cases[case_id]
    compiled = case_policies(case)
    peers = case_peers(case)
    wrong = []
    for probe in case["probes"]:
        verdict = evaluate(
            compiled,
            peer_for(peers, probe["src"]),
            peers[probe["dst"]],
            probe["port"],
            probe["protocol"],
        )
        assert verdict.reasons and all(verdict.reasons)
        if verdict.allowed != probe["expected"]:
            wrong.append((probe, verdict.reasons))
    assert not wrong, f"{len(wrong)} of {len(case['probes'])} probes wrong, first: {wrong[:3]}"


def test_oracle_ipblock_cases_differ_in_cilium_mode(cases: dict[str, dict[str, Any]]) -> None:
    # Cilium reads ipBlock as cluster-external only: x/a's only egress rule (an ipBlock with
    # y/b's pod IP) then matches nothing, so x/a reaches no pod at all.
    case = cases["e2e-egress-ipblock-single-pod-ip"]
    compiled = case_policies(case, "cilium")
    peers = case_peers(case)
    probes = [p for p in case["probes"] if p["src"] == "x/a"]
    assert any(p["expected"] for p in probes)
    for probe in probes:
        verdict = evaluate(
            compiled, peers["x/a"], peers[probe["dst"]], probe["port"], probe["protocol"]
        )
        assert not verdict.allowed
