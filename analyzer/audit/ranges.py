"""The cluster's own address ranges, and ipBlock peers that point into them.

An ipBlock is meant for addresses outside the cluster. Pointed at pods it selects them by
addresses that change whenever a pod is rescheduled, and CNIs disagree on it (Kubernetes' e2e
tests expect a match, Cilium never matches pods by CIDR). Pointed at the Service range it never
matches at all: policies see the pod address after the Service address is translated.

Pod addresses are learned from what the audit knows: every pod seen in the flows or listed in
``--inventory`` with its IP (host-network pods excluded: their address is the node's). Service
ranges cannot be seen in flows (they are translated before policy); they come from
``--service-cidr`` (e.g. ``10.96.0.0/12``, kubeadm's default).
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Sequence

from analyzer.audit.findings import Finding, Replacement
from analyzer.audit.universe import Pod, Universe
from analyzer.errors import UsageError
from analyzer.policy.compile import CompiledPolicy, IPPeers, ip_key

__all__ = ["ClusterRanges", "cluster_range_findings", "parse_service_cidrs"]

# Blocks this wide are "everything" blocks: broad-rule and metadata-egress judge those.
_MIN_PREFIX = {4: 8, 6: 32}
_EXAMPLES = 4

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_service_cidrs(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    """``--service-cidr`` values as networks (UsageError for anything else)."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise UsageError(f"--service-cidr {value[:60]!r} is not a CIDR") from exc
    return tuple(out)


class ClusterRanges:
    """Known pod addresses (sorted, for range lookups) and the Service ranges."""

    def __init__(self, universe: Universe, service_cidrs: Sequence[IPNetwork] = ()) -> None:
        pods: list[tuple[int, int, Pod]] = []
        for pod in universe.pods:
            key = ip_key(pod.ip)
            if key is not None and not pod.host_network:
                pods.append((key[0], key[1], pod))
        pods.sort(key=lambda t: (t[0], t[1], t[2].key))
        self._keys = [(v, a) for v, a, _ in pods]
        self._pods = [p for _, _, p in pods]
        self.services = tuple(service_cidrs)

    def pods_in(self, block: IPPeers) -> list[Pod]:
        """Known pods whose address the block (minus its exceptions) contains, in any mode."""
        out: list[Pod] = []
        for version, lo, hi in block.ranges:
            start = bisect.bisect_left(self._keys, (version, lo))
            end = bisect.bisect_right(self._keys, (version, hi))
            for (v, value), pod in zip(self._keys[start:end], self._pods[start:end], strict=True):
                if not any(
                    ev == v and elo <= value <= ehi for ev, elo, ehi in block.except_ranges
                ):
                    out.append(pod)
        return out

    def services_in(self, cidr: str) -> list[str]:
        net = ipaddress.ip_network(cidr, strict=False)
        return [str(s) for s in self.services if s.version == net.version and s.overlaps(net)]

    def inside_cluster(self, cidr: str) -> bool:
        """Whether a block holds known pod addresses or overlaps a Service range."""
        net = ipaddress.ip_network(cidr, strict=False)
        lo, hi = int(net.network_address), int(net.broadcast_address)
        start = bisect.bisect_left(self._keys, (net.version, lo))
        inside = start < len(self._keys) and self._keys[start] <= (net.version, hi)
        return inside or bool(self.services_in(cidr))


def cluster_range_findings(
    policies: Sequence[CompiledPolicy], ranges: ClusterRanges, mode: str
) -> list[Finding]:
    """``ipblock-cluster-range``: ipBlock peers holding pod addresses or Service ranges."""
    findings: list[Finding] = []
    for cp in policies:
        for direction, rules in (("ingress", cp.policy.ingress), ("egress", cp.policy.egress)):
            compiled = {r.index: r for r in (getattr(cp, direction) or ())}
            for index in range(len(rules)):
                rule = compiled.get(index)
                if rule is None:
                    continue  # ignored direction: ignored-rules reports it
                for block in (m for m in rule.peers if isinstance(m, IPPeers)):
                    finding = _block_finding(cp, direction, index, block, ranges, mode)
                    if finding is not None:
                        findings.append(finding)
    return findings


def _block_finding(
    cp: CompiledPolicy, direction: str, index: int, block: IPPeers, ranges: ClusterRanges,
    mode: str,
) -> Finding | None:
    net = ipaddress.ip_network(block.cidr, strict=False)
    if net.prefixlen < _MIN_PREFIX[net.version]:
        return None
    pods = ranges.pods_in(block)
    services = ranges.services_in(block.cidr)
    if not pods and not services:
        return None
    parts = []
    if pods:
        names = sorted({p.key for p in pods})
        shown = ", ".join(names[:_EXAMPLES]) + (
            f" and {len(names) - _EXAMPLES} more" if len(names) > _EXAMPLES else ""
        )
        ignored = block.external_only or mode == "cilium"
        parts.append(
            f"holds the addresses of {len(names)} known pod(s) ({shown}): "
            + (
                "Cilium never matches pods by CIDR, so for them this peer admits nothing"
                if ignored else
                "it selects pods by addresses that change when they are rescheduled, and "
                "CNIs disagree on whether ipBlock matches pods at all (Cilium does not)"
            )
        )
    if services:
        parts.append(
            f"overlaps the Service range {', '.join(services)}: policies see the pod address "
            "after the Service address is translated, so Service addresses never match"
        )
    peer_word = "from" if direction == "ingress" else "to"
    return Finding(
        severity="medium",
        category="ipblock-cluster-range",
        policy=cp.key,
        rule=f"spec.{direction}[{index}]",
        namespace=cp.namespace,
        direction=direction,
        explanation=f"ipBlock {block.cidr} {'; it '.join(parts)}",
        replacement=Replacement(
            action="edit",
            note=(
                f"select those pods in `{peer_word}` with podSelector (and namespaceSelector in "
                "the same element for other namespaces); keep ipBlock for addresses outside "
                "the cluster"
            ),
            manifest=None,
            source="analyzer.audit",
        ),
        evidence={
            "cidr": block.cidr,
            "pods": sorted({p.key for p in pods})[:50],
            "pod_count": len({p.key for p in pods}),
            "service_ranges": services,
        },
    )
