"""The Analysis: every derived result of one flow source, scope and set of inputs, computed
once, on first use, and handed to every consumer.

::

    FlowSource --connections_for(scope)--> connections --(inventory labels)--> connections
        |-> graph (identity groups, selectors, edges)      scoped_graph
        |-> anomalies (scored over everything)             scoped_anomalies
        |-> compiled policies -> verdicts                  (audit, coverage, recommend replay)
        '-> recommendation(flavor, options), audit(options)

Every command builds one Analysis and asks it for what it shows, so two commands on the same
store, scope and options print the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import polars as pl

from analyzer.analysis.connection_source import (
    FlowCounts,
    connections_for,
    endpoints_for,
    flow_counts,
    flows_in,
)
from analyzer.analysis.inputs import FlowSource, IngestNotes, StoreFlows
from analyzer.analysis.scope import Scope
from analyzer.anomaly.defaults import DEFAULT_THRESHOLD
from analyzer.connections import Connections, ConnectionStats, empty_connections
from analyzer.connections.inventory_labels import label_from_inventory
from analyzer.errors import UsageError
from analyzer.identity.graph import IdentityGraph, build_graph, restrict_graph
from analyzer.identity.seen import SeenTable
from analyzer.k8s.inventory import Inventory
from analyzer.k8s.namespaces import namespaces_in, require_known
from analyzer.policy.compile import IPBLOCK_MODES, CompiledPolicies, compile_policies
from analyzer.policy.load import LoadResult

if TYPE_CHECKING:  # the modules behind these import scikit-learn: loaded on first use
    from analyzer.anomaly import AnomalyResult
    from analyzer.audit.findings import AuditResult
    from analyzer.recommend import Recommendation, RecommendOptions

__all__ = ["Analysis", "AnalysisOptions", "AuditOptions"]


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    """Knobs shared by every view: the anomaly model and the ipBlock semantics."""

    random_state: int = 0
    threshold: float = DEFAULT_THRESHOLD
    ipblock_mode: str = "kubernetes"


@dataclass(frozen=True, slots=True)
class AuditOptions:
    """What only ``audit`` asks (``analyzer audit`` options)."""

    anomalies: bool = True
    service_cidrs: tuple[str, ...] = ()


class Analysis:
    """One flow source seen through one scope, with the policies and inventory given.

    Parameters
    ----------
    flows
        Where the flow rows come from (``inputs.open_store`` / ``read_flow_files``); None for
        an analysis of policies alone (``diff`` with only an inventory).
    scope
        Namespaces (filter the results) and time window (selects the flows).
    policies
        The existing policies as loaded (``inputs.load_policy_files``).
    inventory
        ``kubectl get pods,namespaces -A -o json`` as read (``inputs.load_inventory_file``).
    options
        :class:`AnalysisOptions`.
    """

    def __init__(
        self,
        flows: FlowSource | None,
        scope: Scope | None = None,
        *,
        policies: LoadResult | None = None,
        inventory: Inventory | None = None,
        options: AnalysisOptions | None = None,
    ) -> None:
        self.source = flows
        self.scope = scope or Scope()
        self.policies = policies
        self.inventory = inventory
        self.options = options or AnalysisOptions()
        if self.options.ipblock_mode not in IPBLOCK_MODES:
            raise UsageError(f"--ipblock-mode must be one of {', '.join(IPBLOCK_MODES)}")
        self._recommendations: dict[tuple[str, RecommendOptions, tuple[str, ...]], Recommendation]
        self._recommendations = {}
        self._audits: dict[AuditOptions, AuditResult] = {}

    # --- what was read ----------------------------------------------------------------------

    @cached_property
    def ingest_notes(self) -> IngestNotes:
        """Lost events, skipped records and reader warnings of the flow source."""
        return self.source.ingest_notes() if self.source is not None else IngestNotes()

    @property
    def flows(self) -> pl.LazyFrame | None:
        """The flow rows of the time window (None without a flow source)."""
        if self.source is None:
            return None
        return flows_in(self.source, self.scope)

    @cached_property
    def endpoints(self) -> SeenTable | pl.LazyFrame | None:
        """Where ``explain`` resolves a named peer: the rollup's endpoint table, else the
        window's flow rows (``connection_source.endpoints_for``); None without a source."""
        if self.source is None:
            return None
        return endpoints_for(self.source, self.scope)

    @cached_property
    def flow_counts(self) -> FlowCounts:
        """Flow records of the time window (and how many were masked)."""
        if self.source is None:
            return FlowCounts(0, 0)
        return flow_counts(self.source, self.scope)

    @cached_property
    def _derived(self) -> tuple[Connections, tuple[str, ...]]:
        if self.source is None:
            return Connections(empty_connections(), ConnectionStats()), ()
        derived = connections_for(self.source, self.scope)
        if self.inventory is None:
            return derived, ()
        return label_from_inventory(derived, self.inventory)

    @property
    def connections(self) -> Connections:
        """Connection requests of the window, every namespace; pods the flows show without
        labels carry the inventory's (when one was given)."""
        return self._derived[0]

    @property
    def labelled_pods(self) -> tuple[str, ...]:
        """Pods (``ns/pod``) whose labels came from the inventory."""
        return self._derived[1]

    @cached_property
    def scoped_connections(self) -> pl.DataFrame:
        """The connection rows from or to the scope's namespaces."""
        return self.scope.select(self.connections.frame)

    # --- identities --------------------------------------------------------------------------

    @cached_property
    def graph(self) -> IdentityGraph:
        """The identity graph of every namespace (selectors unique cluster-wide)."""
        return build_graph(self.connections)

    @cached_property
    def scoped_graph(self) -> IdentityGraph:
        """The edges from or to the scope's namespaces and the groups they join."""
        return restrict_graph(self.graph, self.scope.namespaces)

    # --- anomalies ---------------------------------------------------------------------------

    @cached_property
    def anomalies(self) -> AnomalyResult:
        """Every edge scored once, over every namespace of the window."""
        from analyzer.anomaly import detect_anomalies

        return detect_anomalies(
            self.connections.frame,
            random_state=self.options.random_state,
            threshold=self.options.threshold,
        )

    @cached_property
    def scoped_anomalies(self) -> AnomalyResult:
        """The flagged edges from or to the scope's namespaces (scores unchanged)."""
        from analyzer.anomaly import restrict_anomalies

        if not self.scope.namespaces:
            return self.anomalies
        return restrict_anomalies(self.anomalies, self.connections.frame, self.scope.namespaces)

    # --- existing policies -------------------------------------------------------------------

    @cached_property
    def compiled(self) -> CompiledPolicies | None:
        """The existing policies compiled once (None when none were given)."""
        if self.policies is None:
            return None
        return compile_policies(self.policies.policies, ipblock_mode=self.options.ipblock_mode)

    @cached_property
    def verdicts(self) -> pl.DataFrame | None:
        """Every connection row with the existing policies' verdict (``evaluate_connections``)."""
        from analyzer.policy.frame import evaluate_connections

        if self.compiled is None:
            return None
        return evaluate_connections(self.compiled, self.connections.frame, self.inventory)

    # --- scope checks ------------------------------------------------------------------------

    def known_namespaces(self) -> set[str]:
        """Namespaces the flows, the policies or the inventory know."""
        known = namespaces_in(self.connections.frame)
        if self.policies is not None:
            known |= {p.namespace for p in self.policies.policies if p.namespace}
        if self.inventory is not None:
            known |= set(self.inventory.namespaces)
            known |= {p.namespace for p in self.inventory.pods.values()}
        return known

    def require_known_namespaces(self) -> None:
        """``UsageError`` for a namespace of the scope that nothing mentions (with a hint)."""
        if not self.scope.namespaces:
            return
        sources = ["the flow store" if isinstance(self.source, StoreFlows) else "the flows"]
        if self.policies is not None:
            sources.append("the policies")
        if self.inventory is not None:
            sources.append("the inventory")
        where = sources[0] if len(sources) == 1 else ", ".join(sources[:-1]) + " or " + sources[-1]
        require_known(list(self.scope.namespaces), self.known_namespaces(), where=where)

    # --- views -------------------------------------------------------------------------------

    def recommendation(
        self,
        flavor: str = "kubernetes",
        options: RecommendOptions | None = None,
        namespaces: tuple[str, ...] | None = None,
    ) -> Recommendation:
        """The recommendation for ``namespaces`` (default: the scope's, else every observed
        non-system namespace), replaying the existing policies with it; computed once per
        flavour and options."""
        from analyzer.recommend import RecommendOptions, recommend

        opts = options or RecommendOptions()
        targets = self.scope.namespaces if namespaces is None else namespaces
        key = (flavor, opts, targets)
        if key not in self._recommendations:
            groups = self.graph.groups  # before the detector: a lower peak of memory
            self._recommendations[key] = recommend(
                self.connections,
                namespaces=list(targets) or None,
                flavor=flavor,
                options=opts,
                anomalies=self.anomalies,
                groups=groups,
                given=self.policies.policies if self.policies is not None else (),
                given_warnings=self.policies.warnings() if self.policies is not None else (),
                inventory=self.inventory,
                labelled_pods=self.labelled_pods,
            )
        return self._recommendations[key]

    def audit(self, options: AuditOptions | None = None) -> AuditResult:
        """The audit of the existing policies against the connections of the scope."""
        from analyzer.audit.engine import audit
        from analyzer.audit.ranges import parse_service_cidrs

        opts = options or AuditOptions()
        if opts in self._audits:
            return self._audits[opts]
        parse_service_cidrs(opts.service_cidrs)  # a bad value fails before the analysis
        if self.policies is None or self.compiled is None or self.verdicts is None:
            raise UsageError("give the policies to audit with --policies PATH")
        warnings = list(self.policies.warnings())
        if not self.policies.policies:
            warnings.append(
                "the policies are an empty List (a cluster without policies): only namespace "
                "coverage can be audited"
            )
        warnings.extend(self.ingest_notes.lines())
        warnings.extend(self.connections.stats.warnings)
        namespaces = list(self.scope.namespaces) or None
        flagged = self.scoped_anomalies.flagged if opts.anomalies else None
        result = audit(
            self.policies.policies,
            self.connections,
            inventory=self.inventory,
            namespaces=namespaces,
            anomalies=opts.anomalies,
            ipblock_mode=self.options.ipblock_mode,
            random_state=self.options.random_state,
            service_cidrs=opts.service_cidrs,
            compiled=self.compiled,
            evaluated=self.verdicts,
            groups=self.graph.groups,
            flagged=flagged,
        )
        result = replace(result, warnings=tuple(dict.fromkeys([*warnings, *result.warnings])))
        self._audits[opts] = result
        return result
