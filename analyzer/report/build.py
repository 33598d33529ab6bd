"""Assemble a `ReportModel` from a flow store by running the other modules.

flows (store) -> connections -> recommendation (policies, evidence, probes) -> anomalies left
out -> audit and coverage of the existing policies (when given) -> summary. Each step is the
owning module's public function; this module only converts their results for display.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from analyzer.anomaly import detect_anomalies
from analyzer.connections import Connections, derive_connections
from analyzer.errors import UsageError, VerificationError
from analyzer.report.convert import anomaly_rows, denied_rows, edge_key, graph_from_connections
from analyzer.report.model import (
    SEVERITIES,
    CoverageRow,
    Finding,
    NamespaceSection,
    ReportModel,
    RolloutPlan,
    Summary,
)

if TYPE_CHECKING:
    from analyzer.k8s.inventory import Inventory
    from analyzer.policy.load import LoadResult
    from analyzer.recommend import Recommendation

__all__ = ["FlowSource", "build_report"]


class FlowSource(Protocol):
    """What the report needs of a flow store (`analyzer.store.FlowStore` is one)."""

    def scan(self) -> pl.LazyFrame: ...

    def manifest(self) -> Sequence[Any]: ...


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _flow_counts(flows: pl.LazyFrame) -> tuple[int, int]:
    """Flow records, and records whose addresses or pod names were masked or aggregated away."""

    def masked(side: str) -> pl.Expr:
        pod = pl.col(f"{side}_entity") == "pod"
        name = pl.col(f"{side}_pod")
        return pod & (
            pl.col(f"{side}_ip").is_null()
            | name.is_null()
            | name.str.contains("*", literal=True)
            | (name == "-")
        )

    row = flows.select(
        pl.len().alias("rows"),
        (masked("src") | masked("dst")).fill_null(False).sum().alias("masked"),
    ).collect()
    return int(row["rows"][0]), int(row["masked"][0] or 0)


_LOST = re.compile(r"(\d+) events were lost")


def _ingest_warnings(store: FlowSource, warnings: list[str]) -> int:
    """Events the sources reported lost (Hubble ``lost_events``), from the store manifest; other
    skipped records and ingest warnings are added to ``warnings``.

    The manifest keeps the number of lost events only in its warning text, so it is read from
    there; without one, each skipped lost-events record counts as one.
    """
    lost = 0
    skipped: dict[str, int] = {}
    for entry in store.manifest():
        records = 0
        for reason in getattr(entry, "skipped", ()):
            name, count = str(getattr(reason, "reason", "")), int(getattr(reason, "count", 0))
            if "lost" in name.lower():
                records += count
            else:
                skipped[name] = skipped.get(name, 0) + count
        texts = [str(w) for w in getattr(entry, "warnings", ())]
        stated = [int(m.group(1)) for w in texts for m in _LOST.finditer(w)]
        lost += sum(stated) if stated else records
        warnings.extend(f"ingest: {w}" for w in texts)
    warnings.extend(f"{n} record(s) skipped at ingest: {r}" for r, n in sorted(skipped.items()))
    return lost


def _recommend(
    flows: pl.LazyFrame,
    namespaces: Sequence[str] | None,
    policies: Path | None,
    warnings: list[str],
    connections: Connections,
) -> Recommendation | None:
    from analyzer.k8s.namespaces import is_system_namespace
    from analyzer.recommend import RecommendOptions, recommend

    given = (str(policies),) if policies is not None else ()
    system = [ns for ns in namespaces or () if is_system_namespace(ns)]
    if system:
        # The report reviews them; writing a default-deny for them stays an explicit choice.
        warnings.append(
            f"no policies recommended for system namespaces ({', '.join(system)}): "
            "`analyzer recommend --include-system-namespaces` writes them"
        )
        namespaces = [ns for ns in namespaces or () if not is_system_namespace(ns)]
        if not namespaces:
            return None
    try:
        rec = recommend(
            flows,
            namespaces=namespaces,
            options=RecommendOptions(policies=given, allow_breaking=True),
            connections=connections,
        )
    except VerificationError as exc:
        # The report is where a reviewer should see this, so keep going without the check.
        warnings.append(f"the recommendation failed verification: {exc}")
        opts = RecommendOptions(policies=given, verify=False)
        return recommend(flows, namespaces=namespaces, options=opts, connections=connections)
    except UsageError as exc:
        if namespaces:
            raise
        warnings.append(f"no recommendation: {exc}")
        return None
    if rec.verification is not None and not rec.verification.ok:
        warnings.append(f"the recommendation failed verification: {rec.verification.failure()}")
    return rec


def _require_known(
    namespaces: Sequence[str], conns: pl.DataFrame, inv: Inventory | None, loaded: Any
) -> None:
    from analyzer.k8s.namespaces import namespaces_in, require_known

    known = namespaces_in(conns)
    if loaded is not None:
        known |= {p.namespace for p in loaded.policies if p.namespace}
    if inv is not None:
        known |= set(inv.namespaces) | {p.namespace for p in inv.pods.values()}
    require_known(namespaces, known, where="the flow store, the policies or the inventory")


def _scope(frame: pl.DataFrame, namespaces: Sequence[str] | None) -> pl.DataFrame:
    if not namespaces:
        return frame
    wanted = list(namespaces)
    return frame.filter(
        pl.col("src_namespace").is_in(wanted).fill_null(False)
        | pl.col("dst_namespace").is_in(wanted).fill_null(False)
    )


def build_report(
    store: FlowSource,
    *,
    policies: Path | None = None,
    inventory: Path | None = None,
    namespaces: Sequence[str] | None = None,
    bundle_dir: Path | None = None,
    recommendation: Recommendation | None = None,
    title: str | None = None,
    generated_at: datetime | None = None,
) -> ReportModel:
    """Run the analysis of ``store`` and collect everything the report shows.

    Parameters
    ----------
    store
        The flow store to analyse.
    policies
        File or directory of the existing policies: adds the audit, coverage and diffs.
    inventory
        ``kubectl get pods,namespaces -A -o json`` for named ports and namespace labels.
    namespaces
        Limit recommendations, audit and the drawn graph to these namespaces.
    bundle_dir
        Where the policy bundle of this recommendation was written (shown in the plan).
    recommendation
        A recommendation already computed for the same store and options (saves recomputing).
    title, generated_at
        Page title and timestamp (defaults: a title naming the namespaces, now).

    Raises
    ------
    StoreError, PolicyError, InventoryError, UsageError
        From the modules that read the inputs.
    """
    # Read every user input first: a bad path fails in a second, not after the analysis.
    inv: Inventory | None = None
    if inventory is not None:
        from analyzer.k8s.inventory import load_inventory

        inv = load_inventory(inventory)
    loaded: LoadResult | None = None
    existing: dict[str, list[dict[str, Any]]] | None = None
    if policies is not None:
        from analyzer.policy.load import load_policies, require_policies
        from analyzer.report.existing import existing_manifests

        loaded = load_policies(policies)
        require_policies(loaded, policies)
        existing = existing_manifests(policies)

    flows = store.scan()
    rows, masked = _flow_counts(flows)
    connections: Connections = derive_connections(flows)
    conns = connections.frame
    if namespaces:
        _require_known(namespaces, conns, inv, loaded)
    warnings: list[str] = list(connections.stats.warnings)
    lost = _ingest_warnings(store, warnings)
    rec = recommendation
    if rec is None and rows:
        rec = _recommend(flows, namespaces, policies, warnings, connections)
    if rec is not None:
        warnings.extend(n.message for n in rec.notes if n.level == "warning" and not n.namespace)

    detected = detect_anomalies(conns, random_state=0, namespaces=namespaces)
    flagged = detected.flagged
    scoped = _scope(conns, namespaces)
    keys = [
        edge_key(r["src_key"], r["dst_key"], r["protocol"], r["dst_port"])
        for r in flagged.select("src_key", "dst_key", "protocol", "dst_port").iter_rows(named=True)
    ]
    graph = graph_from_connections(scoped, keys)

    findings: tuple[Finding, ...] = ()
    coverage: tuple[CoverageRow, ...] = ()
    if loaded is not None:
        from analyzer.audit.engine import audit
        from analyzer.policy.compile import compile_policies
        from analyzer.report.existing import coverage_rows
        from analyzer.report.sections import findings_from_audit

        warnings.extend(f"policy not loaded: {p}" for p in loaded.problems)
        result = audit(loaded.policies, connections, inventory=inv, namespaces=namespaces)
        findings = findings_from_audit(result)
        coverage = coverage_rows(compile_policies(loaded.policies), scoped, inv)

    else:
        from analyzer.report.existing import coverage_rows

        coverage = coverage_rows(None, scoped)

    sections: tuple[NamespaceSection, ...] = ()
    plan = RolloutPlan()
    if rec is not None:
        from analyzer.report.sections import plan_from_recommendation, sections_from_recommendation

        sections = sections_from_recommendation(rec, existing)
        plan = plan_from_recommendation(rec, bundle_dir)

    stats = connections.stats
    observed = sorted(
        {ns for side in ("src", "dst") for ns in scoped[f"{side}_namespace"].drop_nulls().to_list()}
    )
    counts = {s: 0 for s in SEVERITIES}
    for f in findings:
        counts[f.severity if f.severity in counts else "info"] += 1
    summary = Summary(
        window_start=_iso(stats.window[0]),
        window_end=_iso(stats.window[1]),
        flows=rows,
        connections=int(scoped["connections"].sum() or 0) if scoped.height else 0,
        namespaces=tuple(observed),
        identities=len(graph.nodes),
        coverage=coverage,
        findings_by_severity=tuple((s, n) for s, n in counts.items() if n),
        lost_events=lost,
        masked_fields=masked,
        undecidable_replies=stats.undecidable,
        decided_by_ports=stats.decided_by_ports,
        warnings=tuple(dict.fromkeys(warnings)),
    )
    scope = ", ".join(namespaces) if namespaces else "all namespaces"
    return ReportModel(
        title=title or f"Network policy review: {scope}",
        generated_at=_iso(generated_at or datetime.now(UTC).replace(microsecond=0)) or "",
        summary=summary,
        graph=graph,
        sections=sections,
        findings=findings,
        anomalies=anomaly_rows(flagged),
        suspects=tuple(s.message() for s in detected.summary.suspects),
        denied=denied_rows(scoped),
        plan=plan,
        policies_source=str(policies) if policies is not None else None,
        bundle_path=str(bundle_dir) if bundle_dir is not None else None,
    )
