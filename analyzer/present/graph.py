"""Render an `IdentityGraph`: a table for people, JSON for scripts, Graphviz DOT for pictures.

Every string in a graph comes from flow records (labels, pod names, DNS names), i.e. from
untrusted input: the table replaces control characters, DOT escapes every quoted string, JSON
is escaped by the encoder. Output is deterministic (sorted) so it can be diffed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analyzer import connections as C
from analyzer import schema as S
from analyzer.connections import ConnectionStats

if TYPE_CHECKING:
    from analyzer.analysis.inputs import IngestNotes
from analyzer.identity.graph import EVIDENCE, NODE_LOCAL, IdentityGraph, display_name
from analyzer.present.text import escaped as printable
from analyzer.present.text import port_text, text_table

__all__ = [
    "display_name",
    "graph_to_dict",
    "render_json",
    "render_dot",
    "render_table",
    "stats_lines",
    "stats_dict",
    "dot_quote",
    "printable",
]

_MAX_CELL = 80


def dot_quote(text: str) -> str:
    """A DOT double-quoted string; backslashes, quotes and line breaks cannot escape it."""
    body = printable(text).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{body}"'


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def stats_dict(stats: ConnectionStats) -> dict[str, Any]:
    out: dict[str, Any] = {
        name: getattr(stats, name) for name in ConnectionStats.__dataclass_fields__
    }
    out["window"] = [_iso(t) for t in stats.window]
    out["warnings"] = list(stats.warnings)
    return out


def graph_to_dict(graph: IdentityGraph) -> dict[str, Any]:
    """The graph as plain JSON-able data: ``{"groups": [...], "edges": [...], "stats": {...}}``."""
    groups = [
        {
            "key": g.key,
            "name": display_name(g),
            "namespace": g.namespace,
            "entity": g.entity,
            "labels": list(g.labels),
            "namespace_labels": list(g.namespace_labels),
            "selector": dict(sorted(g.selector.items())),
            "selector_unique": g.selector_unique,
            "notes": list(g.notes),
            "pods": list(g.pods),
            "workloads": list(g.workloads),
            "ips": list(g.ips),
            "dns_names": list(g.dns_names),
        }
        for g in sorted(graph.groups.values(), key=lambda g: g.key)
    ]
    edges = []
    for row in graph.edges.iter_rows(named=True):
        edges.append(
            {
                "src": row[C.SRC_GROUP],
                "dst": row[C.DST_GROUP],
                "protocol": row[S.PROTOCOL],
                "port": row[S.DST_PORT],
                "outcome": row[C.OUTCOME],
                "connections": row[C.CONNECTIONS],
                "events": row[C.EVENTS],
                "first_seen": _iso(row[C.FIRST_SEEN]),
                "last_seen": _iso(row[C.LAST_SEEN]),
                "nodes": row[C.NODES] or [],
                "audit": row[C.AUDIT],
                "node_local": row[NODE_LOCAL],
                "evidence": [
                    {**e, "first_seen": _iso(e["first_seen"]), "last_seen": _iso(e["last_seen"])}
                    for e in row[EVIDENCE] or []
                ],
            }
        )
    return {"groups": groups, "edges": edges, "stats": stats_dict(graph.stats)}


def render_json(graph: IdentityGraph) -> str:
    return json.dumps(graph_to_dict(graph), indent=2, sort_keys=False)


def render_dot(graph: IdentityGraph) -> str:
    """Graphviz DOT: namespaces as clusters, denied edges red and dashed."""
    ids = {key: f"n{i}" for i, key in enumerate(sorted(graph.groups))}
    lines = [
        "digraph identities {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    by_ns: dict[str, list[str]] = {}
    outside: list[str] = []
    for key in sorted(graph.groups):
        ns = graph.groups[key].namespace
        (by_ns.setdefault(ns, []) if ns else outside).append(key)
    for index, ns in enumerate(sorted(by_ns)):
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(f"    label={dot_quote(ns)};")
        for key in by_ns[ns]:
            label = display_name(graph.groups[key]).partition("/")[2]
            lines.append(f"    {ids[key]} [label={dot_quote(label)}, tooltip={dot_quote(key)}];")
        lines.append("  }")
    for key in outside:
        group = graph.groups[key]
        lines.append(
            f"  {ids[key]} [label={dot_quote(display_name(group))}, shape=ellipse, "
            f"tooltip={dot_quote(key)}];"
        )
    for row in graph.edges.iter_rows(named=True):
        src, dst = ids.get(row[C.SRC_GROUP]), ids.get(row[C.DST_GROUP])
        if src is None or dst is None:
            continue
        label = f"{port_text(row[S.PROTOCOL], row[S.DST_PORT])} ({row[C.CONNECTIONS]})"
        style = ', color="red", style="dashed"' if row[C.OUTCOME] == C.DENIED else ""
        lines.append(f"  {src} -> {dst} [label={dot_quote(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    text = printable(text)
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def render_table(graph: IdentityGraph) -> str:
    """One line per edge: source → destination, protocol/port, outcome, counts, time range."""
    header = ("SOURCE", "", "DESTINATION", "PORT", "OUTCOME", "CONNS", "FIRST SEEN", "LAST SEEN")
    names = {key: display_name(group) for key, group in graph.groups.items()}
    body = []
    for row in graph.edges.iter_rows(named=True):
        first, last = row[C.FIRST_SEEN], row[C.LAST_SEEN]
        src = names.get(row[C.SRC_GROUP], row[C.SRC_GROUP])
        dst = names.get(row[C.DST_GROUP], row[C.DST_GROUP])
        order = (src, dst, row[S.PROTOCOL] or "", row[S.DST_PORT] or -1, row[C.OUTCOME])
        cells = (
            _cell(src),
            "→",
            _cell(dst),
            port_text(row[S.PROTOCOL], row[S.DST_PORT]),
            row[C.OUTCOME] + (" (audit)" if row[C.AUDIT] else ""),
            str(row[C.CONNECTIONS]),
            first.strftime("%Y-%m-%d %H:%M:%S") if first else "-",
            last.strftime("%Y-%m-%d %H:%M:%S") if last else "-",
        )
        body.append((order, cells))
    # sorted by what people read: the names, then protocol and port
    rows: list[tuple[str, ...]] = [header]
    rows.extend(cells for _, cells in sorted(body, key=lambda item: item[0]))
    if len(rows) == 1:
        return "no connections observed\n"
    return "\n".join(text_table(rows, right=(5,))) + "\n"


def stats_lines(stats: ConnectionStats, notes: IngestNotes | None = None) -> list[str]:
    """A summary of how flows became connections, and the warnings (for stderr): events the
    sources lost make the graph incomplete."""
    line = (
        f"{stats.rows_in} flow rows: {stats.requests} requests -> {stats.connections} "
        f"connections; {stats.replies_removed} replies removed, {stats.undecidable} undecidable, "
        f"{stats.non_policy_drops_ignored} non-policy drops ignored"
    )
    if stats.proxy_legs_collapsed:
        line += f", {stats.proxy_legs_collapsed} L7-proxy legs folded into their clients"
    if stats.sock_events_ignored:
        line += f", {stats.sock_events_ignored} socket-LB events ignored"
    lines = [line, *(f"warning: {w}" for w in stats.warnings)]
    if notes is not None and notes.lost_events:
        lines.append(
            f"warning: the sources lost {notes.lost_events} events (Hubble's ring buffer "
            "overflowed): the graph may be incomplete"
        )
    return lines
