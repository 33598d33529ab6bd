"""Property tests: selectors against a naive reference, port ranges, frame vs single evaluation."""

from __future__ import annotations

import ipaddress
from typing import Any

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.policy.classes import ip_classes
from analyzer.policy.compile import IPPeers, PortRange, _range, compile_policies, ip_key
from analyzer.policy.evaluate import Endpoint, evaluate
from analyzer.policy.frame import evaluate_connections
from analyzer.policy.load import LoadResult, parse_documents
from analyzer.policy.validate import Collector, parse_selector

KEYS = st.sampled_from(["app", "tier", "env", "team", "example.com/role"])
VALUES = st.sampled_from(["a", "b", "c", "web", "db", ""])
LABELS = st.dictionaries(KEYS, VALUES, max_size=5)


@st.composite
def expressions(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
    expr: dict[str, Any] = {"key": draw(KEYS), "operator": op}
    if op in ("In", "NotIn"):
        expr["values"] = draw(st.lists(VALUES, min_size=1, max_size=3))
    return expr


SELECTORS = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": st.dictionaries(KEYS, VALUES, max_size=3),
        "matchExpressions": st.lists(expressions(), max_size=3),
    },
)


def naive_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Written from the API documentation, independently of the model."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if key not in labels or labels[key] != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], set(expr.get("values", []))
        has = key in labels
        ok = {
            "In": has and labels.get(key) in values,
            "NotIn": (not has) or labels[key] not in values,
            "Exists": has,
            "DoesNotExist": not has,
        }[op]
        if not ok:
            return False
    return True


@given(SELECTORS, LABELS)
def test_selector_matches_naive_reference(selector: dict[str, Any], labels: dict[str, str]) -> None:
    col = Collector("f", "p")
    parsed = parse_selector(selector, "spec.podSelector", col)
    assert parsed is not None and not col.problems
    assert parsed.matches(labels) == naive_matches(selector, labels)


@given(SELECTORS)
def test_generated_selectors_always_parse(selector: dict[str, Any]) -> None:
    col = Collector("f", "p")
    assert parse_selector(selector, "x", col) is not None
    assert parse_selector({}, "x", col) is not None and parse_selector({}, "x", col).is_empty  # type: ignore[union-attr]


@given(
    st.integers(1, 65535),
    st.integers(0, 2000),
    st.integers(1, 65535),
    st.sampled_from(["TCP", "UDP", "SCTP"]),
    st.sampled_from(["TCP", "UDP", "SCTP"]),
)
def test_port_range_inclusive(low: int, width: int, port: int, rule_proto: str, proto: str) -> None:
    high = min(65535, low + width)
    matcher = PortRange(rule_proto, low, high)
    assert matcher.matches(port, proto, {}) == (proto == rule_proto and low <= port <= high)


def _policy_doc(port: int, end: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"port": port}
    if end is not None:
        entry["endPort"] = end
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {"podSelector": {}, "ingress": [{"ports": [entry]}]},
    }


@given(st.integers(-5, 70000), st.one_of(st.none(), st.integers(-5, 70000)), st.integers(1, 65535))
def test_loaded_port_ranges(port: int, end: int | None, probe: int) -> None:
    result = LoadResult()
    parse_documents([_policy_doc(port, end)], "f.yaml", result)
    valid = 1 <= port <= 65535 and (end is None or port <= end <= 65535)
    assert bool(result.policies) == valid
    if not valid:
        assert result.problems and result.problems[0].field_path.startswith(
            "spec.ingress[0].ports[0]"
        )
        return
    compiled = compile_policies(result.policies)
    a, b = Endpoint(namespace="n", labels={}), Endpoint(namespace="n", labels={"x": "y"})
    expected = port <= probe <= (end if end is not None else port)
    assert evaluate(compiled, a, b, probe, "TCP").allowed == expected


_PODS = [
    Endpoint(namespace=ns, name=f"p{i}", labels=lab, ip=f"10.0.{j}.{i}")
    for j, ns in enumerate(["n", "m"])
    for i, lab in enumerate([{"app": "a"}, {"app": "b"}, {"app": "a", "tier": "x"}, {}])
]
_IPS = [
    Endpoint(kind="ip", ip=ip, entity="world") for ip in ("192.0.2.1", "10.0.0.1", "2001:db8::1")
]


@st.composite
def policies(draw: st.DrawFn) -> list[dict[str, Any]]:
    docs = []
    for i in range(draw(st.integers(0, 3))):
        peer = draw(
            st.sampled_from(
                [
                    {"podSelector": draw(SELECTORS)},
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "m"}}},
                    {"namespaceSelector": {}, "podSelector": draw(SELECTORS)},
                    {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}},
                ]
            )
        )
        rule: dict[str, Any] = {"from" if i % 2 == 0 else "to": [peer]}
        if draw(st.booleans()):
            rule["ports"] = [{"port": draw(st.sampled_from([80, 443])), "protocol": "TCP"}]
        section = "ingress" if i % 2 == 0 else "egress"
        docs.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"p{i}", "namespace": draw(st.sampled_from(["n", "m"]))},
                "spec": {"podSelector": draw(SELECTORS), section: [rule]},
            }
        )
    return docs


def _row(prefix: str, peer: Endpoint) -> dict[str, Any]:
    return {
        f"{prefix}_namespace": peer.namespace,
        f"{prefix}_pod": peer.name,
        f"{prefix}_labels": [f"{k}={v}" for k, v in peer.labels.items()]
        if peer.kind == "pod"
        else None,
        f"{prefix}_namespace_labels": [f"{k}={v}" for k, v in peer.namespace_labels.items()]
        if peer.kind == "pod"
        else None,
        f"{prefix}_ip": peer.ip,
        f"{prefix}_entity": peer.entity,
    }


@settings(max_examples=40, deadline=None)
@given(
    policies(),
    st.lists(
        st.tuples(
            st.sampled_from(_PODS + _IPS), st.sampled_from(_PODS), st.sampled_from([80, 443, 8080])
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_frame_evaluation_agrees_with_single(docs: list[dict[str, Any]], conns: list[Any]) -> None:
    result = LoadResult()
    parse_documents(docs, "f.yaml", result)
    compiled = compile_policies(result.policies)
    rows = [
        {**_row("src", s), **_row("dst", d), "protocol": "TCP", "dst_port": p} for s, d, p in conns
    ]
    frame = pl.DataFrame(
        rows,
        schema_overrides={
            c: pl.List(pl.String)
            for c in ("src_labels", "dst_labels", "src_namespace_labels", "dst_namespace_labels")
        },
    )
    out = evaluate_connections(compiled, frame)
    for (s, d, p), row in zip(conns, out.iter_rows(named=True), strict=True):
        single = evaluate(compiled, s, d, p, "TCP")
        assert row["allowed"] == single.allowed
        assert row["ingress_rules"] == [str(r) for r in single.ingress.allowed_by]
        assert row["egress_rules"] == [str(r) for r in single.egress.allowed_by]


@st.composite
def cidrs(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        addr = draw(st.ip_addresses(v=4))
        return str(ipaddress.ip_network(f"{addr}/{draw(st.integers(0, 32))}", strict=False))
    addr = draw(st.ip_addresses(v=6))
    return str(ipaddress.ip_network(f"{addr}/{draw(st.integers(0, 128))}", strict=False))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(cidrs(), min_size=1, max_size=4),
    st.lists(
        st.one_of(st.ip_addresses().map(str), st.sampled_from(["bogus", "010.1.1.1", ""])),
        min_size=1,
        max_size=40,
    ),
)
def test_vectorised_address_classes_match_exact_matching(nets: list[str], ips: list[str]) -> None:
    blocks = tuple(IPPeers(n, (), False, (_range(n),), ()) for n in nets) + tuple(
        # A block with its first /2 (or /66) carved out, to exercise except ranges.
        IPPeers(n, (), False, (_range(n),), (_range(_carve(n)),))
        for n in nets
    )
    classes = ip_classes(ips, blocks)
    for ip, cls in zip(ips, classes, strict=True):
        bits = np.unpackbits(np.frombuffer(bytes.fromhex(cls), dtype=np.uint8))[: len(blocks)]
        assert [bool(b) for b in bits] == [b.matches_ip(ip_key(ip)) for b in blocks], ip


def _carve(net: str) -> str:
    n = ipaddress.ip_network(net)
    return str(next(n.subnets(prefixlen_diff=min(2, n.max_prefixlen - n.prefixlen))))
