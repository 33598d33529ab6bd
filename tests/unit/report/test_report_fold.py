"""Folding namespaces in the report's graph: which fold, what the overview draws for them, the
unfolded views, and label placement off other arrows."""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser

import pytest
from report_samples import HOSTILE, hostile_model

from analyzer.report import graph_layout
from analyzer.report.graph_fold import (
    FOLDED_KIND,
    NAMESPACE_FOLD,
    ROW_BUDGET,
    drawn_unfolds,
    edge_lines,
    fold_graph,
    folded_namespaces,
    namespace_key,
)
from analyzer.report.graph_layout import Layout, label_box, layout_graph
from analyzer.report.model import GraphEdge, GraphModel, GraphNode
from analyzer.report.render import render_report


def _graph(sizes: dict[str, int], *, extra_edges: tuple[GraphEdge, ...] = ()) -> GraphModel:
    """Namespaces of the given sizes; each identity calls the next namespace's first two
    identities on TCP/80 and its own namespace's next identity on TCP/8080."""
    nodes = [
        GraphNode(f"pod:{ns}:app=s{i}", ns, f"app=s{i}", pods=2)
        for ns, n in sizes.items()
        for i in range(n)
    ]
    nodes.append(GraphNode("entity:world", "", "world", kind="entity"))
    names = list(sizes)
    edges: list[GraphEdge] = []
    for k, ns in enumerate(names):
        nxt = names[(k + 1) % len(names)]
        for i in range(sizes[ns]):
            for j in range(min(2, sizes[nxt])):
                if nxt != ns:
                    edges.append(
                        GraphEdge(f"pod:{ns}:app=s{i}", f"pod:{nxt}:app=s{j}", ("TCP/80",), 3)
                    )
            if i + 1 < sizes[ns]:
                edges.append(
                    GraphEdge(f"pod:{ns}:app=s{i}", f"pod:{ns}:app=s{i + 1}", ("TCP/8080",), 1)
                )
    edges.append(GraphEdge(f"pod:{names[0]}:app=s0", "entity:world", ("TCP/443",), 1))
    return GraphModel(tuple(nodes), (*edges, *extra_edges))


def test_small_graphs_are_not_folded() -> None:
    graph = _graph({"a": 5, "b": 7, "c": NAMESPACE_FOLD})
    folded = fold_graph(graph)
    assert folded.folded == () and folded.views == ()
    assert folded.overview == graph


def test_a_namespace_past_the_size_folds_alone() -> None:
    graph = _graph({"a": 5, "big": NAMESPACE_FOLD + 1, "c": 3})
    assert folded_namespaces(graph) == ("big",)


def test_past_the_row_budget_the_largest_namespaces_fold_first() -> None:
    sizes = {f"ns{i:02d}": 10 + i % 5 for i in range(14)}  # 168 identities + world
    sizes["solo"] = 1
    graph = _graph(sizes)
    folded = folded_namespaces(graph)
    rows = len(graph.nodes) - sum(sizes[ns] - 1 for ns in folded)
    assert rows <= ROW_BUDGET
    assert "solo" not in folded
    # Largest first: no unfolded namespace is larger than a folded one.
    assert max(sizes[ns] for ns in sizes if ns not in folded) <= min(sizes[ns] for ns in folded)
    # Fewest folds: without the last (smallest) fold the graph would still be over budget.
    smallest = min(folded, key=lambda ns: (sizes[ns], ns))
    assert rows + sizes[smallest] - 1 > ROW_BUDGET
    # At 2,000 identities in namespaces of six, every namespace folds.
    many = _graph({f"x{i:03d}": 6 for i in range(340)})
    assert len(folded_namespaces(many)) == 340


def test_overview_aggregates_edges_per_pair_and_loses_none() -> None:
    anomalous = GraphEdge("pod:c:app=s3", "pod:a:app=s0", ("UDP/53",), 2, "denied", True)
    graph = _graph({"a": 4, "b": 25, "c": 30}, extra_edges=(anomalous,))
    folded = fold_graph(graph)
    assert folded.folded == ("b", "c")
    overview = folded.overview
    kinds = Counter(n.kind for n in overview.nodes)
    assert kinds[FOLDED_KIND] == 2 and kinds["pod"] == 4
    b = next(n for n in overview.nodes if n.key == namespace_key("b"))
    assert (b.namespace, b.label, b.pods) == ("b", "25 identities", 50)
    assert b.detail[0].startswith("25 identities, 50 pods, 24 edges inside")
    pairs = {(e.src, e.dst): e for e in overview.edges}
    assert len(pairs) == len(overview.edges)  # one arrow per pair of drawn ends
    b_to_c = pairs[(namespace_key("b"), namespace_key("c"))]
    assert b_to_c.merged == 25 * 2 and b_to_c.connections == 25 * 2 * 3
    assert b_to_c.ports == ("TCP/80",)
    # An identity of an unfolded namespace keeps its own arrow to the folded one.
    c_to_a = pairs[(namespace_key("c"), "pod:a:app=s0")]
    assert c_to_a.merged == 31 and c_to_a.outcome == "mixed" and c_to_a.anomalous
    assert c_to_a.ports == ("TCP/80", "UDP/53")
    assert pairs[(namespace_key("c"), "pod:a:app=s1")].merged == 30
    assert pairs[("pod:a:app=s0", "pod:a:app=s1")].merged == 1
    # Every identity edge is drawn once: in an arrow, or counted inside its folded namespace.
    inside = 0
    for n in overview.nodes:
        if n.kind == FOLDED_KIND:
            found = re.match(r"\d+ identities, \d+ pods, (\d+) edges inside", n.detail[0])
            assert found is not None
            inside += int(found.group(1))
    assert sum(e.merged for e in overview.edges) + inside == len(graph.edges)


def test_unfolded_view_has_every_edge_touching_the_namespace() -> None:
    graph = _graph({"a": 4, "b": 25, "c": 30})
    folded = fold_graph(graph)
    ns_of = {n.key: n.namespace for n in graph.nodes}
    for ns, view, identities, edges in zip(
        folded.folded, folded.views, folded.identities, folded.edges, strict=True
    ):
        wanted = {e for e in graph.edges if ns in (ns_of[e.src], ns_of[e.dst])}
        assert set(view.edges) == wanted and edges == len(wanted)
        keys = {n.key for n in view.nodes}
        assert {k for k, n in ns_of.items() if n == ns} <= keys
        assert identities == sum(1 for n in ns_of.values() if n == ns)
        assert keys == {n.key for n in graph.nodes if n.namespace == ns} | {
            k for e in wanted for k in (e.src, e.dst)
        }


def test_folded_arrows_say_how_many_edges_and_which_namespaces() -> None:
    folded = fold_graph(_graph({"a": 4, "b": 25, "c": 30}))
    layout = layout_graph(folded.overview)
    edge = next(
        e
        for e in layout.edges
        if (e.edge.src, e.edge.dst) == (namespace_key("b"), namespace_key("c"))
    )
    assert edge.label == "50 edges: TCP/80"
    assert edge.title.startswith("namespace b (25 identities) → namespace c (30 identities)")
    assert "50 identity edges, 150 connections" in edge.title


def _points(path: str) -> tuple[float, ...]:
    return tuple(float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", path))


def _label_crossings(layout: Layout) -> int:
    """(label, other arrow) pairs where the arrow, sampled finely, passes through the label."""
    curves = [_points(e.path) for e in layout.edges]
    count = 0
    for i, e in enumerate(layout.edges):
        if not e.label:
            continue
        r = label_box(e.label_x, e.label_y, e.label)
        for j, pts in enumerate(curves):
            if j != i and any(
                r[0] <= x <= r[2] and r[1] <= y <= r[3]
                for x, y in (graph_layout._bezier_point(pts, k / 300) for k in range(301))
            ):
                count += 1
    return count


@pytest.mark.parametrize("graph", ["tiers", "hostile"])
def test_labels_keep_off_other_arrows_where_they_can(
    graph: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_report_layout import _tiers

    model = _tiers() if graph == "tiers" else hostile_model(8, 6).graph
    placed = layout_graph(model)
    labels = sum(1 for e in placed.edges if e.label)
    crossed = _label_crossings(placed)
    # The same layout with arrows ignored when placing labels (the placement before).
    monkeypatch.setattr(graph_layout._PathGrid, "crossings", lambda self, r, own, limit: 0)
    naive = layout_graph(model)
    naive_labels = sum(1 for e in naive.edges if e.label)
    assert labels >= naive_labels
    assert crossed / labels < 0.9 * _label_crossings(naive) / naive_labels


def test_a_label_moves_off_an_arrow_that_crosses_its_midpoint() -> None:
    """Two arrows crossing in an X: the midpoints coincide, so one label must move."""
    nodes = (
        GraphNode("pod:a:app=top", "a", "app=top"),
        GraphNode("pod:a:app=bottom", "a", "app=bottom"),
        GraphNode("pod:b:app=top", "b", "app=top"),
        GraphNode("pod:b:app=bottom", "b", "app=bottom"),
    )
    edges = (
        GraphEdge("pod:a:app=top", "pod:b:app=bottom", ("TCP/80",)),
        GraphEdge("pod:a:app=bottom", "pod:b:app=top", ("TCP/81",)),
    )
    layout = layout_graph(GraphModel(nodes, edges))
    assert all(e.label for e in layout.edges)
    assert _label_crossings(layout) == 0


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_folded_hostile_namespaces_render_as_text() -> None:
    model = hostile_model(nodes_per_ns=NAMESPACE_FOLD + 2, namespaces=2)
    folded = fold_graph(model.graph)
    assert HOSTILE[0] in folded.folded  # the hostile namespace folds too
    html = render_report(model)
    assert render_report(model) == html  # deterministic, folds and all
    page = _Tags()
    page.feed(html)
    svgs = [a for t, a in page.tags if t == "svg"]
    assert len(svgs) == 1 + len(folded.folded)
    details = [a for t, a in page.tags if t == "details" and a.get("class") == "unfold"]
    assert [d["id"] for d in details] == [f"unfold-{i}" for i in range(len(folded.folded))]
    assert [d["data-ns"] for d in details] == list(folded.folded)
    rows = [a for t, a in page.tags if t == "g" and a.get("class") == f"node {FOLDED_KIND}"]
    assert sorted(r["data-unfold"] or "" for r in rows) == [str(i) for i in range(len(details))]
    assert {r["data-key"] for r in rows} == {namespace_key(ns) for ns in folded.folded}
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on") and name != "style", (tag, name)
            assert not (value or "").lower().lstrip().startswith("javascript:"), (tag, name)
    text = "".join(page.text)
    assert f"{HOSTILE[0]}: {NAMESPACE_FOLD + 2} identities" in text  # the fold's summary
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    # Every drawn arrow has its own entry in the page's data, the overview's first.
    indexes = [int(a["data-index"] or -1) for t, a in page.tags if t == "g" and "data-index" in a]
    assert sorted(indexes) == list(range(len(indexes)))


def test_past_the_arrow_limit_labels_still_avoid_labels_and_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hairball skips the arrow search (AVOID_ARROWS_MAX), never the label/node rule."""
    model = hostile_model(8, 6).graph
    searched = layout_graph(model)
    monkeypatch.setattr(graph_layout, "AVOID_ARROWS_MAX", len(model.edges) - 1)
    hairball = layout_graph(model)
    assert _label_crossings(hairball) > _label_crossings(searched)
    boxes = [label_box(e.label_x, e.label_y, e.label) for e in hairball.edges if e.label]
    nodes = [(n.x, n.y, n.x + n.w, n.y + n.h) for n in hairball.nodes]
    assert boxes
    for i, box in enumerate(boxes):
        assert not any(graph_layout._intersects(box, other) for other in boxes[i + 1 :])
        assert not any(graph_layout._intersects(box, node) for node in nodes)


def test_drawn_unfolds_are_all_up_to_the_limit_then_the_ones_to_review_first() -> None:
    sizes = {f"n{i:02d}": 3 + i % 4 for i in range(12)}
    flagged = GraphEdge("pod:n07:app=s0", "entity:world", ("TCP/4444",), 1, anomalous=True)
    denied = GraphEdge("pod:n09:app=s1", "entity:world", ("TCP/25",), 2, outcome="denied")
    folded = fold_graph(_graph(sizes, extra_edges=(flagged, denied)), namespace_fold=2)
    assert folded.folded == tuple(sorted(sizes))
    assert drawn_unfolds(folded, limit=12) == set(sizes)
    # n07 has a flagged edge, n09 a denied one (and n00 calls world: allowed); then the
    # largest (6 identities: n03, n07, n11), ties by name.
    assert drawn_unfolds(folded, limit=1) == {"n07"}
    assert drawn_unfolds(folded, limit=2) == {"n07", "n09"}
    assert drawn_unfolds(folded, limit=4) == {"n07", "n09", "n03", "n11"}
    assert drawn_unfolds(folded, limit=0) == set()


def test_edge_lines_list_every_edge_of_the_view_by_name() -> None:
    graph = _graph({"a": 3, "b": 2})
    view = fold_graph(graph, namespace_fold=2).views[0]  # namespace a
    lines = edge_lines(view)
    assert len(lines) == len(view.edges)
    assert [line.text for line in lines] == sorted(line.text for line in lines)
    assert "a/app=s0 → b/app=s0: TCP/80 (3 connections, allowed)" in [x.text for x in lines]
    assert "a/app=s0 → world: TCP/443 (1 connections, allowed)" in [x.text for x in lines]


def test_undrawn_unfolds_list_their_edges_as_escaped_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from analyzer.report import render

    model = hostile_model(nodes_per_ns=NAMESPACE_FOLD + 2, namespaces=3)
    folded = fold_graph(model.graph)
    assert len(folded.folded) == 4
    monkeypatch.setattr(render, "UNFOLD_DRAWN", 2)
    drawn = drawn_unfolds(folded, limit=2)
    html = render_report(model)
    assert render_report(model) == html
    page = _Tags()
    page.feed(html)
    assert len([a for t, a in page.tags if t == "svg"]) == 1 + 2
    details = [a for t, a in page.tags if t == "details" and a.get("class") == "unfold"]
    # every folded namespace keeps its fold (and its row's link to it), drawn or not
    assert [d["id"] for d in details] == [f"unfold-{i}" for i in range(4)]
    rows = [a for t, a in page.tags if t == "g" and a.get("class") == f"node {FOLDED_KIND}"]
    assert sorted(r["data-unfold"] or "" for r in rows) == ["0", "1", "2", "3"]
    text = "".join(page.text)
    undrawn = [v for ns, v in zip(folded.folded, folded.views, strict=True) if ns not in drawn]
    assert len(undrawn) == 2
    for view in undrawn:
        assert all(line.text in text for line in edge_lines(view))
    assert html.count('<ul class="edge-lines">') == 2
    assert "The unfolded views of 2 of them are drawn" in text
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    indexes = [int(a["data-index"] or -1) for t, a in page.tags if t == "g" and "data-index" in a]
    assert sorted(indexes) == list(range(len(indexes)))
