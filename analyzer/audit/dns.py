"""missing-dns: egress restricted without the DNS guardrail (the seed's ``allow-dns-egress``).

For every policy that isolates egress, each kind of pod it selects is asked, through the policy
engine, whether any egress rule (of any policy selecting it) admits the cluster DNS on UDP 53
and TCP 53. The DNS servers are the kube-dns/CoreDNS pods known to the audit plus a canonical
``kube-system`` ``k8s-app=kube-dns`` pod, and any address the pods were seen resolving against
(NodeLocal DNSCache and the like), each with its address where one is known, so that ipBlock
rules are judged in the audit's ``--ipblock-mode`` exactly as for observed traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from analyzer.audit.findings import Finding
from analyzer.audit.universe import Universe
from analyzer.policy.compile import CompiledPolicies, CompiledPolicy, IPPeers
from analyzer.policy.evaluate import Endpoint, evaluate_direction, selecting_policies
from analyzer.policy.model import EGRESS

__all__ = ["DNS_LABELS", "DNS_NAMESPACE", "dns_findings", "dns_targets"]

DNS_NAMESPACE = "kube-system"
DNS_LABELS: tuple[tuple[str, str], ...] = (
    ("k8s-app", "kube-dns"),
    ("app.kubernetes.io/name", "coredns"),
)
DNS_PORT = 53


def dns_targets(universe: Universe, conns: pl.DataFrame) -> list[Endpoint]:
    """The DNS servers a pod may need: known kube-dns pods, observed port-53 peers, a default."""
    targets: dict[str, Endpoint] = {}
    for pod in universe.pods:
        if pod.namespace == DNS_NAMESPACE and any(
            pod.labels.get(k) == v for k, v in DNS_LABELS
        ):
            targets[pod.key] = _pod_peer(
                pod.namespace, pod.labels, pod.namespace_labels, pod.ip
            )
    # The canonical kube-dns pod, address unknown (see _resolves for ipBlocks).
    targets["default"] = _pod_peer(DNS_NAMESPACE, dict(DNS_LABELS[:1]), {})
    if conns.height:
        seen = (
            conns.filter(pl.col("dst_port") == DNS_PORT)
            .select("dst_entity", "dst_namespace", "dst_labels", "dst_namespace_labels", "dst_ip")
            .unique()
            .head(64)
        )
        for row in seen.iter_rows(named=True):
            if row["dst_entity"] == "pod" and row["dst_namespace"]:
                labels = _labels(row["dst_labels"])
                key = f"pod:{row['dst_namespace']}:{sorted(labels.items())}:{row['dst_ip']}"
                targets.setdefault(
                    key,
                    _pod_peer(row["dst_namespace"], labels, _labels(row["dst_namespace_labels"]),
                              row["dst_ip"]),
                )
            elif row["dst_ip"]:
                targets.setdefault(
                    f"ip:{row['dst_ip']}",
                    Endpoint(kind="ip", ip=row["dst_ip"], entity=row["dst_entity"] or "world"),
                )
    return list(targets.values())


def dns_findings(
    compiled: CompiledPolicies,
    universe: Universe,
    targets: Sequence[Endpoint],
    namespaces: Sequence[str] | None,
) -> list[Finding]:
    """One ``missing-dns`` finding per egress-isolating policy whose pods cannot resolve names."""
    findings: list[Finding] = []
    # Whether a pod resolves depends only on the pod (every policy selecting it counts), and
    # many policies select the same pods: decide once per pod identity and protocol.
    cache: dict[tuple[object, ...], bool] = {}

    def resolves(subject: Endpoint, protocol: str) -> bool:
        key = (
            subject.namespace,
            tuple(sorted(subject.labels.items())),
            tuple(sorted(subject.namespace_labels.items())),
            protocol,
        )
        if key not in cache:
            cache[key] = _resolves(compiled, subject, targets, protocol)
        return cache[key]

    for cp in compiled.policies:
        if cp.egress is None or (namespaces is not None and cp.namespace not in namespaces):
            continue
        subjects = _subjects(cp, universe)
        if not subjects:
            continue
        no_udp: list[str] = []
        no_tcp: list[str] = []
        for name, subject in subjects.items():
            if not resolves(subject, "UDP"):
                no_udp.append(name)
            if not resolves(subject, "TCP"):
                no_tcp.append(name)
        if no_udp:
            findings.append(
                Finding(
                    severity="high",
                    category="missing-dns",
                    policy=cp.key,
                    rule=None,
                    namespace=cp.namespace,
                    direction="egress",
                    explanation=(
                        f"{cp.key} restricts egress of {_list(no_udp)} but no egress rule admits "
                        "DNS to kube-dns/CoreDNS on UDP 53: name lookups will fail; add the DNS "
                        "guardrail (egress to kube-system k8s-app=kube-dns on UDP and TCP 53)"
                    ),
                    evidence={"pods_without_dns": no_udp, "missing": ["UDP 53", "TCP 53"]
                              if no_tcp else ["UDP 53"]},
                )
            )
        elif no_tcp:
            findings.append(
                Finding(
                    severity="low",
                    category="missing-dns",
                    policy=cp.key,
                    rule=None,
                    namespace=cp.namespace,
                    direction="egress",
                    explanation=(
                        f"{cp.key} restricts egress of {_list(no_tcp)}; DNS is allowed on UDP 53 "
                        "but not TCP 53, so truncated (large) DNS answers will fail"
                    ),
                    evidence={"pods_without_dns": no_tcp, "missing": ["TCP 53"]},
                )
            )
    return findings


def _subjects(cp: CompiledPolicy, universe: Universe) -> dict[str, Endpoint]:
    """The distinct kinds of pod the policy selects; a synthetic one when none is known."""
    out: dict[str, Endpoint] = {}
    for pod in universe.selected_by(cp):
        key = f"{pod.namespace}/{pod.workload}"
        out.setdefault(key, _pod_peer(pod.namespace, pod.labels, pod.namespace_labels))
    if out or cp.namespace is None:
        return out
    labels = dict(cp.subject.match_labels)
    for req in cp.subject.match_expressions:
        if req.operator == "In" and req.values:
            labels.setdefault(req.key, req.values[0])
        elif req.operator == "Exists":
            labels.setdefault(req.key, "x")
    ns_labels = universe.namespace_labels(cp.namespace)
    if cp.selects(cp.namespace, labels, ns_labels):
        desc = cp.subject.describe()
        out[f"{cp.namespace}/pods {desc}"] = _pod_peer(cp.namespace, labels, ns_labels)
    return out


def _resolves(
    compiled: CompiledPolicies, subject: Endpoint, targets: Sequence[Endpoint], protocol: str
) -> bool:
    """Whether some egress rule admits one of the DNS servers, as the policy engine decides
    (same compiled policies, same ipBlock mode as every other check)."""
    if any(
        evaluate_direction(compiled, subject, t, DNS_PORT, protocol, EGRESS, {}).allowed
        for t in targets
    ):
        return True
    if compiled.ipblock_mode != "kubernetes" or any(t.ip for t in targets):
        return False
    # No DNS server address is known: in the Kubernetes reading an ipBlock matches pod IPs, so
    # a block spanning a whole address family with no exception admits the DNS pod, whatever
    # its address. (When addresses are known, they alone decide, as for observed traffic.)
    return any(
        any(_whole_family(m) for m in rule.peers) and rule.port_matches(DNS_PORT, protocol, {})
        for cp in selecting_policies(compiled, subject, EGRESS)
        for rule in cp.egress or ()
    )


def _whole_family(matcher: object) -> bool:
    return (
        isinstance(matcher, IPPeers)
        and not matcher.external_only
        and not matcher.except_ranges
        and any(lo == 0 and hi == (1 << (32 if v == 4 else 128)) - 1 for v, lo, hi in
                matcher.ranges)
    )


def _pod_peer(
    namespace: str, labels: Mapping[str, str], namespace_labels: Mapping[str, str],
    ip: str | None = None,
) -> Endpoint:
    return Endpoint(
        kind="pod", namespace=namespace, labels=dict(labels),
        namespace_labels=dict(namespace_labels), ip=ip,
    )


def _labels(items: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        k, _, v = item.partition("=")
        out[k] = v
    return out


def _list(items: Sequence[str]) -> str:
    return ", ".join(items[:6]) + (f" and {len(items) - 6} more" if len(items) > 6 else "")
