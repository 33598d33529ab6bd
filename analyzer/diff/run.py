"""One call for the command line: load both policy sets, the inventory and the store, then
:func:`analyzer.diff.semantic.diff_policies`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from analyzer.diff.model import PolicyDiff, PolicySetInfo
from analyzer.diff.semantic import diff_policies
from analyzer.errors import UsageError
from analyzer.policy.compile import IPBLOCK_MODES

__all__ = ["run_diff"]


def run_diff(
    old_paths: Sequence[str | Path],
    new_paths: Sequence[str | Path],
    *,
    store: Path | None = None,
    inventory_path: Path | None = None,
    namespaces: Sequence[str] | None = None,
    ipblock_mode: str = "kubernetes",
    include_staged: bool = False,
    probes: bool = True,
) -> PolicyDiff:
    """Diff the policies under ``old_paths`` against those under ``new_paths``.

    The store (default ``./.analyzer-store``) gives the observed connections and most
    identities. Without a store, an inventory alone still gives the identities (a warning
    says that nothing observed is compared).

    Raises
    ------
    UsageError
        An invalid namespace or ipBlock mode.
    PolicyError, StoreError, InventoryError
        Inputs that cannot be read.
    """
    from analyzer.connections import derive_connections
    from analyzer.k8s.inventory import load_inventory
    from analyzer.policy.load import load_policies
    from analyzer.store import FlowStore

    if namespaces is not None:
        bad = [ns for ns in namespaces if not ns or "/" in ns]
        if bad:
            raise UsageError(f"invalid namespace {bad[0]!r}")
    if ipblock_mode not in IPBLOCK_MODES:
        raise UsageError(f"--ipblock-mode must be one of {', '.join(IPBLOCK_MODES)}")
    warnings: list[str] = []
    sets = []
    for label, paths in (("OLD", old_paths), ("NEW", new_paths)):
        loaded = load_policies(list(paths), include_staged=include_staged)
        warnings += [f"{label.lower()}: {w}" for w in loaded.warnings()]
        sets.append(
            (loaded.policies, PolicySetInfo(label, tuple(map(str, paths)), len(loaded.policies)))
        )
    inventory = load_inventory(inventory_path) if inventory_path is not None else None
    root = store or Path(".analyzer-store")
    connections = None
    if inventory is not None and not root.exists():
        warnings.append(f"no flow store at {root}: only the inventory's identities are compared")
    else:
        connections = derive_connections(FlowStore.open(root).scan())
        warnings += connections.stats.warnings
    result = diff_policies(
        sets[0][0],
        sets[1][0],
        connections,
        inventory=inventory,
        namespaces=namespaces,
        ipblock_mode=ipblock_mode,
        old_info=sets[0][1],
        new_info=sets[1][1],
        probes=probes,
    )
    return replace(result, warnings=tuple(warnings) + result.warnings)
