"""The HTML report in a real headless browser (Debian's ``chromium``; skipped when absent).

The page's own script sets ``data-ready`` on ``<html>`` once it has run, and writes every caught
error and Content-Security-Policy violation into ``#js-errors`` and ``data-errors``; the tests
read them back from the DOM that Chromium dumps after scripts ran.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "report"))
from report_samples import HOSTILE, hostile_model  # noqa: E402

from analyzer.report.render import render_report  # noqa: E402

CHROMIUM = os.environ.get("ANALYZER_CHROMIUM") or next(
    (p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",
]


def _chromium(tmp_path: Path, url: str, *extra: str) -> str:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dump_dom(tmp_path: Path, html_file: Path, fragment: str = "") -> str:
    return _chromium(tmp_path, html_file.as_uri() + fragment, "--dump-dom")


def screenshot(tmp_path: Path, html_file: Path, png: Path, size: tuple[int, int]) -> None:
    _chromium(
        tmp_path, html_file.as_uri(), f"--screenshot={png}", f"--window-size={size[0]},{size[1]}"
    )


def _root_attrs(dom: str) -> dict[str, str]:
    tag = re.search(r"<html\b([^>]*)>", dom)
    assert tag is not None
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(1)))


def _errors(dom: str) -> list[str]:
    box = re.search(r'<ul id="js-errors"[^>]*>(.*?)</ul>', dom, re.S)
    assert box is not None
    return re.findall(r"<li>(.*?)</li>", box.group(1), re.S)


def _png_size_and_colours(png: Path) -> tuple[int, int, int]:
    """Width, height and number of distinct sampled pixels (stdlib PNG decoding, RGBA/RGB 8-bit)."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, _depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    bpp = 4 if ctype == 6 else 3
    stride = width * bpp + 1
    # Filter bytes make exact decoding long; distinct raw scanline chunks are enough to tell a
    # blank page from a drawn one.
    chunks = {raw[i : i + 64] for i in range(0, len(raw), stride * 7 + 64)}
    return width, height, len(chunks)


@pytest.fixture()
def hostile_page(tmp_path: Path) -> Path:
    page = tmp_path / "report.html"
    page.write_text(render_report(hostile_model(nodes_per_ns=8, namespaces=6)), "utf-8")
    return page


def test_page_renders_without_errors_and_payloads_stay_text(
    tmp_path: Path, hostile_page: Path
) -> None:
    dom = dump_dom(tmp_path, hostile_page)
    attrs = _root_attrs(dom)
    assert attrs.get("data-ready") == "1", dom[-3000:]
    assert attrs.get("data-errors") == "0" and _errors(dom) == []
    # The graph is there with its nodes and edges, and the browser drew them.
    assert dom.count('<g class="node') == 8 * 7 + 2
    width, height = (int(v) for v in attrs["data-graph-box"].split("x"))
    assert width > 500 and height > 200
    assert attrs["data-graph-nodes"] == str(8 * 7 + 2)
    assert dom.count('<g class="edge') > 40
    # No element was injected: only our three scripts, no img/iframe/object, one svg.
    assert len(re.findall(r"<script\b", dom)) == 3
    assert not re.search(r"<(img|iframe|object|embed)\b", dom)
    assert len(re.findall(r"<svg\b", dom)) == 1
    assert not re.search(r"\son\w+=", dom.split("<script", 1)[0])
    # The payloads appear escaped, as text.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert '"&gt;&lt;img src=x onerror=alert(1)&gt;' in dom
    assert HOSTILE[2] in dom  # javascript:alert(1) as text
    assert 'href="javascript:' not in dom


def test_namespace_filter_dims_other_namespaces(tmp_path: Path, hostile_page: Path) -> None:
    dom = dump_dom(tmp_path, hostile_page, "#ns=ns1")
    attrs = _root_attrs(dom)
    assert attrs.get("data-ready") == "1" and attrs.get("data-errors") == "0", _errors(dom)
    assert attrs.get("data-filter") == "ns1"
    assert 'class="box dim" data-ns="ns2"' in dom
    assert 'class="box" data-ns="ns1"' in dom
    assert re.search(r'class="ns-section" data-ns="ns0" hidden', dom)
    status = re.search(r'<span id="filter-status"[^>]*>([^<]*)<', dom)
    assert status is not None and "touch this namespace" in status.group(1)


def test_injected_inline_handler_is_blocked_and_reported(tmp_path: Path) -> None:
    """The harness can fail: markup that escaped the template is blocked by the CSP and shows."""
    html = render_report(hostile_model())
    html = html.replace(
        "<main>", '<main><img src="data:," onerror="alert(1)"><div style="color:red">x</div>', 1
    )
    page = tmp_path / "tampered.html"
    page.write_text(html, "utf-8")
    dom = dump_dom(tmp_path, page)
    errors = _errors(dom)
    assert _root_attrs(dom).get("data-errors") == str(len(errors))
    assert any(e.startswith("csp: script-src") for e in errors), errors
    assert any(e.startswith("csp: style-src") for e in errors), errors


def test_screenshot_is_taken(tmp_path: Path, hostile_page: Path) -> None:
    png = tmp_path / "report.png"
    screenshot(tmp_path, hostile_page, png, (1400, 1100))
    width, height, colours = _png_size_and_colours(png)
    assert (width, height) == (1400, 1100)
    assert colours > 20  # a drawn page, not a blank one
    keep = os.environ.get("ANALYZER_SCREENSHOT_DIR")
    if keep:
        shutil.copy(png, Path(keep) / "report-hostile.png")


@pytest.fixture(scope="module")
def hostile_store_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a real store ingested from a capture whose labels, pod names and DNS names
    are attack payloads, audited against existing policies that carry them too."""
    from report_samples import hostile_capture

    from analyzer.analysis import analyse
    from analyzer.report import write_report
    from analyzer.store import ingest

    base = tmp_path_factory.mktemp("hostile-store")
    capture = hostile_capture(base / "capture")
    ingest(base / "store", [str(capture["flows"])], progress=False)
    analysis = analyse(base / "store", policies=capture["policies"], inventory=capture["inventory"])
    return write_report(analysis, out=base / "out" / "report.html").path


def test_report_of_hostile_store_is_inert(tmp_path: Path, hostile_store_report: Path) -> None:
    from report_samples import HOSTILE_NAMESPACE, HOSTILE_SWAPS

    source = hostile_store_report.read_text("utf-8")
    for payload in (*HOSTILE_SWAPS.values(), HOSTILE_NAMESPACE):
        if any(c in payload for c in "<>\"'&"):
            assert payload not in source  # markup never reaches the HTML source raw
    assert not re.search(r"(href|src|action)\s*=\s*[\"']?\s*javascript:", source, re.I)
    dom = dump_dom(tmp_path, hostile_store_report)
    attrs = _root_attrs(dom)
    assert attrs.get("data-ready") == "1" and attrs.get("data-errors") == "0", _errors(dom)
    assert len(re.findall(r"<script\b", dom)) == 3
    assert not re.search(r"<(img|iframe|object|embed)\b", dom)
    assert len(re.findall(r"<svg\b", dom)) == 1
    # The hostile identity and DNS names are drawn (named as `analyzer graph` names them), as
    # escaped text.
    assert "app=&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "&lt;img src=x onerror=alert(1)&gt;.evil" in dom
    assert "(javascript:alert(1))" in dom
    # A hostile namespace name is a filter option and a box title, as text.
    assert '<option value="&quot;&gt;&lt;svg onload=alert(5)&gt;">' in dom
    assert "&lt;svg onload=alert(5)&gt;</text>" in dom
    assert dom.count('<g class="node') >= 10
    assert attrs["data-graph-nodes"] == str(dom.count('<g class="node'))
    png = tmp_path / "hostile-store.png"
    screenshot(tmp_path, hostile_store_report, png, (1400, 1800))
    assert _png_size_and_colours(png)[2] > 20
    keep = os.environ.get("ANALYZER_SCREENSHOT_DIR")
    if keep:
        shutil.copy(png, Path(keep) / "report-hostile-store.png")


def test_focus_on_an_identity_from_the_address(tmp_path: Path, hostile_page: Path) -> None:
    """``#focus=KEY`` (what a click does) keeps the identity's own arrows; a hostile key in the
    address is only ever compared as a string."""
    from urllib.parse import quote

    key = f"pod:{HOSTILE[0]}:app=n1"
    dom = dump_dom(tmp_path, hostile_page, "#focus=" + quote(key, safe=""))
    attrs = _root_attrs(dom)
    assert attrs.get("data-ready") == "1" and attrs.get("data-errors") == "0", _errors(dom)
    assert attrs.get("data-focus") == key.replace("<", "&lt;").replace(">", "&gt;")
    focused = re.findall(r'<g class="node pod focus" data-key="([^"]*)"', dom)
    assert focused == ["pod:&lt;script&gt;alert(1)&lt;/script&gt;:app=n1"]
    edges = re.findall(r'<g class="edge ([^"]*)" data-index', dom)
    assert any("dim" in c for c in edges) and any("dim" not in c for c in edges)
    status = re.search(r'<span id="filter-status"[^>]*>([^<]*)<', dom)
    assert status is not None and "selected identity" in status.group(1)
    # An unknown key is ignored rather than breaking the page.
    dom = dump_dom(tmp_path, hostile_page, "#focus=%3Cimg%20src%3Dx%3E&ns=ns1")
    attrs = _root_attrs(dom)
    assert attrs.get("data-errors") == "0" and attrs.get("data-focus") == ""
    assert attrs.get("data-filter") == "ns1"


class _DevTools:
    """A tiny Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (stdlib only):
    commands are NUL-terminated JSON written to the browser's fd 3, replies read from fd 4."""

    def __init__(self, url: str, profile: Path) -> None:
        import fcntl

        cmd_r, self._w = os.pipe()
        self._r, out_w = os.pipe()
        # Copies above 10, so that dup2 onto 3 and 4 in the child never is a no-op that would
        # keep the close-on-exec flag.
        high_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        high_w = fcntl.fcntl(out_w, fcntl.F_DUPFD_CLOEXEC, 10)

        def child() -> None:
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        assert CHROMIUM is not None
        self.proc = subprocess.Popen(
            # No --virtual-time-budget here: it would end the session when the budget is spent.
            [CHROMIUM, *[f for f in FLAGS if not f.startswith("--virtual-time")],
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "--window-size=1400,1000",
             url],
            preexec_fn=child, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for fd in (cmd_r, out_w, high_r, high_w):
            os.close(fd)
        self._buf = b""
        self._id = 0
        self.session = ""

    def send(self, method: str, params: dict[str, object] | None = None) -> dict[str, object]:
        import json
        import time

        self._id += 1
        msg: dict[str, object] = {"id": self._id, "method": method, "params": params or {}}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    assert "error" not in reply, reply
                    result: dict[str, object] = reply["result"]
                    return result
            chunk = os.read(self._r, 1 << 16)
            assert chunk, "chromium closed the DevTools pipe"
            self._buf += chunk
        raise TimeoutError(method)

    def attach(self) -> None:
        import time

        for _ in range(200):  # the page target appears shortly after start
            targets = self.send("Target.getTargets")["targetInfos"]
            assert isinstance(targets, list)
            pages = [t for t in targets if t["type"] == "page"]
            if pages:
                break
            time.sleep(0.05)
        page = pages[0]
        reply = self.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})
        self.session = str(reply["sessionId"])

    def eval(self, expression: str) -> object:
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        result = reply["result"]
        assert isinstance(result, dict)
        return result.get("value")

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            event = {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}
            self.send("Input.dispatchMouseEvent", event)

    def key(self, key: str) -> None:
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": key})

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (AssertionError, OSError, TimeoutError):
            pass
        finally:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            os.close(self._w)
            os.close(self._r)


def test_clicks_and_keys_drive_the_graph(tmp_path: Path, hostile_page: Path) -> None:
    """Real input events: click an identity to focus it, click again or Escape to clear, Enter
    on a focused row, the namespace menu and the ports checkbox."""
    import time

    browser = _DevTools(hostile_page.as_uri(), tmp_path / "profile-cdp")
    try:
        browser.attach()
        root = "document.documentElement"
        for _ in range(200):
            if browser.eval(f"{root}.getAttribute('data-ready')") == "1":
                break
            time.sleep(0.05)
        centre = """(function (el) {
            el.scrollIntoView({block: 'center'});
            var r = el.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2];
        })(%s)"""
        node = "document.querySelectorAll('svg.graph .node')[3]"
        key = browser.eval(f"{node}.getAttribute('data-key')")
        x, y = browser.eval(centre % node)  # type: ignore[misc]
        browser.click(x, y)
        assert browser.eval(f"{root}.getAttribute('data-focus')") == key
        dimmed = browser.eval("document.querySelectorAll('svg.graph .edge.dim').length")
        assert isinstance(dimmed, int) and dimmed > 0
        browser.click(x, y)
        assert browser.eval(f"{root}.getAttribute('data-focus')") == ""
        browser.eval(f"{node}.focus()")
        browser.key("Enter")
        assert browser.eval(f"{root}.getAttribute('data-focus')") == key
        browser.key("Escape")
        assert browser.eval(f"{root}.getAttribute('data-focus')") == ""
        box = "document.getElementById('show-ports')"
        bx, by = browser.eval(centre % box)  # type: ignore[misc]
        browser.click(bx, by)
        assert browser.eval("document.querySelector('svg.graph').classList.contains('hide-ports')")
        browser.eval(
            "(function (s) { s.value = 'ns1'; s.dispatchEvent(new Event('change')); })"
            "(document.getElementById('ns-filter'))"
        )
        assert browser.eval(f"{root}.getAttribute('data-filter')") == "ns1"
        hidden = browser.eval("document.querySelectorAll('.ns-section[hidden]').length")
        assert hidden == 2  # the two sections of other namespaces
        assert browser.eval(f"{root}.getAttribute('data-errors')") == "0"
    finally:
        browser.close()


def _pdf_pages(pdf: bytes) -> int:
    assert pdf.startswith(b"%PDF-")
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))


def print_pdf(tmp_path: Path, html_file: Path, pdf: Path) -> bytes:
    _chromium(tmp_path, html_file.as_uri(), f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    return pdf.read_bytes()


def test_print_unfolds_every_policy(tmp_path: Path) -> None:
    """Reviews are signed as PDFs: the print stylesheet opens every fold, so the YAML folded
    away on screen is on paper (a policy of 600 YAML lines adds pages), and hides controls."""
    from dataclasses import replace

    base = hostile_model()
    long_yaml = "".join(f"# line {i} {HOSTILE[0]}\n" for i in range(600))
    section = base.sections[0]
    folded = replace(
        base,
        sections=(
            replace(section, policies=(replace(section.policies[0], yaml=long_yaml),)),
            *base.sections[1:],
        ),
    )
    pages = []
    for name, model in (("short", base), ("long", folded)):
        page = tmp_path / f"{name}.html"
        page.write_text(render_report(model), "utf-8")
        assert '<details class="policy">' in page.read_text("utf-8")  # folded on screen
        pages.append(_pdf_pages(print_pdf(tmp_path, page, tmp_path / f"{name}.pdf")))
    short, long = pages
    assert short >= 1
    assert long >= short + 5, pages  # ~600 lines at ~60 a page
    css = (Path(__file__).resolve().parents[2] / "analyzer/report/templates/report.css").read_text()
    assert "@media print" in css and "nav.toc, .graph-tools" in css


@pytest.mark.parametrize("width", [800, 1400, 1920])
def test_port_labels_never_intersect(tmp_path: Path, width: int) -> None:
    """The layout computes label positions so that no two port labels intersect; the page
    measures the drawn boxes (getBoundingClientRect) at each window width."""
    from analyzer.report.model import GraphEdge, GraphModel, GraphNode

    # A fan: many clients in a few namespaces calling a few servers on long port lists,
    # the shape whose labels piled up on one row before.
    nodes = [GraphNode(f"pod:c{n}:app=c{i}", f"c{n}", f"app=c{i}") for n in range(3)
             for i in range(8)]  # fmt: skip
    nodes += [GraphNode(f"pod:srv:app=s{i}", "srv", f"app=s{i}") for i in range(4)]
    edges = [
        GraphEdge(c.key, f"pod:srv:app=s{j}", (f"TCP/{8000 + j}", "TCP/9090", "UDP/53"), 1)
        for c in nodes[:24]
        for j in range(4)
        if (len(c.key) * 7 + j) % 3 or j == 0
    ]
    from dataclasses import replace

    model = replace(hostile_model(), graph=GraphModel(tuple(nodes), tuple(edges)))
    page = tmp_path / "fan.html"
    page.write_text(render_report(model), "utf-8")
    dom = _chromium(tmp_path, page.as_uri(), "--dump-dom", f"--window-size={width},1000")
    attrs = _root_attrs(dom)
    assert attrs.get("data-ready") == "1" and attrs.get("data-errors") == "0", _errors(dom)
    assert int(attrs["data-graph-labels"]) >= 8  # labels are drawn, not all dropped
    assert attrs["data-label-overlaps"] == "0"


def _folded_page(tmp_path: Path) -> tuple[Path, int]:
    """A hostile model whose namespaces (hostile names among them) are all past the fold size."""
    from analyzer.report.graph_fold import NAMESPACE_FOLD, fold_graph

    model = hostile_model(nodes_per_ns=NAMESPACE_FOLD + 2, namespaces=2)
    page = tmp_path / "folded.html"
    page.write_text(render_report(model), "utf-8")
    return page, len(fold_graph(model.graph).folded)


@pytest.mark.parametrize("shape", ["hostile", "folded", "fan"])
def test_graph_text_is_readable_at_800px(tmp_path: Path, shape: str) -> None:
    """At an 800 px window, fit to width never shrinks graph text below 9 px (a wide graph
    scrolls in its frame instead) and no two port labels intersect."""
    from dataclasses import replace

    from analyzer.report.model import GraphEdge, GraphModel, GraphNode

    if shape == "folded":
        page, _ = _folded_page(tmp_path)
    else:
        model = hostile_model(nodes_per_ns=8, namespaces=6)
        if shape == "fan":
            nodes = [GraphNode(f"pod:c:app=c{i}", "c", f"app=c{i}") for i in range(12)]
            nodes += [GraphNode(f"pod:srv:app=s{i}", "srv", f"app=s{i}") for i in range(3)]
            edges = [GraphEdge(c.key, f"pod:srv:app=s{j}", ("TCP/8080", "UDP/53"), 1)
                     for c in nodes[:12] for j in range(3)]  # fmt: skip
            model = replace(model, graph=GraphModel(tuple(nodes), tuple(edges)))
        page = tmp_path / f"{shape}.html"
        page.write_text(render_report(model), "utf-8")
    dom = _chromium(tmp_path, page.as_uri(), "--dump-dom", "--window-size=800,1000")
    attrs = _root_attrs(dom)
    assert attrs.get("data-ready") == "1" and attrs.get("data-errors") == "0", _errors(dom)
    assert float(attrs["data-graph-min-font"]) >= 8.99, attrs["data-graph-min-font"]
    assert attrs["data-label-overlaps"] == "0"
    assert int(attrs["data-graph-labels"]) >= 2


def test_folded_namespaces_unfold_from_address_and_click(tmp_path: Path) -> None:
    """A folded namespace is one row; ``#unfold-N`` or a click on the row opens its unfolded
    view (a <details> under the graph); hostile namespace names stay text throughout."""
    import time

    page, folds = _folded_page(tmp_path)
    assert folds == 3
    dom = dump_dom(tmp_path, page, "#unfold-1")
    attrs = _root_attrs(dom)
    assert attrs.get("data-ready") == "1" and attrs.get("data-errors") == "0", _errors(dom)
    assert attrs.get("data-unfolded") == "1"
    opened = re.findall(r'<details class="unfold" id="(unfold-\d+)"[^>]*?( open="")?>', dom)
    assert [name for name, is_open in opened if is_open] == ["unfold-1"]
    assert len(opened) == folds
    assert len(re.findall(r"<svg\b", dom)) == 1 + folds
    assert len(re.findall(r"<script\b", dom)) == 3
    assert not re.search(r"<(img|iframe|object|embed)\b", dom)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;: 22 identities" in dom  # a fold's summary
    # A hostile fragment is ignored.
    dom = dump_dom(tmp_path, page, "#unfold-%3Cimg%20src%3Dx%3E")
    attrs = _root_attrs(dom)
    assert attrs.get("data-errors") == "0" and "data-unfolded" not in attrs

    browser = _DevTools(page.as_uri(), tmp_path / "profile-cdp")
    try:
        browser.attach()
        root = "document.documentElement"
        for _ in range(200):
            if browser.eval(f"{root}.getAttribute('data-ready')") == "1":
                break
            time.sleep(0.05)
        row = "document.querySelector('svg.graph .node.namespace[data-unfold=\"2\"]')"
        x, y = browser.eval(
            "(function (el) { el.scrollIntoView({block: 'center'});"
            " var r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];"
            f" }})({row})"
        )  # type: ignore[misc]
        browser.click(x, y)
        assert browser.eval("document.getElementById('unfold-2').open") is True
        assert browser.eval(f"{root}.getAttribute('data-unfolded')") == "2"
        # The unfolded view is drawn: its identities have boxes on screen.
        drawn = browser.eval(
            "Array.prototype.filter.call(document.querySelectorAll('#unfold-2 .node rect'),"
            " function (r) { return r.getBoundingClientRect().width > 0; }).length"
        )
        assert isinstance(drawn, int) and drawn >= 22
        # Print media: every fold open (the unfolded views drawn), the controls hidden.
        browser.eval("document.getElementById('unfold-2').open = false")
        browser.send("Emulation.setEmulatedMedia", {"media": "print"})
        shown = browser.eval(
            "Array.prototype.filter.call(document.querySelectorAll('svg.graph'),"
            " function (s) { return s.getBoundingClientRect().height > 0; }).length"
        )
        assert shown == 1 + folds
        tools = browser.eval(
            "document.querySelector('.graph-tools').getBoundingClientRect().height"
        )
        assert tools == 0
        assert browser.eval(f"{root}.getAttribute('data-errors')") == "0"
    finally:
        browser.close()


def test_print_unfolds_folded_namespaces(tmp_path: Path) -> None:
    """On paper every folded namespace is unfolded: the PDF has more pages than the same page
    without the unfolded views."""
    page, folds = _folded_page(tmp_path)
    html = page.read_text("utf-8")
    assert html.count('<details class="unfold"') == folds
    stripped, n = re.subn(r'<div class="unfolds">.*?</div>\n</section>', "</section>", html,
                          count=1, flags=re.S)  # fmt: skip
    assert n == 1
    bare = tmp_path / "bare.html"
    bare.write_text(stripped, "utf-8")
    with_views = _pdf_pages(print_pdf(tmp_path, page, tmp_path / "folded.pdf"))
    without = _pdf_pages(print_pdf(tmp_path, bare, tmp_path / "bare.pdf"))
    assert with_views >= without + 2, (with_views, without)
