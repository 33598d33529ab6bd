"""The diff of two loaded policy sets on an analysis' connections and identities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from analyzer.analysis import Analysis
from analyzer.diff.model import PolicyDiff, PolicySetInfo
from analyzer.diff.semantic import diff_policies
from analyzer.policy.load import LoadResult

__all__ = ["run_diff"]


def run_diff(
    analysis: Analysis,
    old: LoadResult,
    new: LoadResult,
    *,
    old_paths: Sequence[str | Path] = (),
    new_paths: Sequence[str | Path] = (),
    probes: bool = True,
) -> PolicyDiff:
    """Diff ``old`` against ``new`` on the connections of ``analysis`` (when it has flows)
    and every identity it or its inventory knows, within its scope's namespaces."""
    warnings = [f"old: {w}" for w in old.warnings()] + [f"new: {w}" for w in new.warnings()]
    connections = None
    if analysis.source is not None:
        connections = analysis.connections
        warnings += connections.stats.warnings
    result = diff_policies(
        old.policies,
        new.policies,
        connections,
        inventory=analysis.inventory,
        namespaces=list(analysis.scope.namespaces) or None,
        ipblock_mode=analysis.options.ipblock_mode,
        old_info=PolicySetInfo("OLD", tuple(map(str, old_paths)), len(old.policies)),
        new_info=PolicySetInfo("NEW", tuple(map(str, new_paths)), len(new.policies)),
        probes=probes,
    )
    return replace(result, warnings=tuple(warnings) + result.warnings)
