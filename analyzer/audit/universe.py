"""The pods and namespaces the audit reasons over: everything observed, plus the inventory.

Selectors are judged against this finite universe ("selects no observed pod", "admits 11
workloads in 6 namespaces"), so every claim the audit makes is about endpoints a reviewer can
look up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from analyzer.audit.index import IdentityIndex, Ids
from analyzer.connections import side_columns
from analyzer.k8s.inventory import Inventory
from analyzer.policy.compile import CompiledPolicy

__all__ = ["Namespace", "Pod", "Universe", "build_universe", "label_map"]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def label_map(labels: Iterable[str] | None) -> dict[str, str]:
    """``["app=web", "tier"]`` -> ``{"app": "web", "tier": ""}``."""
    out: dict[str, str] = {}
    for item in labels or ():
        key, _, value = item.partition("=")
        out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class Pod:
    """One pod (or one workload's representative pod) of the universe."""

    namespace: str
    name: str
    workload: str
    labels: Mapping[str, str]
    ip: str | None = None
    observed: bool = True
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    host_network: bool = False  # its address is the node's (inventory: spec.hostNetwork)

    # PeerLike (analyzer.policy.compile): a pod is a peer the compiled matchers can judge.
    @property
    def kind(self) -> str:
        return "pod"

    @property
    def entity(self) -> str:
        return "pod"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def workload_key(self) -> str:
        return f"{self.namespace}/{self.workload}"


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Universe:
    """Known pods and namespaces; ``observed_pods`` is the subset seen in traffic."""

    pods: tuple[Pod, ...]
    namespaces: Mapping[str, Namespace] = field(default_factory=dict)
    # Pods grouped by what selectors can see (namespace, labels, namespace labels): matching
    # is done once per identity, not once per pod, through the inverted indexes of ``index``.
    identities: tuple[tuple[Pod, tuple[Pod, ...]], ...] = ()
    index: IdentityIndex[Pod] = field(init=False, repr=False, compare=False)
    by_namespace: Mapping[str, tuple[Pod, ...]] = field(init=False, repr=False, compare=False)
    # Answers derived from the universe that several checks ask for (e.g. a rule's breadth).
    memo: dict[str, dict[object, Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = IdentityIndex(
            tuple(rep for rep, _ in self.identities),
            tuple(members for _, members in self.identities),
            {name: ns.labels for name, ns in self.namespaces.items()},
        )
        object.__setattr__(self, "index", index)
        grouped: dict[str, list[Pod]] = {}
        for pod in self.pods:
            grouped.setdefault(pod.namespace, []).append(pod)
        object.__setattr__(self, "by_namespace", {k: tuple(v) for k, v in grouped.items()})
        object.__setattr__(self, "memo", {})

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        ns = self.namespaces.get(namespace)
        return ns.labels if ns is not None else {NAMESPACE_NAME_LABEL: namespace}

    @property
    def observed_pods(self) -> tuple[Pod, ...]:
        return tuple(p for p in self.pods if p.observed)

    def selected_ids(self, policy: CompiledPolicy) -> Ids:
        """Identities (numbers in ``index``) the policy selects as its subject."""
        return self.index.selecting(policy.namespace, policy.subject, policy.subject_namespaces)

    def selected_by(self, policy: CompiledPolicy, *, observed_only: bool = False) -> list[Pod]:
        """Pods the policy selects (its subject), as the policy engine decides."""
        pods = self.index.pods(self.selected_ids(policy))
        return [p for p in pods if p.observed] if observed_only else pods

    def matching(self, predicate: Callable[[Pod], bool]) -> list[Pod]:
        """Pods for which ``predicate`` (judged on one pod per identity) holds."""
        return [p for rep, members in self.identities if predicate(rep) for p in members]


def build_universe(conns: pl.DataFrame, inventory: Inventory | None = None) -> Universe:
    """Collect the pods and namespaces of a connections frame, and of an inventory if given.

    Parameters
    ----------
    conns
        A connections frame (``analyzer.connections`` contract).
    inventory
        An ``analyzer.k8s.inventory.Inventory`` (or None).
    """
    pods: dict[str, Pod] = {}
    namespaces: dict[str, Namespace] = {}
    if conns.height:
        sides = []
        for side in ("src", "dst"):
            sides.append(
                conns.filter(
                    (pl.col(f"{side}_entity") == "pod") & pl.col(f"{side}_namespace").is_not_null()
                ).select(
                    *side_columns(side, "namespace", "pod", "workload", "labels"),
                    pl.col(f"{side}_namespace_labels").alias("ns_labels"),
                    pl.col(f"{side}_ip").alias("ip"),
                )
            )
        endpoints = pl.concat(sides).unique(subset=["namespace", "pod"], keep="first")
        for row in endpoints.sort(["namespace", "pod"], nulls_last=True).iter_rows(named=True):
            ns = row["namespace"]
            name = row["pod"] or row["ip"] or "?"
            pods[f"{ns}/{name}"] = Pod(
                namespace=ns,
                name=name,
                workload=row["workload"] or _workload_name(name, label_map(row["labels"])),
                labels=label_map(row["labels"]),
                ip=row["ip"],
            )
            ns_labels = label_map(row["ns_labels"])
            if ns not in namespaces or (ns_labels and not namespaces[ns].labels):
                namespaces[ns] = Namespace(ns, ns_labels)
    if inventory is not None:
        _add_inventory(inventory, pods, namespaces)
    for ns, entry in list(namespaces.items()):
        # Kubernetes sets this label on every namespace; flow sources do not always carry it.
        if NAMESPACE_NAME_LABEL not in entry.labels:
            namespaces[ns] = Namespace(ns, {**entry.labels, NAMESPACE_NAME_LABEL: ns})
    for pod in pods.values():
        namespaces.setdefault(
            pod.namespace, Namespace(pod.namespace, {NAMESPACE_NAME_LABEL: pod.namespace})
        )
    final = tuple(
        replace(pod, namespace_labels=namespaces[pod.namespace].labels) for pod in pods.values()
    )
    grouped: dict[tuple[object, ...], list[Pod]] = {}
    for pod in final:
        key = (
            pod.namespace,
            tuple(sorted(pod.labels.items())),
            tuple(sorted(pod.namespace_labels.items())),
        )
        grouped.setdefault(key, []).append(pod)
    identities = tuple((members[0], tuple(members)) for members in grouped.values())
    return Universe(pods=final, namespaces=namespaces, identities=identities)


def _add_inventory(
    inventory: Inventory, pods: dict[str, Pod], namespaces: dict[str, Namespace]
) -> None:
    for name, labels in inventory.namespaces.items():
        namespaces[name] = Namespace(name, dict(labels))
    for info in inventory.pods.values():
        key = f"{info.namespace}/{info.name}"
        if key in pods:
            # Inventory labels are authoritative (flows may lack some).
            old = pods[key]
            pods[key] = replace(
                old, labels={**old.labels, **info.labels}, host_network=info.host_network
            )
            continue
        pods[key] = Pod(
            namespace=info.namespace,
            name=info.name,
            workload=_workload_name(info.name, info.labels),
            labels=dict(info.labels),
            ip=info.ips[0] if info.ips else None,
            observed=False,
            host_network=info.host_network,
        )


def _workload_name(pod: str, labels: Mapping[str, str]) -> str:
    """A workload name for an unobserved pod: its naming label, else the pod name."""
    for key in ("app.kubernetes.io/name", "app", "k8s-app", "name"):
        if labels.get(key):
            return labels[key]
    return pod
