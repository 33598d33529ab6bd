"""One NetworkPolicy manifest into the model: metadata, spec, rules, peers and ports, each
problem reported with its field path (``spec.ingress[0].from[1]``)."""

from __future__ import annotations

from typing import Any

from analyzer.policy.model import (
    EGRESS,
    INGRESS,
    NetworkPolicy,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
)
from analyzer.policy.validate import (
    OBJECT_FIELDS,
    Collector,
    check_fields,
    check_metadata,
    parse_ip_block,
    parse_port_value,
    parse_protocol,
    parse_selector,
)


def parse_networkpolicy(
    doc: dict[str, Any], col: Collector, *, kind: str = "NetworkPolicy"
) -> NetworkPolicy | None:
    """A ``networking.k8s.io/v1`` NetworkPolicy manifest (or Calico's staged twin)."""
    meta = _meta(doc)
    check_fields(doc, OBJECT_FIELDS, "", col)
    check_metadata(doc.get("metadata"), col, namespaced=True)
    name = meta.get("name")
    namespace = meta.get("namespace") or "default"
    spec = doc.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        col.problem("spec", "must be an object")
        return None
    staged = ("stagedAction",) if kind == "StagedKubernetesNetworkPolicy" else ()
    check_fields(spec, _SPEC_FIELDS + staged, "spec", col)
    if "podSelector" not in spec:
        # The API server requires it; kubectl output always has it ({} at least).
        col.problem("spec.podSelector", "required field is missing")
    selector = parse_selector(spec.get("podSelector"), "spec.podSelector", col)
    ingress = _rules(spec, "ingress", "from", col)
    egress = _rules(spec, "egress", "to", col)
    types = spec.get("policyTypes")
    policy_types: tuple[str, ...]
    if types is None:
        policy_types = (INGRESS, EGRESS) if spec.get("egress") else (INGRESS,)
    elif not isinstance(types, list):
        col.problem("spec.policyTypes", "must be a list of Ingress and/or Egress")
        policy_types = ()
    else:
        for i, value in enumerate(types):
            if value not in (INGRESS, EGRESS):
                col.problem(f"spec.policyTypes[{i}]", f"unknown policy type {value!r}")
        policy_types = tuple(t for t in (INGRESS, EGRESS) if t in types)
    if col.problems or selector is None or ingress is None or egress is None:
        return None
    return NetworkPolicy(
        name=str(name),
        namespace=str(namespace),
        pod_selector=selector,
        policy_types=policy_types,
        ingress=ingress,
        egress=egress,
        kind=kind,
        source=col.file,
        uid=str(meta.get("uid") or ""),
        explicit_types=types is not None,
        empty_sections=tuple(k for k in ("ingress", "egress") if spec.get(k) == []),
    )


def _rules(
    spec: dict[str, Any], section: str, peer_key: str, col: Collector
) -> tuple[PolicyRule, ...] | None:
    raw = spec.get(section)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        col.problem(f"spec.{section}", "must be a list of rules")
        return None
    rules: list[PolicyRule] = []
    ok = True
    for i, item in enumerate(raw):
        path = f"spec.{section}[{i}]"
        if item is None:
            item = {}
        if not isinstance(item, dict):
            col.problem(path, "must be an object")
            ok = False
            continue
        if not check_fields(item, (peer_key, "ports"), path, col):
            ok = False
        peers = _peers(item.get(peer_key), f"{path}.{peer_key}", col)
        ports = _ports(item.get("ports"), f"{path}.ports", col)
        if isinstance(peers, bool) or isinstance(ports, bool):
            ok = False
            continue
        rules.append(PolicyRule(peers=peers, ports=ports))
    return tuple(rules) if ok else None


def _peers(raw: Any, path: str, col: Collector) -> tuple[PolicyPeer, ...] | None | bool:
    if raw is None:
        return None
    if not isinstance(raw, list):
        col.problem(path, "must be a list of peers")
        return False
    peers: list[PolicyPeer] = []
    ok = True
    for i, item in enumerate(raw):
        ppath = f"{path}[{i}]"
        if not isinstance(item, dict):
            col.problem(ppath, "must be an object")
            ok = False
            continue
        if not check_fields(item, ("podSelector", "namespaceSelector", "ipBlock"), ppath, col):
            ok = False
        has_sel = "podSelector" in item or "namespaceSelector" in item
        if "ipBlock" in item:
            if has_sel:
                col.problem(ppath, "ipBlock cannot be combined with podSelector/namespaceSelector")
                ok = False
                continue
            block = parse_ip_block(item["ipBlock"], f"{ppath}.ipBlock", col)
            if block is None:
                ok = False
                continue
            peers.append(PolicyPeer(ip_block=block))
            continue
        if not has_sel:
            col.problem(ppath, "a peer needs podSelector, namespaceSelector or ipBlock")
            ok = False
            continue
        pod = (
            parse_selector(item["podSelector"], f"{ppath}.podSelector", col)
            if "podSelector" in item
            else None
        )
        ns = (
            parse_selector(item["namespaceSelector"], f"{ppath}.namespaceSelector", col)
            if "namespaceSelector" in item
            else None
        )
        if ("podSelector" in item and pod is None) or ("namespaceSelector" in item and ns is None):
            ok = False
            continue
        peers.append(PolicyPeer(pod_selector=pod, namespace_selector=ns))
    return tuple(peers) if ok else False


def _ports(raw: Any, path: str, col: Collector) -> tuple[PolicyPort, ...] | None | bool:
    if raw is None:
        return None
    if not isinstance(raw, list):
        col.problem(path, "must be a list of ports")
        return False
    ports: list[PolicyPort] = []
    ok = True
    for i, item in enumerate(raw):
        ppath = f"{path}[{i}]"
        if not isinstance(item, dict):
            col.problem(ppath, "must be an object with port, protocol and endPort")
            ok = False
            continue
        if not check_fields(item, ("port", "protocol", "endPort"), ppath, col):
            ok = False
        protocol = parse_protocol(item.get("protocol"), f"{ppath}.protocol", col)
        port = (
            parse_port_value(item["port"], f"{ppath}.port", col)
            if item.get("port") is not None
            else None
        )
        end = _end_port(item, port, ppath, col)
        if protocol is None or (item.get("port") is not None and port is None) or end is False:
            ok = False
            continue
        ports.append(PolicyPort(protocol=protocol, port=port, end_port=end or None))
    return tuple(ports) if ok else False


def _end_port(
    item: dict[str, Any], port: int | str | None, path: str, col: Collector
) -> int | bool:
    raw = item.get("endPort")
    if raw is None:
        return 0
    if isinstance(raw, bool) or not isinstance(raw, int):
        col.problem(f"{path}.endPort", f"endPort must be a number, not {raw!r}")
        return False
    if not 1 <= raw <= 65535:
        col.problem(f"{path}.endPort", f"endPort {raw} out of range 1-65535")
        return False
    if isinstance(port, str) or item.get("port") is None:
        col.problem(f"{path}.endPort", "endPort needs a numeric port")
        return False
    if isinstance(port, int) and raw < port:
        col.problem(f"{path}.endPort", f"endPort {raw} is below port {port}")
        return False
    return raw


_SPEC_FIELDS = ("podSelector", "policyTypes", "ingress", "egress")


def _meta(doc: dict[str, Any]) -> dict[str, Any]:
    meta = doc.get("metadata")
    return meta if isinstance(meta, dict) else {}
