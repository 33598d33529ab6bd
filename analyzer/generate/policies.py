"""The cluster's existing NetworkPolicies, with planted problems, and their ground truth.

``existing-policies.yaml`` is what ``kubectl get networkpolicy -A -o yaml`` prints (``kind:
List``). Only ``develop/allow-backend-ingress`` (the seed's contract) and
``develop/allow-backend-metrics`` were enforced while the flows were captured; the rest is the
repository's proposed set, and holds one planted example of each problem an audit should find:
an unused policy, an unused rule, broad rules, a redundant rule, an egress default-deny
without DNS, rules that would break observed paths, and namespaces without a default deny.
The seed's policy is tight and used: it must not be flagged.

``policies-truth.json`` names each planted problem. The paths a policy set would break are
not hand-written: :func:`blocked_paths` evaluates the policies against the traffic plan with
a small Kubernetes-semantics evaluator (pod selectors, namespace selectors, ipBlock, ports).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import yaml

from analyzer.generate.inventory import stable_uid
from analyzer.generate.model import APISERVER_IP, Endpoint, TrafficPath, Workload
from analyzer.generate.scenario import ENFORCED_POLICIES, Scenario

__all__ = ["existing_policies", "existing_policies_yaml", "policies_truth", "blocked_paths"]

_DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
_DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
_APISERVER_BLOCK = {"ipBlock": {"cidr": f"{APISERVER_IP}/32"}}
_PROMETHEUS = {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
_UNUSED_PEER = {  # planted: no namespace has team=analytics
    "namespaceSelector": {"matchLabels": {"team": "analytics"}},
    "podSelector": {"matchLabels": {"app": "reporting"}},
}


def _ns(name: str) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}


def _in(key: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": "In", "values": list(values)}]}


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def _specs(scenario: Scenario) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, name, spec) of every existing policy, in a stable order."""
    metrics_ports = sorted(
        {w.metrics_port for w in scenario.workloads if w.metrics_port and w.name != "prometheus"}
    )
    return [
        # The seed's contract, verbatim: tight and used.
        ("develop", "allow-backend-ingress", {
            "podSelector": _in("app", "backend", "backend-primary"),
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": _in("app", "frontend", "frontend-primary")}],
                 "ports": _tcp(8080)},
                {"from": [{"namespaceSelector": _ns("traefik")}], "ports": _tcp(8080)},
            ],
        }),
        ("develop", "allow-backend-metrics", {
            "podSelector": _in("app", "backend", "backend-primary"),
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": _ns("monitoring"),
                                   "podSelector": _PROMETHEUS}],
                         "ports": _tcp(9090)}],
        }),
        ("develop", "allow-frontend-ingress", {
            "podSelector": _in("app", "frontend", "frontend-primary"),
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"namespaceSelector": _ns("traefik")}], "ports": _tcp(80, 8080)},
                {"from": [{"namespaceSelector": _ns("monitoring"),
                           "podSelector": _PROMETHEUS}],
                 "ports": _tcp(8080, 9113)},
                {"from": [{"podSelector": {}}]},  # planted: every develop pod, every port
            ],
        }),
        ("develop", "allow-legacy-admin", {  # planted: selects no pod
            "podSelector": {"matchLabels": {"app": "legacy-admin"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                         "ports": _tcp(8080)}],
        }),
        ("production", "default-deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]}),
        ("production", "allow-api-ingress", {
            "podSelector": {"matchLabels": {"app": "api"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"namespaceSelector": _ns("develop"),
                           "podSelector": _in("app", "backend", "backend-primary")}],
                 "ports": _tcp(8080)},
                {"from": [{"namespaceSelector": _ns("develop"),  # planted: redundant
                           "podSelector": {"matchLabels": {"app": "backend"}}}],
                 "ports": _tcp(8080)},
                {"from": [{"namespaceSelector": _ns("monitoring"),
                           "podSelector": _PROMETHEUS}],
                 "ports": _tcp(9090)},
            ],
        }),
        ("production", "allow-db-ingress", {
            "podSelector": {"matchLabels": {"app": "postgres"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": _tcp(5432)},
                {"from": [_UNUSED_PEER], "ports": _tcp(5432)},
                {"from": [{"namespaceSelector": _ns("monitoring")}], "ports": _tcp(9187)},
            ],
        }),
        ("production", "allow-api-egress", {
            "podSelector": {"matchLabels": {"app": "api"}},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"podSelector": {"matchLabels": {"app": "postgres"}}}],
                 "ports": _tcp(5432)},
                {"to": [_DNS_PEER], "ports": _DNS_PORTS},
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]},  # planted: anywhere, any port
            ],
        }),
        ("monitoring", "default-deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]}),
        ("monitoring", "allow-prometheus-egress", {  # planted: no DNS rule for the namespace
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            "policyTypes": ["Egress"],
            "egress": [
                # planted: broad, every pod of every namespace
                {"to": [{"namespaceSelector": {}}], "ports": _tcp(*metrics_ports)},
                {"to": [_APISERVER_BLOCK], "ports": _tcp(6443)},
            ],
        }),
        ("traefik", "allow-traefik-egress", {  # planted: forgets the backends
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"namespaceSelector": _ns("develop"),
                         "podSelector": _in("app", "frontend", "frontend-primary")}],
                 "ports": _tcp(80, 8080)},
                {"to": [_DNS_PEER], "ports": _DNS_PORTS},
                {"to": [_APISERVER_BLOCK], "ports": _tcp(6443)},
            ],
        }),
    ]  # fmt: skip


def existing_policies(scenario: Scenario) -> dict[str, Any]:
    """The policies as the ``kind: List`` document kubectl prints."""
    created = scenario.config.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    items = []
    for i, (ns, name, spec) in enumerate(_specs(scenario)):
        items.append({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "creationTimestamp": created, "generation": 1, "name": name, "namespace": ns,
                "resourceVersion": str(52000 + 17 * i),
                "uid": stable_uid("networkpolicy", ns, name),
            },
            "spec": spec,
        })  # fmt: skip
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def existing_policies_yaml(scenario: Scenario) -> str:
    """:func:`existing_policies` as YAML."""
    return yaml.safe_dump(existing_policies(scenario), sort_keys=False, default_flow_style=False)


# --- a small evaluator, enough for the truth of these policies ------------------------------


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    for k, v in selector.get("matchLabels", {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(scenario: Scenario, peer: dict[str, Any], policy_ns: str, ep: Endpoint) -> bool:
    if "ipBlock" in peer:
        if ep.workload is not None or not ep.ips:
            return False  # ipBlock is meant for addresses outside the pod network
        net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
        return all(ipaddress.ip_address(ip) in net for ip in ep.ips)
    w = ep.workload
    if w is None:
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], scenario.namespace_labels(w.namespace)):
            return False
    elif w.namespace != policy_ns:
        return False
    return _selects(peer.get("podSelector"), w.labels)


def _port_matches(rule: dict[str, Any], path: TrafficPath) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(
        p.get("protocol", "TCP") == path.protocol and p.get("port") in (None, path.port)
        for p in ports
    )


def _types(spec: dict[str, Any]) -> list[str]:
    return list(spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else [])))


_Specs = list[tuple[str, str, dict[str, Any]]]


def rule_hits(
    scenario: Scenario, path: TrafficPath, specs: _Specs | None = None
) -> tuple[bool, list[str]]:
    """Whether the policy set allows ``path``, and the rules (``ns/name#ingress[i]``) used."""
    if specs is None:
        specs = _specs(scenario)
    hits: list[str] = []
    allowed = True
    for direction, subject, peer, peer_key, rules_key in (
        ("Egress", path.src, path.dst, "to", "egress"),
        ("Ingress", path.dst, path.src, "from", "ingress"),
    ):
        w = subject.workload
        if w is None:
            continue
        selecting = [
            (ns, name, spec) for ns, name, spec in specs
            if ns == w.namespace and direction in _types(spec)
            and _selects(spec.get("podSelector") or None, w.labels)
        ]  # fmt: skip
        if not selecting:
            continue
        if direction == "Ingress" and peer.kind == "host":
            continue  # node-local traffic (kubelet probes) is allowed by the CNI
        ok = False
        for ns, name, spec in selecting:
            for i, rule in enumerate(spec.get(rules_key, [])):
                peers = rule.get(peer_key)
                peer_ok = not peers or any(_peer_matches(scenario, p, ns, peer) for p in peers)
                if peer_ok and _port_matches(rule, path):
                    ok = True
                    hits.append(f"{ns}/{name}#{rules_key}[{i}]")
        allowed = allowed and ok
    return allowed, hits


def blocked_paths(scenario: Scenario) -> list[TrafficPath]:
    """Legitimate paths the existing policies, all applied, would deny."""
    specs = _specs(scenario)
    return [p for p in scenario.legit_paths if not rule_hits(scenario, p, specs)[0]]


def policies_truth(scenario: Scenario) -> dict[str, Any]:
    """Every planted problem with its category, plus the rules that must not be flagged."""
    specs = _specs(scenario)
    blocked = []
    used: set[str] = set()
    for p in scenario.legit_paths:
        allowed, hits = rule_hits(scenario, p, specs)
        used.update(hits)
        if not allowed:
            blocked.append(p)
    dns_blocked = [p.id for p in blocked if p.port == 53 and p.dst.workload is not None
                   and p.dst.workload.name == "coredns"]  # fmt: skip
    other_blocked = [p.id for p in blocked if p.id not in dns_blocked]
    problems: list[dict[str, Any]] = [
        {"category": "unused-policy", "policy": "develop/allow-legacy-admin", "rule": None,
         "detail": "selects app=legacy-admin: no pod has that label"},
        {"category": "unused-rule", "policy": "production/allow-db-ingress", "rule": "ingress[1]",
         "detail": "peer namespace team=analytics does not exist; no observed flow uses it"},
        {"category": "broad", "policy": "develop/allow-frontend-ingress", "rule": "ingress[2]",
         "kinds": ["pod-selector-any", "any-port"],
         "detail": "from podSelector {} without ports: any develop pod (debug too), any port"},
        {"category": "broad", "policy": "monitoring/allow-prometheus-egress", "rule": "egress[0]",
         "kinds": ["namespace-selector-any"],
         "detail": "to namespaceSelector {}: every pod of every namespace on the metrics ports"},
        {"category": "broad", "policy": "production/allow-api-egress", "rule": "egress[2]",
         "kinds": ["ipblock-any", "any-port"],
         "detail": "to ipBlock 0.0.0.0/0 with no ports; only api.sendgrid.com:443 is observed"},
        {"category": "redundant", "policy": "production/allow-api-ingress", "rule": "ingress[1]",
         "covered_by": "production/allow-api-ingress#ingress[0]",
         "detail": "app=backend from develop on 8080 is already allowed by ingress[0]"},
        {"category": "missing-dns", "policy": "monitoring/default-deny-egress", "rule": None,
         "namespace": "monitoring", "breaks": dns_blocked,
         "detail": "egress default-deny in monitoring and no rule allows DNS to kube-dns"},
        {"category": "would-break", "policy": "traefik/allow-traefik-egress", "rule": None,
         "breaks": other_blocked,
         "detail": "traefik egress allows only the frontends: observed traefik -> backends break"},
    ]  # fmt: skip
    problems += _no_default_deny(scenario, specs)
    clean = [
        {"policy": "develop/allow-backend-ingress", "rules": ["ingress[0]", "ingress[1]"],
         "detail": "the seed's contract: tight, every rule used"},
        {"policy": "develop/allow-backend-metrics", "rules": ["ingress[0]"],
         "detail": "Prometheus only, metrics port only, used"},
        {"policy": "production/allow-db-ingress", "rules": ["ingress[0]"],
         "detail": "api -> postgres 5432, used"},
        {"policy": "production/allow-api-ingress", "rules": ["ingress[0]"],
         "detail": "develop backends -> api 8080, used"},
    ]  # fmt: skip
    for entry in clean:
        for rule in entry["rules"]:
            if f"{entry['policy']}#{rule}" not in used:
                raise AssertionError(f"clean rule not used by any legit path: {entry} {rule}")
    return {
        "policies_file": "existing-policies.yaml",
        "enforced_during_capture": list(ENFORCED_POLICIES),
        "problems": problems,
        "clean": clean,
        "used_rules": sorted(used),
        "attack_paths_denied": [
            p.id for p in scenario.attack_paths if not rule_hits(scenario, p, specs)[0]
        ],
    }


def _no_default_deny(scenario: Scenario, specs: _Specs) -> list[dict[str, Any]]:
    """Namespaces and directions without a default-deny policy, and the workloads left open.

    ``open_workloads`` are selected by no policy of that direction (open to everything);
    when it is shorter than the namespace's workload list, other policies isolate the rest.
    """
    out = []
    by_ns: dict[str, list[Workload]] = {}
    for w in scenario.workloads:
        by_ns.setdefault(w.namespace, []).append(w)
    for ns in scenario.namespaces:
        workloads = by_ns.get(ns.name)
        if not workloads:
            continue
        for direction in ("Ingress", "Egress"):
            mine = [spec for pns, _, spec in specs if pns == ns.name and direction in _types(spec)]
            rules = direction.lower()
            if any(not spec.get("podSelector") and not spec.get(rules) for spec in mine):
                continue  # a default deny: every pod isolated, nothing allowed by it
            open_workloads = sorted(
                w.name for w in workloads
                if not any(_selects(spec.get("podSelector") or None, w.labels) for spec in mine)
            )  # fmt: skip
            out.append({
                "category": "no-default-deny", "namespace": ns.name,
                "direction": direction.lower(), "policy": None, "rule": None,
                "open_workloads": open_workloads,
                "system": ns.name == "kube-system",
                "detail": f"no default-deny policy for {direction.lower()} in {ns.name}; "
                          f"{len(open_workloads)} of {len(workloads)} workload(s) stay open",
            })  # fmt: skip
    return out
