"""The report model: plain, already-decided data that the renderer only has to lay out.

`build.build_report` assembles it from the results of the other modules (connections, graph,
recommendation, audit, anomalies); `render.render_report` turns it into HTML. Keeping the two
apart means the renderer can be tested with hand-built models, including hostile values, and
that everything shown in the page is in one inspectable value.

Every string in here may come from flow logs or policy files and is treated as hostile text by
the renderer: it is escaped, never interpreted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "SEVERITIES",
    "AnomalyRow",
    "CoverageRow",
    "DeniedRow",
    "FindingRow",
    "GraphEdge",
    "GraphModel",
    "GraphNode",
    "NamespaceSection",
    "PolicyView",
    "ProbeRow",
    "ReportModel",
    "RolloutPlan",
    "ReviewDecision",
    "RuleEvidence",
    "Summary",
    "Verdict",
    "DiffRow",
    "DiffView",
]

# Ordered from most to least severe; the report sorts and counts findings in this order.
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low", "info")


@dataclass(frozen=True, slots=True)
class CoverageRow:
    """How much of one namespace the existing policies isolate.

    ``pods`` counts observed pods; ``ingress_isolated`` / ``egress_isolated`` count those
    selected by at least one existing policy in that direction (None when no policies given).
    ``allowed`` / ``denied`` count observed connections the existing policies would allow/deny.
    """

    namespace: str
    pods: int
    ingress_isolated: int | None = None
    egress_isolated: int | None = None
    allowed: int | None = None
    denied: int | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """The first screen of the report."""

    window_start: str | None
    window_end: str | None
    flows: int
    connections: int
    namespaces: tuple[str, ...]
    identities: int = 0
    coverage: tuple[CoverageRow, ...] = ()
    findings_by_severity: tuple[tuple[str, int], ...] = ()
    lost_events: int = 0
    masked_fields: int = 0
    undecidable_replies: int = 0
    decided_by_ports: int = 0
    # flagged edges (source identity -> destination identity, protocol, port) in the scope:
    # the count `analyzer anomalies` and `recommend -o json` give for the same scope
    anomalous_edges: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GraphNode:
    """One identity group: a label set in a namespace, or a peer outside the pods."""

    key: str
    namespace: str  # the group box it is drawn in; "" for peers outside any namespace
    label: str  # short text drawn in the node
    kind: str = "pod"  # pod, entity, ip
    pods: int = 0
    detail: tuple[str, ...] = ()  # tooltip lines: labels, pods, addresses


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """Requests from one identity to another, with the ports they used."""

    src: str
    dst: str
    ports: tuple[str, ...]  # "TCP/8080", "UDP/53", "ICMPv4"
    connections: int = 0
    outcome: str = "allowed"  # allowed, denied, mixed
    anomalous: bool = False
    merged: int = 1  # identity edges this arrow stands for (folded addresses or namespaces)


@dataclass(frozen=True, slots=True)
class GraphModel:
    nodes: tuple[GraphNode, ...] = ()
    edges: tuple[GraphEdge, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleEvidence:
    """One allow rule of a recommended policy and the observed connections behind it."""

    rule: str  # e.g. "ingress[0]"
    description: str  # e.g. "from frontend (app=frontend) on TCP/8080"
    evidence: tuple[str, ...] = ()  # e.g. "develop/frontend-7d9 -> develop/backend-5c TCP/8080 ×12"
    connections: int = 0


@dataclass(frozen=True, slots=True)
class PolicyView:
    """One recommended policy: its YAML and why each rule exists."""

    name: str
    namespace: str
    yaml: str
    rules: tuple[RuleEvidence, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NamespaceSection:
    namespace: str
    policies: tuple[PolicyView, ...] = ()
    diff: str | None = None  # unified diff existing -> recommended, when policies were given
    notes: tuple[str, ...] = ()
    # existing policies of the namespace (None without --policies); with none there is no diff:
    # it would repeat the recommended YAML shown above line for line
    existing: int | None = None


@dataclass(frozen=True, slots=True)
class FindingRow:
    severity: str
    code: str
    message: str
    policy: str = ""  # "ns/name" when the finding is about one policy
    namespace: str = ""
    detail: tuple[str, ...] = ()
    fix: str = ""


@dataclass(frozen=True, slots=True)
class AnomalyRow:
    """A connection the recommender left out because it looked like an attack or an accident."""

    src: str
    dst: str
    port: str
    connections: int
    score: float
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeniedRow:
    """Observed connections a policy dropped."""

    src: str
    dst: str
    port: str
    connections: int
    last_seen: str = ""


@dataclass(frozen=True, slots=True)
class ProbeRow:
    """A command that proves a rule works: ``expect`` is ``allowed`` or ``denied``."""

    description: str
    command: str
    expect: str


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    rollout: tuple[str, ...] = ()
    rollback: tuple[str, ...] = ()
    probes: tuple[ProbeRow, ...] = ()
    documents: tuple[tuple[str, str], ...] = ()  # (file name, text) from the written bundle


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """One decision the reviewer has to take: a line with a severity and an in-page link."""

    severity: str  # one of SEVERITIES
    text: str
    href: str  # "#finding-3", "#diff", ... (built by us, never from data)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The first screen: what applying the recommendation does, in words, and the decisions."""

    headline: str
    points: tuple[str, ...] = ()
    decisions: tuple[ReviewDecision, ...] = ()


@dataclass(frozen=True, slots=True)
class DiffRow:
    """One change of verdict between the existing and the recommended policies."""

    kind: str  # newly_denied, newly_allowed
    src: str
    dst: str
    ports: str
    observed: int  # observed connections in it (0: only probes, nobody used it)
    working: bool  # observed traffic that worked under the existing policies
    old: str  # what decides it under the existing policies
    new: str  # ... under the recommended ones


@dataclass(frozen=True, slots=True)
class DiffView:
    """The semantic diff existing -> recommended, as the report shows it.

    ``probes`` is False above the size where every pair of identities is compared: then only
    observed connections are (``note`` says so, and the verdict speaks of observed edges).
    """

    probes: bool
    note: str
    newly_denied_observed_edges: int = 0
    newly_denied_observed_connections: int = 0
    newly_denied_working_edges: int = 0
    newly_allowed_observed_edges: int = 0
    unchanged_observed_edges: int = 0
    probes_newly_denied: int = 0
    probes_newly_allowed: int = 0
    rows: tuple[DiffRow, ...] = ()
    more: int = 0  # changes not listed


@dataclass(frozen=True, slots=True)
class ReportModel:
    """Everything the HTML report shows, in display order."""

    title: str
    generated_at: str
    summary: Summary
    graph: GraphModel = field(default_factory=GraphModel)
    sections: tuple[NamespaceSection, ...] = ()
    findings: tuple[FindingRow, ...] = ()
    anomalies: tuple[AnomalyRow, ...] = ()
    suspects: tuple[str, ...] = ()  # workloads that look compromised, one sentence each
    denied: tuple[DeniedRow, ...] = ()
    plan: RolloutPlan = field(default_factory=RolloutPlan)
    policies_source: str | None = None  # the --policies path, when given
    bundle_path: str | None = None  # relative to the report, or as the user gave it
    verdict: Verdict = field(default_factory=lambda: Verdict(""))
    diff: DiffView | None = None  # with existing policies and a recommendation
