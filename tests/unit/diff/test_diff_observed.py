"""Observed connections in a diff: evidence attached to the probe change that contains them,
and changes no probe stands for (ICMP, a peer without an address) still reported."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
from diff_helpers import cluster_inventory, policies
from test_diff_cases import BACKEND_INGRESS, DROPPED

from analyzer.connections import CONNECTION_SCHEMA
from analyzer.diff import diff_policies

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
T1 = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)

DENY_ALL = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: develop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""


def _pod(ns: str, name: str, app: str, ip: str) -> dict[str, Any]:
    return {
        "namespace": ns,
        "pod": name,
        "ip": ip,
        "entity": "pod",
        "labels": [f"app={app}"],
        "namespace_labels": [],
        "group": f"pod:{ns}:app={app}",
        "key": f"{ns}/{name}",
    }


PROM = _pod("monitoring", "prometheus-0", "prometheus", "192.168.2.10")
BACKEND = _pod("develop", "backend-1", "backend", "192.168.1.20")
NOWHERE = {
    "namespace": None,
    "pod": None,
    "ip": None,
    "entity": "world",
    "labels": [],
    "namespace_labels": [],
    "group": "entity:world",
    "key": "reserved:world",
}


def _row(
    src: dict[str, Any],
    dst: dict[str, Any],
    proto: str,
    port: int | None,
    outcome: str = "allowed",
    connections: int = 3,
) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in CONNECTION_SCHEMA}
    for side, ep in (("src", src), ("dst", dst)):
        for field in (
            "namespace",
            "pod",
            "ip",
            "entity",
            "labels",
            "namespace_labels",
            "group",
            "key",
        ):
            row[f"{side}_{field}"] = ep[field]
    row |= {
        "protocol": proto,
        "dst_port": port,
        "outcome": outcome,
        "connections": connections,
        "events": connections,
        "first_seen": T0,
        "last_seen": T1,
    }
    return row


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=CONNECTION_SCHEMA)


def test_observed_evidence_joins_its_probe_change() -> None:
    conns = _frame(
        [
            _row(PROM, BACKEND, "TCP", 9090, connections=5),
            _row(PROM, BACKEND, "TCP", 9090, outcome="denied", connections=2),
        ]
    )
    diff = diff_policies(
        policies(BACKEND_INGRESS), policies(DROPPED), conns, inventory=cluster_inventory()
    )
    (change,) = diff.newly_denied
    assert change.probes == 1 and change.ports == ("TCP 9090",)
    assert change.observed is not None
    # One distinct connection (both outcomes folded, as simulate does), 7 connections.
    assert (change.observed.edges, change.observed.connections) == (1, 7)
    assert change.observed.working_edges == 1
    assert change.observed.first_seen == T0 and change.observed.last_seen == T1
    assert change.observed.examples == ("monitoring/prometheus-0 -> develop/backend-1 TCP 9090",)
    assert change.old.rules == ("develop/backend-ingress#ingress[1]",)
    assert change.new.ingress_isolated_by == ("develop/backend-ingress",)
    assert "no ingress rule admits monitoring:{app=prometheus} on TCP 9090" in change.new.reason
    assert diff.reaches("newly-denied-observed") and not diff.warnings
    assert diff.counts.observed_newly_denied_edges == 1


def test_observed_changes_no_probe_stands_for_are_listed_on_their_own() -> None:
    """ICMP cannot be named by a NetworkPolicy port and a peer without an address has no
    address class: both only reach the diff through observed traffic."""
    conns = _frame(
        [
            _row(PROM, BACKEND, "ICMPv4", None),
            _row(NOWHERE, BACKEND, "TCP", 8080),
        ]
    )
    diff = diff_policies([], policies(DENY_ALL), conns, inventory=cluster_inventory())
    observed_only = [c for c in diff.newly_denied if c.probes == 0]
    assert {(c.src, c.ports) for c in observed_only} == {
        ("pod:monitoring:app=prometheus", ("ICMPv4 -",)),
        ("entity:world", ("TCP 8080",)),
    }
    for change in observed_only:
        assert change.observed is not None and change.observed.edges == 1
        assert change.new.denied_by == ("ingress",) and "isolated for ingress" in change.new.reason
    assert diff.counts.observed_newly_denied_edges == 2
    assert any("have no probe of their own" in w for w in diff.warnings)


def test_newly_allowed_and_unchanged_observed_are_counted() -> None:
    conns = _frame(
        [
            _row(PROM, BACKEND, "TCP", 9090, outcome="denied"),
            _row(BACKEND, PROM, "TCP", 9090),
        ]
    )
    diff = diff_policies(
        policies(DROPPED), policies(BACKEND_INGRESS), conns, inventory=cluster_inventory()
    )
    assert [c.observed.working_edges for c in diff.newly_allowed if c.observed] == [0]
    assert diff.counts.observed_newly_allowed_edges == 1
    assert diff.counts.observed_unchanged_edges == 1
    assert not diff.reaches("newly-denied-observed") and diff.reaches("any-change")


def test_breaking_lists_working_traffic_newly_denied() -> None:
    conns = _frame([_row(PROM, BACKEND, "TCP", 9090), _row(BACKEND, PROM, "TCP", 9090)])
    diff = diff_policies(
        policies(BACKEND_INGRESS), policies(DROPPED), conns, inventory=cluster_inventory()
    )
    assert [(c.src, c.dst) for c in diff.breaking] == [
        ("pod:monitoring:app=prometheus", "pod:develop:app=backend")
    ]
