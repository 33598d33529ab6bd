"""The CiliumNetworkPolicy flavour: endpoint selectors, entities, toPorts (the Kubernetes
flavour's peers and ports in Cilium's spelling)."""

from __future__ import annotations

from typing import Any

from analyzer.k8s.syntax import (
    dns_name_error,
)
from analyzer.recommend.checks import (
    CILIUM_NS_LABEL,
    _check,
    _checked_cidr,
    _checked_port,
    _k8s_selector,
    name_error,
)
from analyzer.recommend.model import (
    DNS_NAMESPACE,
    DNS_SELECTORS,
    AllowedPeer,
    AllowRule,
    PolicySpec,
)


def _cilium_endpoint(peer: AllowedPeer) -> dict[str, Any]:
    sel = _k8s_selector(peer.selector)
    for ns in peer.namespaces:
        _check(name_error(ns))
    if len(peer.namespaces) == 1:
        sel["matchLabels"] = {CILIUM_NS_LABEL: peer.namespaces[0], **sel.get("matchLabels", {})}
    else:
        sel.setdefault("matchExpressions", []).insert(
            0, {"key": CILIUM_NS_LABEL, "operator": "In", "values": list(peer.namespaces)}
        )
    return sel


def _cilium_rules(rule: AllowRule, direction: str) -> list[dict[str, Any]]:
    ports = [{"port": str(p.port), "protocol": p.protocol} for p in map(_checked_port, rule.ports)]
    to_ports = [{"ports": ports}]
    pre = "from" if direction == "ingress" else "to"
    endpoints = [_cilium_endpoint(p) for p in rule.peers if p.kind == "pod"]
    entities = sorted({p.entity for p in rule.peers if p.kind == "entity"})
    fqdns = sorted(
        {n for p in rule.peers if p.kind == "cidr" and direction == "egress" for n in p.fqdns}
    )
    cidrs = [
        {"cidr": _checked_cidr(p.cidr)}
        | ({"except": [_checked_cidr(c) for c in p.excepts]} if p.excepts else {})
        for p in rule.peers
        if p.kind == "cidr" and not (direction == "egress" and p.fqdns)
    ]
    # Cilium refuses some L3 combinations in one rule; one element per peer kind is always valid.
    out: list[dict[str, Any]] = []
    if endpoints:
        out.append({f"{pre}Endpoints": endpoints, "toPorts": to_ports})
    if entities:
        out.append({f"{pre}Entities": entities, "toPorts": to_ports})
    if cidrs:
        out.append({f"{pre}CIDRSet": cidrs, "toPorts": to_ports})
    if fqdns:
        for name in fqdns:
            _check(dns_name_error(name))
        out.append({"toFQDNs": [{"matchName": n} for n in fqdns], "toPorts": to_ports})
    return out


def _cilium_spec(policy: PolicySpec) -> dict[str, Any]:
    spec: dict[str, Any] = {"endpointSelector": _k8s_selector(policy.selector)}
    if policy.kind == "default-deny":
        # An empty rule selects the endpoints into default-deny without allowing anything.
        spec["ingress"], spec["egress"] = [{}], [{}]
        return spec
    if policy.kind == "dns":
        spec["egress"] = [
            {
                "toEndpoints": [
                    {"matchLabels": {CILIUM_NS_LABEL: DNS_NAMESPACE, f"k8s:{k}": v}}
                    for k, v in DNS_SELECTORS
                ],
                "toPorts": [
                    {
                        "ports": [
                            {"port": "53", "protocol": "UDP"},
                            {"port": "53", "protocol": "TCP"},
                        ],
                        # Cilium's DNS proxy must see the lookups for toFQDNs rules to work.
                        "rules": {"dns": [{"matchPattern": "*"}]},
                    }
                ],
            }
        ]
        return spec
    direction = policy.directions[0]
    spec[direction] = [e for rule in policy.rules for e in _cilium_rules(rule, direction)]
    return spec
