"""``analyzer drift``: what changed since the applied policies were generated (docs/live.md).

``run_drift`` loads the policies and the store; ``engine.drift_findings`` judges connections
with the policy engine; ``render`` prints them.
"""

from __future__ import annotations

from analyzer.drift.model import CATEGORY_SEVERITY, DriftFinding, DriftResult
from analyzer.drift.render import render_json, render_table
from analyzer.drift.run import run_drift

__all__ = [
    "CATEGORY_SEVERITY",
    "DriftFinding",
    "DriftResult",
    "render_json",
    "render_table",
    "run_drift",
]
