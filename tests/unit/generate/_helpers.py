"""Read generated Hubble lines back into (source, destination, protocol, port) requests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from analyzer.generate import Scenario


def endpoint_key(scenario: Scenario, ep: dict[str, Any], ip: str) -> str:
    """``ns/workload`` for pods, else the reserved entity name (world, host, kube-apiserver)."""
    pods = {(p.namespace, p.name): p.workload or p.name for p in scenario.pods}
    if "pod_name" in ep:
        return f"{ep['namespace']}/{pods[(ep['namespace'], ep['pod_name'])]}"
    labels = ep.get("labels", [])
    for entity in ("kube-apiserver", "host", "world"):
        if f"reserved:{entity}" in labels:
            return entity
    return "unknown"


def requests(scenario: Scenario, lines: Iterable[str]) -> set[tuple[str, str, str, int]]:
    """Connection requests in Hubble lines, by DESIGN.md's rule: ``is_reply`` false, a
    policy-verdict event, or (``is_reply`` unknown) a TCP SYN without ACK."""
    out = set()
    for line in lines:
        obj = json.loads(line)
        flow = obj.get("flow")
        if flow is None:
            continue
        l4 = flow["l4"]
        flags = l4.get("TCP", {}).get("flags", {})
        request = (
            flow.get("is_reply") is False
            or flow["event_type"]["type"] == 5
            or ("is_reply" not in flow and flags.get("SYN") and not flags.get("ACK"))
        )
        if not request or "ICMPv6" in l4:
            continue
        proto = next(iter(l4))
        port = l4[proto]["destination_port"]
        src = endpoint_key(scenario, flow["source"], flow["IP"]["source"])
        dst = endpoint_key(scenario, flow["destination"], flow["IP"]["destination"])
        out.add((src, dst, proto, port))
    return out


def path_key(path_desc: dict[str, Any]) -> tuple[str, str, str, int]:
    """The same key from a truth.json path."""

    def side(d: dict[str, Any]) -> str:
        if d["kind"] == "pod":
            return f"{d['namespace']}/{d['workload']}"
        return str(d["kind"])

    return (
        side(path_desc["source"]),
        side(path_desc["destination"]),
        path_desc["protocol"],
        path_desc["port"],
    )
