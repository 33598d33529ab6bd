"""One namespace's policies from its peers and ports: default-deny, the DNS guardrail, one
ingress and one egress policy per group, rules folded by identical port sets."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from analyzer.recommend.merge import merge_owners, merge_peers
from analyzer.recommend.model import (
    DNS_NAMESPACE,
    DNS_SELECTORS,
    MANY_ADDRESSES,
    AllowedPeer,
    AllowRule,
    Direction,
    EdgeEvidence,
    Note,
    PolicySpec,
    Port,
    Selector,
    combine_evidence,
)
from analyzer.recommend.rule_peers import (
    _readable,
)


def _namespace_policies(
    ns: str,
    table: Mapping[tuple[str, Direction], Mapping[AllowedPeer, Mapping[Port, EdgeEvidence]]],
    owner_ns: Mapping[str, str],
    owner_sel: Mapping[str, Selector],
    targets: frozenset[str],
    notes: list[Note],
) -> list[PolicySpec]:
    from analyzer.recommend.render import policy_name, selector_base

    def internal(peer: AllowedPeer) -> bool:
        # A pod of a namespace we write policies for: default-deny plus exact egress rules
        # already close every path its egress did not use.
        return peer.kind == "pod" and all(n in targets for n in peer.namespaces)

    taken = {"allow-dns-egress", "default-deny"}
    out: list[PolicySpec] = [
        PolicySpec("allow-dns-egress", ns, "dns", ("egress",), Selector()),
    ]
    for direction in ("ingress", "egress"):
        tables: dict[str, dict[AllowedPeer, dict[Port, EdgeEvidence]]] = {}
        for (owner, d), peers in table.items():
            if d != direction or owner_ns[owner] != ns:
                continue
            kept = _without_guardrail(peers, direction)
            if kept:
                tables[owner] = kept
        items = []
        for owner, peers in sorted(tables.items()):
            # Egress merges only identical rule sets. Ingress may also merge groups whose rules
            # differ only in sources of these namespaces (the seed's allow-backend-ingress):
            # those sources' exact egress policies keep every unobserved path closed.
            # They must also serve the same ports, so that no group is opened on a port it
            # never served and the merged policy reads as one role.
            relaxed = direction == "ingress"
            shape = frozenset(
                (peer, port)
                for peer, ports in peers.items()
                for port in ports
                if not (relaxed and internal(peer))
            )
            served = frozenset(port for ports in peers.values() for port in ports)
            items.append((owner_sel[owner], owner, (shape, served)))
        for selector, owners in merge_owners(items):
            union: dict[AllowedPeer, dict[Port, EdgeEvidence]] = defaultdict(dict)
            for owner in owners:
                for peer, ports in tables[owner].items():
                    for port, ev in ports.items():
                        slot = union[peer]
                        slot[port] = slot[port].add(ev) if port in slot else ev
            name = policy_name(selector_base(selector), direction, taken)
            addresses = sum(1 for peer in union if peer.kind == "cidr")
            if addresses > MANY_ADDRESSES:
                notes.append(Note("info", ns, f"{name} lists {addresses} external addresses one "
                                  "by one; --ipblock-prefix N widens them to /N blocks"))
            if len(owners) > 1:
                _note_widened(notes, ns, name, owners, tables, union)
            out.append(
                PolicySpec(
                    name=name,
                    namespace=ns,
                    kind="allow",
                    directions=(direction,),
                    selector=selector,
                    rules=_rules(union),
                    groups=owners,
                )
            )
    out.append(PolicySpec("default-deny", ns, "default-deny", ("ingress", "egress"), Selector()))
    return out


def _note_widened(
    notes: list[Note],
    ns: str,
    name: str,
    owners: Sequence[str],
    tables: Mapping[str, Mapping[AllowedPeer, Mapping[Port, EdgeEvidence]]],
    union: Mapping[AllowedPeer, Mapping[Port, EdgeEvidence]],
) -> None:
    extra = sorted(
        {
            f"{peer.describe()} {port.protocol}/{port.port}"
            for owner in owners
            for peer, ports in union.items()
            for port in ports
            if port not in tables[owner].get(peer, {})
        }
    )
    if extra:
        shown = "; ".join(extra[:8]) + (f"; and {len(extra) - 8} more" if len(extra) > 8 else "")
        notes.append(
            Note(
                "info",
                ns,
                f"{name} admits at ingress some sources not seen for every selected group "
                f"({_readable(shown)}); those sources' own egress policies keep the "
                "unobserved paths closed",
            )
        )


def _without_guardrail(
    peers: Mapping[AllowedPeer, Mapping[Port, EdgeEvidence]], direction: str
) -> dict[AllowedPeer, dict[Port, EdgeEvidence]]:
    out: dict[AllowedPeer, dict[Port, EdgeEvidence]] = {}
    for peer, ports in peers.items():
        kept = {
            p: ev for p, ev in ports.items() if not _covered_by_dns_guardrail(peer, p, direction)
        }
        if kept:
            out[peer] = kept
    return out


def _covered_by_dns_guardrail(peer: AllowedPeer, port: Port, direction: str) -> bool:
    if direction != "egress" or peer.kind != "pod" or port.port != 53:
        return False
    if peer.namespaces != (DNS_NAMESPACE,) or port.protocol not in ("UDP", "TCP"):
        return False
    return any(peer.selector.match_labels == ((k, v),) for k, v in DNS_SELECTORS) or any(
        (k, v) in peer.selector.match_labels for k, v in DNS_SELECTORS
    )


def _rules(peers: Mapping[AllowedPeer, Mapping[Port, EdgeEvidence]]) -> tuple[AllowRule, ...]:
    """Group peers by identical port sets (no cross products), then merge peers per rule."""
    by_ports: dict[tuple[Port, ...], list[tuple[AllowedPeer, list[EdgeEvidence]]]]
    by_ports = defaultdict(list)
    for peer, ports in peers.items():
        by_ports[tuple(sorted(ports))].append((peer, list(ports.values())))
    rules = []
    for ports_key, members in by_ports.items():
        merged = merge_peers([m[0] for m in members])
        ev = combine_evidence(e for _, evs in members for e in evs)
        rules.append(AllowRule(peers=tuple(merged), ports=ports_key, evidence=ev))
    return tuple(sorted(rules, key=lambda r: (r.ports, r.peers)))
