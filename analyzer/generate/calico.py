"""Calico Enterprise / Calico Cloud ``flows.log`` lines (Felix's JSON file reporter).

Key order, null placeholders and policy strings follow docs/calico-flow-formats.md §1: every
key present, ``null`` for aggregated-away values, ``"-"`` for not-applicable names, labels as
``{"labels": [...]}`` in Felix's arbitrary (map) order, and the legacy policy-id grammar
``<index>|<tier>|<ns>/knp.default.<name>|<action>|<rule>``.
"""

from __future__ import annotations

import json
from typing import Any

from analyzer.generate.records import AggRecord, PolicyHit

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


_TAIL = (
    ',"http_requests_allowed_in":0,"http_requests_denied_in":0,"process_name":"-",'
    '"num_process_names":0,"process_id":"-","num_process_ids":0,"process_args":["-"],'
    '"num_process_args":0,"original_source_ips":null,"num_original_source_ips":0,'
    + ",".join(
        f'"{k}":0'
        for k in (
            "tcp_mean_send_congestion_window",
            "tcp_min_send_congestion_window",
            "tcp_mean_smooth_rtt",
            "tcp_max_smooth_rtt",
            "tcp_mean_min_rtt",
            "tcp_max_min_rtt",
            "tcp_mean_mss",
            "tcp_min_mss",
            "tcp_total_retransmissions",
            "tcp_lost_packets",
            "tcp_unrecovered_to",
        )
    )  # fmt: skip
    + "}\n"
)
_dump = json.JSONEncoder(separators=(",", ":")).encode


def render_calico(rec: AggRecord) -> str:
    """One ``flows.log`` line for ``rec`` (every key present, in Felix's order)."""
    policies = _dump([policy_string(i, hit) for i, hit in enumerate(rec.policies)])
    domains = _dump(list(rec.dest_domains)) if rec.dest_domains else "null"
    src, dst = rec.src, rec.dst
    head: dict[str, Any] = {
        "start_time": rec.start,
        "end_time": rec.end,
        "source_ip": src.ip,
        "source_name": src.name,
        "source_name_aggr": src.name_aggr,
        "source_namespace": src.namespace,
    }
    middle: dict[str, Any] = {
        "source_type": src.type,
        "source_labels": _labels(src.labels, rec.num_flows),
        "dest_ip": dst.ip,
        "dest_name": dst.name,
        "dest_name_aggr": dst.name_aggr,
        "dest_namespace": dst.namespace,
        "dest_port": rec.dst_port,
        "dest_type": dst.type,
        "dest_labels": _labels(dst.labels, rec.num_flows + 1),
    }
    return "".join((
        _dump(head)[:-1], ',"nat_outgoing_ports":null,"source_port":null,', _dump(middle)[1:-1],
        ',"dest_service_namespace":"-","dest_service_name":"-","dest_service_port":"-",',
        '"dest_service_port_num":null,"dest_domains":', domains,
        ',"proto":"', rec.proto, '","action":"', rec.action, '","reporter":"', rec.reporter,
        '","policies":{"enforced_policies":', policies, ',"pending_policies":', policies,
        ',"transit_policies":[]},"bytes_in":', str(rec.bytes_in),
        ',"bytes_out":', str(rec.bytes_out), ',"num_flows":', str(rec.num_flows),
        ',"num_flows_started":', str(rec.started), ',"num_flows_completed":', str(rec.completed),
        ',"packets_in":', str(rec.packets_in), ',"packets_out":', str(rec.packets_out), _TAIL,
    ))  # fmt: skip
