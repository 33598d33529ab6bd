"""Audit existing NetworkPolicies against observed traffic (``analyzer audit``).

>>> from analyzer.audit import audit                                   # doctest: +SKIP
>>> result = audit(load_policies("policies/").policies, derive_connections(flows))  # doctest: +SKIP
>>> [f.category for f in result.findings]                              # doctest: +SKIP

See docs/audit.md for the categories, the severity policy and the JSON schema.
"""

from __future__ import annotations

from analyzer.audit.engine import audit
from analyzer.audit.findings import (
    CATEGORIES,
    SEVERITIES,
    AuditResult,
    Finding,
    Replacement,
    RuleStat,
    Severity,
    parse_severity,
)
from analyzer.audit.render import render_json, render_table

__all__ = [
    "CATEGORIES",
    "SEVERITIES",
    "AuditResult",
    "Finding",
    "Replacement",
    "RuleStat",
    "Severity",
    "audit",
    "parse_severity",
    "render_json",
    "render_table",
]
