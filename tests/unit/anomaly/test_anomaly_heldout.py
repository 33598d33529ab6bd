"""On the held-out scenario family (benchmarks/heldout, never used for calibration), the
policies `recommend` writes deny the careful attacker's paths and keep every legitimate
newcomer and every established path open. Checked with the policy engine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from heldout import ATTACK_CLASSES, Heldout, build  # noqa: E402

from analyzer.policy.compile import compile_policies  # noqa: E402
from analyzer.policy.frame import evaluate_connections  # noqa: E402
from analyzer.policy.load import LoadResult, parse_documents  # noqa: E402
from analyzer.recommend import recommend  # noqa: E402

# Evaluation seeds, one per topology and spelling mix; development used seeds 0-23.
SEEDS = (101, 102, 103)
SCHEMA = {
    "src_namespace": pl.String, "dst_namespace": pl.String,
    "src_labels": pl.List(pl.String), "dst_labels": pl.List(pl.String),
    "src_entity": pl.String, "dst_entity": pl.String,
    "src_ip": pl.String, "dst_ip": pl.String,
    "src_pod": pl.String, "dst_pod": pl.String,
    "protocol": pl.String, "dst_port": pl.Int32, "id": pl.String,
}  # fmt: skip


def _end(spec: dict[str, Any]) -> list[dict[str, Any]]:
    if spec["kind"] == "pod":
        labels = sorted(f"{k}={v}" for k, v in spec["labels"].items())
        return [{"namespace": spec["namespace"], "labels": labels, "entity": "pod",
                 "ip": spec.get("ip"), "pod": spec.get("pod")}]  # fmt: skip
    return [{"namespace": None, "labels": [], "entity": spec["kind"], "ip": ip, "pod": None}
            for ip in spec.get("ips") or [None]]  # fmt: skip


def _replay(manifests: list[dict[str, Any]], paths: list[dict[str, Any]]) -> dict[str, bool]:
    """Path id -> allowed by the recommended policies (every source/destination address)."""
    result = LoadResult()
    parse_documents(manifests, "recommended", result)
    assert not result.problems, result.problems
    rows = []
    for path in paths:
        for src in _end(path["source"]):
            for dst in _end(path["destination"]):
                rows.append({**{f"src_{k}": v for k, v in src.items()},
                             **{f"dst_{k}": v for k, v in dst.items()},
                             "protocol": path["protocol"], "dst_port": path["port"],
                             "id": path["id"]})  # fmt: skip
    out = evaluate_connections(compile_policies(result.policies), pl.DataFrame(rows, schema=SCHEMA))
    return {r["id"]: bool(r["allowed"]) for r in out.group_by("id").agg(pl.col("allowed").all())
            .iter_rows(named=True)}  # fmt: skip


@pytest.fixture(scope="module", params=SEEDS)
def scenario(request: pytest.FixtureRequest) -> tuple[Heldout, dict[str, bool]]:
    held = build(request.param)
    rec = recommend(held.flows)
    # The suspected workloads are named in the notes.
    assert any("looks compromised" in n.message for n in rec.notes)
    paths = held.attack_paths + held.newcomer_paths + held.established_paths
    return held, _replay(list(rec.manifests), paths)


def test_stealthy_attack_paths_are_denied(scenario: tuple[Heldout, dict[str, bool]]) -> None:
    held, allowed = scenario
    attacks = [p for p in held.attack_paths if not p.get("support")]
    assert sorted(p["class"] for p in attacks) == sorted(ATTACK_CLASSES)
    denied = [p["class"] for p in attacks if not allowed[p["id"]]]
    assert len(denied) >= 4, (held.name, denied)


def test_newcomers_and_established_paths_stay_allowed(
    scenario: tuple[Heldout, dict[str, bool]],
) -> None:
    held, allowed = scenario
    assert {p["class"] for p in held.newcomer_paths} == {
        "newcomer", "scrape_newcomer", "cronjob_db"
    }  # fmt: skip
    assert len(held.established_paths) >= 8
    broken = [p["id"] for p in held.newcomer_paths + held.established_paths if not allowed[p["id"]]]
    assert broken == [], held.name
