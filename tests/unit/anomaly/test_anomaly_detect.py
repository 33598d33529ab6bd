"""detect_anomalies on hand-built connection frames."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from anomaly_toy import conn, frame

from analyzer.anomaly import AnomalyResult, detect_anomalies, exclude_anomalies
from analyzer.errors import SchemaError


def _scan(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """develop/debug tries 13 ports on data/postgres late in the window, most denied."""
    for port in [*range(20, 30), 5432, 3306, 6379]:
        rows.append(
            conn(
                "develop/debug",
                "data/postgres",
                port,
                outcome="allowed" if port == 5432 else "denied",
                connections=1,
                events=3,
                first=50,
                last=51,
            )
        )
    return rows


def test_scanner_ranks_first_and_only_scanner_is_flagged(shop: list[dict[str, Any]]) -> None:
    result = detect_anomalies(frame(_scan(shop)))
    flagged = result.flagged
    scan = flagged.filter(pl.col("rule") == "port_scan")
    assert scan.height == 13
    assert set(scan["dst_key"]) == {"data/postgres-0"}
    # The scanner's other traffic (DNS, its dev API) was steady over the whole window: it
    # stays allowed, and the workload itself is named as a suspect instead.
    assert flagged.filter(pl.col("rule") != "port_scan").height == 0
    assert set(flagged["src_group"]) == {"pod:develop:app=debug"}
    kept = result.edges.filter(pl.col("kept"))
    assert set(kept["dst_name"]) == {"kube-system/coredns", "develop/devapi"}
    (suspect,) = result.summary.suspects
    assert suspect.name == "develop/debug" and suspect.rules == ("port_scan",)
    assert (suspect.flagged_edges, suspect.held_edges, suspect.kept_edges) == (13, 0, 2)
    assert suspect.message() == (
        "develop/debug looks compromised (port scan on 13 edges); its 2 established edges stay "
        "allowed so that the workload keeps working: investigate the workload itself"
    )
    top = result.edges.sort("score", descending=True).row(0, named=True)
    assert top["src_group"] == "pod:develop:app=debug" and top["rule"] == "port_scan"
    assert flagged["score"].to_list() == sorted(flagged["score"].to_list(), reverse=True)


def test_result_shape_keeps_input_columns(shop: list[dict[str, Any]]) -> None:
    conns = frame(_scan(shop))
    result = detect_anomalies(conns)
    assert isinstance(result, AnomalyResult)
    assert result.flagged.columns == [*conns.columns, "score", "reasons", "rule"]
    assert result.flagged.schema["reasons"] == pl.List(pl.String)
    assert result.edges_scored == result.edges.height == result.summary.edges
    assert result.summary.by_rule == {"port_scan": 13}


def test_baseline_flags_nothing(shop: list[dict[str, Any]]) -> None:
    result = detect_anomalies(frame(shop))
    assert result.flagged.height == 0
    assert result.summary.flagged_edges == 0


def test_same_seed_same_result(shop: list[dict[str, Any]]) -> None:
    conns = frame(_scan(shop))
    a = detect_anomalies(conns, random_state=7)
    b = detect_anomalies(conns, random_state=7)
    assert a.edges["model_score"].to_list() == b.edges["model_score"].to_list()
    assert a.flagged.equals(b.flagged)


def test_reasons_are_words(shop: list[dict[str, Any]]) -> None:
    result = detect_anomalies(frame(_scan(shop)))
    first = result.flagged.row(0, named=True)
    assert first["reasons"][0].startswith("develop/debug reached 13 ports on data/postgres")
    assert "12 denied" in first["reasons"][0]
    for reasons in result.flagged["reasons"]:
        assert len(reasons) > 0
        assert all(isinstance(r, str) and " " in r for r in reasons)


def test_exclude_removes_exactly_flagged_rows(shop: list[dict[str, Any]]) -> None:
    conns = frame(_scan(shop))
    result = detect_anomalies(conns)
    kept = exclude_anomalies(conns, result)
    assert kept.height == conns.height - result.flagged.height
    assert "develop/debug-0" not in set(
        kept.filter(pl.col("dst_key") == "data/postgres-0")["src_key"]
    )


def test_empty_and_missing_columns() -> None:
    empty = frame([])
    result = detect_anomalies(empty)
    assert result.flagged.height == 0 and result.edges_scored == 0
    with pytest.raises(SchemaError, match="src_group"):
        detect_anomalies(empty.drop("src_group"))


def test_model_flags_an_isolated_source_with_evidence(shop: list[dict[str, Any]]) -> None:
    """No rule fires (4 ports on 4 servers), but the source stands out and is refused late."""
    rows = list(shop)
    for dst, port in (("shop/api", 2222), ("shop/cart", 4444), ("shop/worker", 6666)):
        rows.append(
            conn("develop/intruder", dst, port, outcome="denied", connections=2, first=45, last=46)
        )
    result = detect_anomalies(frame(rows))
    assert result.summary.by_rule == {}
    assert result.summary.model_flagged == 3
    assert set(result.flagged["src_key"]) == {"develop/intruder-0"}
    assert set(result.flagged["rule"].to_list()) == {None}
    reasons = result.flagged.row(0, named=True)["reasons"]
    assert reasons[0].startswith("develop/intruder behaves unlike the other workloads")
    assert "2 of 2 connections denied by policy" in reasons
    # The same source without the evidence (answered, present all along) is left alone.
    quiet = list(shop)
    for dst, port in (("shop/api", 8080), ("shop/cart", 7070), ("shop/worker", 9102)):
        quiet.append(conn("develop/intruder", dst, port, connections=2))
    assert detect_anomalies(frame(quiet)).flagged.height == 0


def test_public_surface_is_exported_and_documented() -> None:
    import analyzer.anomaly as pkg

    for name in pkg.__all__:
        obj = getattr(pkg, name)
        if callable(obj):
            assert obj.__doc__, name
