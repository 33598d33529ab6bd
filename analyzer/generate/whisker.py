"""Whisker backend ``/whisker-backend/flows`` items, one per line (``jq -c '.items[]'``).

RFC 3339 times, labels joined by `` | ``, ``protocol`` instead of ``proto``, no endpoint
types, ``pub``/``pvt`` shown as ``PUBLIC NETWORK``/``PRIVATE NETWORK``, policy hits with every
key present (docs/calico-flow-formats.md §2.3c).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from analyzer.generate.records import AggRecord, PolicyHit

__all__ = ["render_whisker"]

_NETWORK_NAMES = {"pub": "PUBLIC NETWORK", "pvt": "PRIVATE NETWORK"}


def _time(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hit(hit: PolicyHit) -> dict[str, Any]:
    return {
        "kind": hit.kind,
        "name": hit.name,
        "namespace": hit.namespace,
        "tier": "" if hit.kind == "Profile" else hit.tier,
        "action": hit.action.capitalize(),
        "policy_index": 0,
        "rule_index": hit.rule_index,
        "trigger": _hit(hit.trigger) if hit.trigger is not None else None,
    }


def render_whisker(rec: AggRecord) -> str:
    """One Whisker ``FlowResponse`` object as a line."""
    hits = [_hit(h) for h in rec.policies]
    out = {
        "start_time": _time(rec.start),
        "end_time": _time(rec.end),
        "action": rec.action.capitalize(),
        "source_name": _NETWORK_NAMES.get(rec.src.name_aggr, rec.src.name_aggr),
        "source_namespace": "" if rec.src.namespace == "-" else rec.src.namespace,
        "source_labels": " | ".join(rec.src.labels),
        "dest_name": _NETWORK_NAMES.get(rec.dst.name_aggr, rec.dst.name_aggr),
        "dest_namespace": "" if rec.dst.namespace == "-" else rec.dst.namespace,
        "dest_labels": " | ".join(rec.dst.labels),
        "protocol": rec.proto,
        "dest_port": rec.dst_port,
        "reporter": rec.reporter.capitalize(),
        "policies": {"enforced": hits, "pending": hits},
        "packets_in": rec.packets_in,
        "packets_out": rec.packets_out,
        "bytes_in": rec.bytes_in,
        "bytes_out": rec.bytes_out,
    }
    return json.dumps(out, separators=(",", ":")) + "\n"
