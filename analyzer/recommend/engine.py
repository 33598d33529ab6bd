"""``recommend``: least-privilege policies for namespaces, from observed connections.

connections (requests, deduplicated) -> identity groups -> anomalies left out ->
synthesis (one policy per group and direction, merged) -> manifests in a flavour ->
verification against the policy engine -> probe commands. One call, one result; the CLI and
``bundle.write_bundle`` only present it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import polars as pl

from analyzer import schema as S
from analyzer.connections import DST_KEY, SRC_KEY, Connections, derive_connections
from analyzer.connections.inventory_labels import label_from_inventory
from analyzer.errors import UsageError, VerificationError
from analyzer.identity.graph import IdentityGroup, build_graph
from analyzer.k8s.inventory import Inventory
from analyzer.k8s.namespaces import (
    SYSTEM_NAMESPACES,
    is_system_namespace,
    namespaces_in,
    require_known,
)
from analyzer.policy.model import NetworkPolicy
from analyzer.present.text import format_span, iso_seconds, printable
from analyzer.recommend.checks import name_error
from analyzer.recommend.probes import Probe, make_probes
from analyzer.recommend.render import FLAVORS, Flavor, render
from analyzer.recommend.synthesize import (
    Note,
    PolicySpec,
    SynthesisOptions,
    synthesize,
)
from analyzer.recommend.verify import (
    Verification,
    parse_manifests,
    rows_in_scope,
    rows_to_verify,
    verify,
)

if TYPE_CHECKING:  # scikit-learn is imported on first use, after the flows are reduced
    from analyzer.anomaly import AnomalyResult

__all__ = ["SYSTEM_NAMESPACES", "Recommendation", "RecommendOptions", "recommend"]

# A capture shorter than this misses periodic jobs (nightly backups, daily reports).
SHORT_WINDOW = timedelta(days=1)
EDGE_KEYS = ["src_group", "dst_group", "protocol", "dst_port"]
MAX_LISTED = 50


@dataclass(frozen=True, slots=True)
class RecommendOptions:
    """Knobs of :func:`recommend` (the CLI options of ``analyzer recommend``)."""

    include_anomalies: bool = False
    ipblock_prefix: int | None = None
    verify: bool = True
    allow_breaking: bool = False  # return a recommendation that would deny observed requests
    include_system: bool = False  # allow system namespaces (namespaces.SYSTEM_NAMESPACES)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """Everything ``recommend`` decided, with the reasons."""

    flavor: str
    namespaces: tuple[str, ...]
    policies: tuple[PolicySpec, ...]
    manifests: tuple[dict[str, Any], ...]
    notes: tuple[Note, ...]
    verification: Verification | None
    probes: tuple[Probe, ...]
    denied: tuple[dict[str, Any], ...]
    anomalies: tuple[dict[str, Any], ...]
    # the observation window: first and last request of the flows the recommendation read
    window: tuple[datetime | None, datetime | None] = (None, None)
    stats: dict[str, Any] = field(default_factory=dict)
    # ``manifests`` as the policy loader read them for the verification (staged policies
    # included; None when not verified): the report applies the same policies in its diff
    # instead of parsing them again. Not part of the JSON.
    parsed: tuple[NetworkPolicy, ...] | None = None

    def warnings(self) -> list[str]:
        return [f"{n.namespace}: {n.message}" for n in self.notes if n.level == "warning"]

    def to_json(self) -> dict[str, Any]:
        return {
            "flavor": self.flavor,
            "namespaces": list(self.namespaces),
            "window": [None if w is None else w.isoformat() for w in self.window],
            "manifests": list(self.manifests),
            "notes": [
                {"level": n.level, "namespace": n.namespace, "message": n.message}
                for n in self.notes
            ],
            "verification": None if self.verification is None else self.verification.to_json(),
            "probes": [p.to_json() for p in self.probes],
            "denied": list(self.denied),
            "anomalies": list(self.anomalies),
            "stats": self.stats,
        }


def recommend(
    connections: Connections | pl.LazyFrame | pl.DataFrame,
    *,
    namespaces: Sequence[str] | None = None,
    flavor: str = "kubernetes",
    options: RecommendOptions | None = None,
    anomalies: AnomalyResult | None = None,
    groups: Mapping[str, IdentityGroup] | None = None,
    given: Sequence[NetworkPolicy] = (),
    given_warnings: Sequence[str] = (),
    inventory: Inventory | None = None,
    labelled_pods: Sequence[str] = (),
) -> Recommendation:
    """Recommend least-privilege policies for ``namespaces`` from observed connections.

    Parameters
    ----------
    connections
        ``derive_connections`` output (flow rows in the canonical schema are derived here).
    namespaces
        Namespaces to write policies for; default: every namespace with observed pods except
        the system namespaces (``namespaces.SYSTEM_NAMESPACES``; ``options.include_system``
        allows them). Each must be in the flows or the inventory. The anomalies listed are
        those from or to these namespaces (all when None).
    flavor
        ``kubernetes`` (networking.k8s.io/v1), ``cilium`` (CiliumNetworkPolicy) or ``calico``
        (projectcalico.org/v3 StagedKubernetesNetworkPolicy).
    options
        :class:`RecommendOptions`.
    anomalies
        The anomaly detector's result over every connection (``detect_anomalies``); computed
        here when None.
    groups
        The identity groups of ``connections`` (``build_graph(...).groups``); built when None.
    given
        The namespaces' existing policies, replayed together with the recommendation.
    given_warnings
        What loading them reported (kept as warning notes).
    inventory
        Pods and namespaces: labels of pods the flows show without any, silent workloads.
    labelled_pods
        Pods whose labels the caller already took from ``inventory`` (said in a note).

    Raises
    ------
    VerificationError
        The recommendation would deny an observed legitimate connection (unless
        ``options.allow_breaking``; ``verification.breaking`` then lists them).
    UsageError
        An unknown flavour, an unknown or invalid namespace, a system namespace without
        ``options.include_system``, an invalid ipBlock prefix.
    """
    opts = options or RecommendOptions()
    if flavor not in FLAVORS:
        raise UsageError(f"unknown flavour {flavor!r}; choose one of {', '.join(FLAVORS)}")
    if opts.ipblock_prefix is not None and not 0 < opts.ipblock_prefix <= 32:
        raise UsageError(f"--ipblock-prefix must be 1..32 (IPv4), got {opts.ipblock_prefix}")
    if not isinstance(connections, Connections):
        connections = derive_connections(connections)
    notes: list[Note] = [Note("warning", "", w) for w in dict.fromkeys(connections.stats.warnings)]
    if inventory is not None and not labelled_pods:
        connections, labelled_pods = label_from_inventory(connections, inventory)
        groups = None  # the labels changed: so did the groups
    if labelled_pods:
        notes.append(Note("info", "", _printable(
            f"{len(labelled_pods)} pod(s) without labels in the flows took their labels from "
            f"the inventory ({_first(labelled_pods, 5)})")))
    conns = connections.frame
    targets = _namespaces(conns, namespaces, notes, inventory, opts.include_system)
    window = connections.stats.window
    notes.extend(_window_notes(window))
    if groups is None:
        groups = build_graph(connections).groups
    for group in groups.values():
        if group.labels and not group.selector_unique and group.namespace in targets:
            notes.append(Note("warning", group.namespace or "", _printable(
                f"the selector of {group.key} also selects other observed pods: "
                + "; ".join(group.notes))))
    if anomalies is None:
        from analyzer.anomaly import detect_anomalies

        anomalies = detect_anomalies(conns)
    kept, listed = _without_anomalies(conns, anomalies, namespaces, opts.include_anomalies, notes)
    denied = _denied(kept, targets)
    if denied:
        notes.append(
            Note("info", "", f"{len(denied)} denied edge(s) were observed and stay denied "
                 "(listed, not turned into allows)")
        )
    synth_opts = SynthesisOptions(ipblock_prefix=opts.ipblock_prefix, cilium=flavor == "cilium")
    synth = synthesize(kept, groups, targets, synth_opts)
    notes.extend(synth.notes)
    manifests = render(synth.policies, cast(Flavor, flavor), observed=window)
    fallback = None
    if flavor == "cilium":
        plain = synthesize(kept, groups, targets, SynthesisOptions(opts.ipblock_prefix))
        fallback = render(plain.policies, "kubernetes")
    rows, _ = rows_to_verify(kept, targets, synth.uncovered)
    verification = None
    parsed = None
    if opts.verify:
        notes.extend(Note("warning", "", w) for w in given_warnings)
        loaded = parse_manifests(manifests)
        verification = verify(
            manifests,
            rows_in_scope(kept, targets),
            given=list(given),
            ipblock_mode="cilium" if flavor == "cilium" else "kubernetes",
            fallback=fallback,
            uncovered=synth.uncovered,
            allow_breaking=True,
            parsed=loaded,
        )
        parsed = tuple(loaded.policies)
        if not verification.ok and not opts.allow_breaking:
            raise VerificationError(f"{verification.failure()}; nothing written "
                                    "(--allow-breaking writes the policies anyway)")
    if inventory is not None:
        notes.extend(_silent_workloads(inventory, targets, synth.policies, conns))
    probes = make_probes(rows, kept, targets)
    stats = connections.stats
    return Recommendation(
        flavor=flavor,
        namespaces=tuple(targets),
        policies=synth.policies,
        manifests=tuple(manifests),
        notes=tuple(notes),
        verification=verification,
        probes=tuple(probes),
        denied=tuple(denied),
        anomalies=tuple(listed),
        window=window,
        stats={
            "rows_in": stats.rows_in,
            "requests": stats.requests,
            "replies_removed": stats.replies_removed,
            "undecidable": stats.undecidable,
            "connection_edges": conns.height,
            "policies": len(synth.policies),
        },
        parsed=parsed,
    )


def _first(items: Sequence[str], n: int) -> str:
    shown = sorted(items)
    return ", ".join(shown[:n]) + (", ..." if len(shown) > n else "")


def _namespaces(
    conns: pl.DataFrame,
    asked: Sequence[str] | None,
    notes: list[Note],
    inventory: Inventory | None,
    include_system: bool,
) -> list[str]:
    observed: set[str] = set()
    for side in ("src", "dst"):
        col = conns.filter(pl.col(f"{side}_entity") == "pod")[f"{side}_namespace"]
        observed.update(v for v in col.drop_nulls().unique().to_list())
    if asked:
        for ns in asked:
            err = name_error(ns)
            if err:
                raise UsageError(f"--namespace: {err}")
        known = namespaces_in(conns)
        if inventory is not None:
            known |= set(inventory.namespaces) | {p.namespace for p in inventory.pods.values()}
        where = "the flows" + (" or the inventory" if inventory is not None else "")
        require_known(asked, known, where=where)
        system = [ns for ns in asked if is_system_namespace(ns)]
        if system and not include_system:
            raise UsageError(
                f"{system[0]} is a system namespace: a default-deny there can cut every "
                "workload off cluster DNS and the network agents; pass "
                "--include-system-namespaces to write policies for it anyway"
            )
        for ns in asked:
            if ns not in observed:
                notes.append(
                    Note("warning", ns, f"no traffic observed in namespace {ns}: the default-deny "
                         "will isolate every pod in it")
                )
        return sorted(set(asked))
    chosen = sorted(
        ns
        for ns in observed
        if (include_system or not is_system_namespace(ns)) and not name_error(ns)
    )
    if not chosen:
        system = sorted(ns for ns in observed if is_system_namespace(ns))
        if system:
            raise UsageError(
                "no namespace with observed pods outside the system namespaces "
                f"({', '.join(system[:5])}); pass --namespace NAMESPACE "
                "--include-system-namespaces to write policies for one of them"
            )
        raise UsageError("no namespace with observed pods; pass --namespace or ingest flows first")
    return chosen


def _without_anomalies(
    conns: pl.DataFrame,
    result: AnomalyResult,
    scope: Sequence[str] | None,
    include: bool,
    notes: list[Note],
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """The connection rows synthesis may allow, and the flagged edges to list (those from or to
    ``scope``: the same records ``analyzer anomalies -o json`` prints for that scope)."""
    from analyzer.anomaly import restrict_anomalies
    from analyzer.anomaly.records import flagged_edge_records

    shown = restrict_anomalies(result, conns, scope) if scope else result
    listed = flagged_edge_records(shown)
    # A workload caught doing something odd may itself be compromised; its steady traffic is
    # kept (leaving it out would break the application), so say so where people read.
    for suspect in shown.summary.suspects:
        notes.append(Note("warning", suspect.namespace or "", _printable(suspect.message())))
    if result.flagged.height == 0:
        return conns, listed
    counted = (f"{len(listed)} anomalous edge(s) (source identity -> destination identity, "
               f"protocol, port; {shown.summary.flagged_connections} connection row(s))")
    if include:
        notes.append(Note("warning", "", f"{counted} included on request (--include-anomalies)"))
        return conns, listed
    if listed:
        notes.append(Note("warning", "", f"{counted} left out; review them (analyzer anomalies) "
                          "and pass --include-anomalies if they are legitimate"))
    keys = [SRC_KEY, DST_KEY, S.PROTOCOL, S.DST_PORT]
    kept = conns.join(result.flagged.select(keys).unique(), on=keys, how="anti", nulls_equal=True)
    return kept, listed


def _denied(conns: pl.DataFrame, namespaces: Sequence[str]) -> list[dict[str, Any]]:
    ns = list(namespaces)
    scope = (pl.col("src_namespace").is_in(ns)) | (pl.col("dst_namespace").is_in(ns))
    allowed = conns.filter(pl.col("outcome") == "allowed").select(EDGE_KEYS).unique()
    denied = (
        conns.filter((pl.col("outcome") == "denied") & scope)
        .join(allowed, on=EDGE_KEYS, how="anti", nulls_equal=True)
        .group_by(EDGE_KEYS)
        .agg(pl.col("connections").sum(), pl.col("last_seen").max())
        .sort("connections", descending=True)
        .head(MAX_LISTED)
    )
    return [
        {**r, "last_seen": None if r["last_seen"] is None else r["last_seen"].isoformat()}
        for r in denied.to_dicts()
    ]


def _silent_workloads(
    inventory: Inventory, targets: Sequence[str], policies: Sequence[PolicySpec],
    conns: pl.DataFrame,
) -> list[Note]:
    """Pods of the inventory that no allow policy selects: the default-deny cuts them off."""
    from analyzer.identity import group_key

    covered = {g for p in policies for g in p.groups}
    seen: set[str] = set()
    for side in ("src", "dst"):
        seen.update(conns[f"{side}_group"].drop_nulls().unique().to_list())
    silent: dict[str, list[str]] = {}
    for pod in inventory.pods.values():
        if pod.namespace not in targets or pod.host_network:
            continue
        labels = [f"{k}={v}" for k, v in pod.labels.items()]
        key = group_key(pod.namespace, labels, "pod", None)
        if key not in covered and key not in seen:
            silent.setdefault(pod.namespace, []).append(pod.name)
    return [
        Note("warning", ns, _printable(
            f"{len(names)} pod(s) in the inventory had no observed traffic at all "
            f"({', '.join(sorted(names)[:10])}{', ...' if len(names) > 10 else ''}): "
            "the default-deny isolates them completely"))
        for ns, names in sorted(silent.items())
    ]


def _window_notes(window: tuple[datetime | None, datetime | None]) -> list[Note]:
    """Say how long the traffic was watched; warn when periodic jobs can have been missed."""
    first, last = window
    if first is None or last is None:
        return [Note("warning", "", "the observation window is unknown (no request carries a "
                     "time): periodic jobs may not have run while the flows were captured")]
    span = last - first
    if span >= SHORT_WINDOW:
        return [Note("info", "", f"observed for {format_span(span)} ({iso_seconds(first)} to "
                     f"{iso_seconds(last)})")]
    seen = f"{iso_seconds(first)} to {iso_seconds(last)}"
    return [Note("warning", "", f"observed for only {format_span(span)} ({seen}), less than a "
                 "day: periodic jobs (backups, CronJobs, reports) that did not run in that time "
                 "get no rule and will be denied; capture at least a day, a week for weekly jobs")]


def _printable(text: str) -> str:
    return printable(text, 300)
