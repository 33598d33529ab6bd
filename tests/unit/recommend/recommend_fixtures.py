"""Connection frames in the ``analyzer.connections`` contract, built by hand for unit tests."""

from __future__ import annotations

import ipaddress
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

CONN_SCHEMA: dict[str, Any] = {
    "src_key": pl.String, "dst_key": pl.String,
    "src_namespace": pl.String, "dst_namespace": pl.String,
    "src_pod": pl.String, "dst_pod": pl.String,
    "src_workload": pl.String, "dst_workload": pl.String,
    "src_ip": pl.String, "dst_ip": pl.String,
    "src_entity": pl.String, "dst_entity": pl.String,
    "src_labels": pl.List(pl.String), "dst_labels": pl.List(pl.String),
    "src_namespace_labels": pl.List(pl.String), "dst_namespace_labels": pl.List(pl.String),
    "src_group": pl.String, "dst_group": pl.String,
    "dst_names": pl.List(pl.String),
    "protocol": pl.String, "dst_port": pl.Int32, "outcome": pl.String,
    "connections": pl.Int64, "events": pl.Int64,
    "first_seen": pl.Datetime("us", "UTC"), "last_seen": pl.Datetime("us", "UTC"),
    "nodes": pl.List(pl.String), "src_node": pl.String, "dst_node": pl.String,
}


@dataclass(frozen=True)
class Group:
    key: str
    namespace: str | None
    labels: tuple[str, ...]
    entity: str
    selector: Mapping[str, str]
    pods: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class End:
    """One side of a connection: a pod (namespace + labels), an address, or an entity."""

    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None
    entity: str = "pod"
    workload: str | None = None
    selector: Mapping[str, str] | None = None
    names: tuple[str, ...] = ()

    @property
    def label_list(self) -> list[str]:
        return sorted(f"{k}={v}" for k, v in self.labels.items())

    @property
    def group(self) -> str:
        if self.entity == "pod":
            return f"pod:{self.namespace}:{','.join(self.label_list)}"
        if self.ip and self.entity in ("world", "unknown"):
            return f"ip:{self.ip}"
        return f"entity:{self.entity}"

    @property
    def pod(self) -> str | None:
        if self.entity != "pod":
            return None
        return f"{self.workload or self.name}-7d9f-abcde"

    @property
    def name(self) -> str:
        return self.labels.get("app") or self.labels.get("app.kubernetes.io/name") or "pod"


def pod(ns: str, workload: str | None = None, **labels: str) -> End:
    labels = {k.replace("__", "."): v for k, v in labels.items()}
    return End(namespace=ns, labels=labels, workload=workload or labels.get("app"),
               ip=f"10.0.{zlib.crc32(repr((ns, sorted(labels.items()))).encode()) % 200}.10")


def world(ip: str, *names: str) -> End:
    return End(ip=ip, entity="world", names=names)


def entity(name: str, ip: str | None = None) -> End:
    return End(ip=ip, entity=name)


def conn(src: End, dst: End, port: int | None, protocol: str = "TCP", *, count: int = 3,
         outcome: str = "allowed", offset_s: int = 0, same_node: bool = False) -> dict[str, Any]:
    first = T0 + timedelta(seconds=offset_s)
    row: dict[str, Any] = {"protocol": protocol, "dst_port": port, "outcome": outcome,
                           "connections": count, "events": count * 4, "first_seen": first,
                           "last_seen": first + timedelta(minutes=30), "nodes": ["node-1"],
                           "src_node": "node-1", "dst_node": "node-1" if same_node else "node-2",
                           "dst_names": list(dst.names)}
    for side, end in (("src", src), ("dst", dst)):
        row[f"{side}_key"] = f"{end.namespace}/{end.pod}" if end.entity == "pod" else (
            end.ip or f"reserved:{end.entity}")
        row[f"{side}_namespace"] = end.namespace
        row[f"{side}_pod"] = end.pod
        row[f"{side}_workload"] = end.workload if end.entity == "pod" else None
        row[f"{side}_ip"] = end.ip
        row[f"{side}_entity"] = end.entity
        row[f"{side}_labels"] = end.label_list
        row[f"{side}_namespace_labels"] = (
            [f"kubernetes.io/metadata.name={end.namespace}"] if end.namespace else [])
        row[f"{side}_group"] = end.group
    return row


def frame(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=CONN_SCHEMA)


def groups_of(ends: Sequence[End]) -> dict[str, Group]:
    out: dict[str, Group] = {}
    for end in ends:
        sel = end.selector
        if sel is None:
            sel = {k: v for k, v in end.labels.items() if k in ("app", "app.kubernetes.io/name",
                                                               "k8s-app")} or dict(end.labels)
        out[end.group] = Group(end.group, end.namespace, tuple(end.label_list), end.entity,
                               sel if end.entity == "pod" else {})
    return out


# --- schema-like validation of rendered manifests (the subset of the OpenAPI we emit) ---------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _label_ok(key: str, value: str, *, cilium: bool = False) -> None:
    if cilium and key.startswith(("k8s:", "any:")):
        key = key.split(":", 1)[1]
    prefix, _, name = key.rpartition("/")
    assert not prefix or (_PREFIX.fullmatch(prefix) and len(prefix) <= 253), key
    assert _LABEL_NAME.fullmatch(name) and len(name) <= 63, key
    assert value == "" or (_LABEL_NAME.fullmatch(value) and len(value) <= 63), (key, value)


def _selector_ok(sel: Any, *, cilium: bool = False) -> None:
    assert isinstance(sel, dict) and set(sel) <= {"matchLabels", "matchExpressions"}, sel
    for k, v in (sel.get("matchLabels") or {}).items():
        assert isinstance(k, str) and isinstance(v, str)
        _label_ok(k, v, cilium=cilium)
    for expr in sel.get("matchExpressions") or []:
        assert set(expr) == {"key", "operator", "values"}, expr
        assert expr["operator"] in ("In", "NotIn", "Exists", "DoesNotExist")
        assert expr["values"] and all(isinstance(v, str) for v in expr["values"])
        for v in expr["values"]:
            _label_ok(expr["key"], v, cilium=cilium)


def _ports_ok(ports: Any) -> None:
    assert isinstance(ports, list) and ports
    for p in ports:
        assert set(p) <= {"protocol", "port", "endPort"}, p
        assert p["protocol"] in ("TCP", "UDP", "SCTP")
        assert isinstance(p["port"], int) and 1 <= p["port"] <= 65535


def _k8s_peer_ok(peer: Any) -> None:
    assert isinstance(peer, dict) and peer
    assert set(peer) <= {"podSelector", "namespaceSelector", "ipBlock"}, peer
    if "ipBlock" in peer:
        assert set(peer) == {"ipBlock"}
        ipaddress.ip_network(peer["ipBlock"]["cidr"])
    for key in ("podSelector", "namespaceSelector"):
        if key in peer:
            _selector_ok(peer[key])


def _meta_ok(doc: Mapping[str, Any]) -> None:
    meta = doc["metadata"]
    assert _DNS_LABEL.fullmatch(meta["name"]) and len(meta["name"]) <= 63, meta["name"]
    assert _DNS_LABEL.fullmatch(meta["namespace"]), meta["namespace"]
    for k, v in (meta.get("annotations") or {}).items():
        prefix, _, name = k.rpartition("/")
        assert _PREFIX.fullmatch(prefix) and _LABEL_NAME.fullmatch(name), k
        assert isinstance(v, str)
    for k, v in (meta.get("labels") or {}).items():
        _label_ok(k, v)


def validate_manifest(doc: Mapping[str, Any]) -> None:
    """Assert ``doc`` is a well-formed NetworkPolicy / CiliumNetworkPolicy / staged policy."""
    _meta_ok(doc)
    spec = doc["spec"]
    if doc["kind"] in ("NetworkPolicy", "StagedKubernetesNetworkPolicy"):
        expected_api = ("networking.k8s.io/v1" if doc["kind"] == "NetworkPolicy"
                        else "projectcalico.org/v3")
        assert doc["apiVersion"] == expected_api
        allowed = {"podSelector", "policyTypes", "ingress", "egress"}
        if doc["kind"] == "StagedKubernetesNetworkPolicy":
            assert spec["stagedAction"] == "Set"
            allowed.add("stagedAction")
        assert set(spec) <= allowed, spec.keys()
        _selector_ok(spec["podSelector"])
        assert set(spec["policyTypes"]) <= {"Ingress", "Egress"}
        for direction, peer_key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or []:
                assert set(rule) <= {peer_key, "ports"}, rule
                for peer in rule.get(peer_key, []):
                    _k8s_peer_ok(peer)
                if "ports" in rule:
                    _ports_ok(rule["ports"])
        return
    assert doc["kind"] == "CiliumNetworkPolicy" and doc["apiVersion"] == "cilium.io/v2"
    assert set(spec) <= {"endpointSelector", "ingress", "egress"}
    _selector_ok(spec["endpointSelector"], cilium=True)
    entities = {"world", "host", "remote-node", "kube-apiserver", "cluster", "health",
                "ingress", "init", "unmanaged", "all"}
    for direction in ("ingress", "egress"):
        pre = "from" if direction == "ingress" else "to"
        for rule in spec.get(direction) or []:
            assert set(rule) <= {f"{pre}Endpoints", f"{pre}Entities", f"{pre}CIDRSet",
                                 "toFQDNs", "toPorts"}, rule
            l3 = [k for k in rule if k != "toPorts"]
            assert len(l3) <= 1, rule  # one L3 kind per rule element
            for sel in rule.get(f"{pre}Endpoints", []):
                _selector_ok(sel, cilium=True)
            assert set(rule.get(f"{pre}Entities", [])) <= entities
            for c in rule.get(f"{pre}CIDRSet", []):
                ipaddress.ip_network(c["cidr"])
            for f in rule.get("toFQDNs", []):
                assert set(f) <= {"matchName", "matchPattern"}
            for tp in rule.get("toPorts", []):
                for p in tp["ports"]:
                    assert p["protocol"] in ("TCP", "UDP", "SCTP", "ANY")
                    assert 1 <= int(p["port"]) <= 65535


def seed_scenario() -> tuple[pl.DataFrame, dict[str, Group]]:
    """The seed chapter's develop namespace, as connection rows (see DESIGN.md)."""
    fe, fep = pod("develop", app="frontend"), pod("develop", app="frontend-primary")
    be, bep = pod("develop", app="backend"), pod("develop", app="backend-primary")
    debug = pod("develop", app="debug")
    tr = pod("traefik", "traefik", **{"app.kubernetes.io/name": "traefik"})
    prom = pod("monitoring", "prometheus", **{"app.kubernetes.io/name": "prometheus"})
    dns = pod("kube-system", "coredns", **{"k8s-app": "kube-dns"})
    db = pod("production", "production-db", app="production-db")
    rows = [conn(s, d, 8080) for s in (fe, fep, tr) for d in (be, bep)]
    rows += [conn(prom, d, 9090) for d in (be, bep)]
    rows += [conn(entity("host", "172.18.0.3"), d, 8080, same_node=True) for d in (be, bep, debug)]
    rows += [conn(s, dns, 53, "UDP") for s in (fe, fep, be, bep)]
    rows += [conn(be, entity("kube-apiserver", "172.18.0.2"), 6443)]
    rows += [conn(be, world("140.82.112.3", "api.github.com"), 443)]
    api = pod("production", app="api")
    rows += [conn(debug, db, 5432, outcome="denied"), conn(api, db, 5432)]
    return frame(rows), groups_of([fe, fep, be, bep, debug, tr, prom, dns, db, api])
