"""The rendered page: structure (parsed with html.parser), escaping, CSP and JSON data."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

from report_samples import HOSTILE, hostile_model

from analyzer.report.model import ReportModel, Summary
from analyzer.report.render import render_report, unified_diff


class _Page(HTMLParser):
    """Collects elements, attributes, and the raw text of script/style elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.raw: list[tuple[str, dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._open: tuple[str, dict[str, str | None]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._open = (tag, dict(attrs))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.raw.append((self._open[0], self._open[1], data))
            self._open = None
        else:
            self.text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and self._open[0] == tag:
            self.raw.append((tag, self._open[1], ""))
        self._open = None


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _sha(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_hostile_values_never_become_markup(hostile: ReportModel) -> None:
    html = render_report(hostile)
    page = _parse(html)
    # Only our own elements exist: no img, no iframe, no injected svg root, one title per node.
    tags = {t for t, _ in page.tags}
    assert "img" not in tags and "iframe" not in tags
    assert [t for t, _ in page.tags].count("svg") == 1
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert not (value or "").lower().lstrip().startswith("javascript:"), (tag, name)
            assert name != "style", tag
    # Three scripts: the early hook, the JSON data block and the main script; nothing injected.
    scripts = [(a, body) for t, a, body in page.raw if t == "script"]
    assert len(scripts) == 3
    assert all("alert(" not in body for a, body in scripts if a.get("type") != "application/json")
    # The payloads are visible as text, exactly as they came in.
    text = "".join(page.text)
    for payload in HOSTILE:
        assert payload in text, payload
    # Raw markup of the payloads never appears in the document source.
    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html
    assert "<svg onload" not in html
    # The suspected workload is named, as text, in the anomalies section.
    assert ("ul", {"id": "suspects"}) in page.tags
    assert f"{HOSTILE[3]} looks compromised {HOSTILE[6]}" in text


def test_csp_hashes_match_the_inline_code(hostile: ReportModel) -> None:
    page = _parse(render_report(hostile))
    csp = next(a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv"))
    assert csp is not None
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if " " in d.strip())
    assert directives["default-src"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp
    styles = [body for t, _, body in page.raw if t == "style"]
    code = [body for t, a, body in page.raw if t == "script" and a.get("type") is None]
    assert len(styles) == 1 and len(code) == 2
    assert directives["style-src"] == f"'{_sha(styles[0])}'"
    assert directives["script-src"] == " ".join(f"'{_sha(c)}'" for c in code)


def test_json_data_block_is_inert_and_round_trips(hostile: ReportModel) -> None:
    html = render_report(hostile)
    block = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S
    )
    assert block is not None
    body = block.group(1)
    assert "<" not in body and ">" not in body and "&" not in body
    data = json.loads(body)
    assert data["namespaces"] == list(hostile.summary.namespaces)
    assert {e["src"] for e in data["edges"]} <= {n.key for n in hostile.graph.nodes}


def test_graph_structure_matches_the_model(hostile: ReportModel) -> None:
    page = _parse(render_report(hostile))
    nodes = [a for t, a in page.tags if t == "g" and (a.get("class") or "").startswith("node")]
    edges = [a for t, a in page.tags if t == "g" and (a.get("class") or "").startswith("edge")]
    boxes = [a for t, a in page.tags if t == "g" and (a.get("class") or "").startswith("box")]
    assert sorted(a["data-key"] or "" for a in nodes) == sorted(n.key for n in hostile.graph.nodes)
    assert len(edges) == len(hostile.graph.edges)
    assert {a["data-ns"] for a in boxes} == {n.namespace for n in hostile.graph.nodes}
    assert any("denied" in (a.get("class") or "") for a in edges)
    assert any("anomalous" in (a.get("class") or "") for a in edges)
    options = [a.get("value") for t, a in page.tags if t == "option"]
    assert options == ["", *hostile.summary.namespaces]


def test_sections_are_all_present(hostile: ReportModel) -> None:
    page = _parse(render_report(hostile))
    ids = {a.get("id") for _, a in page.tags}
    for wanted in (
        "summary",
        "graph",
        "policies",
        "findings",
        "anomalies",
        "denied",
        "plan",
        "coverage",
        "findings-table",
        "anomalies-table",
        "denied-table",
        "probes-table",
    ):
        assert wanted in ids, wanted
    sections = [a.get("data-ns") for t, a in page.tags if "ns-section" in (a.get("class") or "")]
    assert sections == [s.namespace for s in hostile.sections]
    diff_classes = [
        a.get("class") for t, a in page.tags if t == "span" and a.get("class") in ("add", "del")
    ]
    assert diff_classes == ["del", "add"]


def test_findings_sorted_by_severity(hostile: ReportModel) -> None:
    html = render_report(hostile)
    assert html.index("over-broad") < html.index("unused-rule")


def test_render_is_deterministic(hostile: ReportModel) -> None:
    assert render_report(hostile) == render_report(hostile)


def test_empty_model_renders() -> None:
    model = ReportModel(
        title="empty",
        generated_at="now",
        summary=Summary(window_start=None, window_end=None, flows=0, connections=0, namespaces=()),
    )
    page = _parse(render_report(model))
    assert "no flows" in "".join(page.text)
    assert [t for t, _ in page.tags].count("svg") == 1


def test_unified_diff() -> None:
    assert unified_diff("a\n", "a\n", before_name="x", after_name="y") == ""
    diff = unified_diff("a\nb\n", "a\nc", before_name="existing", after_name="recommended")
    assert diff.splitlines()[:2] == ["--- existing", "+++ recommended"]
    assert "-b" in diff.splitlines() and "+c" in diff.splitlines()


def test_port_labels_start_hidden_on_crowded_graphs() -> None:
    small = _parse(render_report(hostile_model()))
    big = _parse(render_report(hostile_model(nodes_per_ns=20, namespaces=6)))  # not folded

    def state(page: _Page) -> tuple[str, bool]:
        svg = next(a for t, a in page.tags if t == "svg")
        box = next(a for t, a in page.tags if t == "input" and a.get("id") == "show-ports")
        return svg.get("class") or "", "checked" in box

    assert state(small) == ("graph fit", True)
    assert state(big) == ("graph hide-ports", False)  # wide too: full size, scrolling


def test_isolation_cards_sum_the_coverage(hostile: ReportModel) -> None:
    html = render_report(hostile)
    assert '<div class="num">1/3</div><div class="lbl">pods isolated for ingress' in html
    assert '<div class="num">0/3</div><div class="lbl">pods isolated for egress' in html
