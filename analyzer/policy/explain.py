"""Explain a verdict in sentences: who selects each side, what allowed it, or what is missing.

For a denied direction, each selecting policy contributes its closest rule (the one that comes
nearest to admitting the connection) and what that rule lacks, e.g. "policy
develop/allow-backend-ingress selects the destination for ingress; its rule ingress[0] admits
pods with app In (frontend, frontend-primary) in namespace develop on TCP 8080, but the source
has app=debug".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analyzer.policy.compile import (
    AllPeers,
    AllPorts,
    CompiledPolicies,
    CompiledPolicy,
    CompiledRule,
    EntityPeers,
    IPPeers,
    NamedPort,
    NamedPorts,
    NoPeers,
    PeerMatcher,
    PodPeers,
    PortMatcher,
    ProtocolPorts,
    ip_key,
)
from analyzer.policy.evaluate import (
    DirectionVerdict,
    Endpoint,
    Verdict,
    evaluate,
    selecting_policies,
)
from analyzer.policy.model import EGRESS, INGRESS, LabelSelector

__all__ = ["Explanation", "explain", "describe_peer", "describe_port"]


@dataclass(frozen=True, slots=True)
class DirectionExplanation:
    direction: str
    verdict: DirectionVerdict
    sentences: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    """A verdict and the sentences that justify it."""

    src: Endpoint
    dst: Endpoint
    port: int | None
    protocol: str
    verdict: Verdict
    directions: tuple[DirectionExplanation, ...] = field(default=())

    def text(self) -> str:
        head = "ALLOWED" if self.verdict.allowed else "DENIED"
        lines = [f"{head}: {self.src.display} -> {self.dst.display} {self.protocol} {self.port}"]
        for d in self.directions:
            state = "allowed" if d.verdict.allowed else "DENIED"
            lines.append(f"{d.direction.lower()}: {state}")
            lines += [f"  - {s}" for s in d.sentences]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "src": self.src.display,
            "dst": self.dst.display,
            "port": self.port,
            "protocol": self.protocol,
            "allowed": self.verdict.allowed,
            **{
                d.direction.lower(): {
                    "allowed": d.verdict.allowed,
                    "applies": d.verdict.applies,
                    "isolated": d.verdict.isolated,
                    "selecting": list(d.verdict.selecting),
                    "allowed_by": [str(r) for r in d.verdict.allowed_by],
                    "explanation": list(d.sentences),
                }
                for d in self.directions
            },
        }


def explain(
    compiled: CompiledPolicies,
    src: Endpoint,
    dst: Endpoint,
    port: int | None,
    protocol: str = "TCP",
) -> Explanation:
    """Evaluate ``src -> dst`` and explain each direction (egress first, then ingress)."""
    protocol = protocol.upper()
    verdict = evaluate(compiled, src, dst, port, protocol)
    parts = []
    for direction, dv, subject, other in (
        (EGRESS, verdict.egress, src, dst),
        (INGRESS, verdict.ingress, dst, src),
    ):
        sentences = _direction(compiled, direction, dv, subject, other, port, protocol, dst.ports)
        parts.append(DirectionExplanation(direction, dv, tuple(sentences)))
    return Explanation(src, dst, port, protocol, verdict, tuple(parts))


def _direction(
    compiled: CompiledPolicies,
    direction: str,
    dv: DirectionVerdict,
    subject: Endpoint,
    other: Endpoint,
    port: int | None,
    protocol: str,
    named: NamedPorts,
) -> list[str]:
    if not dv.isolated:
        return [dv.reason]
    word = direction.lower()
    role = "destination" if direction == INGRESS else "source"
    other_role = "source" if direction == INGRESS else "destination"
    allowed = {str(r) for r in dv.allowed_by}
    out = []
    for cp in selecting_policies(compiled, subject, direction):
        rules = (cp.ingress if direction == INGRESS else cp.egress) or ()
        head = f"policy {cp.key} selects the {role} for {word}"
        hits = [r for r in rules if r.ref in allowed]
        if hits:
            for rule in hits:
                out.append(
                    f"{head}; its rule {word}[{rule.index}] admits "
                    f"{_rule_text(rule, other_role, cp)}, which matches"
                )
            continue
        if not rules:
            out.append(f"{head} and has no {word} rules, so it allows no {word} at all")
            continue
        rule, lacks = _closest(rules, other, other_role, port, protocol, named, compiled, cp)
        out.append(
            f"{head}; its rule {word}[{rule.index}] admits {_rule_text(rule, other_role, cp)}, "
            f"but {lacks}"
        )
    if not dv.allowed:
        out.append(f"no {word} rule admits {other.display} on {protocol} {port}, so it is denied")
    return out


def _rule_text(rule: CompiledRule, other_role: str, cp: CompiledPolicy) -> str:
    peers = " or ".join(describe_peer(p, other_role) for p in rule.peers)
    ports = " or ".join(describe_port(p) for p in rule.ports)
    return f"{peers} on {ports}"


def describe_peer(peer: PeerMatcher, role: str = "peer") -> str:
    """A peer matcher in words."""
    if isinstance(peer, AllPeers):
        return f"any {role}"
    if isinstance(peer, NoPeers):
        return "no peer (the rule selects nothing it can evaluate)"
    if isinstance(peer, IPPeers):
        text = f"addresses in {peer.cidr}"
        if peer.excepts:
            text += f" except {', '.join(peer.excepts)}"
        return text
    if isinstance(peer, EntityPeers):
        return f"entities {', '.join(sorted(peer.entities))}"
    pods = "all pods" if peer.pod_selector.is_empty else f"pods with {peer.pod_selector.describe()}"
    if peer.namespace is not None:
        return f"{pods} in namespace {peer.namespace}"
    if peer.namespace_selector is None:
        return f"{pods} in any namespace"
    if peer.namespace_selector.is_empty:
        return f"{pods} in all namespaces"
    return f"{pods} in namespaces with {peer.namespace_selector.describe()}"


def describe_port(port: PortMatcher) -> str:
    """A port matcher in words."""
    if isinstance(port, AllPorts):
        return "any port"
    if isinstance(port, ProtocolPorts):
        return f"any {port.protocol} port"
    if isinstance(port, NamedPort):
        return f"{port.protocol} port named {port.name}"
    if port.low == port.high:
        return f"{port.protocol} {port.low}"
    return f"{port.protocol} {port.low}-{port.high}"


def _closest(
    rules: tuple[CompiledRule, ...],
    other: Endpoint,
    other_role: str,
    port: int | None,
    protocol: str,
    named: NamedPorts,
    compiled: CompiledPolicies,
    cp: CompiledPolicy,
) -> tuple[CompiledRule, str]:
    best: tuple[int, CompiledRule, str] | None = None
    for rule in rules:
        missing: list[str] = []
        cost = 0
        if not rule.peer_matches(other, compiled.ipblock_mode):
            gaps = [_peer_gap(p, other, other_role, compiled.ipblock_mode) for p in rule.peers]
            cost_gap = min(gaps, key=lambda g: g[0])
            cost += cost_gap[0]
            missing.append(cost_gap[1])
        if not rule.port_matches(port, protocol, named):
            cost += 1
            missing.append(_port_gap(rule.ports, port, protocol, named, other_role))
        text = " and ".join(missing) or "it matches"
        if best is None or cost < best[0]:
            best = (cost, rule, text)
    assert best is not None
    return best[1], best[2]


def _peer_gap(peer: PeerMatcher, other: Endpoint, role: str, mode: str) -> tuple[int, str]:
    if isinstance(peer, NoPeers):
        return 100, "it admits no peer"
    if isinstance(peer, IPPeers):
        key = ip_key(other.ip)
        if not peer.applies_to(other, mode):
            return (1 if peer.matches_ip(key) else 10), (
                f"the {role} {other.display} is inside the cluster and ipBlock applies only to "
                "external addresses (Cilium reading)"
            )
        if key is None:
            return 10, f"the {role} {other.display} has no known IP address"
        if peer.matches_ip(key):
            return 0, ""
        inside = IPPeers(peer.cidr, (), False, peer.ranges, ()).matches_ip(key)
        if inside:
            return 1, f"{other.ip} is excluded by the except list ({', '.join(peer.excepts)})"
        return 5, f"{other.ip} is not in {peer.cidr}"
    if isinstance(peer, EntityPeers):
        entity = other.entity or ("pod" if other.kind == "pod" else "world")
        return 5, f"the {role} is entity {entity}"
    if isinstance(peer, AllPeers):
        return 0, ""
    assert isinstance(peer, PodPeers)
    if other.kind != "pod":
        return 10, f"the {role} {other.display} is not a pod"
    gaps: list[str] = []
    if peer.namespace is not None and other.namespace != peer.namespace:
        gaps.append(f"the {role} is in namespace {other.namespace}, not {peer.namespace}")
    if peer.namespace_selector is not None:
        lacks = _selector_gaps(peer.namespace_selector, other.namespace_labels)
        if lacks:
            gaps.append(f"the {role}'s namespace {other.namespace} has " + ", ".join(lacks))
    lacks = _selector_gaps(peer.pod_selector, other.labels)
    if lacks:
        gaps.append(f"the {role} has " + ", ".join(lacks))
    return len(gaps) + sum(g.count(",") for g in gaps), " and ".join(gaps)


def _selector_gaps(selector: LabelSelector, labels: dict[str, str] | Any) -> list[str]:
    out = []
    for req in selector.requirements():
        if req.matches(labels):
            continue
        if req.key in labels:
            out.append(f"{req.key}={labels[req.key]}")
        else:
            out.append(f"no {req.key} label")
    return out


def _port_gap(
    ports: tuple[PortMatcher, ...], port: int | None, protocol: str, named: NamedPorts, role: str
) -> str:
    for p in ports:
        if isinstance(p, NamedPort) and p.protocol == protocol:
            found = named.get(p.name)
            if not found:
                return f"the destination has no container port named {p.name}"
            numbers = ", ".join(f"{n}/{proto}" for n, proto in found)
            return f"the destination's port {p.name} is {numbers}, not {port}/{protocol}"
    protos = {p.protocol for p in ports if not isinstance(p, AllPorts)}
    if protocol not in protos:
        return f"the connection is {protocol}, not {' or '.join(sorted(protos))}"
    return f"the connection is on {protocol} {port}"
