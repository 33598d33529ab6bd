"""Fold large namespaces of the graph into one box each, and the view that unfolds one.

At a few hundred identities a graph of every identity and every request is a wall of arrows.
The report therefore draws an *overview* in which namespaces past a size are folded: a folded
namespace is one row ("42 identities"), and the requests between folded namespaces (or between
an identity and a folded namespace) are aggregated into one arrow per pair, carrying how many
identity edges it stands for and the union of their ports. Each folded namespace then has its
own *unfolded view*: every identity of the namespace and every request into, out of or inside
it, with the identities at the other end. The page shows those views in folds under the
overview (pure HTML: they work without script and print open).

Which namespaces fold (`folded_namespaces`) is a pure function of the graph: a namespace of
more than `NAMESPACE_FOLD` identities always folds; when the whole graph has more than
`ROW_BUDGET` rows, the largest namespaces fold too (ties by name), until the overview has at
most `ROW_BUDGET` rows or every namespace of more than one identity is folded.

Which unfolded views are *drawn* (`drawn_unfolds`) is bounded too: at 10,000 workloads every
one of 1,668 namespaces folds, and drawing each view took 22 of the report's CPU seconds and
24 of its 99 MB, for pictures of six identities nobody opens one by one. Up to `UNFOLD_DRAWN`
folded namespaces every view is drawn; past it the ones a reviewer looks at first are drawn
(those with a flagged edge, then those with a denied one, then the largest, ties by name) and
every other one lists its edges as text (`edge_lines`): the same facts, no layout.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from analyzer.report.collapse import merge_edges
from analyzer.report.graph_layout import FOLDED_KIND, end_name
from analyzer.report.model import GraphEdge, GraphModel, GraphNode

__all__ = [
    "FOLDED_KIND",
    "NAMESPACE_FOLD",
    "ROW_BUDGET",
    "UNFOLD_DRAWN",
    "EdgeLine",
    "FoldedGraph",
    "drawn_unfolds",
    "edge_lines",
    "fold_graph",
    "folded_namespaces",
    "namespace_key",
    "unfolded_views",
]

# A namespace with more identities than this is folded in the overview whatever the total.
NAMESPACE_FOLD = 20
# The overview aims at no more rows than this (one screen or two of boxes).
ROW_BUDGET = 150
# At most this many unfolded views are drawn; the other folded namespaces list their edges.
UNFOLD_DRAWN = 40


def namespace_key(namespace: str) -> str:
    """The key of a folded namespace's row: ``ns:`` cannot start an identity key (``pod:``,
    ``ip:``, ``ips:``, ``entity:``)."""
    return f"ns:{namespace}"


@dataclass(frozen=True, slots=True)
class FoldedGraph:
    """The overview and, per folded namespace (in name order), its unfolded view."""

    overview: GraphModel
    folded: tuple[str, ...]
    views: tuple[GraphModel, ...]
    identities: tuple[int, ...]  # per folded namespace: its identities
    edges: tuple[int, ...]  # per folded namespace: the identity edges its view draws


def _members(graph: GraphModel) -> dict[str, list[GraphNode]]:
    members: dict[str, list[GraphNode]] = defaultdict(list)
    for node in graph.nodes:
        if node.namespace:  # peers outside the pods are never folded
            members[node.namespace].append(node)
    return members


def folded_namespaces(
    graph: GraphModel, *, namespace_fold: int = NAMESPACE_FOLD, row_budget: int = ROW_BUDGET
) -> tuple[str, ...]:
    """The namespaces the overview draws folded, in name order (see the module's rule)."""
    members = _members(graph)
    folded = {ns for ns, m in members.items() if len(m) > namespace_fold}
    rows = len(graph.nodes) - sum(len(members[ns]) - 1 for ns in folded)
    # Largest first, then by name: the fewest folds that bring the overview under budget.
    for ns in sorted(members, key=lambda n: (-len(members[n]), n)):
        if rows <= row_budget or len(members[ns]) < 2:
            break
        if ns not in folded:
            folded.add(ns)
            rows -= len(members[ns]) - 1
    return tuple(sorted(folded))


def _folded_node(namespace: str, nodes: list[GraphNode], inside: int) -> GraphNode:
    pods = sum(n.pods for n in nodes)
    shown = sorted(n.label for n in nodes)
    detail = [f"{len(nodes)} identities, {pods} pods, {inside} edges inside; unfold it below"]
    detail += shown[:12]
    if len(shown) > 12:
        detail.append(f"… and {len(shown) - 12} more")
    return GraphNode(
        namespace_key(namespace),
        namespace,
        f"{len(nodes)} identities",
        FOLDED_KIND,
        pods,
        tuple(detail),
    )


def _overview(graph: GraphModel, folded: tuple[str, ...]) -> GraphModel:
    """Folded namespaces as one node, edges merged per pair of drawn ends; edges inside a
    folded namespace are counted in its tooltip."""
    fold = set(folded)
    alias = {n.key: namespace_key(n.namespace) for n in graph.nodes if n.namespace in fold}
    grouped: dict[tuple[str, str], list[GraphEdge]] = defaultdict(list)
    inside: dict[str, int] = defaultdict(int)
    for e in graph.edges:
        src, dst = alias.get(e.src, e.src), alias.get(e.dst, e.dst)
        if src == dst and src.startswith("ns:") and e.src in alias:
            inside[src] += e.merged
            continue
        grouped[(src, dst)].append(e)
    members = _members(graph)
    nodes = [n for n in graph.nodes if n.key not in alias]
    nodes += [_folded_node(ns, members[ns], inside[namespace_key(ns)]) for ns in folded]
    edges = [
        es[0] if [(src, dst)] == [(e.src, e.dst) for e in es] else merge_edges(es, src, dst)
        for (src, dst), es in sorted(grouped.items())
    ]
    return GraphModel(tuple(sorted(nodes, key=lambda n: n.key)), tuple(edges))


def unfolded_views(graph: GraphModel, namespaces: tuple[str, ...]) -> tuple[GraphModel, ...]:
    """Per namespace: every identity of it and every edge into, out of or inside it, with the
    identities at the other end (in their own namespaces' boxes). One pass over the edges."""
    ns_of = {n.key: n.namespace for n in graph.nodes}
    wanted = set(namespaces)
    touching: dict[str, list[GraphEdge]] = defaultdict(list)
    for e in graph.edges:
        ends = {ns_of.get(e.src), ns_of.get(e.dst)}
        for ns in ends:
            if ns in wanted:
                touching[ns].append(e)
    by_key = {n.key: n for n in graph.nodes}
    # grouped once: a scan of every node per namespace took 12 s at 1,668 namespaces
    own: dict[str, set[str]] = defaultdict(set)
    for n in graph.nodes:
        if n.namespace in wanted:
            own[n.namespace].add(n.key)
    views = []
    for ns in namespaces:
        keep = set(own[ns])
        keep.update(k for e in touching[ns] for k in (e.src, e.dst))
        nodes = tuple(by_key[k] for k in sorted(keep) if k in by_key)
        views.append(GraphModel(nodes, tuple(touching[ns])))
    return tuple(views)


def fold_graph(
    graph: GraphModel, *, namespace_fold: int = NAMESPACE_FOLD, row_budget: int = ROW_BUDGET
) -> FoldedGraph:
    """The overview of ``graph`` with the namespaces `folded_namespaces` picks folded, and
    the unfolded view of each of them."""
    folded = folded_namespaces(graph, namespace_fold=namespace_fold, row_budget=row_budget)
    if not folded:
        return FoldedGraph(graph, (), (), (), ())
    views = unfolded_views(graph, folded)
    members = _members(graph)
    return FoldedGraph(
        overview=_overview(graph, folded),
        folded=folded,
        views=views,
        identities=tuple(len(members[ns]) for ns in folded),
        edges=tuple(len(v.edges) for v in views),
    )


def drawn_unfolds(folded: FoldedGraph, *, limit: int = UNFOLD_DRAWN) -> frozenset[str]:
    """The folded namespaces whose unfolded view is drawn: every one up to ``limit``, else the
    ``limit`` first by (a flagged edge, a denied or mixed edge, most identities, name)."""
    if len(folded.folded) <= limit:
        return frozenset(folded.folded)

    def rank(i: int) -> tuple[bool, bool, int, str]:
        edges = folded.views[i].edges
        return (
            not any(e.anomalous for e in edges),
            all(e.outcome == "allowed" for e in edges),
            -folded.identities[i],
            folded.folded[i],
        )

    order = sorted(range(len(folded.folded)), key=rank)
    return frozenset(folded.folded[i] for i in order[:limit])


@dataclass(frozen=True, slots=True)
class EdgeLine:
    """One edge of an undrawn view, as a line of text (what the arrow's tooltip says)."""

    text: str
    outcome: str
    anomalous: bool


def edge_lines(view: GraphModel) -> tuple[EdgeLine, ...]:
    """The edges of an unfolded view as text, by source then destination name."""
    nodes = {n.key: n for n in view.nodes}
    lines = []
    for e in view.edges:
        src, dst = nodes.get(e.src), nodes.get(e.dst)
        ports = ", ".join(e.ports) if e.ports else "any"
        lines.append(
            (
                end_name(src) if src is not None else e.src,
                end_name(dst) if dst is not None else e.dst,
                ports,
                e,
            )
        )
    lines.sort(key=lambda t: t[:3])
    return tuple(
        EdgeLine(
            f"{s} → {d}: {ports} ({e.connections} connections, {e.outcome})",
            e.outcome,
            e.anomalous,
        )
        for s, d, ports, e in lines
    )
