"""The audit's domain objects: findings, per-rule usage, and the result that holds them.

Severity policy (docs/audit.md explains it to users):

* ``high``: observed traffic a rollout would break (``would-break`` of connections that went
  through), ingress from anywhere (``0.0.0.0/0``/``::/0``, no ``from``, world entities),
  egress restricted without DNS on UDP 53.
* ``medium``: every-namespace peers, large address ranges, egress to anywhere, broad rules
  nothing used, policies that select no known pod, namespaces where nothing isolates ingress,
  pods left open to ingress, allowed edges the anomaly detector flags.
* ``low``: unused rules, redundant rules, TCP-53-only DNS gaps, namespaces where nothing
  isolates egress, mildly broad rules (namespace-only peers, ``podSelector: {}``, all ports,
  wide port ranges, empirically broad), already-dropped traffic the policies keep denying.
* ``info``: context: denials of traffic the anomaly detector flags (``intended-deny``),
  system namespaces left open, partial isolation without a default-deny for egress.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from analyzer.errors import UsageError

__all__ = [
    "AuditResult",
    "CATEGORIES",
    "Finding",
    "Replacement",
    "RuleStat",
    "SEVERITIES",
    "Severity",
    "max_severity",
    "parse_severity",
    "rule_path",
    "severity_rank",
]

Severity = Literal["info", "low", "medium", "high"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high")

CATEGORIES: tuple[str, ...] = (
    "would-break",
    "intended-deny",
    "missing-dns",
    "broad-rule",
    "unused-policy",
    "unused-rule",
    "redundant-rule",
    "no-default-deny",
    "unprotected-pods",
    "suspicious-allowed",
    "ignored-rules",
    "policy-types-defaulting",
    "metadata-egress",
    "risky-port",
    "no-effect-policy",
    "ipblock-cluster-range",
)


def severity_rank(severity: str) -> int:
    """0 for ``info`` up to 3 for ``high``."""
    return SEVERITIES.index(severity)  # type: ignore[arg-type,unused-ignore]


def max_severity(*severities: Severity) -> Severity:
    """The most severe of the given severities."""
    return max(severities, key=severity_rank)


def parse_severity(value: str) -> Severity:
    """Validate a user-given severity name (``--fail-on``)."""
    lowered = value.strip().lower()
    for sev in SEVERITIES:
        if sev == lowered:
            return sev
    raise UsageError(f"unknown severity {value!r}; expected one of {', '.join(SEVERITIES)}")


def rule_path(direction: str, index: int) -> str:
    """The field path of a rule inside its policy, e.g. ``spec.ingress[0]``."""
    return f"spec.{direction}[{index}]"


@dataclass(frozen=True, slots=True)
class Replacement:
    """What to put in place of a broad or unused rule.

    ``action`` is ``replace`` (``manifest`` holds a NetworkPolicy admitting exactly the observed
    connections the rule admitted), ``remove-rule`` or ``remove-policy`` (nothing used it, or
    something else does all it does), or ``edit`` (a change to the manifest, said in ``note``:
    the lint rules' fixes).
    """

    action: Literal["replace", "remove-rule", "remove-policy", "edit"]
    note: str
    manifest: Mapping[str, Any] | None = None
    source: str = "analyzer.recommend.synthesize"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "note": self.note,
            "manifest": dict(self.manifest) if self.manifest is not None else None,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem a reviewer should look at.

    ``policy`` is ``namespace/name`` (null for namespace-level findings, which set
    ``namespace``); ``rule`` is the rule's field path (``spec.ingress[0]``) or null when the
    finding is about a whole policy or namespace.
    """

    severity: Severity
    category: str
    policy: str | None
    rule: str | None
    explanation: str
    namespace: str | None = None
    direction: str | None = None
    hits: int | None = None
    first_hit: datetime | None = None
    last_hit: datetime | None = None
    replacement: Replacement | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def sort_key(self) -> tuple[int, str, str, str, str]:
        return (
            -severity_rank(self.severity),
            self.category,
            self.policy or f"{self.namespace or ''}/",
            self.rule or "",
            self.explanation,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "category": self.category,
            "policy": self.policy,
            "rule": self.rule,
            "namespace": self.namespace,
            "direction": self.direction,
            "explanation": self.explanation,
            "hits": self.hits,
            "first_hit": _iso(self.first_hit),
            "last_hit": _iso(self.last_hit),
            "replacement": self.replacement.to_dict() if self.replacement else None,
            "evidence": _jsonable(self.evidence),
        }


@dataclass(frozen=True, slots=True)
class RuleStat:
    """Usage of one allow rule over the observation window.

    ``hits`` counts the connections the rule admitted in its direction (a connection admitted
    by several rules counts for each); ``requests`` counts distinct connection rows.
    """

    policy: str
    rule: str
    direction: str
    hits: int
    requests: int
    first_hit: datetime | None
    last_hit: datetime | None
    peers_used: tuple[str, ...] = ()
    ports_used: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "rule": self.rule,
            "direction": self.direction,
            "hits": self.hits,
            "requests": self.requests,
            "first_hit": _iso(self.first_hit),
            "last_hit": _iso(self.last_hit),
            "peers_used": list(self.peers_used),
            "ports_used": list(self.ports_used),
        }


@dataclass(frozen=True, slots=True)
class AuditResult:
    """Everything ``audit()`` found, in a stable order (most severe first)."""

    findings: tuple[Finding, ...]
    rule_stats: tuple[RuleStat, ...]
    window: tuple[datetime | None, datetime | None]
    policies: int
    connections: int
    namespaces: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        by_sev = {s: 0 for s in reversed(SEVERITIES)}
        by_cat: dict[str, int] = {}
        for f in self.findings:
            by_sev[f.severity] += 1
            by_cat[f.category] = by_cat.get(f.category, 0) + 1
        return {
            "findings": len(self.findings),
            "by_severity": by_sev,
            "by_category": dict(sorted(by_cat.items())),
            "policies": self.policies,
            "rules": len(self.rule_stats),
            "connections": self.connections,
            "highest": self.highest(),
        }

    def highest(self) -> Severity | None:
        """The most severe finding's severity, or None when there are no findings."""
        if not self.findings:
            return None
        return max_severity(*(f.severity for f in self.findings))

    def reaches(self, threshold: Severity) -> bool:
        """True when a finding is at or above ``threshold`` (``--fail-on``)."""
        rank = severity_rank(threshold)
        return any(severity_rank(f.severity) >= rank for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        first, last = self.window
        return {
            "findings": [f.to_dict() for f in self.findings],
            "rules": [r.to_dict() for r in self.rule_stats],
            "window": {"first": _iso(first), "last": _iso(last)},
            "summary": self.summary(),
            "namespaces": list(self.namespaces),
            "warnings": list(self.warnings),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, datetime):
        return _iso(value)
    return value
