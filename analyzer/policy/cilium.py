"""CiliumNetworkPolicy (``cilium.io/v2``), L3/L4 only, into the common policy model.

Evaluated: ``endpointSelector``, ``from/toEndpoints``, ``from/toEntities``, ``from/toCIDR``,
``from/toCIDRSet``, ``toPorts[].ports`` (port, endPort, protocol incl. ANY) and
``enableDefaultDeny``. Everything else (L7 ``rules``, ``toFQDNs``, ``toServices``, deny rules,
``*Requires``, ``*Groups``, ``*Nodes``, ICMP, authentication) is reported as unsupported. A
rule whose only peers are unsupported is kept as a rule that matches nothing, so that ignoring
it never widens what is allowed.

Cilium's reading differs from Kubernetes' in ways the model records: endpoint selectors of a
namespaced policy are confined to its namespace unless they name one
(``io.kubernetes.pod.namespace``), CIDR rules never match cluster endpoints
(``IPBlock.external_only``), and ``ingress: [{}]`` isolates while allowing nothing.
"""

from __future__ import annotations

from typing import Any

from analyzer.policy.model import (
    EGRESS,
    INGRESS,
    IPBlock,
    LabelRequirement,
    LabelSelector,
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
    parse_cidr,
    parse_ip_block,
    parse_port_value,
    parse_protocol,
    parse_selector,
)

__all__ = ["ENTITIES", "parse_cilium_policy"]

ENTITIES = (
    "all",
    "world",
    "world-ipv4",
    "world-ipv6",
    "cluster",
    "host",
    "remote-node",
    "kube-apiserver",
    "health",
    "init",
    "ingress",
    "unmanaged",
    "none",
)
NS_KEY = "io.kubernetes.pod.namespace"
NS_LABEL_PREFIX = "io.cilium.k8s.namespace.labels."
_SUPPORTED = {
    INGRESS: {"fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet", "toPorts"},
    EGRESS: {"toEndpoints", "toEntities", "toCIDR", "toCIDRSet", "toPorts"},
}
_L3_UNSUPPORTED = {"toFQDNs", "toServices", "toGroups", "fromGroups", "toNodes", "fromNodes"}
# Fields of the cilium.io/v2 schema that are recognised but not evaluated (reported as such);
# anything else in a rule is an unknown field, e.g. a typo.
_RULE_UNSUPPORTED = {
    INGRESS: {"fromRequires", "fromGroups", "fromNodes", "icmps", "authentication"},
    EGRESS: {"toRequires", "toServices", "toFQDNs", "toGroups", "toNodes", "icmps",
             "authentication"},
}
_SPEC_FIELDS = (
    "endpointSelector", "nodeSelector", "ingress", "ingressDeny", "egress", "egressDeny",
    "labels", "description", "enableDefaultDeny", "log",
)
_TOPORTS_FIELDS = (
    "ports", "rules", "listener", "serverNames", "originatingTLS", "terminatingTLS",
)
_CIDRSET_FIELDS = ("cidr", "except", "cidrGroupRef", "cidrGroupSelector")


def parse_cilium_policy(doc: dict[str, Any], col: Collector) -> list[NetworkPolicy] | None:
    """One CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy (``spec`` and/or ``specs``)."""
    meta = _meta(doc)
    clusterwide = doc.get("kind") == "CiliumClusterwideNetworkPolicy"
    check_fields(doc, OBJECT_FIELDS | {"specs"}, "", col)
    if not check_metadata(doc.get("metadata"), col, namespaced=not clusterwide):
        return None
    name = str(meta.get("name"))
    namespace = None if clusterwide else str(meta.get("namespace") or "default")
    specs: list[tuple[str, Any]] = []
    if doc.get("spec") is not None:
        specs.append(("spec", doc["spec"]))
    raw_specs = doc.get("specs")
    if isinstance(raw_specs, list):
        specs += [(f"specs[{i}]", s) for i, s in enumerate(raw_specs)]
    elif raw_specs is not None:
        col.problem("specs", "must be a list of rules")
    if not specs:
        col.problem("spec", "required field is missing")
        return None
    out: list[NetworkPolicy] = []
    for path, spec in specs:
        policy_name = name if len(specs) == 1 else f"{name}[{path}]"
        policy = _parse_spec(spec, path, policy_name, namespace, doc, col)
        if policy is not None:
            out.append(policy)
    return out


def _parse_spec(
    spec: Any, path: str, name: str, namespace: str | None, doc: dict[str, Any], col: Collector
) -> NetworkPolicy | None:
    if not isinstance(spec, dict):
        col.problem(path, "must be an object")
        return None
    if not check_fields(spec, _SPEC_FIELDS, path, col):
        return None
    if "nodeSelector" in spec:
        col.skip(
            f"{path}.nodeSelector", "host policy", "node (host firewall) policies are not evaluated"
        )
        return None
    pod_sel, ns_sel = _endpoint_selector(
        spec.get("endpointSelector"), f"{path}.endpointSelector", col
    )
    for key in ("ingressDeny", "egressDeny"):
        if spec.get(key):
            col.skip(f"{path}.{key}", "deny rules", "Cilium deny rules are not evaluated")
    ingress = _rules(spec.get("ingress"), f"{path}.ingress", INGRESS, namespace, col)
    egress = _rules(spec.get("egress"), f"{path}.egress", EGRESS, namespace, col)
    default_deny = spec.get("enableDefaultDeny") or {}
    types: list[str] = []
    if spec.get("ingress") and default_deny.get("ingress", True) is not False:
        types.append(INGRESS)
    if spec.get("egress") and default_deny.get("egress", True) is not False:
        types.append(EGRESS)
    if col.problems or pod_sel is None or ingress is None or egress is None:
        return None
    meta = _meta(doc)
    return NetworkPolicy(
        name=name,
        namespace=namespace,
        pod_selector=pod_sel,
        policy_types=tuple(types),
        ingress=ingress,
        egress=egress,
        kind=str(doc.get("kind")),
        source=col.file,
        uid=str(meta.get("uid") or ""),
        namespace_selector=ns_sel if namespace is None else None,
    )


def _meta(doc: dict[str, Any]) -> dict[str, Any]:
    meta = doc.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _endpoint_selector(
    raw: Any, path: str, col: Collector
) -> tuple[LabelSelector | None, LabelSelector | None]:
    """Split a Cilium endpoint selector into (pod selector, namespace selector or None)."""
    sel = parse_selector(raw, path, col, strip_source=True)
    if sel is None:
        return None, None
    pod: list[LabelRequirement] = []
    ns: list[LabelRequirement] = []
    for req in sel.requirements():
        if req.key == NS_KEY:
            ns.append(LabelRequirement("kubernetes.io/metadata.name", req.operator, req.values))
        elif req.key.startswith(NS_LABEL_PREFIX):
            ns.append(LabelRequirement(req.key[len(NS_LABEL_PREFIX) :], req.operator, req.values))
        else:
            pod.append(req)
    return LabelSelector((), tuple(pod)), (LabelSelector((), tuple(ns)) if ns else None)


def _rules(
    raw: Any, path: str, direction: str, namespace: str | None, col: Collector
) -> tuple[PolicyRule, ...] | None:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        col.problem(path, "must be a list of rules")
        return None
    rules: list[PolicyRule] = []
    for i, item in enumerate(raw):
        rpath = f"{path}[{i}]"
        if item is None:
            item = {}
        if not isinstance(item, dict):
            col.problem(rpath, "must be an object")
            return None
        rule = _rule(item, rpath, direction, namespace, col)
        if rule is None:
            return None
        rules.append(rule)
    return tuple(rules)


def _rule(
    item: dict[str, Any], path: str, direction: str, namespace: str | None, col: Collector
) -> PolicyRule | None:
    pre = "from" if direction == INGRESS else "to"
    unsupported_l3 = False
    known = _SUPPORTED[direction] | _RULE_UNSUPPORTED[direction]
    if not check_fields(item, known, path, col):
        # `fromEndpoint` for `fromEndpoints`: skipping it would leave a rule for every peer.
        return None
    for key in sorted(set(item) - _SUPPORTED[direction]):
        col.skip(f"{path}.{key}", key, f"{key} is not evaluated")
        if key in _L3_UNSUPPORTED or key.endswith("Requires"):
            unsupported_l3 = True
    peers: list[PolicyPeer] = []
    has_l3 = False
    for i, raw in enumerate(_as_list(item.get(f"{pre}Endpoints"), f"{path}.{pre}Endpoints", col)):
        has_l3 = True
        reserved = _reserved_entities(raw)
        if reserved:
            # `matchLabels: {reserved:host: ""}` selects an entity, not pods.
            peers.append(PolicyPeer(entities=reserved))
            continue
        pod, ns = _endpoint_selector(raw, f"{path}.{pre}Endpoints[{i}]", col)
        if pod is None:
            continue
        peers.append(
            PolicyPeer(pod_selector=pod, namespace_selector=ns, any_namespace=namespace is None)
        )
    entities = _as_list(item.get(f"{pre}Entities"), f"{path}.{pre}Entities", col)
    if entities:
        has_l3 = True
        for i, ent in enumerate(entities):
            if ent not in ENTITIES:
                col.problem(f"{path}.{pre}Entities[{i}]", f"unknown entity {ent!r}")
        peers.append(PolicyPeer(entities=tuple(str(e) for e in entities)))
    for i, cidr in enumerate(_as_list(item.get(f"{pre}CIDR"), f"{path}.{pre}CIDR", col)):
        has_l3 = True
        parsed = parse_cidr(cidr, f"{path}.{pre}CIDR[{i}]", col)
        if parsed:
            peers.append(PolicyPeer(ip_block=IPBlock(parsed, (), external_only=True)))
    for i, entry in enumerate(_as_list(item.get(f"{pre}CIDRSet"), f"{path}.{pre}CIDRSet", col)):
        has_l3 = True
        epath = f"{path}.{pre}CIDRSet[{i}]"
        if isinstance(entry, dict) and "cidr" not in entry:
            col.skip(epath, "cidrGroupRef", "CIDR groups are not evaluated")
            unsupported_l3 = True
            continue
        block = parse_ip_block(
            entry, epath, col, external_only=True, fields=_CIDRSET_FIELDS, strict_except=False
        )
        if block is not None:
            peers.append(PolicyPeer(ip_block=block))
    ports = _to_ports(item.get("toPorts"), f"{path}.toPorts", col)
    if isinstance(ports, bool):
        return None
    if not has_l3 and unsupported_l3:
        # e.g. toFQDNs + toPorts: dropping the FQDN part must not turn it into "any peer".
        return PolicyRule(peers=(), ports=ports, match_nothing=True)
    if not has_l3 and ports is None:
        # `{}`: isolates, allows nothing
        return PolicyRule(peers=(), ports=None, match_nothing=True)
    return PolicyRule(peers=tuple(peers) if has_l3 else None, ports=ports)


def _reserved_entities(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, dict) or not isinstance(raw.get("matchLabels"), dict):
        return ()
    keys = [k for k in raw["matchLabels"] if isinstance(k, str) and k.startswith("reserved:")]
    return tuple(k.split(":", 1)[1] for k in keys)


def _as_list(raw: Any, path: str, col: Collector) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        col.problem(path, "must be a list")
        return []
    return raw


def _to_ports(raw: Any, path: str, col: Collector) -> tuple[PolicyPort, ...] | None | bool:
    if raw is None:
        return None
    if not isinstance(raw, list):
        col.problem(path, "must be a list")
        return False
    out: list[PolicyPort] = []
    for i, entry in enumerate(raw):
        epath = f"{path}[{i}]"
        if not isinstance(entry, dict):
            col.problem(epath, "must be an object")
            return False
        if not check_fields(entry, _TOPORTS_FIELDS, epath, col):
            return False
        for key in sorted(set(entry) - {"ports"}):
            feature = "L7 rules" if key == "rules" else key
            col.skip(f"{epath}.{key}", feature, f"{key} is not evaluated (L3/L4 only)")
        ports = entry.get("ports")
        if not ports:
            return None  # toPorts without ports: every port
        for j, port in enumerate(_as_list(ports, f"{epath}.ports", col)):
            ppath = f"{epath}.ports[{j}]"
            if not isinstance(port, dict):
                col.problem(ppath, "must be an object")
                return False
            if not check_fields(port, ("port", "endPort", "protocol"), ppath, col):
                return False
            proto = parse_protocol(port.get("protocol"), f"{ppath}.protocol", col, allow_any=True)
            value = port.get("port")
            number: int | str | None = None
            if value not in (None, "", "0", 0):
                number = parse_port_value(value, f"{ppath}.port", col, numeric_strings=True)
                if number is None:
                    return False
            end = port.get("endPort")
            if end is not None:
                if not isinstance(end, int) or isinstance(end, bool) or not 1 <= end <= 65535:
                    col.problem(f"{ppath}.endPort", f"endPort {end!r} out of range 1-65535")
                    return False
                if not isinstance(number, int) or end < number:
                    col.problem(f"{ppath}.endPort", f"endPort {end} is below port {number}")
                    return False
            if proto is None:
                return False
            protos = ("TCP", "UDP", "SCTP") if proto == "ANY" else (proto,)
            out += [PolicyPort(p, number, end) for p in protos]
    return tuple(out)
