"""A deterministic layered layout of the identity graph, computed in Python for inline SVG.

Namespaces become boxes, identities become rows inside their box, and requests become curves
from the client's right edge to the server's left edge. Boxes are placed in columns by their
rank in the namespace graph (clients left, servers right; cycles broken by a DFS in name order),
so DNS and databases end up on the right and ingress gateways on the left. Within a column,
boxes and nodes are ordered by the mean height of their clients (one barycenter sweep), which
removes most crossings without any randomness. Tall columns wrap into several columns so the
picture stays readable with hundreds of identities.

The output is only numbers and the model's own values; the template draws it and escapes
every string.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from analyzer.report.model import GraphEdge, GraphModel, GraphNode

FOLDED_KIND = "namespace"  # a folded namespace's one row (analyzer.report.graph_fold)

__all__ = ["OUTSIDE", "Box", "Layout", "PlacedNode", "RoutedEdge", "end_name", "layout_graph"]

OUTSIDE = ""  # namespace of peers that are not pods: world, host, external addresses
# Outside peers are drawn in two boxes: those that only call in (left of everything) and
# those that are called (ranked like a namespace). These names cannot be namespace names.
_OUT_CLIENTS = "\x00outside-clients"
_OUT_SERVERS = "\x00outside-servers"
_TITLES = {_OUT_CLIENTS: "outside: clients", _OUT_SERVERS: "outside: servers"}

NODE_W = 230
NODE_H = 22
NODE_GAP = 6
BOX_PAD = 10
BOX_HEADER = 26
BOX_GAP = 22
COL_GAP = 150
MARGIN = 20
MAX_COLUMN_H = 1300
ASPECT = 1.6
MAX_COLUMNS = 5
LABEL_CHARS = 33
PORT_CHARS = 26
# Edge label boxes, in SVG units, as the stylesheet draws them (10px text with a 3px halo):
# generous per character (DejaVu Sans digits are 0.64em) so the real text fits inside.
LABEL_CHAR_W = 6.8
LABEL_PAD = 3.0
LABEL_ASCENT = 10.0
LABEL_DESCENT = 3.5
# Where along its curve a label may sit, and how far above/below it, in the order tried.
_LABEL_TS = (0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78, 0.15, 0.85, 0.1, 0.9)
_LABEL_DY = (0.0, -13.0, 13.0)
# Above this many arrows in one view, labels avoid labels and nodes only. In such a hairball
# every spot crosses dozens of arrows (10,000 workloads: 8,575 arrows, 47 per label, and the
# search removed only 10% of them) while the search costs O(arrows^2): 25 of the view's 31 s.
AVOID_ARROWS_MAX = 2000


@dataclass(frozen=True, slots=True)
class Box:
    namespace: str
    title: str
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True, slots=True)
class PlacedNode:
    node: GraphNode
    x: float
    y: float
    w: float
    h: float
    text: str  # the label, shortened to fit; the full text is in the tooltip


@dataclass(frozen=True, slots=True)
class RoutedEdge:
    edge: GraphEdge
    src_ns: str
    dst_ns: str
    path: str  # SVG path data, numbers only
    label_x: float
    label_y: float
    label: str
    title: str


@dataclass(frozen=True, slots=True)
class Layout:
    width: float
    height: float
    boxes: tuple[Box, ...]
    nodes: tuple[PlacedNode, ...]
    edges: tuple[RoutedEdge, ...]


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _namespace_ranks(
    namespaces: list[str], edges: tuple[GraphEdge, ...], ns_of: dict[str, str]
) -> dict[str, int]:
    """Longest-path rank of each namespace after removing the back edges of a DFS."""
    succ: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        a, b = ns_of.get(e.src), ns_of.get(e.dst)
        if a is not None and b is not None and a != b:
            succ[a].add(b)
    order = sorted(namespaces)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    topo: list[str] = []
    dag: dict[str, list[str]] = defaultdict(list)
    for root in order:
        if root in state:
            continue
        # Iterative DFS: deep service chains must not hit the recursion limit.
        stack: list[tuple[str, list[str]]] = [(root, sorted(succ[root], reverse=True))]
        state[root] = 1
        while stack:
            node, todo = stack[-1]
            if todo:
                nxt = todo.pop()
                if state.get(nxt) == 1:
                    continue  # back edge: part of a cycle, ignored for ranking
                dag[node].append(nxt)
                if nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, sorted(succ[nxt], reverse=True)))
            else:
                state[node] = 2
                topo.append(node)
                stack.pop()
    rank = dict.fromkeys(namespaces, 0)
    for node in reversed(topo):
        for nxt in dag[node]:
            rank[nxt] = max(rank[nxt], rank[node] + 1)
    return rank


def _bezier_weights(t: float) -> tuple[float, float, float, float]:
    u = 1 - t
    # each weight multiplied out in the order ``u**3 * x0 + 3 * u * u * t * x1 + ...`` takes,
    # so that a cached weight gives the very same floats
    return u**3, 3 * u * u * t, 3 * u * t * t, t**3


# The curve parameters the layout samples again and again (label spots, path samples): their
# weights computed once. Same floats as computing them per call (see _bezier_weights).
_WEIGHTS: dict[float, tuple[float, float, float, float]] = {}


def _bezier_point(p: tuple[float, ...], t: float) -> tuple[float, float]:
    x0, y0, x1, y1, x2, y2, x3, y3 = p
    w = _WEIGHTS.get(t)
    if w is None:
        w = _WEIGHTS[t] = _bezier_weights(t)
    a, b, c, d = w
    return a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3


Rect = tuple[float, float, float, float]  # x0, y0, x1, y1
Seg = tuple[float, float, float, float]  # x0, y0, x1, y1


def label_box(x: float, y: float, text: str) -> Rect:
    """The box a label drawn centred at ``x`` with its baseline at ``y`` occupies."""
    half = len(text) * LABEL_CHAR_W / 2 + LABEL_PAD
    return (x - half, y - LABEL_ASCENT - LABEL_PAD, x + half, y + LABEL_DESCENT + LABEL_PAD)


def _intersects(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class _LabelGrid:
    """Placed label and node boxes, bucketed by 100-unit cells: a new label is checked only
    against the boxes near it."""

    CELL = 100.0

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int], list[Rect]] = defaultdict(list)

    def _keys(self, r: Rect) -> list[tuple[int, int]]:
        c = self.CELL
        return [
            (i, j)
            for i in range(int(r[0] // c), int(r[2] // c) + 1)
            for j in range(int(r[1] // c), int(r[3] // c) + 1)
        ]

    def free(self, r: Rect) -> bool:
        cells = self.cells
        x0, y0, x1, y1 = r
        for k in self._keys(r):
            for o in cells.get(k, ()):
                if x0 < o[2] and o[0] < x1 and y0 < o[3] and o[1] < y1:  # _intersects(r, o)
                    return False
        return True

    def add(self, r: Rect) -> None:
        for k in self._keys(r):
            self.cells[k].append(r)


def _segment_hits(seg: Seg, r: Rect) -> bool:
    """Whether the segment crosses the rectangle (Liang-Barsky clipping; the four boundaries
    unrolled: this runs for every candidate spot of every label)."""
    x0, y0, x1, y1 = seg
    dx, dy = x1 - x0, y1 - y0
    lo, hi = 0.0, 1.0
    # left (p = -dx), right (p = dx), top (p = -dy), bottom (p = dy); t = q / p
    for p, q in ((-dx, x0 - r[0]), (dx, r[2] - x0), (-dy, y0 - r[1]), (dy, r[3] - y0)):
        if p == 0:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            if t > lo:
                lo = t
        elif t < hi:
            hi = t
        if lo > hi:
            return False
    return True


class _PathGrid:
    """Every routed curve as a polyline, bucketed like `_LabelGrid`: how many other arrows a
    label box would sit on."""

    CELL = 40.0
    SAMPLES = 20

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        # per cell: (x_min, y_min, x_max, y_max, edge index, segment)
        self.cells: dict[tuple[int, int], list[tuple[float, float, float, float, int, Seg]]]
        self.cells = defaultdict(list)

    def add(self, index: int, pts: tuple[float, ...]) -> None:
        if not self.enabled:
            return
        c = self.CELL
        cells = self.cells
        px, py = _bezier_point(pts, 0.0)
        for i in range(1, self.SAMPLES + 1):
            cx, cy = _bezier_point(pts, i / self.SAMPLES)
            seg = (px, py, cx, cy)
            x0, x1 = (px, cx) if px <= cx else (cx, px)  # min, max
            y0, y1 = (py, cy) if py <= cy else (cy, py)
            entry = (x0, y0, x1, y1, index, seg)
            for gx in range(int(x0 // c), int(x1 // c) + 1):
                for gy in range(int(y0 // c), int(y1 // c) + 1):
                    cells[(gx, gy)].append(entry)
            px, py = cx, cy

    def crossings(self, r: Rect, own: int, limit: int) -> int:
        """Other arrows crossing ``r``, counted up to ``limit`` (enough to compare spots)."""
        c = self.CELL
        hit: set[int] = set()
        rx0, ry0, rx1, ry1 = r
        for gx in range(int(rx0 // c), int(rx1 // c) + 1):
            for gy in range(int(ry0 // c), int(ry1 // c) + 1):
                for x0, y0, x1, y1, index, seg in self.cells.get((gx, gy), ()):
                    if index == own or index in hit:
                        continue  # (tested first: cheaper, and the answer is the same)
                    if x0 > rx1 or x1 < rx0 or y0 > ry1 or y1 < ry0:
                        continue
                    if _segment_hits(seg, r):
                        hit.add(index)
                        if len(hit) >= limit:
                            return limit
        return len(hit)


def _place_label(
    grid: _LabelGrid, paths: _PathGrid, own: int, pts: tuple[float, ...], text: str
) -> tuple[float, float] | None:
    """The first spot along the curve where ``text`` hits no placed label or node and no other
    arrow; failing that, the free spot crossing the fewest arrows; None when no spot is free
    (the ports stay in the arrow's tooltip)."""
    best: tuple[int, Rect, float, float] | None = None
    for t in _LABEL_TS:
        x, y = _bezier_point(pts, t)
        for dy in _LABEL_DY:
            box = label_box(x, y - 3 + dy, text)
            if not grid.free(box):
                continue
            crossed = paths.crossings(box, own, best[0] if best is not None else 1 << 30)
            if best is None or crossed < best[0]:
                best = (crossed, box, x, y - 3 + dy)
            if crossed == 0:
                break
        if best is not None and best[0] == 0:
            break
    if best is None:
        return None
    grid.add(best[1])
    return best[2], best[3]


def _route(
    src: PlacedNode, dst: PlacedNode, bend: int
) -> tuple[str, float, float, tuple[float, ...]]:
    sy = src.y + src.h / 2
    dy = dst.y + dst.h / 2
    if dst.x >= src.x + src.w:  # forward: right edge to left edge
        x0, x3 = src.x + src.w, dst.x
        mid = (x3 - x0) / 2
        pts = (x0, sy, x0 + mid, sy, x3 - mid, dy, x3, dy)
    elif dst.x + dst.w <= src.x:  # backward: left edge to right edge
        x0, x3 = src.x, dst.x + dst.w
        mid = (x0 - x3) / 2
        pts = (x0, sy, x0 - mid, sy, x3 + mid, dy, x3, dy)
    else:  # same column: a loop out to the right, wider for each extra edge
        x0 = src.x + src.w
        x3 = dst.x + dst.w
        out = 30 + 12 * (bend % 6)
        pts = (x0, sy, x0 + out, sy, x3 + out, dy, x3, dy)
    lx, ly = _bezier_point(pts, 0.5)
    d = "M{:.1f},{:.1f} C{:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f}".format(*pts)
    return d, lx, ly, pts


def end_name(node: GraphNode) -> str:
    """An end of an edge as text: ``namespace/label``, a folded namespace by name."""
    if node.kind == FOLDED_KIND:
        return f"namespace {node.namespace} ({node.label})"
    return f"{node.namespace}/{node.label}" if node.namespace else node.label


def _port_text(edge: GraphEdge) -> str:
    return ", ".join(edge.ports) if edge.ports else "any"


def layout_graph(graph: GraphModel) -> Layout:
    """Place every node of ``graph`` and route every edge; the same input gives the same output.

    Parameters
    ----------
    graph
        Nodes with their namespace (``""`` for peers outside the pods) and edges between keys.
        Edges whose ends are not nodes are dropped rather than drawn dangling.

    Returns
    -------
    Layout
        Boxes, nodes and edges in SVG user units, plus the overall width and height.
    """
    nodes = {n.key: n for n in graph.nodes}
    edges = tuple(e for e in graph.edges if e.src in nodes and e.dst in nodes)
    called = {e.dst for e in edges}
    ns_of = {
        k: n.namespace
        if n.namespace != OUTSIDE
        else (_OUT_SERVERS if k in called else _OUT_CLIENTS)
        for k, n in nodes.items()
    }
    members: dict[str, list[str]] = defaultdict(list)
    for key in sorted(nodes):
        members[ns_of[key]].append(key)
    namespaces = sorted(members)
    rank = _namespace_ranks(namespaces, edges, ns_of)
    deepest = max(rank.values(), default=0)
    if deepest >= MAX_COLUMNS:
        # Long chains of namespaces would make a wide, flat strip: fold ranks into a few
        # columns (order kept), so neighbours in the chain share a column instead.
        rank = {ns: r * (MAX_COLUMNS - 1) // deepest for ns, r in rank.items()}

    clients: dict[str, list[str]] = defaultdict(list)
    for e in edges:
        clients[e.dst].append(e.src)

    y_of: dict[str, float] = {}
    x_of: dict[str, float] = {}
    boxes: list[Box] = []
    placed: dict[str, PlacedNode] = {}

    def barycenter(key: str) -> float:
        ys = [y_of[c] for c in clients[key] if c in y_of]
        return sum(ys) / len(ys) if ys else float("inf")

    # Columns wrap at MAX_COLUMN_H; a very large graph gets taller columns instead, so the
    # picture keeps a screen-like shape (about 1.6:1) rather than a long strip.
    box_h = {ns: BOX_HEADER + len(m) * (NODE_H + NODE_GAP) - NODE_GAP + BOX_PAD
             for ns, m in members.items()}  # fmt: skip
    col_w = NODE_W + 2 * BOX_PAD + COL_GAP
    total = sum(h + BOX_GAP for h in box_h.values())
    column_h = max(MAX_COLUMN_H, (total * col_w / ASPECT) ** 0.5, max(box_h.values(), default=0))

    x = float(MARGIN)
    height = 0.0
    for r in sorted(set(rank.values())):
        column = [ns for ns in namespaces if rank[ns] == r]

        # Order boxes by where their clients are, then by name; the same for nodes in a box.
        def box_key(ns: str) -> tuple[float, int, str]:
            bs = [barycenter(k) for k in members[ns]]
            finite = [b for b in bs if b != float("inf")]
            return (sum(finite) / len(finite) if finite else float("inf"), ns in _TITLES, ns)

        column.sort(key=box_key)
        y = float(MARGIN)
        for ns in column:
            keys = sorted(members[ns], key=lambda k: (barycenter(k), nodes[k].label, k))
            h = box_h[ns]
            if y > MARGIN and y + h > column_h:  # wrap into a new column of the same rank
                x += NODE_W + 2 * BOX_PAD + COL_GAP
                y = float(MARGIN)
            title = _TITLES.get(ns, ns)
            box_ns = OUTSIDE if ns in _TITLES else ns
            boxes.append(Box(box_ns, title, x, y, NODE_W + 2 * BOX_PAD, h))
            ny = y + BOX_HEADER
            for key in keys:
                node = nodes[key]
                pn = PlacedNode(
                    node, x + BOX_PAD, ny, NODE_W, NODE_H, _shorten(node.label, LABEL_CHARS)
                )
                placed[key] = pn
                y_of[key] = ny + NODE_H / 2
                x_of[key] = x
                ny += NODE_H + NODE_GAP
            y += h + BOX_GAP
            height = max(height, y)
        x += NODE_W + 2 * BOX_PAD + COL_GAP

    routed: list[RoutedEdge] = []
    loops: dict[str, int] = defaultdict(int)
    # Label positions are part of the layout: no label box crosses another label or a node,
    # whatever the zoom (the page scales the SVG uniformly), and where the curve leaves room
    # no label sits on another arrow (views of up to AVOID_ARROWS_MAX arrows). Curves first,
    # labels next: curves do not depend on labels.
    grid = _LabelGrid()
    for pn in placed.values():
        grid.add((pn.x, pn.y, pn.x + pn.w, pn.y + pn.h))
    ordered = sorted(edges, key=lambda e: (e.src, e.dst, e.ports))
    curves: list[tuple[str, float, float, tuple[float, ...], bool]] = []
    paths = _PathGrid(enabled=len(edges) <= AVOID_ARROWS_MAX)
    for i, e in enumerate(ordered):
        src, dst = placed[e.src], placed[e.dst]
        bend = loops[e.src]
        loop = x_of[e.src] == x_of[e.dst]
        if loop:
            loops[e.src] += 1
        d, lx, ly, pts = _route(src, dst, bend)
        curves.append((d, lx, ly, pts, loop))
        paths.add(i, pts)
    for i, (e, (d, lx, ly, pts, loop)) in enumerate(zip(ordered, curves, strict=True)):
        src, dst = placed[e.src], placed[e.dst]
        ports = _port_text(e)
        folded = FOLDED_KIND in (src.node.kind, dst.node.kind)
        shown = f"{e.merged} edges: {ports}" if folded and e.merged > 1 else ports
        # Loops bunch up beside their box: their ports are in the tooltip only.
        label = "" if loop else _shorten(shown, PORT_CHARS)
        spot = _place_label(grid, paths, i, pts, label) if label else None
        if spot is None:
            label = ""
        else:
            lx, ly = spot
        stands = f"{e.merged} identity edges, " if e.merged > 1 else ""
        title = (
            f"{src.node.label} → {dst.node.label}: {ports} "
            f"({stands}{e.connections} connections, {e.outcome})"
        )
        if folded:  # "12 identities → 3 identities" says nothing without the namespaces
            title = (
                f"{end_name(src.node)} → {end_name(dst.node)}: {ports} ({stands}"
                f"{e.connections} connections, {e.outcome})"
            )
        routed.append(
            RoutedEdge(
                e,
                nodes[e.src].namespace,
                nodes[e.dst].namespace,
                d,
                lx,
                ly if spot is not None else ly - 3,
                label,
                title,
            )
        )

    width = x - COL_GAP + MARGIN + 80 if boxes else 2 * MARGIN
    return Layout(
        width=round(width),
        height=round(max(height, 2 * MARGIN)),
        boxes=tuple(boxes),
        nodes=tuple(placed[k] for k in sorted(placed)),
        edges=tuple(routed),
    )
