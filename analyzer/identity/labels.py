"""Label identities: which labels identify a workload, and the group key of an endpoint.

An identity is a namespace plus the pod's labels minus *volatile* labels (labels that change on
every rollout, or name a single pod). Groups of pods with the same identity are the nodes of the
identity graph; each group gets a selector built from its stable naming labels that selects no
other observed group of its namespace.

Labels come from flow records, i.e. from untrusted input: every label that enters a selector is
checked against Kubernetes label syntax first (`is_valid_label_key` / `is_valid_label_value`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import polars as pl

from analyzer.k8s.syntax import label_key_error, label_value_error

__all__ = [
    "VOLATILE_KEYS",
    "VOLATILE_PREFIXES",
    "NAMING_KEYS",
    "CLUSTER_ENTITIES",
        "is_volatile",
    "is_valid_label_key",
    "is_valid_label_value",
    "is_version_like",
    "parse_labels",
    "stable_labels",
    "drop_volatile_expr",
    "group_key",
    "group_key_expr",
]

# Labels that differ between pods of one workload or between two rollouts of it. They never
# enter an identity. `security.istio.io/tlsMode` is deliberately *not* here: it is constant per
# mesh membership and harmless in an identity (it is never preferred for a selector either).
VOLATILE_KEYS: frozenset[str] = frozenset(
    {
        "pod-template-hash",
        "rollouts-pod-template-hash",  # Argo Rollouts
        "controller-revision-hash",
        "pod-template-generation",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "controller-uid",
        "job-name",  # CronJob-created jobs are named <cronjob>-<timestamp>
        "job-template-hash",
        "skaffold.dev/run-id",
        "io.kubernetes.pod.namespace",  # Cilium bookkeeping, in case a reader kept it
    }
)
VOLATILE_PREFIXES: tuple[str, ...] = (
    "batch.kubernetes.io/",  # job-name, controller-uid, job-completion-index
    "io.cilium.",  # k8s.policy.cluster, k8s.policy.serviceaccount, k8s.namespace.labels.*
)

# Preferred selector keys, most preferred first. After these, any other stable label in key
# order; `version`-like keys and values are never used.
NAMING_KEYS: tuple[str, ...] = (
    "app.kubernetes.io/name",
    "app",
    "k8s-app",
    "name",
    "app.kubernetes.io/component",
    "app.kubernetes.io/instance",
    "component",
    "tier",
    "role",
    "app.kubernetes.io/part-of",
)

# Reserved peers inside the cluster: one group each, whatever their address.
CLUSTER_ENTITIES: frozenset[str] = frozenset(
    {"host", "remote-node", "kube-apiserver", "health", "ingress", "init"}
)

_VERSION_KEY_WORDS = ("version", "revision", "commit", "chart", "hash", "sha", "build", "image")
NON_NAMING_KEYS = frozenset({"heritage", "app.kubernetes.io/managed-by", "release"})

_VERSION_VALUE_RE = re.compile(r"^[vV]?\d+([._-]\d+)*([-+._][0-9A-Za-z.-]*)?$")
_HEX_HASH_RE = re.compile(r"^(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,64}$")
# Kubernetes' SafeEncodeString alphabet (pod-template-hash, controller-revision-hash).
_K8S_HASH_RE = re.compile(r"^(?=.*[2456789])[bcdfghjklmnpqrstvwxz2456789]{5,10}$")


def is_volatile(key: str) -> bool:
    """True for a label key that never belongs to an identity (see `VOLATILE_KEYS`)."""
    return key in VOLATILE_KEYS or key.startswith(VOLATILE_PREFIXES)


def is_valid_label_key(key: str) -> bool:
    """Kubernetes label key syntax: ``[prefix/]name``, prefix a DNS subdomain ≤ 253, name ≤ 63."""
    return label_key_error(key) is None


def is_valid_label_value(value: str) -> bool:
    """Kubernetes label value syntax: empty, or ≤ 63 alphanumerics with ``-_.`` inside."""
    return label_value_error(value) is None


def is_version_like(key: str, value: str) -> bool:
    """True when a label names a version, revision, chart or hash rather than a workload.

    Such labels change on every rollout; a selector built on them breaks on the next deploy.
    """
    name = key.rpartition("/")[2].lower()
    if any(word in name for word in _VERSION_KEY_WORDS):
        return True
    return bool(
        _VERSION_VALUE_RE.fullmatch(value)
        or _HEX_HASH_RE.fullmatch(value)
        or _K8S_HASH_RE.fullmatch(value)
    )


def parse_labels(labels: Iterable[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` to a dict; key and value split on the first ``=`` (value may be empty)."""
    out: dict[str, str] = {}
    for item in labels or ():
        key, _, value = item.partition("=")
        if key:
            out[key] = value
    return out


def stable_labels(labels: Iterable[str] | None) -> list[str]:
    """Sorted labels without volatile ones (the identity's label set)."""
    return sorted({item for item in labels or () if not is_volatile(item.partition("=")[0])})


def drop_volatile_expr(column: str) -> pl.Expr:
    """Polars: the list column without volatile labels, sorted and de-duplicated."""
    key = pl.element().str.split_exact("=", 1).struct.field("field_0")
    keep = ~key.is_in(list(VOLATILE_KEYS))
    for prefix in VOLATILE_PREFIXES:
        keep = keep & ~key.str.starts_with(prefix)
    return (
        pl.col(column)
        .fill_null(pl.lit([], dtype=pl.List(pl.String)))
        .list.eval(pl.element().filter(keep).unique().sort())
    )


def _escape(label: str) -> str:
    # Valid labels never contain ',' or '%': escaping only changes hostile values, and keeps
    # two different label sets from ever sharing a key.
    return label.replace("%", "%25").replace(",", "%2C")


def group_key(
    namespace: str | None,
    labels: Sequence[str] | None,
    entity: str | None,
    ip: str | None,
) -> str:
    """The identity group key of an endpoint.

    ``pod:<ns>:<k=v,...>`` for pods (volatile labels removed, sorted), ``entity:<name>`` for
    reserved peers inside the cluster (host, remote-node, kube-apiserver, health, ...),
    ``ip:<addr>`` for other addresses (world), ``entity:<name>`` when there is no address.

    Examples
    --------
    >>> group_key("shop", ["pod-template-hash=abc", "app=web"], "pod", "10.0.0.1")
    'pod:shop:app=web'
    >>> group_key(None, [], "world", "1.2.3.4")
    'ip:1.2.3.4'
    >>> group_key(None, [], "host", "10.0.0.5")
    'entity:host'
    """
    if namespace and (entity in (None, "pod")):
        ns = namespace.replace("%", "%25").replace(":", "%3A")
        return f"pod:{ns}:" + ",".join(_escape(x) for x in stable_labels(labels))
    if entity in CLUSTER_ENTITIES:
        return f"entity:{entity}"
    if ip:
        return f"ip:{ip}"
    return f"entity:{entity or 'unknown'}"


def group_key_expr(namespace: str, labels: str, entity: str, ip: str) -> pl.Expr:
    """Polars version of `group_key` over columns; ``labels`` must already be stable."""
    escaped = (
        pl.col(labels)
        .fill_null(pl.lit([], dtype=pl.List(pl.String)))
        .list.eval(pl.element().str.replace_all("%", "%25", literal=True))
        .list.eval(pl.element().str.replace_all(",", "%2C", literal=True))
        .list.sort()
        .list.join(",")
    )
    ns, ent, addr = pl.col(namespace), pl.col(entity), pl.col(ip)
    return (
        pl.when(ns.is_not_null() & (ns != "") & (ent.is_null() | (ent == "pod")))
        .then(
            pl.lit("pod:")
            + ns.str.replace_all("%", "%25", literal=True).str.replace_all(":", "%3A", literal=True)
            + pl.lit(":")
            + escaped
        )
        .when(ent.is_in(list(CLUSTER_ENTITIES)))
        .then(pl.lit("entity:") + ent)
        .when(addr.is_not_null() & (addr != ""))
        .then(pl.lit("ip:") + addr)
        .otherwise(pl.lit("entity:") + ent.fill_null("unknown"))
    )
