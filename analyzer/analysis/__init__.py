"""The analysis layer: one flow source, one scope, every derived result computed once.

::

    inputs.py             open the store, read flow files, policy files, the inventory
    scope.py              Scope: namespaces (filter results) and --since/--until (select flows)
    connection_source.py  connections_for(source, scope): the one place connections come from
    core.py               Analysis: connections, graph, anomalies, verdicts, recommendation,
                          audit; each computed on first use, shared by every view

Commands build one ``Analysis`` and hand it to one view (``analyzer.report.build``, the
recommend, audit, graph and anomalies presenters). Nothing below this layer opens the store or
reads a path given on the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from analyzer.analysis.core import Analysis, AnalysisOptions, AuditOptions
from analyzer.analysis.inputs import (
    FileFlows,
    FlowSource,
    IngestNotes,
    StoreFlows,
    load_inventory_file,
    load_policy_files,
    open_flows,
    open_store,
    read_flow_files,
)
from analyzer.analysis.scope import Scope, parse_duration, parse_time

__all__ = [
    "analyse",
    "Analysis",
    "AnalysisOptions",
    "AuditOptions",
    "FileFlows",
    "FlowSource",
    "IngestNotes",
    "Scope",
    "StoreFlows",
    "load_inventory_file",
    "load_policy_files",
    "open_flows",
    "open_store",
    "parse_duration",
    "parse_time",
    "read_flow_files",
]


def analyse(
    store: Path,
    *,
    policies: Path | Sequence[Path] | None = None,
    inventory: Path | None = None,
    namespaces: Sequence[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    options: AnalysisOptions | None = None,
) -> Analysis:
    """The Analysis of the store at ``store`` with policy files and an inventory file, as the
    command line gives them (``--since``/``--until`` as RFC 3339 or durations).

    >>> report = build_report(analyse(Path(".analyzer-store")))  # doctest: +SKIP
    """
    flows = open_store(store)
    scope = Scope.parse(namespaces, since, until)
    inv = load_inventory_file(inventory)
    paths = [policies] if isinstance(policies, Path | str) else list(policies or ())
    loaded = load_policy_files(paths) if policies is not None else None
    return Analysis(flows, scope, policies=loaded, inventory=inv, options=options)
