"""What ``analyzer drift`` finds: connections seen since a time that the applied policies deny,
and edges they were never generated from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analyzer.audit.findings import SEVERITIES, Severity, severity_rank

__all__ = ["CATEGORY_SEVERITY", "DriftFinding", "DriftResult"]

# would-break: went through when observed, the applied policies deny it (rolling them out, or
#   the policies now enforced, breaks it);
# blocked: dropped by policy when observed and denied by the applied policies (a new client
#   that fails, or an attempt the policies stop: look at it);
# new-edge: allowed, but an identity edge the flows from before the policies were generated do
#   not hold (nobody reviewed it).
CATEGORY_SEVERITY: dict[str, Severity] = {
    "would-break": "high",
    "blocked": "medium",
    "new-edge": "low",
}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class DriftFinding:
    """One identity edge (source group, destination group, protocol, port) of a category."""

    category: str
    severity: Severity
    src: str  # namespace/workload, an address or reserved:<entity>
    dst: str
    src_group: str
    dst_group: str
    protocol: str
    port: int | None
    connections: int
    first_seen: datetime | None
    last_seen: datetime | None
    reason: str
    allowed_by: tuple[str, ...]
    examples: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "severity": self.severity,
            "src": self.src,
            "dst": self.dst,
            "src_group": self.src_group,
            "dst_group": self.dst_group,
            "protocol": self.protocol,
            "port": self.port,
            "connections": self.connections,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "reason": self.reason,
            "allowed_by": list(self.allowed_by),
            "examples": list(self.examples),
        }


@dataclass(frozen=True, slots=True)
class DriftResult:
    since: datetime
    until: datetime | None  # the newest flow looked at
    baseline: datetime | None  # when the policies were generated (edges after it are new)
    baseline_from: str  # "annotations", "--baseline" or "unknown"
    policies: int
    generated_policies: int
    connections: int  # connections seen since `since` (evaluated)
    findings: tuple[DriftFinding, ...]
    warnings: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        out = {c: 0 for c in CATEGORY_SEVERITY}
        for f in self.findings:
            out[f.category] += 1
        return out

    def reaches(self, severity: str) -> bool:
        """Whether a finding has ``severity`` or a higher one (``--fail-on``)."""
        floor = severity_rank(severity)
        return any(severity_rank(f.severity) >= floor for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "baseline": _iso(self.baseline),
            "baseline_from": self.baseline_from,
            "policies": self.policies,
            "generated_policies": self.generated_policies,
            "connections": self.connections,
            "counts": self.counts(),
            "severities": list(SEVERITIES),
            "findings": [f.to_dict() for f in self.findings],
            "warnings": list(self.warnings),
        }
