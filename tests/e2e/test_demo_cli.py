"""``analyzer demo``: the README's first command, from any directory."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import analyzer_command

from analyzer.demo import run_demo
from analyzer.errors import ConfigError


def test_demo_from_another_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    done = subprocess.run(
        [*analyzer_command(), "demo", "--out", "tmp"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = dict(re.findall(r"^(\w+):\s+(\S+)$", done.stdout, re.M))
    out = elsewhere / "tmp"
    assert Path(printed["report"]) == out / "report.html"
    assert Path(printed["bundle"]) == out / "bundle"
    html = (out / "report.html").read_text("utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert 'http-equiv="Content-Security-Policy"' in html
    # The compromised debug pod is drawn, left out of the allow rules, and the audit ran.
    assert ">app=debug<" in html  # the identity as `analyzer graph` names it
    assert 'id="anomalies-table"' in html and 'id="findings-table"' in html
    # The verdict and the decisions lead; no absolute path of this machine is in the page.
    assert html.index('id="verdict"') < html.index('id="findings"') < html.index('id="policies"')
    assert 'id="decisions"' in html and 'id="diff-table"' in html
    assert str(tmp_path) not in html
    assert html.count('<g class="node') >= 10
    bundle = sorted(p.name for p in (out / "bundle").iterdir())
    assert "ROLLOUT.md" in bundle and "rollback.sh" in bundle and "kustomization.yaml" in bundle
    assert any(name.endswith("default-deny.yaml") for name in bundle)
    assert (out / "demo" / "cluster" / "existing-policies.yaml").is_file()
    assert not done.stderr.strip() or "Traceback" not in done.stderr
    # And the page works in a real browser: scripts ran, nothing was blocked, graph drawn.
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        from test_report_browser import dump_dom

        dom = dump_dom(tmp_path, out / "report.html")
        assert 'data-ready="1"' in dom and 'data-errors="0"' in dom
        assert re.search(r'data-graph-nodes="[1-9]\d*"', dom)


def test_demo_default_output_is_reports_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_demo(flows=10_000, seed=3)
    assert result.report == tmp_path / "reports" / "report.html"
    assert result.report.is_file() and result.bundle.is_dir()
    assert result.flows == 10_000 and result.recommended > 0
    # A second run replaces the store instead of piling the same cluster on top.
    again = run_demo(flows=10_000, seed=3)
    assert again.flows == 10_000


def test_demo_refuses_a_directory_that_is_not_its_store(tmp_path: Path) -> None:
    store = tmp_path / "out" / "demo" / "store"
    store.mkdir(parents=True)
    (store / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a flow store"):
        run_demo(tmp_path / "out", flows=10_000)
    assert (store / "precious.txt").read_text() == "keep me"
    done = subprocess.run(
        [*analyzer_command(), "demo", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_demo_and_report_help() -> None:
    for command in ("demo", "report"):
        done = subprocess.run(
            [*analyzer_command(), command, "--help"], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0 and "--out" in done.stdout
