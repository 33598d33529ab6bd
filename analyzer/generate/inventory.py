"""The cluster as ``kubectl get pods,namespaces -A -o json`` prints it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol

from analyzer.generate.model import Namespace, Pod, ScenarioConfig, Workload


class Cluster(Protocol):
    """What the inventory reads of a scenario (``scenario.Scenario`` is one)."""

    @property
    def config(self) -> ScenarioConfig: ...

    @property
    def workloads(self) -> Sequence[Workload]: ...

    @property
    def namespaces(self) -> Sequence[Namespace]: ...


__all__ = ["build_inventory", "stable_uid"]


def stable_uid(*parts: str) -> str:
    """A UUID-shaped id derived from ``parts``: stable across runs, unlike uuid4."""
    h = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _pod_item(scenario: Cluster, w: Workload, pod: Pod, created: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "creationTimestamp": created,
        "labels": dict(pod.labels),
        "name": pod.name,
        "namespace": pod.namespace,
        "resourceVersion": str(1000 + int(hashlib.sha256(pod.name.encode()).hexdigest()[:5], 16)),
        "uid": stable_uid("pod", pod.namespace, pod.name),
    }
    if w.kind == "Deployment":
        owner_kind, owner = "ReplicaSet", f"{w.name}-{w.volatile['pod-template-hash']}"
        metadata["generateName"] = f"{owner}-"
    elif w.kind:
        owner_kind, owner = w.kind, w.name
        metadata["generateName"] = f"{w.name}-"
    else:
        owner_kind, owner = "", ""
    if owner:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "blockOwnerDeletion": True,
                "controller": True,
                "kind": owner_kind,
                "name": owner,
                "uid": stable_uid(owner_kind, pod.namespace, owner),
            }
        ]
    container: dict[str, Any] = {
        "image": w.image,
        "imagePullPolicy": "IfNotPresent",
        "name": w.name if w.kind else pod.name,
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if w.ports:
        container["ports"] = [
            {"containerPort": p.port, "name": p.name, "protocol": p.protocol} for p in w.ports
        ]
    if w.probe_port is not None:
        probe = {"httpGet": {"path": "/healthz", "port": w.probe_port, "scheme": "HTTP"},
                 "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1,
                 "failureThreshold": 3}  # fmt: skip
        if w.probe_port == 5432:
            probe = {"tcpSocket": {"port": 5432}, "periodSeconds": 10, "timeoutSeconds": 1,
                     "successThreshold": 1, "failureThreshold": 3}  # fmt: skip
        container["readinessProbe"] = probe
        container["livenessProbe"] = probe
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [container],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": True,
            "nodeName": pod.node.name,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "serviceAccount": w.service_account,
            "serviceAccountName": w.service_account,
            "terminationGracePeriodSeconds": 30,
        },
        "status": {
            "conditions": [
                {"lastTransitionTime": created, "status": "True", "type": t}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "hostIP": pod.node.ip,
            "hostIPs": [{"ip": pod.node.ip}],
            "phase": "Running",
            "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}],
            "qosClass": "BestEffort",
            "startTime": created,
        },
    }


def build_inventory(scenario: Cluster) -> dict[str, Any]:
    """A ``kind: List`` of Pod and Namespace items, exactly kubectl's JSON shape."""
    start = scenario.config.start
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    items: list[dict[str, Any]] = []
    for w in scenario.workloads:
        offset = timedelta(days=3) if w.name != "debug" else timedelta(hours=2)
        created = (start - offset).strftime(fmt)
        for pod in w.pods:
            items.append(_pod_item(scenario, w, pod, created))
    ns_created = (start - timedelta(days=30)).strftime(fmt)
    for ns in scenario.namespaces:
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "creationTimestamp": ns_created,
                    "labels": dict(ns.labels),
                    "name": ns.name,
                    "resourceVersion": str(100 + len(ns.name)),
                    "uid": stable_uid("namespace", ns.name),
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
        )
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}
