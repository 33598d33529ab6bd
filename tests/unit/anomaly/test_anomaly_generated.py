"""detect_anomalies on generated captures with planted attacks (and without)."""

from __future__ import annotations

import polars as pl
from anomaly_toy import Generated

from analyzer.anomaly import detect_anomalies
from analyzer.anomaly.evaluate import attack_rows, evaluate_against_truth

DEBUG = "pod:develop:app=debug"


def _flagged_sources(result_edges: pl.DataFrame) -> set[str]:
    return set(result_edges.filter(pl.col("flagged"))["src_name"])


def test_every_attack_edge_flagged_and_nothing_else(attacked: Generated) -> None:
    result = detect_anomalies(attacked.connections, random_state=0)
    metrics = evaluate_against_truth(attacked.connections, result, attacked.truth)
    assert metrics.attack_edges > 100  # scan of every develop pod, sweep, lateral move
    assert metrics.false_positives == 0
    assert metrics.false_negatives == 0
    assert _flagged_sources(result.edges) == {"develop/debug"}
    assert {"port_scan", "host_sweep", "database_lateral"} <= set(result.summary.by_rule)


def test_many_peer_workloads_are_not_flagged(attacked: Generated) -> None:
    """Prometheus (scrapes every pod), traefik (routes to many backends), DNS from every pod
    and kubelet probes from the node have the most peers; none of their edges is flagged."""
    edges = detect_anomalies(attacked.connections).edges
    benign = edges.filter(
        pl.col("src_name").is_in(["monitoring/prometheus", "traefik/traefik", "host"])
        | ((pl.col("dst_name") == "kube-system/coredns") & (pl.col("src_name") != "develop/debug"))
    )
    prometheus = benign.filter(pl.col("src_name") == "monitoring/prometheus")
    assert prometheus["dst_group"].n_unique() >= 8  # sweep-shaped: every workload
    assert benign.filter(pl.col("src_name") == "host")["dst_group"].n_unique() >= 8
    assert benign.filter(pl.col("dst_name") == "kube-system/coredns")["src_group"].n_unique() >= 8
    assert benign.height > 30
    assert not benign["flagged"].any()


def test_lateral_move_named_and_explained(attacked: Generated) -> None:
    result = detect_anomalies(attacked.connections)
    lateral = result.edges.filter(
        (pl.col("src_group") == DEBUG)
        & (pl.col("dst_name") == "production/postgres")
        & (pl.col("dst_port") == 5432)
    ).row(0, named=True)
    assert lateral["rule"] == "database_lateral"
    assert lateral["reasons"][0] == (
        "cross-namespace access to database port 5432 (PostgreSQL) on production/postgres "
        "from develop/debug, which is not an established client"
    )
    # The debug pod's own DNS lookup of the database is part of the attack path too.
    dns = result.edges.filter(
        (pl.col("src_group") == DEBUG)
        & (pl.col("dst_name") == "kube-system/coredns")
        & (pl.col("protocol") == "UDP")
    )
    assert dns.height >= 1
    assert dns["rule"].to_list() == ["compromised_source"] * dns.height


def test_attack_rows_match_truth(attacked: Generated) -> None:
    rows = attacked.connections.filter(
        attack_rows(attacked.connections, attacked.truth["attack_paths"])
    )
    assert rows.height > 0
    assert set(rows["src_group"]) == {DEBUG}


def test_no_attack_flags_nothing(clean: Generated) -> None:
    result = detect_anomalies(clean.connections)
    assert result.summary.model_used
    assert result.flagged.height == 0
    assert result.edges["model_score"].max() > 0  # type: ignore[operator]


def test_fixed_seed_is_deterministic(attacked: Generated) -> None:
    a = detect_anomalies(attacked.connections, random_state=3)
    b = detect_anomalies(attacked.connections, random_state=3)
    assert a.edges.equals(b.edges)
    assert a.flagged.equals(b.flagged)
