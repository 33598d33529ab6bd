"""Calico Open Source Goldmane flows: protojson (grpcurl) and the emitter's NDJSON.

protojson (``goldmane.Flows/Stream`` through grpcurl, one ``FlowResult {id, flow}`` per line):
lowerCamelCase keys, ``Key`` capitalised, int64 as strings, enum names, zero values omitted.
Emitter NDJSON (Go ``encoding/json`` on the proto struct): snake_case, enums as integers,
int64 as numbers, ``omitempty``. See docs/calico-flow-formats.md §2.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

from analyzer.generate.records import AggRecord, PolicyHit, Side

__all__ = ["goldmane_renderer", "KIND_NUMBERS"]

KIND_NUMBERS = {"NetworkPolicy": 6, "Profile": 9, "EndOfTier": 10}
_ACTIONS = {"allow": ("Allow", 1), "deny": ("Deny", 2), "pass": ("Pass", 3)}
_REPORTERS = {"src": ("Src", 1), "dst": ("Dst", 2)}
_TYPES = {"wep": ("WorkloadEndpoint", 1), "net": ("Network", 4)}


def _hit(hit: PolicyHit, emitter: bool) -> dict[str, Any]:
    tier = "" if hit.kind == "Profile" else hit.tier
    action_name, action_num = _ACTIONS[hit.action]
    out: dict[str, Any] = {"kind": KIND_NUMBERS[hit.kind] if emitter else hit.kind}
    if hit.namespace:
        out["namespace"] = hit.namespace
    if hit.name:
        out["name"] = hit.name
    if tier:
        out["tier"] = tier
    out["action"] = action_num if emitter else action_name
    if hit.rule_index:
        out["rule_index" if emitter else "ruleIndex"] = (
            hit.rule_index if emitter else str(hit.rule_index)
        )
    if hit.trigger is not None:
        out["trigger"] = _hit(hit.trigger, emitter)
    return out


def _ns(side: Side) -> str:
    return "" if side.namespace == "-" else side.namespace


def _flow(rec: AggRecord, emitter: bool) -> dict[str, Any]:
    def num(v: int) -> int | str:
        return v if emitter else str(v)

    def key(snake: str) -> str:
        if emitter:
            return snake
        head, *rest = snake.split("_")
        return head + "".join(p.capitalize() for p in rest)

    hits = [_hit(h, emitter) for h in rec.policies]
    k: dict[str, Any] = {}
    for prefix, side in (("source", rec.src), ("dest", rec.dst)):
        k[key(f"{prefix}_name")] = side.name_aggr
        if _ns(side):
            k[key(f"{prefix}_namespace")] = _ns(side)
        name, number = _TYPES[side.type]
        k[key(f"{prefix}_type")] = number if emitter else name
        if prefix == "dest":
            k[key("dest_port")] = num(rec.dst_port)
            for field in ("dest_service_name", "dest_service_namespace", "dest_service_port_name"):
                k[key(field)] = "-"
    k["proto"] = rec.proto
    k["reporter"] = _REPORTERS[rec.reporter][1 if emitter else 0]
    k["action"] = _ACTIONS[rec.action][1 if emitter else 0]
    k["policies"] = {key("enforced_policies"): hits, key("pending_policies"): hits}
    flow: dict[str, Any] = {"Key": k}
    flow[key("start_time")] = num(rec.start)
    flow[key("end_time")] = num(rec.end)
    if rec.src.labels:
        flow[key("source_labels")] = list(rec.src.labels)
    if rec.dst.labels:
        flow[key("dest_labels")] = list(rec.dst.labels)
    for field, value in (("packets_in", rec.packets_in), ("packets_out", rec.packets_out),
                         ("bytes_in", rec.bytes_in), ("bytes_out", rec.bytes_out),
                         ("num_connections_started", rec.started),
                         ("num_connections_completed", rec.completed),
                         ("num_connections_live", rec.num_flows - rec.completed)):  # fmt: skip
        if value:
            flow[key(field)] = num(value)
    return flow


def goldmane_renderer(emitter: bool) -> Callable[[AggRecord], str]:
    """A renderer for protojson ``FlowResult`` lines or, with ``emitter``, emitter NDJSON."""
    ids = itertools.count(1)

    def render(rec: AggRecord) -> str:
        flow = _flow(rec, emitter)
        if emitter:
            return json.dumps(flow, separators=(",", ":")) + "\n"
        return json.dumps({"id": str(next(ids)), "flow": flow}, separators=(",", ":")) + "\n"

    return render
