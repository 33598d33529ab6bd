"""Cluster inventory: pods and namespaces from ``kubectl get pods,namespaces -A -o json|yaml``.

Used for what flows do not carry reliably: named container ports (named-port rules resolve on
the destination pod), pod labels and namespace labels (overlaying those seen in flows), pod
IPs and nodes. Accepts a ``List`` (kubectl's form), a single object, or a top-level list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from analyzer.errors import InventoryError
from analyzer.k8s.yaml_io import ShapeError, load_json, load_yaml_all

__all__ = ["PodInfo", "Inventory", "load_inventory", "inventory_from_objects"]


@dataclass(frozen=True, slots=True)
class PodInfo:
    """One pod: identity, addresses and named container ports (name -> (port, protocol)s)."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    ips: tuple[str, ...] = ()
    node: str | None = None
    ports: Mapping[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)
    host_network: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ip(self) -> str | None:
        return self.ips[0] if self.ips else None


@dataclass(frozen=True, slots=True)
class Inventory:
    """Pods by ``namespace/name`` and namespace labels by name."""

    pods: Mapping[str, PodInfo]
    namespaces: Mapping[str, Mapping[str, str]]

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        return self.pods.get(f"{namespace}/{name}")

    def pod_by_ip(self, ip: str) -> PodInfo | None:
        """The (non host-network) pod that owns ``ip``, if any."""
        for pod in self.pods.values():
            if ip in pod.ips and not pod.host_network:
                return pod
        return None

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self.namespaces.get(namespace)


def load_inventory(path: str | Path) -> Inventory:
    """Read an inventory file (JSON or YAML).

    Raises
    ------
    InventoryError
        The file is missing, not JSON/YAML, or holds no pods or namespaces.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: cannot read inventory: {exc}") from exc
    try:
        try:
            docs: list[Any] = (
                [load_json(text)] if text.lstrip()[:1] in "{[" else load_yaml_all(text)
            )
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            try:
                docs = load_yaml_all(text)
            except yaml.YAMLError:
                raise InventoryError(f"{path}: inventory is not valid JSON or YAML") from exc
    except ShapeError as exc:
        raise InventoryError(f"{path}: inventory not loaded: {exc}") from exc
    try:
        inventory = inventory_from_objects(_objects(docs))
    except (TypeError, ValueError, AttributeError) as exc:
        raise InventoryError(f"{path}: malformed inventory object: {exc}") from exc
    if not inventory.pods and not inventory.namespaces:
        raise InventoryError(
            f"{path}: no pods or namespaces found "
            "(expected `kubectl get pods,namespaces -A -o json`)"
        )
    return inventory


def _objects(docs: list[Any]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        if isinstance(doc, list):
            yield from _objects(doc)
        elif isinstance(doc, dict):
            if "items" in doc and isinstance(doc["items"], list):
                yield from _objects(doc["items"])
            else:
                yield doc


def inventory_from_objects(objects: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> Inventory:
    """Build an inventory from decoded Pod and Namespace objects (others are ignored)."""
    pods: dict[str, PodInfo] = {}
    namespaces: dict[str, dict[str, str]] = {}
    for obj in objects:
        kind = obj.get("kind")
        meta = obj.get("metadata") or {}
        if kind == "Namespace" and meta.get("name"):
            labels = _labels(meta)
            labels.setdefault("kubernetes.io/metadata.name", str(meta["name"]))
            namespaces[str(meta["name"])] = labels
        elif kind == "Pod" and meta.get("name"):
            pod = _pod(obj, meta)
            pods[pod.key] = pod
    return Inventory(pods, namespaces)


def _labels(meta: Mapping[str, Any]) -> dict[str, str]:
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        raise ValueError("metadata.labels is not a mapping")
    return {str(k): "" if v is None else str(v) for k, v in labels.items()}


def _pod(obj: dict[str, Any], meta: Mapping[str, Any]) -> PodInfo:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ips = [str(p["ip"]) for p in status.get("podIPs") or [] if isinstance(p, dict) and p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    ports: dict[str, tuple[tuple[int, str], ...]] = {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for port in container.get("ports") or []:
            name, number = port.get("name"), port.get("containerPort")
            if name and isinstance(number, int):
                entry = (number, str(port.get("protocol") or "TCP").upper())
                ports[str(name)] = ports.get(str(name), ()) + (entry,)
    return PodInfo(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta["name"]),
        labels=_labels(meta),
        ips=tuple(ips),
        node=spec.get("nodeName"),
        ports=ports,
        host_network=bool(spec.get("hostNetwork")),
    )
