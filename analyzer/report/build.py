"""Assemble a `ReportModel` from an Analysis: every number comes from the one analysis that
the other commands show too.

connections -> recommendation (policies, evidence, probes) -> anomalies left out -> audit and
coverage of the existing policies (when given) -> summary. Each result is the Analysis' own;
this module only converts them for display.
"""

from __future__ import annotations

import dataclasses
import os
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TypeVar

from analyzer.analysis import Analysis
from analyzer.errors import UsageError
from analyzer.k8s.namespaces import is_system_namespace
from analyzer.recommend import Recommendation, RecommendOptions
from analyzer.report.convert import anomaly_rows, denied_rows, graph_model
from analyzer.report.existing import coverage_rows, manifests_by_namespace
from analyzer.report.model import (
    SEVERITIES,
    CoverageRow,
    FindingRow,
    NamespaceSection,
    ReportModel,
    RolloutPlan,
    Summary,
)
from analyzer.report.policy_diff import diff_view, recommended_diff
from analyzer.report.sections import (
    findings_from_audit,
    plan_from_recommendation,
    sections_from_recommendation,
)
from analyzer.report.verdict import build_verdict, sort_findings

__all__ = ["PathText", "build_report", "report_recommendation"]

T = TypeVar("T")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


class PathText:
    """Paths as the report shows them: relative to the report's directory (or as the user
    gave them), never an absolute path of the machine that built it. ``text`` rewrites the
    free text of warnings, which name input files, the same way: every ancestor directory of
    the report becomes ``../`` steps, the home directory ``~/``."""

    def __init__(self, report_dir: Path | None) -> None:
        self.base = Path(report_dir).resolve() if report_dir is not None else Path.cwd().resolve()
        roots: dict[str, str] = {}
        home = Path.home().resolve() if "HOME" in os.environ else None
        if home is not None and home.parent != home:
            roots[str(home) + "/"] = "~/"
        for steps, ancestor in enumerate((self.base, *self.base.parents)):
            if ancestor.parent == ancestor:  # "/" itself: nothing left to shorten
                break
            roots[str(ancestor) + "/"] = "../" * steps
        # longest first: the report's own directory wins over the ones containing it
        self.roots = sorted(roots.items(), key=lambda kv: -len(kv[0]))
        # one C scan tells the few strings holding a root from the ~500,000 without one
        self._any = re.compile("|".join(re.escape(root) for root, _ in self.roots) or "(?!)")

    def path(self, value: str | Path) -> str:
        """``value`` relative to the report when it is absolute, else as given."""
        p = Path(value)
        if not p.is_absolute():
            return str(value)
        try:
            return os.path.relpath(p, self.base)
        except ValueError:  # another drive (Windows)
            return p.name

    def text(self, value: str) -> str:
        if self._any.search(value) is None:
            return value
        for root, shown in self.roots:
            value = value.replace(root, shown)
        return value


def _without_local_paths(value: T, paths: PathText) -> T:
    """``value`` (the model, or any part of it) with every string rewritten by ``paths``:
    notes, findings and warnings name input files, and none of them may show where the
    report was built."""
    if isinstance(value, str):
        return paths.text(value)  # type: ignore[return-value]
    if isinstance(value, tuple):
        items = tuple(_without_local_paths(v, paths) for v in value)
        # the same object when nothing changed: no copy of a model of 15,000 policies
        same = all(a is b for a, b in zip(items, value, strict=True))
        return value if same else items  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for name in _field_names(type(value)):
            was = getattr(value, name)
            now = _without_local_paths(was, paths)
            if now is not was:
                changes[name] = now
        return dataclasses.replace(value, **changes) if changes else value
    return value


@cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind))


def _source(analysis: Analysis, paths: PathText) -> str | None:
    if analysis.policies is None:
        return None
    return ", ".join(paths.path(p) for p in analysis.policies.paths) or "(given)"


def report_recommendation(analysis: Analysis, warnings: list[str]) -> Recommendation | None:
    """The recommendation the report shows: system namespaces are reviewed, not given
    policies; a recommendation that fails verification is shown with what it would break."""
    namespaces = list(analysis.scope.namespaces)
    system = [ns for ns in namespaces if is_system_namespace(ns)]
    if system:
        # The report reviews them; writing a default-deny for them stays an explicit choice.
        warnings.append(
            f"no policies recommended for system namespaces ({', '.join(system)}): "
            "`analyzer recommend --include-system-namespaces` writes them"
        )
        namespaces = [ns for ns in namespaces if not is_system_namespace(ns)]
        if not namespaces:
            return None
    targets = tuple(namespaces)
    try:
        rec = analysis.recommendation(
            options=RecommendOptions(allow_breaking=True), namespaces=targets
        )
    except UsageError as exc:
        if targets:
            raise
        warnings.append(f"no recommendation: {exc}")
        return None
    if rec.verification is not None and not rec.verification.ok:
        warnings.append(f"the recommendation failed verification: {rec.verification.failure()}")
    return rec


def build_report(
    analysis: Analysis,
    *,
    bundle_dir: Path | None = None,
    recommendation: Recommendation | None = None,
    title: str | None = None,
    generated_at: datetime | None = None,
    policies_source: str | None = None,
    report_dir: Path | None = None,
) -> ReportModel:
    """Collect everything the report shows from ``analysis``.

    Parameters
    ----------
    analysis
        The flows, scope, existing policies and inventory (``Analysis``).
    bundle_dir
        Where the policy bundle of this recommendation was written (shown in the plan).
    recommendation
        The recommendation to show (default: ``report_recommendation(analysis, ...)``).
    title, generated_at
        Page title and timestamp (defaults: a title naming the namespaces, now).
    policies_source
        How the existing policies were given (default: the paths they were loaded from).
    report_dir
        The directory the report is written to: absolute paths (bundle, policies, input files
        named in warnings) are shown relative to it.

    Raises
    ------
    UsageError
        A namespace of the scope that nothing mentions.
    """
    analysis.require_known_namespaces()
    scope = analysis.scope
    connections = analysis.connections
    scoped = analysis.scoped_connections
    warnings: list[str] = list(connections.stats.warnings)
    notes = analysis.ingest_notes
    warnings.extend(notes.lines())
    paths = PathText(report_dir)
    rows = analysis.flow_counts.records
    rec = recommendation
    if rec is None and rows:
        rec = report_recommendation(analysis, warnings)
    if rec is not None:
        warnings.extend(n.message for n in rec.notes if n.level == "warning" and not n.namespace)

    detected = analysis.scoped_anomalies
    graph = graph_model(analysis.scoped_graph, detected)

    findings: tuple[FindingRow, ...] = ()
    existing = None
    coverage: tuple[CoverageRow, ...]
    if analysis.policies is not None and analysis.compiled is not None:
        warnings.extend(f"policy not loaded: {p}" for p in analysis.policies.problems)
        findings = sort_findings(findings_from_audit(analysis.audit()))
        judged = analysis.verdicts
        coverage = coverage_rows(
            analysis.compiled,
            scoped,
            analysis.inventory,
            judged=scope.select(judged) if judged is not None else None,
        )
        existing = manifests_by_namespace(analysis.policies.documents)
    else:
        coverage = coverage_rows(None, scoped)

    sections: tuple[NamespaceSection, ...] = ()
    plan = RolloutPlan()
    if rec is not None:
        sections = sections_from_recommendation(rec, existing)
        plan = plan_from_recommendation(
            rec, bundle_dir, paths.path(bundle_dir) if bundle_dir is not None else None
        )

    stats = connections.stats
    observed = sorted(
        {ns for side in ("src", "dst") for ns in scoped[f"{side}_namespace"].drop_nulls().to_list()}
    )
    counts = {s: 0 for s in SEVERITIES}
    for f in findings:
        counts[f.severity if f.severity in counts else "info"] += 1
    summary = Summary(
        window_start=_iso(stats.window[0]),
        window_end=_iso(stats.window[1]),
        flows=rows,
        connections=int(scoped["connections"].sum() or 0) if scoped.height else 0,
        namespaces=tuple(observed),
        identities=len(graph.nodes),
        coverage=coverage,
        findings_by_severity=tuple((s, n) for s, n in counts.items() if n),
        lost_events=notes.lost_events,
        masked_fields=analysis.flow_counts.masked,
        undecidable_replies=stats.undecidable,
        decided_by_ports=stats.decided_by_ports,
        anomalous_edges=detected.summary.flagged_edges,
        warnings=tuple(dict.fromkeys(warnings)),
    )
    diff = None
    if rec is not None and rec.manifests and analysis.policies is not None:
        result, probes = recommended_diff(analysis, rec, len(graph.nodes))
        diff = diff_view(result, probes, len(graph.nodes))
    anomalies = anomaly_rows(detected.flagged)
    verdict = build_verdict(
        rec=rec,
        summary=summary,
        findings=findings,
        anomalies=anomalies,
        sections=sections,
        diff=diff,
        has_policies=analysis.policies is not None,
    )
    where = ", ".join(scope.namespaces) if scope.namespaces else "all namespaces"
    model = ReportModel(
        title=title or f"Network policy review: {where}",
        generated_at=_iso(generated_at or datetime.now(UTC).replace(microsecond=0)) or "",
        summary=summary,
        graph=graph,
        sections=sections,
        findings=findings,
        anomalies=anomalies,
        suspects=tuple(s.message() for s in detected.summary.suspects),
        denied=denied_rows(scoped),
        plan=plan,
        policies_source=(
            paths.text(policies_source) if policies_source else _source(analysis, paths)
        ),
        bundle_path=paths.path(bundle_dir) if bundle_dir is not None else None,
        verdict=verdict,
        diff=diff,
    )
    return _without_local_paths(model, paths)
