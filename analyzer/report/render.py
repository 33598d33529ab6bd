"""Render a `ReportModel` into one self-contained HTML page.

Security model (the values come from flow logs and policy files, so they are hostile):

- Jinja2 with ``autoescape=True``: every value is escaped in text, attributes and inline SVG.
  No template marks data as safe; the only `Markup` values are our own static CSS and JS and
  the JSON data block, which `_script_json` escapes so it cannot close its ``<script>`` element.
- A Content-Security-Policy ``<meta>`` with ``default-src 'none'``: the inline stylesheet and
  the two inline scripts are allowed by their SHA-256 hashes, computed here from the exact bytes
  emitted; nothing else may run or load (no network, no inline event handlers, no
  ``javascript:`` URLs, no ``style`` attributes).
- Data reaches JavaScript only as JSON (``<script type="application/json">``), which the script
  reads with ``JSON.parse`` and compares as strings; it never writes HTML from data.

The output is deterministic for a given model (hashes instead of a random nonce), so it can be
compared against golden files.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from analyzer.report.graph_fold import (
    NAMESPACE_FOLD,
    ROW_BUDGET,
    UNFOLD_DRAWN,
    EdgeLine,
    drawn_unfolds,
    edge_lines,
    fold_graph,
)
from analyzer.report.graph_layout import Layout, layout_graph
from analyzer.report.model import SEVERITIES, ReportModel

__all__ = ["render_report", "unified_diff", "csp_policy"]

# Above this many arrows, port labels start by hidden (a checkbox shows them; tooltips keep them).
PORT_LABEL_LIMIT = 120
# Graphs up to this wide start scaled to the page width (text stays legible, ~0.65x on a
# laptop screen); wider ones start at full size and scroll. A checkbox switches.
FIT_WIDTH_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class GraphView:
    """One graph of the page: the overview (``namespace`` empty) or the unfolded view of one
    folded namespace; ``base`` is the index of its first edge in the page's edge data. A view
    that is not drawn (`drawn_unfolds`) has no layout and lists its edges as ``lines``."""

    layout: Layout | None
    base: int
    namespace: str = ""
    identities: int = 0
    edges: int = 0
    lines: tuple[EdgeLine, ...] = ()


def _graph_views(model: ReportModel) -> tuple[Layout, tuple[GraphView, ...]]:
    folded = fold_graph(model.graph)
    overview = layout_graph(folded.overview)
    drawn = drawn_unfolds(folded, limit=UNFOLD_DRAWN)
    base = len(overview.edges)
    views: list[GraphView] = []
    for ns, graph, identities, edges in zip(
        folded.folded, folded.views, folded.identities, folded.edges, strict=True
    ):
        if ns not in drawn:
            views.append(GraphView(None, base, ns, identities, edges, edge_lines(graph)))
            continue
        layout = layout_graph(graph)
        views.append(GraphView(layout, base, ns, identities, edges))
        base += len(layout.edges)
    return overview, tuple(views)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("analyzer.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@cache
def _asset(name: str) -> str:
    text = resources.files("analyzer.report").joinpath("templates", name).read_text("utf-8")
    # These are raw-text elements: a closing tag inside would end them early.
    closing = "</style" if name.endswith(".css") else "</script"
    if closing in text.lower():
        raise ValueError(f"asset {name} must not contain {closing}")
    return text


def _sha256(text: str) -> str:
    return (
        "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"
    )


def csp_policy(styles: Sequence[str], scripts: Sequence[str]) -> str:
    """The Content-Security-Policy allowing exactly these inline styles and scripts."""
    style_src = " ".join(_sha256(s) for s in styles)
    script_src = " ".join(_sha256(s) for s in scripts)
    return (
        "default-src 'none'; "
        f"style-src {style_src}; "
        f"script-src {script_src}; "
        "img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )


def _script_json(value: Any) -> Markup:
    """JSON that is inert inside ``<script type="application/json">``.

    ``ensure_ascii`` turns U+2028/2029 into escapes; replacing ``<``, ``>`` and ``&`` means no
    ``</script>`` or ``<!--`` can appear, whatever the data holds.
    """
    text = json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _lines(text: str) -> list[str]:
    """Lines split at ``\n`` only: ``str.splitlines`` also splits at U+2028, U+0085 and other
    characters a hostile value may carry, which would forge diff lines."""
    return [line for line in re.split(r"(?<=\n)", text) if line]


def unified_diff(before: str, after: str, *, before_name: str, after_name: str) -> str:
    """A unified diff of two YAML texts; empty when they are equal."""
    lines = difflib.unified_diff(
        _lines(before),
        _lines(after),
        fromfile=before_name,
        tofile=after_name,
        n=3,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _diff_lines(diff: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in diff.rstrip("\n").split("\n") if diff else ():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


def quality_warnings(warnings: Sequence[str]) -> list[str]:
    """The warnings listed under data quality: the lost-events warning of the flow source is
    already the "events lost" count there (stderr and ``-o json`` keep it)."""
    return [w for w in warnings if "events were lost" not in w]


def _script_data(model: ReportModel, edges: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    return {
        "namespaces": list(model.summary.namespaces),
        "edges": list(edges),
    }


def render_report(model: ReportModel) -> str:
    """Render ``model`` as one self-contained HTML document.

    Parameters
    ----------
    model
        The assembled report; see `analyzer.report.build.build_report`.

    Returns
    -------
    str
        HTML that loads nothing from the network and runs only its own hashed scripts.
    """
    css = _asset("report.css")
    early_js = _asset("report-early.js")
    main_js = _asset("report.js")
    overview_layout, unfolds = _graph_views(model)
    overview = GraphView(overview_layout, 0)
    edges = [
        {"src": e.edge.src, "dst": e.edge.dst, "srcNs": e.src_ns, "dstNs": e.dst_ns}
        for layout in (overview_layout, *(v.layout for v in unfolds))
        if layout is not None
        for e in layout.edges
    ]
    severity_rank = {s: i for i, s in enumerate(SEVERITIES)}
    findings = sorted(
        model.findings,
        key=lambda f: (
            severity_rank.get(f.severity, len(SEVERITIES)),
            f.namespace,
            f.policy,
            f.code,
        ),
    )
    diffs = {s.namespace: _diff_lines(s.diff) for s in model.sections if s.diff}
    template = _environment().get_template("report.html.j2")
    return template.render(
        model=model,
        summary=model.summary,
        layout=overview_layout,
        overview=overview,
        unfolds=unfolds,
        unfolds_drawn=sum(1 for v in unfolds if v.layout is not None),
        unfold_index={v.namespace: i for i, v in enumerate(unfolds)},
        namespace_fold=NAMESPACE_FOLD,
        unfold_drawn_limit=UNFOLD_DRAWN,
        row_budget=ROW_BUDGET,
        findings=findings,
        diffs=diffs,
        quality_warnings=quality_warnings(model.summary.warnings),
        csp=csp_policy([css], [early_js, main_js]),
        css=Markup(css),
        early_js=Markup(early_js),
        main_js=Markup(main_js),
        data_json=_script_json(_script_data(model, edges)),
        severities=SEVERITIES,
        port_label_limit=PORT_LABEL_LIMIT,
        fit_width_limit=FIT_WIDTH_LIMIT,
    )
