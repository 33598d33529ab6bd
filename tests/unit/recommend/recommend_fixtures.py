"""Connection frames in the ``analyzer.connections`` contract, built by hand for unit tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import zlib

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
               ip=f"10.0.{zlib.crc32(repr((ns, sorted(labels.items()))).encode()) % 200}.{len(labels) + 10}")


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
