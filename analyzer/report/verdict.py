"""The first screen of the report: the verdict in words and the decisions to take.

A reviewer signs off on what applying the recommendation *does*: which observed requests keep
working (the recommendation's own verification, a replay of every observed legitimate request
edge), what is newly denied (the semantic diff existing -> recommended, when existing policies
were given), what flagged traffic is blocked (the anomalies left out), and what is wrong with
the policies in place (the audit). Each decision is one line with a severity and a link to the
part of the page that holds the evidence. Everything here is derived from values the other
sections show; nothing is recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence

from analyzer.recommend import Recommendation
from analyzer.report.model import (
    SEVERITIES,
    AnomalyRow,
    DiffView,
    FindingRow,
    NamespaceSection,
    ReviewDecision,
    Summary,
    Verdict,
)

__all__ = ["build_verdict", "sort_findings", "MAX_DECISIONS_PER_KIND"]

# Past this many lines of one kind the rest are one summary line ("and N more ...").
MAX_DECISIONS_PER_KIND = 8
_RULE_SEVERITY = {
    "port_scan": "high",
    "host_sweep": "high",
    "database_lateral": "high",
    "compromised_source": "high",
}


def sort_findings(findings: Sequence[FindingRow]) -> tuple[FindingRow, ...]:
    """Most severe first (the order of the findings table, whose rows the decisions link)."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return tuple(
        sorted(
            findings,
            key=lambda f: (rank.get(f.severity, len(SEVERITIES)), f.namespace, f.policy, f.code),
        )
    )


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def _names(items: Sequence[str], limit: int = 4) -> str:
    shown = list(items[:limit])
    if len(items) > limit:
        shown.append(f"{len(items) - limit} more")
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def _clip(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _sources(anomalies: Sequence[AnomalyRow]) -> list[str]:
    return list(dict.fromkeys(a.src for a in anomalies))


def _headline(
    rec: Recommendation | None,
    summary: Summary,
    anomalies: Sequence[AnomalyRow],
    diff: DiffView | None,
) -> str:
    if rec is None or not rec.manifests:
        if not summary.flows:
            return "No flows were observed: there is nothing to recommend or verify yet."
        return "No policies were recommended for this scope; see the data quality notes."
    where = _names(list(rec.namespaces)) or "the observed namespaces"
    clauses: list[str] = []
    v = rec.verification
    if v is not None and v.ok:
        clauses.append(
            f"keeps all {_plural(v.connections, 'observed legitimate request')} working "
            f"({_plural(v.allowed, 'request edge')}, replayed against the policies)"
        )
    elif v is not None:
        lost = sum(b.connections for b in v.breaking)
        clauses.append(
            f"would deny {_plural(len(v.breaking), 'observed legitimate request edge')} "
            f"({_plural(lost, 'connection')}): decide on them before applying"
        )
    verified = v is not None and v.ok
    if summary.anomalous_edges:
        sources = _sources(anomalies)
        of = f" of {_names(sources, 3)}" if sources else ""
        clauses.append(
            f"blocks the {_plural(summary.anomalous_edges, 'flagged connection edge')}{of}"
        )
    if diff is not None and diff.newly_denied_observed_edges:
        # With a clean verification every observed legitimate request stays allowed, so what
        # the diff newly denies of the observed traffic is what was held back (flagged).
        held = " (the traffic held back for review)" if verified else ""
        clauses.append(
            f"denies {_plural(diff.newly_denied_observed_edges, 'observed edge')} the "
            f"existing policies allow{held}"
        )
    if diff is not None and diff.probes:
        clauses.append(
            f"closes {_plural(diff.probes_newly_denied, 'path')} nobody used "
            "(identity pairs and ports the existing policies allow)"
        )
    if not clauses:
        return f"Applying the recommended set in {where} allows only what was observed."
    body = ", ".join(clauses[:-1]) + (" and " if len(clauses) > 1 else "") + clauses[-1]
    return f"Applying the recommended set in {where} {body}."


def _points(
    findings: Sequence[FindingRow], summary: Summary, diff: DiffView | None, has_policies: bool
) -> list[str]:
    out: list[str] = []
    if findings:
        counts = ", ".join(f"{n} {s}" for s, n in summary.findings_by_severity)
        out.append(
            f"The existing policies have {_plural(len(findings), 'audit finding')} ({counts})."
        )
    elif has_policies:
        out.append("The audit found nothing wrong with the existing policies.")
    else:
        out.append("No existing policies were given (--policies): no audit and no diff.")
    if diff is not None and not diff.probes:
        out.append(f"The diff is over observed edges only: {diff.note}")
    if summary.lost_events:
        out.append(
            f"The flow source lost {summary.lost_events:,} events: some connections may be "
            "missing from the evidence (see data quality)."
        )
    return out


def _finding_decisions(findings: Sequence[FindingRow]) -> list[ReviewDecision]:
    out: list[ReviewDecision] = []
    urgent = [(i, f) for i, f in enumerate(findings, 1) if f.severity in ("critical", "high")]
    for i, f in urgent[:MAX_DECISIONS_PER_KIND]:
        where = f.policy or (f"namespace {f.namespace}" if f.namespace else "")
        text = f"Fix {f.code}" + (f" in {where}" if where else "") + f": {_clip(f.message)}"
        out.append(ReviewDecision(f.severity, text, f"#finding-{i}"))
    if len(urgent) > MAX_DECISIONS_PER_KIND:
        rest = len(urgent) - MAX_DECISIONS_PER_KIND
        out.append(ReviewDecision("high", f"Fix {rest} more critical/high findings", "#findings"))
    lesser: dict[str, int] = {}
    for f in findings:
        if f.severity not in ("critical", "high"):
            lesser[f.severity] = lesser.get(f.severity, 0) + 1
    if lesser:
        worst = min(lesser, key=lambda s: SEVERITIES.index(s) if s in SEVERITIES else 99)
        counts = ", ".join(f"{n} {s}" for s, n in lesser.items())
        out.append(
            ReviewDecision(
                worst if worst in SEVERITIES else "info",
                f"Review the other findings ({counts})",
                "#findings",
            )
        )
    return out


def _anomaly_decisions(anomalies: Sequence[AnomalyRow]) -> list[ReviewDecision]:
    out: list[ReviewDecision] = []
    for i, a in enumerate(anomalies[:MAX_DECISIONS_PER_KIND], 1):
        rules = [r.removeprefix("rule: ") for r in a.reasons if r.startswith("rule: ")]
        severity = "high" if any(_RULE_SEVERITY.get(r) for r in rules) else "medium"
        why = ", ".join(rules) or "unusual for the model"
        out.append(
            ReviewDecision(
                severity,
                f"Confirm as an attack or allow: {a.src} → {a.dst} {a.port} ({why})",
                f"#anomaly-{i}",
            )
        )
    if len(anomalies) > MAX_DECISIONS_PER_KIND:
        rest = len(anomalies) - MAX_DECISIONS_PER_KIND
        out.append(
            ReviewDecision(
                "medium", f"Confirm or allow {rest} more flagged connections", "#anomalies"
            )
        )
    return out


def _diff_decisions(diff: DiffView | None, verified: bool) -> list[ReviewDecision]:
    if diff is None:
        return []
    out: list[ReviewDecision] = []
    if diff.newly_denied_working_edges:
        held = ": traffic held back for review (anomalies)" if verified else ""
        out.append(
            ReviewDecision(
                "medium" if verified else "high",
                f"Accept that {_plural(diff.newly_denied_working_edges, 'observed edge')} working "
                f"today will be newly denied{held}",
                "#diff",
            )
        )
    other = diff.newly_denied_observed_edges - diff.newly_denied_working_edges
    if other > 0:
        out.append(
            ReviewDecision(
                "medium",
                f"{_plural(other, 'observed edge')} the existing policies allow (but that did not "
                "work) will be newly denied",
                "#diff",
            )
        )
    if diff.newly_allowed_observed_edges:
        out.append(
            ReviewDecision(
                "medium",
                f"Accept that {_plural(diff.newly_allowed_observed_edges, 'observed edge')} denied "
                "today will be newly allowed",
                "#diff",
            )
        )
    if diff.probes and diff.probes_newly_denied:
        out.append(
            ReviewDecision(
                "info",
                f"{_plural(diff.probes_newly_denied, 'path')} nobody used will be closed",
                "#diff",
            )
        )
    return out


def _namespace_decisions(
    rec: Recommendation | None, sections: Sequence[NamespaceSection]
) -> list[ReviewDecision]:
    if rec is None:
        return []
    breaking = rec.verification.breaking if rec.verification is not None else ()
    touched = {end.split("/", 1)[0] for b in breaking for end in (b.src, b.dst) if "/" in end}
    ready: list[tuple[int, str]] = []
    held: list[tuple[int, str]] = []
    for i, section in enumerate(sections, 1):
        if not any(p.name == "default-deny" for p in section.policies):
            continue
        (held if section.namespace in touched else ready).append((i, section.namespace))
    out = [
        ReviewDecision(
            "low",
            f"Namespace {ns} is ready for default-deny: every observed "
            "legitimate request keeps working",
            f"#ns-{i}",
        )
        for i, ns in ready
    ]
    out += [
        ReviewDecision(
            "high",
            f"Namespace {ns}: default-deny would break observed legitimate "
            "requests; decide before applying",
            f"#ns-{i}",
        )
        for i, ns in held
    ]
    return out


def build_verdict(
    *,
    rec: Recommendation | None,
    summary: Summary,
    findings: Sequence[FindingRow],
    anomalies: Sequence[AnomalyRow],
    sections: Sequence[NamespaceSection],
    diff: DiffView | None,
    has_policies: bool,
) -> Verdict:
    """The verdict and the decisions, most severe first. ``findings`` must be in the order of
    the findings table (`sort_findings`) and ``anomalies``/``sections`` in theirs: the links
    are ``#finding-N``, ``#anomaly-N`` and ``#ns-N`` by position."""
    decisions = [
        *_finding_decisions(findings),
        *_anomaly_decisions(anomalies),
        *_diff_decisions(
            diff, rec is not None and rec.verification is not None and rec.verification.ok
        ),
        *_namespace_decisions(rec, sections),
    ]
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    decisions.sort(key=lambda d: rank.get(d.severity, len(SEVERITIES)))
    return Verdict(
        headline=_headline(rec, summary, anomalies, diff),
        points=tuple(_points(findings, summary, diff, has_policies)),
        decisions=tuple(decisions),
    )
