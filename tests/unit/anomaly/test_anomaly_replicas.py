"""The lone-replica signal: one pod of a replicated workload making a new contact that its
sibling replicas, present at the time, never make (hand-built frames, a 60-minute window)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import polars as pl
from test_anomaly_stealth import _rules, c, frame, shop

from analyzer.anomaly import detect_anomalies
from analyzer.anomaly.features import compute_features
from analyzer.anomaly.rules import RuleThresholds

SIBLING = "web-7d9fbb5c4d-b4m7z"  # the second replica of shop/web (the first is ...-x2k9q)
LONE = "web-7d9fbb5c4d-x2k9q"


def _as(row: dict[str, Any], pod: str | None) -> dict[str, Any]:
    row.update(src_pod=pod, src_key=f"shop/{pod}")
    return row


def two_webs(sibling_until: float = 60.0) -> list[dict[str, Any]]:
    """shop() with a second replica of shop/web doing what the first does."""
    rows = shop()
    rows += [
        _as(c("shop/web", "kube-system/coredns", 53, protocol="UDP", last=sibling_until), SIBLING),
        _as(c("shop/web", "shop/api", 8080, connections=200, last=sibling_until), SIBLING),
    ]
    return rows


def token(pod: str | None = LONE, connections: int = 1, first: float = 50.0) -> dict[str, Any]:
    # One connection 50 minutes into 60: a routine edge shows that late with p = 1/6, too
    # common to flag on timing alone (novelty_p 0.01), telling beside a lone replica.
    return _as(c("shop/web", "kube-apiserver", 6443, connections=connections, first=first,
                 last=first + 1), pod)  # fmt: skip


def _edge(rows: list[dict[str, Any]], dst: str) -> dict[str, Any]:
    edges = compute_features(frame(rows))
    return edges.filter(
        (pl.col("src_name") == "shop/web") & (pl.col("dst_name") == dst)
    ).row(0, named=True)


def test_lone_replica_signal() -> None:
    row = _edge([*two_webs(), token()], "kube-apiserver")
    assert row["lone_replica"] == 1.0
    assert row["src_replicas"] == 2
    assert row["lone_pod"] == LONE
    # The steady edge both replicas use is not lone.
    steady = _edge([*two_webs(), token()], "shop/api")
    assert steady["lone_replica"] == 0.0 and steady["lone_pod"] is None


def test_stolen_token_in_one_replica_is_caught() -> None:
    rows = [*two_webs(), token()]
    assert _rules(rows) == {("shop/web", "kube-apiserver", 6443): "new_api_access"}
    # Without the lone-replica signal the same edge is too ordinary in time to flag.
    off = replace(RuleThresholds(), lone_replica_p=0.0)
    assert detect_anomalies(frame(rows), thresholds=off).flagged.height == 0


def test_reason_names_the_pod_and_its_siblings() -> None:
    hits = detect_anomalies(frame([*two_webs(), token()])).flagged
    reason = hits["reasons"][0][0]
    assert f"only from pod {LONE}" in reason
    assert "1 sibling replica never did" in reason


def test_same_contact_from_every_replica_is_not_lone() -> None:
    rows = [*two_webs(), token(), token(SIBLING, first=51)]
    assert _edge(rows, "kube-apiserver")["lone_replica"] == 0.0
    assert _rules(rows) == {}


def test_a_workload_with_one_pod_has_no_siblings() -> None:
    rows = [*shop(), token()]
    assert _edge(rows, "kube-apiserver")["lone_replica"] == 0.0
    assert _rules(rows) == {}


def test_a_sibling_gone_before_the_contact_does_not_count() -> None:
    rows = [*two_webs(sibling_until=30.0), token()]
    assert _edge(rows, "kube-apiserver")["lone_replica"] == 0.0
    assert _rules(rows) == {}


def test_unknown_or_aggregated_pod_is_never_lone() -> None:
    for pod in (None, "web-7d9fbb5c4d-*"):
        rows = [*two_webs(), token(pod)]
        assert _edge(rows, "kube-apiserver")["lone_replica"] == 0.0, pod


def test_early_lone_contact_stays_allowed() -> None:
    # One replica alone, but from early in the window: routine timing, no flag.
    assert _rules([*two_webs(), token(first=15.0)]) == {}


def test_exfiltration_from_one_replica() -> None:
    exfil = _as(c("shop/web", "world", 443, connections=2, first=42, last=43), LONE)
    exfil.update(dst_key="185.1.2.3", dst_ip="185.1.2.3", dst_group="ip:185.1.2.3")
    rows = [*two_webs(), exfil]
    # Two connections 42 minutes in: p = (18/60)**2 = 0.09, above novelty_p, below 0.2.
    assert _rules(rows) == {("shop/web", "185.1.2.3", 443): "new_external"}
    off = replace(RuleThresholds(), lone_replica_p=0.0)
    assert detect_anomalies(frame(rows), thresholds=off).flagged.height == 0
