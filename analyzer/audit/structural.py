"""Broad rules by structure alone: what a rule admits, read from its YAML shape.

Each reason says what the rule admits in words a reviewer can check against the manifest
("namespaceSelector: {} admits every pod of every namespace"). Traffic does not enter here;
``usage.py`` adds the empirical side (what actually used the rule).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from analyzer.audit.findings import Severity, max_severity
from analyzer.policy.model import NetworkPolicy, PolicyPeer, PolicyPort, PolicyRule

__all__ = [
    "BreadthReason",
    "WIDE_PORT_RANGE",
    "describe_peer",
    "describe_ports",
    "iter_rules",
    "rule_breadth",
    "rule_severity",
]

# A port range wider than this many ports is reported; 100 keeps small service bands quiet.
WIDE_PORT_RANGE = 100
# IPv4 prefixes this short (or shorter) inside private space cover whole cluster networks.
LARGE_PRIVATE_PREFIX_V4 = 16
LARGE_PRIVATE_PREFIX_V6 = 48
# Any public range this short is a large slice of the internet.
LARGE_PUBLIC_PREFIX_V4 = 8
LARGE_PUBLIC_PREFIX_V6 = 32
_PRIVATE_NETS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
_WORLD_ENTITIES = {"world", "all", "world-ipv4", "world-ipv6"}
_CLUSTER_ENTITIES = {"cluster", "all"}


@dataclass(frozen=True, slots=True)
class BreadthReason:
    """One structural reason a rule is broad. ``code`` is stable, ``text`` is for people."""

    code: str
    text: str
    severity: Severity


def iter_rules(policy: NetworkPolicy) -> list[tuple[str, int, PolicyRule]]:
    """Every rule of a policy as (direction, index, rule), direction ``ingress``/``egress``."""
    out: list[tuple[str, int, PolicyRule]] = [
        ("ingress", i, r) for i, r in enumerate(policy.ingress)
    ]
    out += [("egress", i, r) for i, r in enumerate(policy.egress)]
    return out


def describe_peer(peer: PolicyPeer, policy_namespace: str | None) -> str:
    """A peer element in words: ``pods app=frontend in namespace shop``."""
    if peer.ip_block is not None:
        ex = f" except {', '.join(peer.ip_block.excepts)}" if peer.ip_block.excepts else ""
        return f"ipBlock {peer.ip_block.cidr}{ex}"
    if peer.entities:
        return f"entities {', '.join(peer.entities)}"
    pods = (
        "every pod"
        if peer.pod_selector is None or peer.pod_selector.is_empty
        else f"pods {peer.pod_selector.describe()}"
    )
    if peer.any_namespace or (
        peer.namespace_selector is not None and peer.namespace_selector.is_empty
    ):
        return f"{pods} in every namespace"
    if peer.namespace_selector is not None:
        return f"{pods} in namespaces {peer.namespace_selector.describe()}"
    return f"{pods} in namespace {policy_namespace or '(any)'}"


def describe_ports(ports: tuple[PolicyPort, ...] | None) -> str:
    """Ports in words: ``all ports``, ``TCP 8080``, ``TCP 443-9443``."""
    if not ports:
        return "all ports"
    parts = []
    for p in ports:
        if p.port is None:
            parts.append(f"{p.protocol} (all ports)")
        elif p.end_port is not None:
            parts.append(f"{p.protocol} {p.port}-{p.end_port}")
        else:
            parts.append(f"{p.protocol} {p.port}")
    return ", ".join(parts)


def rule_breadth(policy: NetworkPolicy, direction: str, rule: PolicyRule) -> list[BreadthReason]:
    """Structural reasons the rule is broad (empty when it is tight by shape).

    Parameters
    ----------
    policy
        The policy the rule belongs to (its namespace scopes bare pod selectors).
    direction
        ``ingress`` or ``egress``.
    rule
        The rule to judge.
    """
    if rule.match_nothing:
        return []
    ingress = direction == "ingress"
    side = "from" if ingress else "to"
    reasons: list[BreadthReason] = []
    if not rule.peers:
        where = "every source, the internet included" if ingress else "every destination"
        form = "no `from`" if rule.peers is None else "an empty `from`"
        if not ingress:
            form = form.replace("from", "to")
        reasons.append(
            BreadthReason(
                "any-peer", f"{form}: admits {where}", "high" if ingress else "medium"
            )
        )
    else:
        for peer in rule.peers:
            reasons.extend(_peer_reasons(peer, policy.namespace, ingress, side))
    reasons.extend(_port_reasons(rule.ports))
    return reasons


def rule_severity(reasons: list[BreadthReason]) -> Severity:
    """The severity of a broad-rule finding: its most severe reason."""
    return max_severity(*(r.severity for r in reasons)) if reasons else "info"


def _peer_reasons(
    peer: PolicyPeer, namespace: str | None, ingress: bool, side: str
) -> list[BreadthReason]:
    if peer.ip_block is not None:
        return _cidr_reasons(peer.ip_block.cidr, bool(peer.ip_block.excepts), ingress)
    if peer.entities:
        wide = sorted(set(peer.entities) & (_WORLD_ENTITIES | _CLUSTER_ENTITIES))
        if not wide:
            return []
        sev: Severity = "high" if ingress and set(wide) & _WORLD_ENTITIES else "medium"
        return [
            BreadthReason("wide-entity", f"`{side}` entities {', '.join(wide)}", sev)
        ]
    pods_all = peer.pod_selector is None or peer.pod_selector.is_empty
    all_ns = peer.any_namespace or (
        peer.namespace_selector is not None and peer.namespace_selector.is_empty
    )
    if all_ns and pods_all:
        return [
            BreadthReason(
                "all-namespaces",
                "namespaceSelector: {} admits every pod of every namespace",
                "medium",
            )
        ]
    if all_ns:
        return [
            BreadthReason(
                "any-namespace",
                f"namespaceSelector: {{}} admits pods {peer.pod_selector.describe()} "  # type: ignore[union-attr]
                "from every namespace",
                "low",
            )
        ]
    if peer.namespace_selector is not None and peer.pod_selector is None:
        return [
            BreadthReason(
                "namespace-only",
                f"namespace-only peer ({peer.namespace_selector.describe()}) admits every pod "
                "of those namespaces; a podSelector in the same element would do",
                "low",
            )
        ]
    if peer.namespace_selector is None and pods_all:
        return [
            BreadthReason(
                "all-pods",
                f"podSelector: {{}} admits every pod of namespace {namespace or '(any)'}",
                "low",
            )
        ]
    return []


def _cidr_reasons(cidr: str, has_except: bool, ingress: bool) -> list[BreadthReason]:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return []
    if net.prefixlen == 0:
        who = "the whole internet" + (" (minus exceptions)" if has_except else "")
        return [
            BreadthReason(
                "any-ip", f"ipBlock {cidr} admits {who}", "high" if ingress else "medium"
            )
        ]
    private = any(net.version == p.version and net.subnet_of(p) for p in _PRIVATE_NETS)  # type: ignore[arg-type]
    if private:
        limit = LARGE_PRIVATE_PREFIX_V4 if net.version == 4 else LARGE_PRIVATE_PREFIX_V6
        if net.prefixlen <= limit:
            return [
                BreadthReason(
                    "large-private-range",
                    f"ipBlock {cidr} admits {net.num_addresses:,} private addresses",
                    "medium",
                )
            ]
        return []
    limit = LARGE_PUBLIC_PREFIX_V4 if net.version == 4 else LARGE_PUBLIC_PREFIX_V6
    if net.prefixlen <= limit:
        return [
            BreadthReason(
                "large-range", f"ipBlock {cidr} admits {net.num_addresses:,} addresses", "medium"
            )
        ]
    return []


def _port_reasons(ports: tuple[PolicyPort, ...] | None) -> list[BreadthReason]:
    if not ports:
        return [BreadthReason("all-ports", "no `ports`: every port and protocol", "low")]
    reasons = []
    for p in ports:
        if p.port is None:
            reasons.append(
                BreadthReason("all-ports", f"{p.protocol} without a port: every port", "low")
            )
        elif isinstance(p.port, int) and p.end_port is not None:
            width = p.end_port - p.port + 1
            if width > WIDE_PORT_RANGE:
                reasons.append(
                    BreadthReason(
                        "wide-port-range",
                        f"port range {p.protocol} {p.port}-{p.end_port} ({width:,} ports)",
                        "low",
                    )
                )
    return reasons
