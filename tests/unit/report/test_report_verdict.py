"""The report's first screen (verdict and decisions), its diff section, the bundle's apply
steps and paths relative to the report, on a generated capture with the compromised debug pod."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from report_samples import hostile_capture

from analyzer.analysis import analyse
from analyzer.diff import diff_policies
from analyzer.recommend import RecommendOptions
from analyzer.recommend.bundle import bundle_files, write_bundle
from analyzer.report import policy_diff
from analyzer.report.build import PathText, build_report, report_recommendation
from analyzer.report.convert import short_reasons
from analyzer.report.model import SEVERITIES, ReportModel
from analyzer.report.render import render_report
from analyzer.store import ingest


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("verdict")
    files = hostile_capture(base / "cluster", flows=10_000, seed=5)
    ingest(base / "store", [str(files["flows"])], progress=False)
    return {**files, "store": base / "store", "base": base}


def _analysis(capture: dict[str, Path]):  # type: ignore[no-untyped-def]
    return analyse(capture["store"], policies=capture["policies"], inventory=capture["inventory"])


@pytest.fixture(scope="module")
def built(capture: dict[str, Path]) -> tuple[ReportModel, str]:
    analysis = _analysis(capture)
    rec = report_recommendation(analysis, [])  # allows breaking: the hostile namespace
    assert rec is not None
    bundle = capture["base"] / "out" / "bundle"
    write_bundle(rec, bundle)
    model = build_report(
        analysis, recommendation=rec, bundle_dir=bundle, report_dir=capture["base"] / "out"
    )
    return model, render_report(model)


def test_verdict_and_decisions_lead_the_page(built: tuple[ReportModel, str]) -> None:
    model, html = built
    v = model.verdict
    assert v.headline.startswith("Applying the recommended set in ")
    assert "observed legitimate request" in v.headline and "flagged" in v.headline
    assert v.decisions
    ranks = [SEVERITIES.index(d.severity) for d in v.decisions]
    assert ranks == sorted(ranks)  # most severe first
    # every decision links to an element of the page
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    for d in v.decisions:
        assert d.href.startswith("#") and d.href[1:] in ids, d
    kinds = " ".join(d.text for d in v.decisions)
    assert "Confirm as an attack or allow" in kinds  # anomalies
    assert "ready for default-deny" in kinds or "default-deny would break" in kinds
    assert any(d.href.startswith("#finding-") for d in v.decisions)
    # the verdict comes first; the YAML of the policies last
    order = [html.index(f'id="{i}"') for i in ("verdict", "findings", "anomalies", "diff",
                                                "graph", "policies")]  # fmt: skip
    assert order == sorted(order)
    assert html.index('id="verdict-headline"') < html.index('<pre class="yaml">')


def test_decisions_link_the_rows_they_name(built: tuple[ReportModel, str]) -> None:
    model, html = built
    for d in model.verdict.decisions:
        m = re.fullmatch(r"#finding-(\d+)", d.href)
        if m:
            f = model.findings[int(m.group(1)) - 1]
            assert f.code in d.text
            row = re.search(rf'<tr id="finding-{m.group(1)}">(.*?)</tr>', html, re.S)
            assert row is not None and f.code in row.group(1)
        m = re.fullmatch(r"#anomaly-(\d+)", d.href)
        if m:
            a = model.anomalies[int(m.group(1)) - 1]
            assert f"{a.src} → {a.dst}" in d.text


def test_diff_section_matches_the_semantic_diff(
    capture: dict[str, Path], built: tuple[ReportModel, str]
) -> None:
    model, html = built
    assert model.diff is not None and model.diff.probes
    analysis = _analysis(capture)
    rec = report_recommendation(analysis, [])
    assert rec is not None and analysis.policies is not None
    old = list(analysis.policies.policies)
    new, problems = policy_diff.applied_set(old, rec)
    assert not problems
    independent = diff_policies(
        old, new, analysis.connections, inventory=analysis.inventory, namespaces=rec.namespaces
    )
    c = independent.counts
    assert model.diff.newly_denied_observed_edges == c.observed_newly_denied_edges
    assert model.diff.probes_newly_denied == c.probes_newly_denied > 0
    assert 'id="diff-table"' in html


def _without_source(policies: list[Any]) -> list[Any]:
    return [dataclasses.replace(p, source="") for p in policies]


@pytest.mark.parametrize("flavor", ["kubernetes", "calico"])
def test_applied_set_reuses_the_verifications_parse(
    capture: dict[str, Path], flavor: str
) -> None:
    """The report's diff applies the policies the verification parsed (``rec.parsed``), not
    a second parse of the manifests: the same policies as parsing them again, staged Calico
    policies left out (not in force) as the loader's default leaves them out."""
    analysis = _analysis(capture)
    rec = analysis.recommendation(
        flavor, RecommendOptions(allow_breaking=True), tuple(analysis.scope.namespaces)
    )
    assert rec.parsed is not None and len(rec.parsed) == len(rec.manifests)
    assert analysis.policies is not None
    old = list(analysis.policies.policies)
    shared, problems = policy_diff.applied_set(old, rec)
    again, again_problems = policy_diff.applied_set(old, dataclasses.replace(rec, parsed=None))
    assert problems == again_problems == []
    assert _without_source(shared) == _without_source(again)
    staged = [p for p in rec.parsed if p.kind == "StagedKubernetesNetworkPolicy"]
    if flavor == "calico":  # staged: verified as policies, not in force once applied
        assert len(staged) == len(rec.parsed)
        assert not any(p.kind == "StagedKubernetesNetworkPolicy" for p in shared)
    else:
        assert not staged
        assert len(shared) > len([p for p in old if p.namespace not in rec.namespaces])
    unverified = analysis.recommendation(
        flavor, RecommendOptions(allow_breaking=True, verify=False), ()
    )
    assert unverified.parsed is None and unverified.verification is None


def test_large_reports_diff_observed_edges_only(
    capture: dict[str, Path], built: tuple[ReportModel, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    full, _ = built
    monkeypatch.setattr(policy_diff, "PROBE_IDENTITY_LIMIT", 3)
    model = build_report(_analysis(capture))
    assert model.diff is not None and not model.diff.probes
    assert "observed connections only" in model.diff.note
    assert model.diff.probes_newly_denied == 0
    assert full.diff is not None
    # the observed part does not depend on the probes
    assert model.diff.newly_denied_observed_edges == full.diff.newly_denied_observed_edges
    assert model.diff.unchanged_observed_edges == full.diff.unchanged_observed_edges
    assert any("observed edges only" in p for p in model.verdict.points)
    assert "paths nobody used" not in model.verdict.headline
    html = render_report(model)
    assert "observed connections only" in html


def test_no_absolute_path_of_the_build_machine(
    capture: dict[str, Path], built: tuple[ReportModel, str]
) -> None:
    model, html = built
    assert str(capture["base"]) not in html
    assert str(Path.cwd()) + "/" not in html
    assert model.bundle_path == "bundle"
    assert model.policies_source == "../cluster/existing-policies.yaml"
    # the lost events are counted once under data quality, not repeated as a warning there
    quality = html[html.index('id="warnings"') :]
    quality = quality[: quality.index("</ul>")]
    assert quality.count("lost") == 1


def test_rollout_applies_one_namespace_at_a_time(
    capture: dict[str, Path], built: tuple[ReportModel, str]
) -> None:
    model, _ = built
    rec = report_recommendation(_analysis(capture), [])
    assert rec is not None
    groups = bundle_files(rec)
    written = {p.name for p in (capture["base"] / "out" / "bundle").iterdir()}
    assert {f for _, files in groups for f in files} <= written
    assert len({ns for ns, _ in groups}) == len(groups)  # one apply per namespace
    for ns, files in groups:
        assert all(f"-{ns}-" in f for f in files)
        if any(f.endswith("-default-deny.yaml") for f in files):
            assert files[-1].endswith("-default-deny.yaml")  # last in its namespace
    applies = [s for s in model.plan.rollout if "kubectl apply" in s]
    assert len(applies) == len(groups)
    assert not any("apply -k" in s for s in model.plan.rollout)
    rollout_md = (capture["base"] / "out" / "bundle" / "ROLLOUT.md").read_text()
    assert sum(line.startswith("kubectl apply -f") for line in rollout_md.splitlines()) == len(
        groups
    )


def test_short_reasons_drop_repeated_clauses() -> None:
    reasons = [
        "x reached 30 ports on y, 30 denied; no other client uses 28 of them",
        "no other client of y uses TCP/21; first seen 60% into the window and active for 1% of it",
        "no other client of y uses TCP/22; first seen 61% into the window and active for 2% of it",
    ]
    out = short_reasons(reasons)
    assert out == (
        "x reached 30 ports on y, 30 denied",
        "no other client uses 28 of them",
        "no other client of y uses TCP/21",
        "first seen 60% into the window and active for 1% of it",
    )
    assert short_reasons(reasons, limit=2)[-1] == "2 more"


def test_path_text_is_relative_to_the_report(tmp_path: Path) -> None:
    paths = PathText(tmp_path / "reports")
    assert paths.path(tmp_path / "reports" / "bundle") == "bundle"
    assert paths.path(tmp_path / "store") == "../store"
    assert paths.path("given/relative.yaml") == "given/relative.yaml"
    assert paths.text(f"ingest: {tmp_path}/reports/x.jsonl: 3 lost") == "ingest: x.jsonl: 3 lost"
