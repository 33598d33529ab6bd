"""Calico Enterprise / Calico Cloud ``flows.log`` lines (Felix's JSON file reporter).

Key order, null placeholders and policy strings follow docs/calico-flow-formats.md §1: every
key present, ``null`` for aggregated-away values, ``"-"`` for not-applicable names, labels as
``{"labels": [...]}`` in Felix's arbitrary (map) order, and the legacy policy-id grammar
``<index>|<tier>|<ns>/knp.default.<name>|<action>|<rule>``.
"""

from __future__ import annotations

import json
from typing import Any

from analyzer.generate.aggregate import AggRecord, PolicyHit

__all__ = ["render_calico", "policy_string"]


def policy_string(index: int, hit: PolicyHit) -> str:
    """One entry of ``policies.enforced_policies`` in the legacy (pre-2026) grammar."""
    if hit.kind == "Profile":
        return f"{index}|__PROFILE__|__PROFILE__.{hit.name}|{hit.action}|{hit.rule_index}"
    target = hit.trigger or hit
    policy = f"{target.namespace}/knp.default.{target.name}"
    return f"{index}|{hit.tier}|{policy}|{hit.action}|{hit.rule_index}"


def _labels(labels: tuple[str, ...], salt: int) -> dict[str, list[str]]:
    # Felix prints labels in Go map order; rotate deterministically instead of sorting.
    if not labels:
        return {"labels": []}
    k = salt % len(labels)
    return {"labels": list(labels[k:] + labels[:k])}


def render_calico(rec: AggRecord) -> str:
    """One ``flows.log`` line for ``rec``."""
    policies = [policy_string(i, hit) for i, hit in enumerate(rec.policies)]
    domains = list(rec.dest_domains) if rec.dest_domains else None
    out: dict[str, Any] = {
        "start_time": rec.start,
        "end_time": rec.end,
        "source_ip": rec.src.ip,
        "source_name": rec.src.name,
        "source_name_aggr": rec.src.name_aggr,
        "source_namespace": rec.src.namespace,
        "nat_outgoing_ports": None,
        "source_port": None,
        "source_type": rec.src.type,
        "source_labels": _labels(rec.src.labels, rec.num_flows),
        "dest_ip": rec.dst.ip,
        "dest_name": rec.dst.name,
        "dest_name_aggr": rec.dst.name_aggr,
        "dest_namespace": rec.dst.namespace,
        "dest_port": rec.dst_port,
        "dest_type": rec.dst.type,
        "dest_labels": _labels(rec.dst.labels, rec.num_flows + 1),
        "dest_service_namespace": "-",
        "dest_service_name": "-",
        "dest_service_port": "-",
        "dest_service_port_num": None,
        "dest_domains": domains,
        "proto": rec.proto,
        "action": rec.action,
        "reporter": rec.reporter,
        "policies": {
            "enforced_policies": policies,
            "pending_policies": policies,
            "transit_policies": [],
        },
        "bytes_in": rec.bytes_in,
        "bytes_out": rec.bytes_out,
        "num_flows": rec.num_flows,
        "num_flows_started": rec.started,
        "num_flows_completed": rec.completed,
        "packets_in": rec.packets_in,
        "packets_out": rec.packets_out,
        "http_requests_allowed_in": 0,
        "http_requests_denied_in": 0,
        "process_name": "-",
        "num_process_names": 0,
        "process_id": "-",
        "num_process_ids": 0,
        "process_args": ["-"],
        "num_process_args": 0,
        "original_source_ips": None,
        "num_original_source_ips": 0,
    }
    for key in ("tcp_mean_send_congestion_window", "tcp_min_send_congestion_window",
                "tcp_mean_smooth_rtt", "tcp_max_smooth_rtt", "tcp_mean_min_rtt",
                "tcp_max_min_rtt", "tcp_mean_mss", "tcp_min_mss", "tcp_total_retransmissions",
                "tcp_lost_packets", "tcp_unrecovered_to"):  # fmt: skip
        out[key] = 0
    return json.dumps(out, separators=(",", ":")) + "\n"
