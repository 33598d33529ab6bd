"""Turn an oracle case (k8s-e2e-cases.json) into peers and policies for the evaluator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from analyzer.policy.compile import CompiledPolicies, compile_policies
from analyzer.policy.evaluate import Endpoint
from analyzer.policy.load import LoadResult, parse_documents


def case_policies(case: dict[str, Any], mode: str = "kubernetes") -> CompiledPolicies:
    result = LoadResult()
    docs = [yaml.safe_load(text) for text in case["policies"]]
    parse_documents(docs, case["id"], result)
    assert not result.problems, [str(p) for p in result.problems]
    assert len(result.policies) == len(case["policies"])
    return compile_policies(result.policies, ipblock_mode=mode)


def case_peers(case: dict[str, Any]) -> dict[str, Endpoint]:
    ns_labels = {n["name"]: n["labels"] for n in case["cluster"]["namespaces"]}
    peers = {}
    for pod in case["cluster"]["pods"]:
        named: dict[str, tuple[tuple[int, str], ...]] = {}
        for p in pod.get("ports", []):
            if p.get("name"):
                named[p["name"]] = named.get(p["name"], ()) + ((p["port"], p["protocol"]),)
        peers[f"{pod['namespace']}/{pod['name']}"] = Endpoint(
            kind="pod",
            namespace=pod["namespace"],
            name=pod["name"],
            labels=pod["labels"],
            namespace_labels=ns_labels.get(pod["namespace"], {}),
            ip=pod["ip"],
            node=pod.get("node"),
            ports=named,
        )
    return peers


def peer_for(peers: dict[str, Endpoint], ref: str) -> Endpoint:
    """``ns/pod``, a bare IP (world), or ``entity:NAME@NODE``."""
    if ref.startswith("entity:"):
        entity, _, node = ref[len("entity:") :].partition("@")
        return Endpoint(kind="ip", entity=entity, node=node or None, ip="172.18.0.2")
    return peers[ref] if "/" in ref else Endpoint(kind="ip", ip=ref, entity="world")


def load_truth_tables(path: Path) -> list[dict[str, Any]]:
    """The hand-written tables: each case gets the shared cluster."""
    data = yaml.safe_load(path.read_text())
    return [{**case, "cluster": data["cluster"]} for case in data["cases"]]


def inventory_objects(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The case's cluster as `kubectl get pods,namespaces -o json` items."""
    objs: list[dict[str, Any]] = [
        {"kind": "Namespace", "metadata": {"name": n["name"], "labels": n["labels"]}}
        for n in case["cluster"]["namespaces"]
    ]
    for p in case["cluster"]["pods"]:
        ports = [
            {"name": x["name"], "containerPort": x["port"], "protocol": x["protocol"]}
            for x in p.get("ports", [])
        ]
        objs.append(
            {
                "kind": "Pod",
                "metadata": {"name": p["name"], "namespace": p["namespace"], "labels": p["labels"]},
                "spec": {"nodeName": p.get("node"), "containers": [{"name": "c", "ports": ports}]},
                "status": {"podIP": p["ip"], "podIPs": [{"ip": p["ip"]}]},
            }
        )
    return objs
