"""Hand-reasoned truth tables (tests/fixtures/policies/truth-tables.yaml) through the library:
one connection at a time (`evaluate`) and as a frame (`evaluate_connections` + inventory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from policy_oracle_helpers import (
    case_peers,
    case_policies,
    inventory_objects,
    load_truth_tables,
    peer_for,
)

from analyzer.k8s.inventory import inventory_from_objects
from analyzer.policy.evaluate import Endpoint, evaluate
from analyzer.policy.frame import evaluate_connections

TABLES = Path(__file__).resolve().parents[2] / "fixtures" / "policies" / "truth-tables.yaml"
CASES = load_truth_tables(TABLES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_truth_table_evaluate(case: dict[str, Any]) -> None:
    compiled = case_policies(case, case.get("mode", "kubernetes"))
    peers = case_peers(case)
    for probe in case["probes"]:
        src, dst = peer_for(peers, probe["src"]), peer_for(peers, probe["dst"])
        verdict = evaluate(compiled, src, dst, probe["port"], probe["protocol"])
        assert verdict.allowed == probe["expected"], (probe, verdict.reasons)


def _side(prefix: str, peer: Endpoint) -> dict[str, Any]:
    if peer.kind == "pod":
        return {
            f"{prefix}_namespace": peer.namespace,
            f"{prefix}_pod": peer.name,
            f"{prefix}_labels": [f"{k}={v}" for k, v in peer.labels.items()],
            f"{prefix}_namespace_labels": None,  # filled by the inventory
            f"{prefix}_ip": peer.ip,
            f"{prefix}_entity": "pod",
            f"{prefix}_node": None,
        }
    return {
        f"{prefix}_namespace": None,
        f"{prefix}_pod": None,
        f"{prefix}_labels": None,
        f"{prefix}_namespace_labels": None,
        f"{prefix}_ip": peer.ip,
        f"{prefix}_entity": peer.entity,
        f"{prefix}_node": peer.node,
    }


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_truth_table_frame(case: dict[str, Any]) -> None:
    compiled = case_policies(case, case.get("mode", "kubernetes"))
    peers = case_peers(case)
    rows = []
    for probe in case["probes"]:
        row = _side("src", peer_for(peers, probe["src"]))
        row.update(_side("dst", peer_for(peers, probe["dst"])))
        row.update(protocol=probe["protocol"], dst_port=probe["port"], expected=probe["expected"])
        rows.append(row)
    frame = pl.DataFrame(
        rows,
        schema_overrides={
            "src_namespace_labels": pl.List(pl.String),
            "dst_namespace_labels": pl.List(pl.String),
        },
    )
    inventory = inventory_from_objects(inventory_objects(case))
    out = evaluate_connections(compiled, frame, inventory)
    assert out.height == frame.height
    wrong = out.filter(pl.col("allowed") != pl.col("expected"))
    assert wrong.is_empty(), wrong.select("src_pod", "src_ip", "dst_pod", "dst_port", "reason")
    for row in out.filter(~pl.col("allowed")).iter_rows(named=True):
        # Reasons are written per edge and filled in per row: they name this row's peers.
        src = f"{row['src_namespace']}/{row['src_pod']}" if row["src_pod"] else row["src_ip"]
        dst = f"{row['dst_namespace']}/{row['dst_pod']}" if row["dst_pod"] else row["dst_ip"]
        assert src in row["reason"] or dst in row["reason"], row["reason"]
        assert f"{row['protocol']} {row['dst_port']}" in row["reason"], row["reason"]
        assert "\x00" not in row["reason"]
    allowed = out.filter(pl.col("allowed") & pl.col("ingress_isolated"))
    assert all(len(r) > 0 for r in allowed["ingress_rules"].to_list())


def test_frame_keeps_caller_columns_and_types() -> None:
    from analyzer.policy.compile import compile_policies

    frame = pl.DataFrame(
        {
            "src_ip": ["192.0.2.1", "192.0.2.1"],
            "dst_namespace": ["a", "a"],
            "dst_pod": ["p", "q"],
            "dst_labels": [None, ["app=x"]],
            "dst_port": [80, 443],
            "allowed": [False, False],  # a stale verdict column is replaced
            "extra": ["kept", "kept"],
        },
        schema_overrides={"dst_port": pl.Int64},
    )
    out = evaluate_connections(compile_policies([]), frame)
    assert out.columns[:6] == [
        "src_ip",
        "dst_namespace",
        "dst_pod",
        "dst_labels",
        "dst_port",
        "extra",
    ]
    assert out.schema["dst_port"] == pl.Int64
    assert out["allowed"].to_list() == [True, True]
    assert out["dst_pod"].to_list() == ["p", "q"]
