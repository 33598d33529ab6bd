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
