"""Build Hubble flow lines (`hubble observe -o json`) and an inventory from a truth-table case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

_L4 = {"TCP": "TCP", "UDP": "UDP", "SCTP": "SCTP"}


def _endpoint(case: dict[str, Any], ref: str) -> tuple[dict[str, Any], str]:
    if "/" not in ref:
        return {"identity": 2, "labels": ["reserved:world"]}, ref
    ns, name = ref.split("/", 1)
    pod = next(p for p in case["cluster"]["pods"] if p["namespace"] == ns and p["name"] == name)
    ns_labels = next(n["labels"] for n in case["cluster"]["namespaces"] if n["name"] == ns)
    labels = [f"k8s:{k}={v}" for k, v in pod["labels"].items()]
    labels += [f"k8s:io.cilium.k8s.namespace.labels.{k}={v}" for k, v in ns_labels.items()]
    labels += [f"k8s:io.kubernetes.pod.namespace={ns}", "k8s:io.cilium.k8s.policy.cluster=default"]
    return {"identity": 1000, "namespace": ns, "pod_name": name, "labels": sorted(labels)}, pod[
        "ip"
    ]


def hubble_lines(case: dict[str, Any]) -> list[str]:
    """One request event per probe: TCP SYN (no ACK), UDP/SCTP with is_reply false."""
    lines = []
    for i, probe in enumerate(case["probes"]):
        src, src_ip = _endpoint(case, probe["src"])
        dst, dst_ip = _endpoint(case, probe["dst"])
        proto = _L4[probe["protocol"]]
        l4: dict[str, Any] = {"source_port": 40000 + i, "destination_port": probe["port"]}
        if proto == "TCP":
            l4["flags"] = {"SYN": True}
        t = f"2024-03-22T15:50:{i % 60:02d}.{i:06d}Z"
        flow = {
            "time": t,
            "verdict": "FORWARDED",
            "IP": {
                "source": src_ip,
                "destination": dst_ip,
                "ipVersion": "IPv6" if ":" in src_ip + dst_ip else "IPv4",
            },
            "l4": {proto: l4},
            "source": src,
            "destination": dst,
            "Type": "L3_L4",
            "node_name": "node-1",
            "event_type": {"type": 4},
            "traffic_direction": "EGRESS",
            "trace_observation_point": "TO_STACK",
            "is_reply": False,
        }
        lines.append(json.dumps({"flow": flow, "node_name": "node-1", "time": t}))
    return lines


def inventory_json(case: dict[str, Any]) -> str:
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": n["name"], "labels": n["labels"]},
        }
        for n in case["cluster"]["namespaces"]
    ]
    for p in case["cluster"]["pods"]:
        ports = [
            {"name": x["name"], "containerPort": x["port"], "protocol": x["protocol"]}
            for x in p.get("ports", [])
        ]
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": p["name"], "namespace": p["namespace"], "labels": p["labels"]},
                "spec": {
                    "nodeName": p.get("node", "node-1"),
                    "containers": [{"name": "main", "ports": ports}],
                },
                "status": {"podIP": p["ip"], "podIPs": [{"ip": p["ip"]}]},
            }
        )
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def load_truth_tables(path: Path) -> list[dict[str, Any]]:
    """The hand-written tables: each case gets the shared cluster."""
    data = yaml.safe_load(path.read_text())
    return [{**case, "cluster": data["cluster"]} for case in data["cases"]]
