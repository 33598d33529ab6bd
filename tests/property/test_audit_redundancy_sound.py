"""Redundancy claims are sound: whenever the audit says one selector, port set or peer contains
another, every concrete label set, port or address the smaller one admits, the larger admits."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.audit.redundancy import peer_covered, ports_covered, selector_subset
from analyzer.policy.model import IPBlock, LabelRequirement, LabelSelector, PolicyPeer, PolicyPort

KEYS = ("app", "tier", "team")
VALUES = ("a", "b", "c")

requirements = st.one_of(
    st.builds(
        LabelRequirement,
        st.sampled_from(KEYS),
        st.sampled_from(("In", "NotIn")),
        st.lists(st.sampled_from(VALUES), min_size=1, max_size=3, unique=True).map(tuple),
    ),
    st.builds(LabelRequirement, st.sampled_from(KEYS), st.sampled_from(("Exists", "DoesNotExist"))),
)
selectors = st.builds(
    LabelSelector,
    st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2).map(
        lambda d: tuple(sorted(d.items()))
    ),
    st.lists(requirements, max_size=2).map(tuple),
)
label_sets = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3)


@settings(max_examples=300, deadline=None)
@given(selectors, selectors, st.lists(label_sets, min_size=1, max_size=30))
def test_selector_subset_is_sound(
    a: LabelSelector, b: LabelSelector, samples: list[dict[str, str]]
) -> None:
    if selector_subset(a, b):
        for labels in samples:
            assert not a.matches(labels) or b.matches(labels), (a, b, labels)


ports = st.builds(
    PolicyPort,
    st.sampled_from(("TCP", "UDP")),
    st.one_of(st.none(), st.integers(1, 40)),
    st.none(),
)
ranged = st.builds(
    lambda proto, lo, width: PolicyPort(proto, lo, lo + width if width else None),
    st.sampled_from(("TCP", "UDP")),
    st.integers(1, 40),
    st.integers(0, 10),
)
port_sets = st.one_of(
    st.none(), st.lists(st.one_of(ports, ranged), min_size=1, max_size=3).map(tuple)
)


def _admits(ps: tuple[PolicyPort, ...] | None, proto: str, port: int) -> bool:
    if not ps:
        return True
    for p in ps:
        if p.protocol != proto:
            continue
        if p.port is None:
            return True
        hi = p.end_port if p.end_port is not None else p.port
        if isinstance(p.port, int) and p.port <= port <= hi:
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(port_sets, port_sets)
def test_ports_covered_is_sound(
    a: tuple[PolicyPort, ...] | None, b: tuple[PolicyPort, ...] | None
) -> None:
    if ports_covered(a, b):
        for proto in ("TCP", "UDP"):
            for port in range(1, 52):
                assert not _admits(a, proto, port) or _admits(b, proto, port), (a, b, proto, port)


cidrs = st.builds(
    lambda third, prefix: str(ipaddress.ip_network(f"10.0.{third}.0/{prefix}", strict=False)),
    st.integers(0, 255),
    st.integers(16, 28),
)


def _block(cidr: str, excepts: list[str]) -> IPBlock:
    net = ipaddress.ip_network(cidr)
    # the loader refuses exceptions outside the CIDR; generate only valid blocks
    return IPBlock(cidr, tuple(e for e in excepts if ipaddress.ip_network(e).subnet_of(net)))


blocks = st.builds(_block, cidrs, st.lists(cidrs, max_size=2))


def _in_block(block: IPBlock, ip: ipaddress.IPv4Address) -> bool:
    if ip not in ipaddress.ip_network(block.cidr):
        return False
    return not any(ip in ipaddress.ip_network(e) for e in block.excepts)


@settings(max_examples=300, deadline=None)
@given(blocks, blocks, st.lists(st.integers(0, 2**16 - 1), min_size=1, max_size=40))
def test_cidr_cover_is_sound(a: IPBlock, b: IPBlock, offsets: list[int]) -> None:
    if peer_covered(PolicyPeer(ip_block=a), PolicyPeer(ip_block=b), {}):
        for off in offsets:
            ip = ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.0.0.0")) + off)
            assert not _in_block(a, ip) or _in_block(b, ip), (a, b, ip)
