"""Lint rules on the shape of policies: what the manifest says differs from what its author
meant, or opens something an attacker wants.

* ``ignored-rules``: rules for a direction that an explicit ``policyTypes`` leaves out; the API
  server keeps them and no CNI applies them.
* ``policy-types-defaulting``: no ``policyTypes`` where Kubernetes' defaulting surprises: a
  policy with only egress rules also isolates ingress (Ingress is always defaulted in), and
  ``egress: []`` isolates nothing (Egress is defaulted in only when egress rules exist).
* ``metadata-egress``: egress that reaches the cloud metadata service (169.254.169.254, AWS's
  fd00:ec2::254) on HTTP, e.g. ``0.0.0.0/0`` without that address in ``except``.
* ``risky-port``: SSH, Redis, etcd, kubelet, the Docker API or a database port admitted from a
  broad peer, or from outside the cluster.

Every finding says what the policy does in words and how to fix it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.audit.findings import Finding, Replacement, Severity
from analyzer.audit.ranges import ClusterRanges
from analyzer.audit.rules import RuleView
from analyzer.audit.structural import WIDE_PORT_RANGE, describe_peer, describe_ports
from analyzer.policy.compile import (
    AllPeers,
    AllPorts,
    CompiledPolicy,
    CompiledRule,
    EntityPeers,
    IPPeers,
    PortRange,
    ProtocolPorts,
)
from analyzer.policy.evaluate import Endpoint
from analyzer.policy.model import EGRESS, INGRESS

__all__ = ["METADATA_ADDRESSES", "RISKY_PORTS", "lint_findings", "risky_port_findings"]

METADATA_ADDRESSES = ("169.254.169.254", "fd00:ec2::254")
# (first port, last port, protocol, what listens there)
RISKY_PORTS: tuple[tuple[int, int, str, str], ...] = (
    (22, 22, "TCP", "SSH"),
    (23, 23, "TCP", "Telnet"),
    (2375, 2376, "TCP", "the Docker API"),
    (2379, 2380, "TCP", "etcd"),
    (10250, 10250, "TCP", "the kubelet API"),
    (6379, 6379, "TCP", "Redis"),
    (11211, 11211, "TCP", "memcached"),
    (3306, 3306, "TCP", "MySQL"),
    (5432, 5432, "TCP", "PostgreSQL"),
    (1433, 1433, "TCP", "SQL Server"),
    (1521, 1521, "TCP", "Oracle"),
    (27017, 27017, "TCP", "MongoDB"),
    (9042, 9042, "TCP", "Cassandra"),
    (9200, 9200, "TCP", "Elasticsearch"),
    (5984, 5984, "TCP", "CouchDB"),
)
# Breadth reasons (structural.py codes, after judge_rules' filtering) that make a peer broad.
_BROAD = frozenset(
    {"any-peer", "any-ip", "large-range", "large-private-range", "wide-entity",
     "all-namespaces", "any-namespace"}
)
_WORLD_ENTITIES = frozenset({"world", "all", "world-ipv4", "world-ipv6"})
# External blocks at least this wide count as "from outside the cluster" (a /32 is a client).
_EXTERNAL_MIN_ADDRESSES = 256
_TYPE = {"ingress": INGRESS, "egress": EGRESS}


def _edit(note: str) -> Replacement:
    return Replacement(action="edit", note=note, manifest=None, source="analyzer.audit")


def lint_findings(policies: Sequence[CompiledPolicy]) -> list[Finding]:
    """``ignored-rules``, ``policy-types-defaulting`` and ``metadata-egress`` findings."""
    findings: list[Finding] = []
    for cp in policies:
        findings.extend(_types_findings(cp))
        findings.extend(_metadata_findings(cp))
    return findings


def _types_findings(cp: CompiledPolicy) -> list[Finding]:
    policy = cp.policy
    if policy.kind not in ("NetworkPolicy", "StagedKubernetesNetworkPolicy"):
        return []  # Cilium has no policyTypes; enableDefaultDeny is explicit
    out: list[Finding] = []
    types = list(policy.policy_types)
    for direction, rules in (("ingress", policy.ingress), ("egress", policy.egress)):
        wanted = _TYPE[direction]
        if rules and wanted not in types:
            out.append(Finding(
                severity="medium",
                category="ignored-rules",
                policy=cp.key,
                rule=f"spec.{direction}",
                namespace=cp.namespace,
                direction=direction,
                explanation=(
                    f"policyTypes {types} leaves out {wanted}, so the {len(rules)} {direction} "
                    f"rule(s) are ignored: this policy does not restrict the {direction} of "
                    f"pods {policy.pod_selector.describe()} at all, whatever the rules say"
                ),
                replacement=_edit(
                    f"add {wanted} to policyTypes if the rules are meant (the pods then accept "
                    f"only what the rules admit for {direction}), or delete spec.{direction}"
                ),
                evidence={"policy_types": types, "ignored_rules": len(rules)},
            ))
    if policy.explicit_types:
        return out
    if policy.egress and not policy.ingress and "ingress" not in policy.empty_sections:
        out.append(Finding(
            severity="medium",
            category="policy-types-defaulting",
            policy=cp.key,
            rule=None,
            namespace=cp.namespace,
            direction="ingress",
            explanation=(
                "no policyTypes, and only egress rules: Kubernetes defaults policyTypes to "
                "[Ingress, Egress] (Ingress always), so this policy also denies ALL ingress to "
                f"pods {policy.pod_selector.describe()}, which an egress-only policy rarely means"
            ),
            replacement=_edit(
                "add policyTypes: [Egress] to restrict egress only (or [Ingress, Egress] with "
                "ingress rules, to make the deny explicit)"
            ),
            evidence={"defaulted_policy_types": types},
        ))
    if "egress" in policy.empty_sections and "Egress" not in types:
        out.append(Finding(
            severity="medium",
            category="policy-types-defaulting",
            policy=cp.key,
            rule="spec.egress",
            namespace=cp.namespace,
            direction="egress",
            explanation=(
                "egress: [] without policyTypes does not restrict egress: Kubernetes adds "
                "Egress to policyTypes only when there are egress rules, so pods "
                f"{policy.pod_selector.describe()} keep all egress open"
            ),
            replacement=_edit(
                "to deny all egress, add policyTypes: [Ingress, Egress] (or [Egress]); "
                "otherwise delete the empty egress list"
            ),
            evidence={"defaulted_policy_types": types},
        ))
    return out


def _metadata_findings(cp: CompiledPolicy) -> list[Finding]:
    out: list[Finding] = []
    for rule in cp.egress or ():
        if not rule.port_matches(80, "TCP", {}):
            continue
        reached = [a for a in METADATA_ADDRESSES if _admits_address(rule, a)]
        if not reached:
            continue
        peers = [describe_peer(p, cp.namespace) for p in rule.rule.peers or ()] or [
            "every destination (no `to`)"
        ]
        block = _excepting_block(rule)
        fix = (
            f"add {reached[0]}/{32 if ':' not in reached[0] else 128} to the except list of "
            f"ipBlock {block}" if block else
            "name the destinations the pods need instead of every address, or add an ipBlock "
            f"with {reached[0]} in except"
        )
        out.append(Finding(
            severity="medium",
            category="metadata-egress",
            policy=cp.key,
            rule=f"spec.egress[{rule.index}]",
            namespace=cp.namespace,
            direction="egress",
            explanation=(
                f"egress to {', '.join(peers)} on {describe_ports(rule.rule.ports)} reaches the "
                f"cloud metadata service at {', '.join(reached)}: a compromised pod can read "
                "the node's cloud credentials there unless the node blocks it"
            ),
            replacement=_edit(fix),
            evidence={"metadata_addresses": reached},
        ))
    return out


def _admits_address(rule: CompiledRule, address: str) -> bool:
    peer = Endpoint(kind="ip", ip=address, entity="world")
    return any(m.matches(peer, "kubernetes") for m in rule.peers)


def _excepting_block(rule: CompiledRule) -> str | None:
    for m in rule.peers:
        if isinstance(m, IPPeers):
            return m.cidr
    return None


# --- risky ports --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Exposure:
    severity: Severity
    source: str  # in words


def risky_port_findings(views: Sequence[RuleView], ranges: ClusterRanges) -> list[Finding]:
    """``risky-port``: ingress rules admitting well-known dangerous ports from broad peers or
    from outside the cluster (``views`` as judged by ``rules.judge_rules``)."""
    out: list[Finding] = []
    for v in views:
        if v.direction != "ingress" or v.rule.rule.match_nothing:
            continue
        all_ports = _all_ports(v.rule)
        named = _risky_named(v.rule)
        exposure = _exposure(v, ranges, all_ports)
        if exposure is None or not named:
            continue
        services = ", ".join(f"{what} ({proto} {_span(lo, hi)})" for lo, hi, proto, what in named)
        if all_ports:
            services = "every port, " + services
        out.append(Finding(
            severity=exposure.severity,
            category="risky-port",
            policy=v.policy.key,
            rule=v.path,
            namespace=v.policy.namespace,
            direction="ingress",
            explanation=(
                f"admits {exposure.source} on {services}: ports attackers look for first. "
                f"Pods {v.policy.subject.describe()} should accept these only from the clients "
                "that need them"
            ),
            hits=v.hits,
            replacement=_edit(
                "narrow `from` to the workloads that use these ports (podSelector with "
                "namespaceSelector in one element) and list only the ports they use"
            ),
            evidence={"ports": [f"{proto} {_span(lo, hi)}" for lo, hi, proto, _ in named],
                      "source": exposure.source, "all_ports": all_ports},
        ))
    return out


def _span(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _all_ports(rule: CompiledRule) -> bool:
    return any(
        isinstance(p, AllPorts | ProtocolPorts)
        or (isinstance(p, PortRange) and p.high - p.low + 1 > WIDE_PORT_RANGE)
        for p in rule.ports
    )


def _risky_named(rule: CompiledRule) -> list[tuple[int, int, str, str]]:
    return [
        (lo, hi, proto, what) for lo, hi, proto, what in RISKY_PORTS
        if any(rule.port_matches(port, proto, {}) for port in range(lo, hi + 1))
    ]


def _exposure(v: RuleView, ranges: ClusterRanges, all_ports: bool) -> _Exposure | None:
    """How widely the rule admits sources: the internet, outside ranges, broad pod peers."""
    anywhere = any(
        isinstance(m, AllPeers)
        or (isinstance(m, EntityPeers) and m.entities & _WORLD_ENTITIES)
        or (isinstance(m, IPPeers) and _prefix(m.cidr) == 0)
        for m in v.rule.peers
    )
    if anywhere:
        return _Exposure("high", "any address, the internet included")
    outside = [
        m.cidr for m in v.rule.peers
        if isinstance(m, IPPeers) and not ranges.inside_cluster(m.cidr)
        and ipaddress.ip_network(m.cidr).num_addresses >= _EXTERNAL_MIN_ADDRESSES
    ]
    if outside:
        return _Exposure("medium", f"addresses outside the cluster ({', '.join(outside)})")
    if all_ports:
        return None  # in-cluster and every port: broad-rule says so already
    broad = [r for r in v.reasons if r.code in _BROAD]
    if broad:
        return _Exposure("medium", f"broad peers ({'; '.join(r.text for r in broad)})")
    return None


def _prefix(cidr: str) -> int:
    return ipaddress.ip_network(cidr, strict=False).prefixlen
