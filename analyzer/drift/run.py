"""One call for the command line: load the applied policies and the store, then drift."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from analyzer.connections import BucketedConnections, derive_bucketed, window_connections
from analyzer.drift.engine import drift_findings, known_edges
from analyzer.drift.evidence import WINDOW_ANNOTATION, read_generated
from analyzer.drift.model import DriftResult
from analyzer.errors import UsageError
from analyzer.store import FlowStore
from analyzer.store.rollup import read_schedule

__all__ = ["run_drift"]


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _bucketed(store: FlowStore) -> BucketedConnections:
    """The store's connections per time bucket: the rollup's, else derived from the raw flows
    under the store's schedule (the same definition: docs/scope.md)."""
    rollup = store.rollup()
    if rollup is not None:
        return rollup.bucketed()
    return derive_bucketed(store.scan(), read_schedule(store.root))[1]


def run_drift(
    policy_paths: Sequence[str | Path],
    *,
    store: Path,
    since: datetime,
    baseline: datetime | None = None,
    inventory_path: Path | None = None,
    namespaces: Sequence[str] | None = None,
    ipblock_mode: str = "kubernetes",
    include_staged: bool = False,
) -> DriftResult:
    """Connections seen since ``since`` that the policies under ``policy_paths`` deny, and
    edges they allow that the flows from before ``baseline`` (default: when the policies were
    generated, from their ``analyzer.io/observed-window`` annotations) do not hold.

    Raises
    ------
    PolicyError, StoreError, InventoryError, UsageError
        Inputs that cannot be read, or option values that cannot be used.
    """
    from analyzer.k8s.inventory import load_inventory
    from analyzer.policy.load import load_policies, require_policies

    if not policy_paths:
        raise UsageError("give the applied policies with --policies PATH")
    bad = [ns for ns in namespaces or () if not ns or "/" in ns]
    if bad:
        raise UsageError(f"invalid namespace {bad[0]!r}")
    loaded = load_policies(list(policy_paths), include_staged=include_staged)
    require_policies(loaded, policy_paths)
    warnings = loaded.warnings()
    inventory = load_inventory(inventory_path) if inventory_path is not None else None
    bucketed = _bucketed(FlowStore.open(store))
    start = bucketed.schedule.floor(since)
    recent = window_connections(bucketed, start, None)
    warnings.extend(recent.stats.warnings)
    if start != since:
        warnings.append(
            f"time window rounded out to whole buckets ({bucketed.schedule.describe()}): "
            f"{_iso(start)} onwards"
        )
    generated = read_generated(policy_paths)
    baseline_from = "--baseline" if baseline is not None else "unknown"
    ends = [g.last for g in generated if g.last is not None]
    if baseline is None and ends:
        baseline, baseline_from = max(ends), "annotations"
    known = None
    if baseline is not None:
        known, before = known_edges(bucketed, baseline)
        if before == 0:
            warnings.append(
                f"the store holds no flows from before {_iso(baseline)} (when the policies were "
                "generated): every allowed edge counts as new; ingest the flows they were "
                "generated from, or give --baseline"
            )
    else:
        warnings.append(
            f"no policy carries an {WINDOW_ANNOTATION} annotation (they were not written by "
            "`analyzer recommend`): new edges cannot be told from old ones; give --baseline TIME"
        )
    first, last = recent.stats.window
    if recent.frame.height == 0:
        newest = bucketed.counts["last"].max()
        where = (
            f" (the newest flow in the store is from {_iso(newest)})"
            if isinstance(newest, datetime)
            else ""
        )
        warnings.append(f"no connection seen since {_iso(since)}{where}")
    findings = drift_findings(
        loaded.policies,
        recent.frame,
        known,
        inventory=inventory,
        namespaces=namespaces or None,
        ipblock_mode=ipblock_mode,
    )
    return DriftResult(
        since=since,
        until=last,
        baseline=baseline,
        baseline_from=baseline_from,
        policies=len(loaded.policies),
        generated_policies=len(generated),
        connections=recent.frame.height,
        findings=tuple(findings),
        warnings=tuple(warnings),
    )
