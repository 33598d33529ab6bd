"""One call for the command line: load policies, inventory and flows, then :func:`audit`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from analyzer.audit.engine import audit
from analyzer.audit.findings import AuditResult
from analyzer.audit.ranges import parse_service_cidrs
from analyzer.errors import UsageError

__all__ = ["run_audit"]


def run_audit(
    policy_paths: Sequence[str | Path],
    *,
    store: Path | None = None,
    flow_files: Sequence[str] = (),
    inventory_path: Path | None = None,
    namespaces: Sequence[str] | None = None,
    ipblock_mode: str = "kubernetes",
    include_staged: bool = False,
    anomalies: bool = True,
    service_cidrs: Sequence[str] = (),
) -> AuditResult:
    """Audit the policies under ``policy_paths`` against the flows of ``store`` (or files).

    Parameters
    ----------
    policy_paths
        Policy files or directories (``kubectl get networkpolicy -A -o yaml`` output works).
    store
        Flow store directory, read when ``flow_files`` is empty.
    flow_files
        Flow files in any ingest format, read directly instead of the store.
    inventory_path
        ``kubectl get pods,namespaces -A -o json`` output, for labels and named ports.
    namespaces
        Audit only these namespaces.
    service_cidrs
        The cluster's Service ranges (for ipBlock peers that point into them).

    Raises
    ------
    PolicyError, StoreError, IngestError, InventoryError
        Inputs that cannot be read.
    """
    from analyzer.connections import derive_connections
    from analyzer.k8s.inventory import load_inventory
    from analyzer.policy.load import load_policies, require_policies

    if not policy_paths:
        raise UsageError("give the policies to audit with --policies PATH")
    if namespaces is not None:
        bad = [ns for ns in namespaces if not ns or "/" in ns]
        if bad:
            raise UsageError(f"invalid namespace {bad[0]!r}")
    parse_service_cidrs(service_cidrs)  # a bad value fails before the analysis
    loaded = load_policies(list(policy_paths), include_staged=include_staged)
    require_policies(loaded, policy_paths)
    warnings = loaded.warnings()
    if not loaded.policies:
        warnings.append(
            "the policies are an empty List (a cluster without policies): only namespace "
            "coverage can be audited"
        )
    inventory = load_inventory(inventory_path) if inventory_path is not None else None
    flows = _flows(store, flow_files, warnings)
    connections = derive_connections(flows)
    if namespaces:
        _require_known(namespaces, connections.frame, inventory, loaded.policies)
    warnings.extend(connections.stats.warnings)
    result = audit(
        loaded.policies,
        connections,
        inventory=inventory,
        namespaces=list(namespaces) if namespaces else None,
        anomalies=anomalies,
        ipblock_mode=ipblock_mode,
        service_cidrs=service_cidrs,
    )
    return replace(result, warnings=tuple(warnings) + result.warnings)


def _require_known(
    namespaces: Sequence[str], conns: pl.DataFrame, inventory: Any, policies: Sequence[Any]
) -> None:
    from analyzer.k8s.namespaces import namespaces_in, require_known

    known = namespaces_in(conns) | {p.namespace for p in policies if p.namespace}
    if inventory is not None:
        known |= set(inventory.namespaces) | {p.namespace for p in inventory.pods.values()}
    where = "the flows, the policies" + (" or the inventory" if inventory is not None else "")
    require_known(namespaces, known, where=where)


def _flows(store: Path | None, flow_files: Sequence[str], warnings: list[str]) -> pl.LazyFrame:
    if flow_files:
        from analyzer.ingest import read_flow_file

        frames = []
        for path in flow_files:
            result = read_flow_file(path)
            skipped = sum(reason.count for reason in result.skipped)
            if skipped:
                warnings.append(f"{path}: {skipped} record(s) skipped while reading")
            warnings.extend(f"{path}: {w}" for w in result.warnings)
            frames.append(result.frame)
        return pl.concat(frames, how="vertical_relaxed").lazy()
    from analyzer.store import FlowStore

    scanned: pl.LazyFrame = FlowStore.open(store or Path(".analyzer-store")).scan()
    return scanned
