"""The graph layout: deterministic, every node placed inside its box, no overlaps, clients left."""

from __future__ import annotations

import itertools
import random

from analyzer.report.graph_layout import MAX_COLUMN_H, layout_graph
from analyzer.report.model import GraphEdge, GraphModel, GraphNode


def _tiers(n_ns: int = 6, per_ns: int = 12) -> GraphModel:
    """frontends -> backends -> databases, everyone -> dns; 70+ identities."""
    nodes = [GraphNode("pod:kube-system:k8s-app=kube-dns", "kube-system", "k8s-app=kube-dns")]
    edges = []
    for i in range(n_ns):
        ns = f"team{i}"
        for j in range(per_ns):
            nodes.append(GraphNode(f"pod:{ns}:app=svc{j}", ns, f"app=svc{j}", pods=2))
            if j:
                edges.append(
                    GraphEdge(f"pod:{ns}:app=svc{j - 1}", f"pod:{ns}:app=svc{j}", ("TCP/8080",), 5)
                )
            edges.append(GraphEdge(f"pod:{ns}:app=svc{j}", nodes[0].key, ("UDP/53", "TCP/53"), 9))
    nodes.append(GraphNode("entity:world", "", "world", kind="entity"))
    edges.append(GraphEdge("pod:team0:app=svc0", "entity:world", ("TCP/443",), 1))
    edges.append(GraphEdge("pod:team0:app=svc0", "pod:missing:x", ("TCP/1",), 1))  # dangling
    return GraphModel(tuple(nodes), tuple(edges))


def test_layout_is_deterministic_and_order_independent() -> None:
    graph = _tiers()
    shuffled_nodes = list(graph.nodes)
    shuffled_edges = list(graph.edges)
    random.Random(4).shuffle(shuffled_nodes)
    random.Random(5).shuffle(shuffled_edges)
    other = GraphModel(tuple(shuffled_nodes), tuple(shuffled_edges))
    assert layout_graph(graph) == layout_graph(graph)
    a, b = layout_graph(graph), layout_graph(other)
    assert [(n.node.key, n.x, n.y) for n in a.nodes] == [(n.node.key, n.x, n.y) for n in b.nodes]


def test_nodes_inside_their_box_and_never_overlapping() -> None:
    layout = layout_graph(_tiers())
    assert len(layout.nodes) == 74
    boxes = {b.namespace: b for b in layout.boxes}
    for n in layout.nodes:
        box = boxes[n.node.namespace]
        assert box.x <= n.x and n.x + n.w <= box.x + box.w
        assert box.y <= n.y and n.y + n.h <= box.y + box.h
        assert n.x + n.w <= layout.width and n.y + n.h <= layout.height
    for p, q in itertools.combinations(layout.nodes, 2):
        assert p.x + p.w <= q.x or q.x + q.w <= p.x or p.y + p.h <= q.y or q.y + q.h <= p.y
    for p, q in itertools.combinations(layout.boxes, 2):
        assert p.x + p.w <= q.x or q.x + q.w <= p.x or p.y + p.h <= q.y or q.y + q.h <= p.y


def test_clients_left_of_servers_and_dangling_edges_dropped() -> None:
    layout = layout_graph(_tiers())
    boxes = {b.namespace: b for b in layout.boxes}
    assert boxes["team0"].x < boxes["kube-system"].x
    assert len(layout.edges) == len(_tiers().edges) - 1
    assert all(e.path.startswith("M") for e in layout.edges)


def test_tall_columns_wrap() -> None:
    layout = layout_graph(_tiers(n_ns=12, per_ns=15))
    assert layout.height <= MAX_COLUMN_H + 40
    assert len({b.x for b in layout.boxes}) > 2


def test_cycles_do_not_break_ranking() -> None:
    nodes = tuple(GraphNode(f"pod:{ns}:a", ns, "a") for ns in "abc")
    edges = (
        GraphEdge("pod:a:a", "pod:b:a", ("TCP/1",)),
        GraphEdge("pod:b:a", "pod:c:a", ("TCP/1",)),
        GraphEdge("pod:c:a", "pod:a:a", ("TCP/1",)),
    )
    layout = layout_graph(GraphModel(nodes, edges))
    xs = {b.namespace: b.x for b in layout.boxes}
    assert xs["a"] < xs["b"] < xs["c"]


def test_long_labels_are_shortened() -> None:
    node = GraphNode("pod:x:y", "x", "app=" + "z" * 100)
    layout = layout_graph(GraphModel((node,), ()))
    assert layout.nodes[0].text.endswith("…") and len(layout.nodes[0].text) <= 33


def test_long_namespace_chains_fold_into_few_columns() -> None:
    nodes = tuple(GraphNode(f"pod:ns{i:02d}:a", f"ns{i:02d}", "a") for i in range(12))
    edges = tuple(
        GraphEdge(f"pod:ns{i:02d}:a", f"pod:ns{i + 1:02d}:a", ("TCP/80",)) for i in range(11)
    )
    layout = layout_graph(GraphModel(nodes, edges))
    xs = {b.namespace: b.x for b in layout.boxes}
    assert len(set(xs.values())) <= 5
    assert [xs[f"ns{i:02d}"] for i in range(12)] == sorted(xs[f"ns{i:02d}"] for i in range(12))


def test_very_large_graphs_keep_a_screen_like_shape() -> None:
    nodes = tuple(
        GraphNode(f"pod:ns{i % 150}:app=s{i}", f"ns{i % 150}", f"s{i}") for i in range(2000)
    )
    edges = tuple(
        GraphEdge(nodes[i].key, nodes[(i * 7 + 11) % 2000].key, ("TCP/80",)) for i in range(2000)
    )
    layout = layout_graph(GraphModel(nodes, edges))
    assert len(layout.nodes) == 2000
    assert 0.8 <= layout.width / layout.height <= 3.0
