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
