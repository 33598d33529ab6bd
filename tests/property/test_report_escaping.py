"""Whatever text flows carry, the rendered report has exactly the elements the template makes,
and every value comes back out of the page as the same text."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.report.model import (
    DeniedRow,
    FindingRow,
    GraphEdge,
    GraphModel,
    GraphNode,
    NamespaceSection,
    PolicyView,
    ReportModel,
    Summary,
)
from analyzer.report.render import render_report

# Printable text with a bias towards the characters that matter in HTML, JS and SVG.
_SPECIAL = st.sampled_from(
    ["<", ">", "&", '"', "'", "/", "=", "`", "\\", "]]>", "<!--", "-->", "</script", "</style",
     "javascript:", "on", "\u2028", "\x85", "{{", "{%"]
)  # fmt: skip
_TEXT = st.lists(
    st.one_of(_SPECIAL, st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), max_size=6)),
    min_size=1,
    max_size=8,
).map("".join)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.data_block = ""
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        self._in_data = tag == "script" and ("type", "application/json") in attrs

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data_block += data
        else:
            self.text.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_data = False


def _model(ns: str, label: str, pod: str, dns: str) -> ReportModel:
    nodes = (
        GraphNode(f"pod:{ns}:app={label}", ns, label, pods=1, detail=(f"pod {pod}",)),
        GraphNode(f"ip:{dns}", "", dns, kind="ip"),
    )
    edges = (GraphEdge(nodes[0].key, nodes[1].key, ("TCP/443",), 1),)
    return ReportModel(
        title="t",
        generated_at="g",
        summary=Summary("a", "b", 1, 1, (ns,), warnings=(pod,)),
        graph=GraphModel(nodes, edges),
        sections=(NamespaceSection(ns, (PolicyView(label, ns, f"name: {label}\n"),), f"+{dns}\n"),),
        findings=(FindingRow("high", "c", dns, policy=f"{ns}/{label}"),),
        denied=(DeniedRow(pod, dns, "TCP/1", 1),),
    )


BASELINE = _Collect()
BASELINE.feed(render_report(_model("ns", "app", "pod", "example.com")))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ns=_TEXT, label=_TEXT, pod=_TEXT, dns=_TEXT)
def test_any_text_stays_text(ns: str, label: str, pod: str, dns: str) -> None:
    html = render_report(_model(ns, label, pod, dns))
    page = _Collect()
    page.feed(html)
    page.close()
    assert page.tags == BASELINE.tags  # the same elements, in the same order
    assert [name for name, _ in page.attrs] == [name for name, _ in BASELINE.attrs]
    text = "".join(page.text)
    for value in (ns, label, pod, dns):
        assert value in text
    data = json.loads(page.data_block)
    assert data["namespaces"] == [ns]
    assert not re.search(r"[<>&]", page.data_block)
