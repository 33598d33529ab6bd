"""The existing policies as the report shows them: coverage per namespace and YAML to diff.

Coverage uses the policy engine (`analyzer.policy`): a pod is isolated in a direction when
some policy selects it for that direction; connections are judged by `evaluate_connections`.
The diff needs the policies as YAML text, so the manifests are read again here and normalised
(only apiVersion, kind, metadata.name/namespace and spec; keys sorted), which makes cosmetic
differences such as key order or `status` and `managedFields` disappear from the diff.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import polars as pl

from analyzer.k8s.inventory import Inventory
from analyzer.k8s.yaml_io import safe_dump_all
from analyzer.policy.compile import CompiledPolicies
from analyzer.policy.evaluate import Endpoint, selecting_policies
from analyzer.policy.frame import evaluate_connections
from analyzer.policy.model import EGRESS, INGRESS
from analyzer.report.model import CoverageRow

__all__ = ["coverage_rows", "manifests_by_namespace", "manifests_yaml", "normalize_manifest"]

_SUFFIXES = (".yaml", ".yml", ".json")
POLICY_KINDS = ("NetworkPolicy", "CiliumNetworkPolicy", "StagedKubernetesNetworkPolicy")


def _flatten(doc: Any) -> Iterator[dict[str, Any]]:
    if isinstance(doc, list):  # a top-level list, as the policy loader accepts
        for item in doc:
            yield from _flatten(item)
    elif isinstance(doc, dict):
        if str(doc.get("kind") or "").endswith("List"):
            items = doc.get("items")
            for item in items if isinstance(items, list) else ():
                yield from _flatten(item)
        else:
            yield doc


def normalize_manifest(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Keep what decides behaviour: apiVersion, kind, name, namespace and spec."""
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return {
        "apiVersion": doc.get("apiVersion"),
        "kind": doc.get("kind"),
        "metadata": {
            "name": meta.get("name"),
            "namespace": str(meta.get("namespace") or "default"),
        },
        "spec": doc.get("spec") or {},
    }


def manifests_by_namespace(docs: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    """Policy manifests among decoded documents, by namespace, normalised and sorted by name."""
    by_ns: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in docs:
        for item in _flatten(doc):
            if item.get("kind") in POLICY_KINDS:
                norm = normalize_manifest(item)
                by_ns[norm["metadata"]["namespace"]].append(norm)
    return {
        ns: sorted(items, key=lambda m: (str(m["metadata"]["name"]), str(m["kind"])))
        for ns, items in sorted(by_ns.items())
    }


def manifests_yaml(manifests: Sequence[Mapping[str, Any]]) -> str:
    """Multi-document YAML with sorted keys, so two sets diff line by line."""
    return safe_dump_all(
        [normalize_manifest(m) for m in manifests], sort_keys=True, default_flow_style=False
    )


def _labels(items: Sequence[str] | None) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in items or ())


def coverage_rows(
    compiled: CompiledPolicies | None,
    connections: pl.DataFrame,
    inventory: Inventory | None = None,
    judged: pl.DataFrame | None = None,
) -> tuple[CoverageRow, ...]:
    """Per namespace: observed pods, how many are isolated per direction, and how the existing
    policies would decide the observed connections into or out of the namespace. Without
    ``compiled`` policies only the pods are counted (the other columns are None). ``judged``
    is ``evaluate_connections(compiled, connections, inventory)`` when the caller has it."""
    if connections.height == 0:
        return ()
    sides = [
        connections.filter(pl.col(f"{s}_entity") == "pod").select(
            pl.col(f"{s}_namespace").alias("ns"),
            pl.col(f"{s}_pod").alias("pod"),
            pl.col(f"{s}_labels").list.sort().alias("labels"),
            pl.col(f"{s}_namespace_labels").list.sort().alias("ns_labels"),
        )
        for s in ("src", "dst")
    ]
    pods = pl.concat(sides).filter(pl.col("ns").is_not_null()).unique(["ns", "pod"])
    # One policy-engine call per distinct identity, not per pod.
    identities = pods.group_by("ns", "labels", "ns_labels").agg(pl.len().alias("n"))
    isolated: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in identities.iter_rows(named=True):
        peer = Endpoint(
            kind="pod",
            namespace=row["ns"],
            labels=_labels(row["labels"]),
            namespace_labels=_labels(row["ns_labels"]),
        )
        counts = isolated[row["ns"]]
        counts[0] += row["n"]
        if compiled is None:
            continue
        counts[1] += row["n"] if selecting_policies(compiled, peer, INGRESS) else 0
        counts[2] += row["n"] if selecting_policies(compiled, peer, EGRESS) else 0
    if compiled is None:
        return tuple(CoverageRow(ns, isolated[ns][0]) for ns in sorted(isolated))
    if judged is None:
        judged = evaluate_connections(compiled, connections, inventory)
    totals = _decided_by_namespace(judged)
    out: list[CoverageRow] = []
    for ns in sorted(isolated):
        pods_n, ing, egr = isolated[ns]
        allowed, denied = totals.get(ns, (0, 0))
        out.append(CoverageRow(ns, pods_n, ing, egr, allowed, denied))
    return tuple(out)


def _decided_by_namespace(judged: pl.DataFrame) -> dict[str, tuple[int, int]]:
    """Connections allowed and denied into or out of each namespace, one group_by for all
    (a filter per namespace grew with namespaces x connections). A connection inside one
    namespace counts once for it; one between two namespaces counts for both."""
    src, dst = pl.col("src_namespace"), pl.col("dst_namespace")
    touched = pl.concat(
        [
            judged.filter(src.is_not_null()).select(src.alias("ns"), "allowed", "connections"),
            judged.filter(dst.is_not_null() & (src.is_null() | (dst != src))).select(
                dst.alias("ns"), "allowed", "connections"
            ),
        ]
    )
    sums = (
        touched.filter(pl.col("allowed").is_not_null())
        .group_by("ns", "allowed")
        .agg(pl.col("connections").sum())
    )
    out: dict[str, tuple[int, int]] = {}
    for ns, allowed, connections in sums.iter_rows():
        was = out.get(ns, (0, 0))
        n = int(connections or 0)
        out[ns] = (was[0] + n, was[1]) if allowed else (was[0], was[1] + n)
    return out
