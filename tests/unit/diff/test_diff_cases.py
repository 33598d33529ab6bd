"""Policy pairs with known changes: the diff must list exactly the hand-written changes, and
agree with evaluating OLD and NEW connection by connection at every concrete point tried."""

from __future__ import annotations

import pytest
from diff_helpers import (
    address_peers,
    check_against_engine,
    cluster_inventory,
    pod_peers,
    policies,
    summary,
)

from analyzer.diff import diff_policies
from analyzer.policy.evaluate import Endpoint

ALL = ("TCP 1-65535", "UDP 1-65535", "SCTP 1-65535")

BACKEND_INGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-ingress, namespace: develop}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{port: 8080}]
  - from:
    - namespaceSelector: {matchLabels: {env: ops}}
      podSelector: {matchLabels: {app: prometheus}}
    ports: [{port: 9090}]
"""

WIDENED_PORT = BACKEND_INGRESS.replace(
    "ports: [{port: 8080}]", "ports: [{port: 8080, endPort: 8090}]"
)
WIDENED_PEER = BACKEND_INGRESS.replace(
    "{podSelector: {matchLabels: {app: frontend}}}",
    "{podSelector: {matchExpressions: [{key: app, operator: In, values: [frontend, debug]}]}}",
)
DROPPED = BACKEND_INGRESS.split("  - from:\n    - namespaceSelector")[0]
# One peer element with both selectors (AND) becomes two elements (OR).
AND_TO_OR = BACKEND_INGRESS.replace(
    "      podSelector: {matchLabels: {app: prometheus}}",
    "    - podSelector: {matchLabels: {app: prometheus}}",
)
RANGE_OLD = BACKEND_INGRESS.replace("ports: [{port: 8080}]", "ports: [{port: 8000, endPort: 8100}]")
RANGE_NEW = BACKEND_INGRESS.replace("ports: [{port: 8080}]", "ports: [{port: 8050, endPort: 8200}]")

EGRESS_BLOCK = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend-egress, namespace: develop}
spec:
  podSelector: {matchLabels: {app: backend}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/8}}]
"""
EGRESS_EXCEPT = EGRESS_BLOCK.replace(
    "{ipBlock: {cidr: 10.0.0.0/8}}", "{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}"
)

TYPES_OLD = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: backend, namespace: develop}
spec:
  podSelector: {matchLabels: {app: backend}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{port: 8080}]
  egress:
  - to: [{namespaceSelector: {}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]
    ports: [{port: 53, protocol: UDP}]
"""
TYPES_NEW = TYPES_OLD.replace("policyTypes: [Ingress]", "policyTypes: [Ingress, Egress]")

FRONTEND = "develop:{app=frontend}"
BACKEND = "develop:{app=backend}"
KUBE_DNS = "kube-system:{k8s-app=kube-dns}"
# Every pod identity of the cluster (diff_helpers.PODS), for "everything" expectations.
IDENTITIES = [
    "develop:{app=backend}",
    "develop:{app=debug}",
    "develop:{app=frontend}",
    "develop:{app=prometheus}",
    "kube-system:{k8s-app=kube-dns}",
    "monitoring:{app=grafana}",
    "monitoring:{app=prometheus}",
    "production:{app=api}",
]

CASES = {
    "rule widened (port range)": (
        BACKEND_INGRESS,
        WIDENED_PORT,
        {("newly_allowed", FRONTEND, BACKEND, ("TCP 8081-8090",))},
    ),
    "rule widened (peer)": (
        BACKEND_INGRESS,
        WIDENED_PEER,
        {("newly_allowed", "develop:{app=debug}", BACKEND, ("TCP 8080",))},
    ),
    "rule dropped": (
        BACKEND_INGRESS,
        DROPPED,
        {("newly_denied", "monitoring:{app=prometheus}", BACKEND, ("TCP 9090",))},
    ),
    "namespaceSelector AND -> OR": (
        BACKEND_INGRESS,
        AND_TO_OR,
        {
            ("newly_allowed", "monitoring:{app=grafana}", BACKEND, ("TCP 9090",)),
            ("newly_allowed", "develop:{app=prometheus}", BACKEND, ("TCP 9090",)),
        },
    ),
    "port range changed": (
        RANGE_OLD,
        RANGE_NEW,
        {
            ("newly_denied", FRONTEND, BACKEND, ("TCP 8000-8049",)),
            ("newly_allowed", FRONTEND, BACKEND, ("TCP 8101-8200",)),
        },
    ),
    "ipBlock except added": (
        EGRESS_BLOCK,
        EGRESS_EXCEPT,
        {
            ("newly_denied", BACKEND, "10.1.0.0/16", ALL),
            # kubernetes ipBlock semantics: a pod address inside the exception is cut off too
            ("newly_denied", BACKEND, "production:{app=api}", ALL),
        },
    ),
    "policyTypes gains Egress": (
        TYPES_OLD,
        TYPES_NEW,
        # backend -> backend stays denied: backend's ingress admits only frontend
        {("newly_denied", BACKEND, d, ALL) for d in IDENTITIES if d not in (BACKEND, KUBE_DNS)}
        | {
            (
                "newly_denied",
                BACKEND,
                KUBE_DNS,
                ("TCP 1-65535", "UDP 1-52", "UDP 54-65535", "SCTP 1-65535"),
            ),
            ("newly_denied", BACKEND, "0.0.0.0/0, ::/0", ALL),
        },
    ),
}

# Concrete points: every rule boundary and its neighbours, plus ports no rule names.
PORTS = [
    (proto, port)
    for proto in ("TCP", "UDP", "SCTP")
    for port in (
        1,
        52,
        53,
        54,
        7999,
        8000,
        8049,
        8050,
        8079,
        8080,
        8081,
        8090,
        8091,
        8100,
        8101,
        8200,
        8201,
        9089,
        9090,
        9091,
        40000,
        65535,
    )
]
ADDRESSES = [
    "10.0.0.1",
    "10.1.0.5",
    "10.1.255.255",
    "10.2.0.0",
    "9.255.255.255",
    "8.8.8.8",
    "192.168.1.20",
    "2001:db8::1",
]


@pytest.mark.parametrize("name", sorted(CASES))
def test_known_changes_are_exactly_listed(name: str) -> None:
    old_text, new_text, expected = CASES[name]
    old, new = policies(old_text), policies(new_text)
    inventory = cluster_inventory()
    diff = diff_policies(old, new, None, inventory=inventory)
    assert summary(diff) == expected
    peers = pod_peers(inventory) + address_peers(ADDRESSES)
    assert check_against_engine(diff, old, new, peers, PORTS) > 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_known_changes_agree_with_engine_in_cilium_mode(name: str) -> None:
    old_text, new_text, _ = CASES[name]
    old, new = policies(old_text), policies(new_text)
    inventory = cluster_inventory()
    diff = diff_policies(old, new, None, inventory=inventory, ipblock_mode="cilium")
    peers = pod_peers(inventory) + address_peers(ADDRESSES)
    check_against_engine(diff, old, new, peers, PORTS, ipblock_mode="cilium")


def test_cilium_ipblock_mode_spares_pods_inside_the_exception() -> None:
    old, new = policies(EGRESS_BLOCK), policies(EGRESS_EXCEPT)
    diff = diff_policies(old, new, None, inventory=cluster_inventory(), ipblock_mode="cilium")
    assert summary(diff) == {("newly_denied", BACKEND, "10.1.0.0/16", ALL)}


def test_identical_sets_change_nothing_and_count_every_probe() -> None:
    old = policies(BACKEND_INGRESS)
    diff = diff_policies(old, old, None, inventory=cluster_inventory())
    assert not diff.counts.changed and not list(diff.changes())
    counts = diff.counts
    assert counts.probes_unchanged_allowed + counts.probes_unchanged_denied == diff.universe.probes
    # 8 pod identities and 2 address classes (no ipBlock): pairs with a pod end
    pairs = 8 * 8 + 2 * 8 * 2
    assert diff.universe.probes == pairs * diff.universe.port_classes


def test_named_port_resolves_on_the_destination() -> None:
    """A rule naming ``metrics`` admits 9090 on backend (which declares it) and nothing on
    pods that do not declare it."""
    named = BACKEND_INGRESS.replace("ports: [{port: 9090}]", "ports: [{port: metrics}]")
    widened = named.replace("podSelector: {matchLabels: {app: backend}}", "podSelector: {}", 1)
    old, new = policies(named), policies(widened)
    inventory = cluster_inventory()
    diff = diff_policies(old, new, None, inventory=inventory)
    peers = pod_peers(inventory)
    check_against_engine(diff, old, new, peers, PORTS)
    # Every develop pod but backend becomes isolated: prometheus keeps nothing (no metrics
    # port on them) and frontend's 8080 is now the only way in.
    kinds = {c.kind for c in diff.changes()}
    assert kinds == {"newly_denied"}


EGRESS_NAMED = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: frontend-egress, namespace: develop}
spec:
  podSelector: {matchLabels: {app: frontend}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {}}]
    ports: [{port: metrics}]
"""


def test_egress_named_port_resolves_on_each_destination() -> None:
    """Only backend declares ``metrics`` (9090): isolating frontend's egress to the named port
    keeps frontend -> backend on 9090 and denies 9090 to every other develop pod."""
    old, new = policies(BACKEND_INGRESS), policies(BACKEND_INGRESS + "---" + EGRESS_NAMED)
    inventory = cluster_inventory()
    diff = diff_policies(old, new, None, inventory=inventory)
    check_against_engine(diff, old, new, pod_peers(inventory), PORTS)
    to_debug = [c for c in diff.newly_denied if c.dst_display == "develop:{app=debug}"]
    assert [c.ports for c in to_debug if c.src_display == FRONTEND] == [ALL]
    to_backend = [
        c for c in diff.newly_denied if (c.src_display, c.dst_display) == (FRONTEND, BACKEND)
    ]
    # frontend -> backend was allowed only on 8080 by backend's ingress; NEW's egress admits
    # just 9090, which backend's ingress never admitted from frontend: 8080 is newly denied.
    assert [c.ports for c in to_backend] == [("TCP 8080",)]


CILIUM_OLD = """
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: backend, namespace: develop}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEntities: [cluster]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
  egress:
  - toEntities: [world]
  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system}}]
    toPorts: [{ports: [{port: "53", protocol: ANY}]}]
"""
CILIUM_NEW = CILIUM_OLD.replace(
    "fromEntities: [cluster]", "fromEntities: [host, remote-node]"
).replace("toEntities: [world]", "toEntities: [kube-apiserver]")


def test_cilium_entities_agree_with_engine() -> None:
    """Cilium entities (cluster, world, host, remote-node, kube-apiserver) are endpoints of
    their own; the diff agrees with the engine on each of them and on addresses."""
    old, new = policies(CILIUM_OLD), policies(CILIUM_NEW)
    inventory = cluster_inventory()
    diff = diff_policies(old, new, None, inventory=inventory, ipblock_mode="cilium")
    assert diff.universe.entities >= 3
    entities = [
        Endpoint(kind="ip", entity=e, ip=None)
        for e in ("host", "remote-node", "kube-apiserver", "health", "ingress")
    ]
    peers = pod_peers(inventory) + address_peers(ADDRESSES) + entities
    check_against_engine(diff, old, new, peers, PORTS, ipblock_mode="cilium")
    summary_set = summary(diff)
    assert ("newly_denied", "develop:{app=frontend}", BACKEND, ("TCP 8080",)) in summary_set
    assert ("newly_allowed", BACKEND, "entity:kube-apiserver", ALL) in summary_set
