"""Random policy pairs: what ``diff_policies`` claims about any concrete connection equals
evaluating OLD and NEW on that connection one by one (``policy.evaluate.evaluate``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "diff"))

from diff_helpers import (  # noqa: E402
    address_peers,
    check_against_engine,
    cluster_inventory,
    pod_peers,
    policies,
)

from analyzer.diff import diff_policies  # noqa: E402

APPS = ["frontend", "backend", "debug", "prometheus", "grafana", "api"]
CIDRS = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "192.168.1.0/24",
    "192.168.1.16/28",
    "0.0.0.0/0",
    "8.8.8.8/32",
]
EXCEPTS = {
    "10.0.0.0/8": ["10.1.0.0/16", "10.1.2.0/24"],
    "192.168.1.0/24": ["192.168.1.20/32"],
    "0.0.0.0/0": ["10.0.0.0/8"],
}


@st.composite
def peer(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["pod", "ns", "both", "ip", "allns"]))
    pods = {"matchLabels": {"app": draw(st.sampled_from(APPS))}}
    namespaces = {"matchLabels": {"env": draw(st.sampled_from(["dev", "ops", "prod"]))}}
    if kind == "pod":
        return {"podSelector": pods}
    if kind == "ns":
        return {"namespaceSelector": namespaces}
    if kind == "both":
        return {"namespaceSelector": namespaces, "podSelector": pods}
    if kind == "allns":
        return {"namespaceSelector": {}}
    cidr = draw(st.sampled_from(CIDRS))
    block: dict[str, Any] = {"cidr": cidr}
    if cidr in EXCEPTS and draw(st.booleans()):
        block["except"] = [draw(st.sampled_from(EXCEPTS[cidr]))]
    return {"ipBlock": block}


@st.composite
def port(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["one", "range", "named", "proto"]))
    proto = draw(st.sampled_from(["TCP", "UDP", "SCTP"]))
    if kind == "proto":
        return {"protocol": proto}
    if kind == "named":
        return {"protocol": "TCP", "port": draw(st.sampled_from(["metrics", "http"]))}
    low = draw(st.sampled_from([53, 80, 8000, 8080, 9090]))
    if kind == "range":
        return {
            "protocol": proto,
            "port": low,
            "endPort": low + draw(st.sampled_from([1, 10, 100])),
        }
    return {"protocol": proto, "port": low}


@st.composite
def rule(draw: st.DrawFn, key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out[key] = draw(st.lists(peer(), min_size=1, max_size=2))
    if draw(st.booleans()):
        out["ports"] = draw(st.lists(port(), min_size=1, max_size=2))
    return out


@st.composite
def policy(draw: st.DrawFn, index: int) -> dict[str, Any]:
    namespace = draw(st.sampled_from(["develop", "monitoring", "production"]))
    subject = draw(st.sampled_from([{}, {"matchLabels": {"app": draw(st.sampled_from(APPS))}}]))
    types = draw(st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    spec: dict[str, Any] = {"podSelector": subject, "policyTypes": types}
    if "Ingress" in types:
        spec["ingress"] = draw(st.lists(rule("from"), max_size=2))
    if "Egress" in types:
        spec["egress"] = draw(st.lists(rule("to"), max_size=2))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"p{index}", "namespace": namespace},
        "spec": spec,
    }


@st.composite
def policy_set(draw: st.DrawFn) -> str:
    count = draw(st.integers(min_value=0, max_value=3))
    return yaml.safe_dump_all([draw(policy(i)) for i in range(count)])


_EDGES = (1, 52, 53, 54, 80, 81, 90, 91, 7999, 8000, 8001, 8010, 8011, 8079, 8080, 8081)
_EDGES += (8090, 8091, 8100, 8101, 8180, 8181, 9090, 9091, 9100, 9101, 9190, 9191, 65535)
# Every boundary the strategies can draw (and its neighbours) for TCP; a sample for the others.
PORTS = [("TCP", p) for p in _EDGES] + [
    (proto, p) for proto in ("UDP", "SCTP") for p in (52, 53, 54, 80, 8080, 8081, 9090, 9191)
]
ADDRESSES = [
    "10.0.0.1",
    "10.1.0.5",
    "10.1.2.3",
    "10.2.0.0",
    "192.168.1.20",
    "192.168.1.17",
    "192.168.1.40",
    "8.8.8.8",
    "8.8.8.9",
    "1.1.1.1",
    "2001:db8::1",
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=policy_set(), new=policy_set(), mode=st.sampled_from(["kubernetes", "cilium"]))
def test_diff_equals_engine_on_every_concrete_connection(old: str, new: str, mode: str) -> None:
    old_p, new_p = policies(old), policies(new)
    inventory = cluster_inventory()
    diff = diff_policies(old_p, new_p, None, inventory=inventory, ipblock_mode=mode)
    peers = pod_peers(inventory) + address_peers(ADDRESSES)
    check_against_engine(diff, old_p, new_p, peers, PORTS, ipblock_mode=mode)
    c = diff.counts
    total = c.probes_newly_denied + c.probes_newly_allowed
    total += c.probes_unchanged_allowed + c.probes_unchanged_denied
    assert total == diff.universe.probes
    assert sum(ch.probes for ch in diff.changes()) == c.probes_newly_denied + c.probes_newly_allowed
