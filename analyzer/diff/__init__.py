"""Semantic diff of two policy sets: which connections change verdict (``analyzer diff``).

Library entry points: :func:`diff_policies` (policies and connections already loaded) and
:func:`run_diff` (an Analysis and two loaded policy sets, as the command line gives them).
Both return a :class:`PolicyDiff` (frozen dataclasses, grouped by namespace pair, sorted, counted).
"""

from __future__ import annotations

from analyzer.diff.model import (
    FAIL_ON,
    Change,
    Decision,
    DiffCounts,
    NamespacePairDiff,
    ObservedEvidence,
    PolicyDiff,
    PolicySetInfo,
    UniverseInfo,
)
from analyzer.diff.run import run_diff
from analyzer.diff.semantic import diff_policies

__all__ = [
    "FAIL_ON",
    "Change",
    "Decision",
    "DiffCounts",
    "NamespacePairDiff",
    "ObservedEvidence",
    "PolicyDiff",
    "PolicySetInfo",
    "UniverseInfo",
    "diff_policies",
    "run_diff",
]
