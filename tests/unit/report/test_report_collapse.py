"""Folding external addresses with the same role into one node."""

from __future__ import annotations

from analyzer.report.collapse import collapse_peers
from analyzer.report.model import GraphEdge, GraphModel, GraphNode

DEBUG = GraphNode("pod:develop:app=debug", "develop", "debug", pods=1)
WEB = GraphNode("pod:web:app=web", "web", "web", pods=2)


def _ip(i: int) -> GraphNode:
    return GraphNode(f"ip:10.0.0.{i}", "", f"10.0.0.{i}", kind="ip")


def test_sweep_targets_fold_and_keep_counts() -> None:
    targets = [_ip(i) for i in range(1, 6)]
    edges = [
        GraphEdge(
            DEBUG.key, t.key, (f"TCP/{443 if i % 2 else 80}",), i, "denied" if i else "allowed"
        )
        for i, t in enumerate(targets)
    ]
    lone = _ip(99)
    edges.append(GraphEdge(WEB.key, lone.key, ("TCP/5432",), 7))
    graph = collapse_peers(GraphModel((DEBUG, WEB, lone, *targets), tuple(edges)))
    keys = {n.key for n in graph.nodes}
    assert DEBUG.key in keys and WEB.key in keys and lone.key in keys
    merged = [n for n in graph.nodes if n.label == "5 addresses"]
    assert len(merged) == 1 and merged[0].kind == "ip" and merged[0].namespace == ""
    assert merged[0].detail[0] == "10.0.0.1"
    (sweep,) = [e for e in graph.edges if e.dst == merged[0].key]
    assert sweep.ports == ("TCP/80", "TCP/443")
    assert sweep.connections == sum(range(5)) and sweep.outcome == "mixed"


def test_pods_and_small_groups_are_left_alone() -> None:
    a, b = _ip(1), _ip(2)
    pods = [GraphNode(f"pod:x:app=p{i}", "x", f"p{i}") for i in range(4)]
    edges = [GraphEdge(DEBUG.key, n.key, ("TCP/80",), 1) for n in (a, b, *pods)]
    graph = GraphModel((DEBUG, a, b, *pods), tuple(edges))
    assert collapse_peers(graph) == graph


def test_sweeps_fold_into_one_row_per_source_port_and_rule() -> None:
    from analyzer.report.collapse import fold_destinations
    from analyzer.report.model import AnomalyRow, DeniedRow

    sweep = [
        AnomalyRow("develop/debug", f"10.0.0.{i}", "TCP/80", 1, 0.9, ("rule: host_sweep", "x"))
        for i in range(5)
    ]
    other = AnomalyRow("develop/debug", "web/db", "TCP/5432", 4, 0.8, ("rule: db",))
    rows = fold_destinations([*sweep[:2], other, *sweep[2:]])
    assert len(rows) == 2
    assert rows[0].dst == "5 destinations (10.0.0.0, 10.0.0.1, 10.0.0.2, …)"
    assert rows[0].connections == 5 and rows[0].reasons == ("rule: host_sweep", "x")
    assert rows[1] == other
    denied = [DeniedRow("a", f"b{i}", "TCP/1", 2, f"2026-01-0{i + 1}") for i in range(3)]
    (folded,) = fold_destinations(denied)
    assert folded.connections == 6 and folded.last_seen == "2026-01-03"
    assert fold_destinations(denied[:2]) == denied[:2]
