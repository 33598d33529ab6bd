"""Policy specs -> manifests (Kubernetes, Cilium, Calico staged) and YAML.

Every string that came from flows (label keys and values, namespaces, addresses, DNS names) is
validated here once more before it enters a manifest, and YAML is written with
``yaml.safe_dump_all``: hostile values can at worst be refused, never change the structure.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from analyzer.errors import VerificationError
from analyzer.k8s.syntax import (
    dns_name_error,
)
from analyzer.k8s.yaml_io import safe_dump_all
from analyzer.present.text import format_span
from analyzer.recommend.checks import (
    _check,
    _checked_cidr,
    _checked_port,
    _k8s_selector,
    label_error,
    name_error,
)
from analyzer.recommend.model import (
    DNS_NAMESPACE,
    DNS_SELECTORS,
    NAMESPACE_NAME_LABEL,
    AllowedPeer,
    PolicySpec,
    Port,
    Selector,
)
from analyzer.recommend.render_cilium import (
    _cilium_spec,
)

__all__ = [
    "FLAVORS",
    "Flavor",
    "dns_name_error",
    "label_error",
    "name_error",
    "render",
    "render_policy",
    "to_yaml",
]

Flavor = Literal["kubernetes", "cilium", "calico"]
FLAVORS: tuple[str, ...] = ("kubernetes", "cilium", "calico")

ANNOTATION_PREFIX = "analyzer.io"
MANAGED_BY = {"app.kubernetes.io/managed-by": "analyzer"}
MAX_EVIDENCE_CHARS = 4000
SHORT_WINDOW_SECONDS = 86400
Window = tuple[datetime | None, datetime | None]

_EXAMPLE = re.compile(r"^[A-Za-z0-9./:\-_ >\[\]]{1,300}$")


# --- validators (Kubernetes apimachinery rules) -----------------------------------------------
















# --- names ------------------------------------------------------------------------------------


def policy_name(base: str, direction: str, taken: set[str]) -> str:
    """``allow-<base>-<direction>``: a DNS-1123 label <= 63, unique within ``taken``."""
    slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "workload"
    name = f"allow-{slug}-{direction}"
    if len(name) > 63:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"allow-{slug[: 63 - len(direction) - 17].rstrip('-')}-{digest}-{direction}"
    candidate, n = name, 2
    while candidate in taken:
        suffix = f"-{n}"
        candidate = name[: 63 - len(suffix)].rstrip("-") + suffix
        n += 1
    taken.add(candidate)
    return candidate


def selector_base(sel: Selector) -> str:
    """Readable name material: the merged values' common stem, else the label values."""
    if sel.match_in:
        values = sel.match_in[0][1]
        stem = _common_stem(values)
        return stem or "-".join(values)
    # an empty selector only ever stands for pods the flows show without labels
    return "-".join(v for _, v in sel.match_labels) or "unlabelled-pods"


def _common_stem(values: Sequence[str]) -> str:
    parts = [v.split("-") for v in values]
    stem: list[str] = []
    for tokens in zip(*parts, strict=False):
        if len(set(tokens)) != 1:
            break
        stem.append(tokens[0])
    return "-".join(stem)


# --- Kubernetes -------------------------------------------------------------------------------




def _ns_selector(namespaces: Sequence[str]) -> dict[str, Any]:
    for ns in namespaces:
        _check(name_error(ns))
    if len(namespaces) == 1:
        return {"matchLabels": {NAMESPACE_NAME_LABEL: namespaces[0]}}
    return {
        "matchExpressions": [
            {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": list(namespaces)}
        ]
    }


def _k8s_peers(peer: AllowedPeer, own_ns: str) -> list[dict[str, Any]]:
    if peer.kind == "pod":
        element: dict[str, Any] = {}
        # Same namespace: a bare podSelector. Elsewhere: namespaceSelector AND podSelector in
        # ONE element (two elements would mean OR: the whole namespace, or those pods anywhere).
        if peer.namespaces != (own_ns,):
            element["namespaceSelector"] = _ns_selector(peer.namespaces)
        element["podSelector"] = _k8s_selector(peer.selector)
        return [element]
    if peer.excepts:
        return [{"ipBlock": {"cidr": _checked_cidr(peer.cidr),
                             "except": [_checked_cidr(c) for c in peer.excepts]}}]
    cidrs = [peer.cidr] if peer.kind == "cidr" else list(peer.cidrs)
    return [{"ipBlock": {"cidr": _checked_cidr(c)}} for c in cidrs]


def _k8s_ports(ports: Sequence[Port]) -> list[dict[str, Any]]:
    return [{"protocol": p.protocol, "port": p.port} for p in map(_checked_port, ports)]


def _k8s_spec(policy: PolicySpec) -> dict[str, Any]:
    types = [d.capitalize() for d in policy.directions]
    spec: dict[str, Any] = {"podSelector": _k8s_selector(policy.selector), "policyTypes": types}
    if policy.kind == "default-deny":
        return spec  # selected, isolated in both directions, nothing allowed
    if policy.kind == "dns":
        spec["egress"] = [
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: DNS_NAMESPACE}},
                        "podSelector": {"matchLabels": {k: v}},
                    }
                    for k, v in DNS_SELECTORS
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }
        ]
        return spec
    direction = policy.directions[0]
    peer_key = "from" if direction == "ingress" else "to"
    rules = []
    for rule in policy.rules:
        peers = [e for p in rule.peers for e in _k8s_peers(p, policy.namespace)]
        # An empty from/to would mean "every peer": a rule whose peers cannot be written for
        # this flavour (a Cilium entity without addresses) is dropped, never widened.
        if peers:
            rules.append({peer_key: peers, "ports": _k8s_ports(rule.ports)})
    spec[direction] = rules
    return spec


# --- Cilium -----------------------------------------------------------------------------------








# --- documents --------------------------------------------------------------------------------


def _annotations(policy: PolicySpec, observed: Window | None) -> dict[str, str]:
    if policy.kind == "default-deny":
        out = {f"{ANNOTATION_PREFIX}/purpose": "default deny for the namespace"}
        if observed is not None:
            # What the default-deny closes was judged on this window of traffic alone.
            out |= _window_annotations(observed)
        return out
    if policy.kind != "allow":
        return {f"{ANNOTATION_PREFIX}/purpose": "DNS guardrail: UDP and TCP 53 to kube-dns/CoreDNS"}
    ev = policy.evidence
    direction = policy.directions[0]
    rules = []
    for i, rule in enumerate(policy.rules):
        item = {
            "rule": f"{direction}[{i}]",
            "peers": [p.describe() for p in rule.peers],
            "ports": [f"{p.protocol}/{p.port}" for p in rule.ports],
        } | rule.evidence.to_json()
        item["examples"] = [x for x in item["examples"] if _EXAMPLE.fullmatch(x)]
        rules.append(item)
    evidence = json.dumps(rules, separators=(",", ":"), sort_keys=False)
    if len(evidence) > MAX_EVIDENCE_CHARS:
        for item in rules:
            item["examples"] = item["examples"][:1]
            item["peers"] = item["peers"][:5]
        evidence = json.dumps(rules, separators=(",", ":"))[:MAX_EVIDENCE_CHARS]
    window = f"{_iso(ev.first_seen)}/{_iso(ev.last_seen)}"
    return {
        f"{ANNOTATION_PREFIX}/observed-window": window,
        f"{ANNOTATION_PREFIX}/connections": str(ev.connections),
        f"{ANNOTATION_PREFIX}/evidence": evidence,
    }


def _window_annotations(observed: Window) -> dict[str, str]:
    first, last = observed
    out = {f"{ANNOTATION_PREFIX}/observed-window": f"{_iso(first)}/{_iso(last)}"}
    if first is None or last is None:
        out[f"{ANNOTATION_PREFIX}/warning"] = (
            "observation window unknown: periodic jobs may not have been seen"
        )
    elif (last - first).total_seconds() < SHORT_WINDOW_SECONDS:
        out[f"{ANNOTATION_PREFIX}/warning"] = (
            f"observed for only {format_span(last - first)} (less than a day): periodic jobs "
            "that did not run then have no rule and are denied"
        )
    return out


def _iso(value: Any) -> str:
    return "unknown" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def render_policy(
    policy: PolicySpec, flavor: Flavor = "kubernetes", *, observed: Window | None = None
) -> dict[str, Any]:
    """One manifest for ``policy`` in ``flavor``.

    ``observed`` (first, last request of the flows) goes on a default-deny as
    ``analyzer.io/observed-window``, with ``analyzer.io/warning`` when shorter than a day.
    """
    _check(name_error(policy.name))
    _check(name_error(policy.namespace))
    metadata = {
        "name": policy.name,
        "namespace": policy.namespace,
        "labels": dict(MANAGED_BY),
        "annotations": _annotations(policy, observed),
    }
    if flavor == "cilium":
        return {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": metadata,
            "spec": _cilium_spec(policy),
        }
    if flavor == "calico":
        return {
            "apiVersion": "projectcalico.org/v3",
            "kind": "StagedKubernetesNetworkPolicy",
            "metadata": metadata,
            "spec": {"stagedAction": "Set", **_k8s_spec(policy)},
        }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": _k8s_spec(policy),
    }


def render(
    policies: Sequence[PolicySpec],
    flavor: Flavor = "kubernetes",
    *,
    observed: Window | None = None,
) -> list[dict[str, Any]]:
    """Manifests for ``policies`` in apply order (as given); see :func:`render_policy`."""
    if flavor not in FLAVORS:
        raise VerificationError(f"unknown flavour {flavor!r}")
    return [render_policy(p, flavor, observed=observed) for p in policies]


def to_yaml(manifests: Sequence[Mapping[str, Any]]) -> str:
    """Multi-document YAML for ``kubectl apply -f -``."""
    return safe_dump_all(
        list(manifests), sort_keys=False, default_flow_style=False, explicit_start=True
    )
