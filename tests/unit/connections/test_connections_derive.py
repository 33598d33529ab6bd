"""derive_connections: requests only, one connection however many times it was seen."""

from __future__ import annotations

import polars as pl
import pytest

from analyzer.connections import CONNECTION_SCHEMA, derive_connections
from analyzer.errors import SchemaError


def _only(frame: pl.DataFrame) -> dict[str, object]:
    assert frame.height == 1, frame
    return frame.row(0, named=True)


def test_schema_matches_contract(frame, flow):
    result = derive_connections(frame(flow()))
    assert result.frame.schema == CONNECTION_SCHEMA
    row = _only(result.frame)
    assert row["src_key"] == "shop/web-7d9c8b6f5-abcde"
    assert row["dst_key"] == "shop/api-5f6d7c8b9-xyz12"
    assert row["src_labels"] == ["app=web"]  # pod-template-hash is volatile
    assert row["src_group"] == "pod:shop:app=web"
    assert row["dst_group"] == "pod:shop:app=api"
    assert (row["protocol"], row["dst_port"], row["outcome"]) == ("TCP", 8080, "allowed")
    assert (row["connections"], row["events"]) == (1, 1)


def test_empty_input_gives_empty_frame_with_schema(frame, flow):
    result = derive_connections(frame(flow()).head(0))
    assert result.frame.height == 0
    assert result.frame.schema == CONNECTION_SCHEMA
    assert result.stats.rows_in == 0


def test_lazy_input_is_accepted(frame, flow):
    assert derive_connections(frame(flow()).lazy()).frame.height == 1


def test_missing_columns_raise_schema_error():
    with pytest.raises(SchemaError):
        derive_connections(pl.DataFrame({"time": [1]}))


def test_replies_never_produce_connections(frame, flow, reply_of):
    req = flow(0)
    rows = [
        req,
        reply_of(req, 0.001),  # SYN+ACK, is_reply true
        reply_of(req, 0.002, tcp_flags="ACK,PSH"),
        # a reply whose dst port is ephemeral and whose is_reply is unknown: decided by flags
        reply_of(req, 0.003, is_reply=None, tcp_flags="ACK,SYN"),
    ]
    result = derive_connections(frame(*rows))
    row = _only(result.frame)
    assert row["dst_port"] == 8080
    assert result.stats.replies_removed == 3
    assert 40000 not in result.frame["dst_port"].to_list()


def test_unknown_reply_with_ephemeral_dst_port_decided_by_ports(frame, flow, reply_of):
    req = flow(0)
    reply = reply_of(req, 0.01, is_reply=None, tcp_flags="ACK", direction=None)
    result = derive_connections(frame(req, reply))
    assert _only(result.frame)["dst_port"] == 8080
    assert result.stats.replies_removed == 1
    assert result.stats.decided_by_ports == 1


def test_unknown_direction_decided_by_flags_then_ports_else_undecidable(frame, flow):
    rows = [
        flow(0, is_reply=None, tcp_flags="SYN", src_port=40001),  # flags: request
        flow(1, is_reply=None, tcp_flags="ACK", src_port=40002, dst_port=443),  # port < 1024
        # both ports ephemeral and neither seen listening: undecidable
        flow(2, is_reply=None, tcp_flags="ACK", src_port=45000, dst_port=46000),
    ]
    result = derive_connections(frame(*rows))
    assert sorted(result.frame["dst_port"].to_list()) == [443, 8080]
    assert result.stats.undecidable == 1
    assert result.stats.decided_by_ports == 1
    assert any("left out" in w for w in result.stats.warnings)


def test_multiple_observation_points_and_both_nodes_collapse(frame, flow):
    rows = [
        flow(0.000, node="node-a", observation_point="TO_OVERLAY", direction="egress"),
        flow(0.001, node="node-b", event_type=5, direction="ingress"),
        flow(0.001, node="node-b", observation_point="TO_PROXY", direction="ingress"),
        flow(0.002, node="node-b", observation_point="TO_ENDPOINT", direction="ingress"),
        flow(0.003, node="node-a", tcp_flags="ACK", direction="egress"),
        flow(15.0, node="node-b", tcp_flags="ACK", direction="ingress"),  # keepalive
    ]
    result = derive_connections(frame(*rows))
    row = _only(result.frame)
    assert (row["connections"], row["events"]) == (1, 6)
    assert row["nodes"] == ["node-a", "node-b"]
    assert (row["src_node"], row["dst_node"]) == ("node-a", "node-b")
    assert result.stats.duplicates_collapsed == 5


def test_distinct_source_ports_are_distinct_connections(frame, flow):
    rows = [flow(0, src_port=40000), flow(0, src_port=40001), flow(0, src_port=40002)]
    assert _only(derive_connections(frame(*rows)).frame)["connections"] == 3


def test_same_tuple_after_idle_gap_is_a_new_connection(frame, flow):
    rows = [flow(0), flow(600)]
    assert _only(derive_connections(frame(*rows)).frame)["connections"] == 2


def test_syn_retransmits_of_a_dropped_connection_are_one_denied_connection(frame, flow):
    drop = {"verdict": "dropped", "drop_reason": "POLICY_DENIED", "is_reply": None}
    rows = [
        flow(0.0, event_type=1, node="node-b", direction="ingress", **drop),
        flow(0.0, event_type=5, node="node-b", direction="ingress", **drop),
        flow(1.0, event_type=1, node="node-b", direction="ingress", **drop),
        flow(3.0, event_type=1, node="node-b", direction="ingress", **drop),
        flow(7.0, event_type=1, node="node-b", direction="ingress", **drop),
        flow(15.0, event_type=1, node="node-b", direction="ingress", **drop),
        flow(31.0, event_type=1, node="node-b", direction="ingress", **drop),
        # the source node forwarded the SYNs: the connection is still denied
        flow(0.0, node="node-a", observation_point="TO_OVERLAY"),
    ]
    row = _only(derive_connections(frame(*rows)).frame)
    assert row["outcome"] == "denied"
    assert (row["connections"], row["events"]) == (1, 8)


def test_non_policy_drops_are_ignored_and_counted(frame, flow):
    rows = [
        flow(0, verdict="dropped", drop_reason="UNSUPPORTED_L3_PROTOCOL", is_reply=None),
        flow(1, verdict="dropped", drop_reason="CT_MISSING_TCP_ACK_FLAG", tcp_flags="ACK"),
        flow(2, verdict="dropped", drop_reason="STALE_OR_UNROUTABLE_IP", src_port=40100),
    ]
    result = derive_connections(frame(*rows))
    assert result.frame.height == 0
    assert result.stats.non_policy_drops_ignored == 3


def test_audit_verdict_is_allowed_and_flagged(frame, flow):
    row = _only(derive_connections(frame(flow(0, verdict="audit", event_type=5))).frame)
    assert row["outcome"] == "allowed"
    assert row["audit"] is True


def test_l7_denial_does_not_deny_the_connection(frame, flow):
    rows = [
        flow(0.0),
        flow(
            0.1,
            flow_type="L7",
            event_type=129,
            l7_type="request",
            tcp_flags=None,
            verdict="dropped",
            drop_reason="POLICY_DENIED",
            is_reply=None,
        ),
    ]
    assert _only(derive_connections(frame(*rows)).frame)["outcome"] == "allowed"


def test_l7_response_is_a_reply(frame, flow):
    rows = [
        flow(
            0.0,
            flow_type="L7",
            l7_type="response",
            is_reply=None,
            tcp_flags=None,
            src_port=8080,
            dst_port=40000,
        )
    ]
    result = derive_connections(frame(*rows))
    assert result.frame.height == 0
    assert result.stats.replies_removed == 1


def test_icmp_echo_request_and_reply(frame, flow):
    rows = [
        flow(
            0,
            protocol="ICMPv4",
            icmp_type=8,
            src_port=None,
            dst_port=None,
            tcp_flags=None,
            is_reply=None,
        ),
        flow(
            0.1,
            protocol="ICMPv4",
            icmp_type=0,
            src_port=None,
            dst_port=None,
            tcp_flags=None,
            is_reply=None,
            src_ip="10.0.2.20",
            dst_ip="10.0.1.10",
        ),
    ]
    result = derive_connections(frame(*rows))
    row = _only(result.frame)
    assert (row["protocol"], row["dst_port"]) == ("ICMPv4", None)
    assert result.stats.replies_removed == 1


def test_non_pod_peers_are_keyed_by_ip_and_grouped(frame, flow):
    world = {
        "dst_ip": "93.184.216.34",
        "dst_namespace": None,
        "dst_pod": None,
        "dst_workload": None,
        "dst_labels": [],
        "dst_entity": "world",
        "dst_names": ["example.com"],
        "dst_port": 443,
    }
    host = {
        "src_ip": "10.0.2.1",
        "src_namespace": None,
        "src_pod": None,
        "src_workload": None,
        "src_labels": [],
        "src_entity": "host",
        "direction": "ingress",
        "node": "node-b",
    }
    result = derive_connections(frame(flow(0, **world), flow(1, **host, src_port=50000)))
    by_dst = {r["dst_key"]: r for r in result.frame.iter_rows(named=True)}
    ext = by_dst["93.184.216.34"]
    assert ext["dst_group"] == "ip:93.184.216.34"
    assert ext["dst_names"] == ["example.com"]
    probe = by_dst["shop/api-5f6d7c8b9-xyz12"]
    assert probe["src_group"] == "entity:host"
    # the host is always the observing node: host traffic is node-local here
    assert probe["src_node"] == probe["dst_node"] == "node-b"


def test_pod_seen_as_world_in_l7_event_keeps_pod_identity(frame, flow):
    rows = [flow(0), flow(0.1, dst_entity="world", dst_labels=[], tcp_flags="ACK,PSH")]
    row = _only(derive_connections(frame(*rows)).frame)
    assert row["dst_entity"] == "pod"
    assert row["dst_labels"] == ["app=api"]


def test_pods_without_labels_are_warned_about(frame, flow):
    rows = [flow(0, src_labels=None, dst_labels=None)]
    result = derive_connections(frame(*rows))
    assert any("no labels" in w for w in result.stats.warnings)


def test_l7_proxy_upstream_leg_repeats_the_client_connection(frame, flow):
    # Envoy's leg to the server: node IP as source, client's identity, no pod name
    leg = {"src_ip": "10.0.3.219", "src_pod": None, "src_workload": None, "src_port": 51528}
    rows = [
        flow(0.0, direction="ingress", node="node-b"),
        flow(0.01, direction="ingress", node="node-b", **leg),
    ]
    result = derive_connections(frame(*rows))
    row = _only(result.frame)
    assert row["src_key"] == "shop/web-7d9c8b6f5-abcde"
    assert row["connections"] == 1
    assert result.stats.proxy_legs_collapsed == 1


def test_l7_proxy_leg_alone_is_kept_without_the_node_ip(frame, flow):
    leg = {"src_ip": "10.0.3.219", "src_pod": None, "src_workload": None}
    row = _only(derive_connections(frame(flow(0, **leg))).frame)
    assert row["src_group"] == "pod:shop:app=web"
    assert row["src_ip"] is None


def test_one_node_ip_proxying_for_two_identities_keeps_them_apart(frame, flow):
    leg = {"src_ip": "10.0.3.219", "src_pod": None, "src_workload": None}
    rows = [
        flow(0, src_port=50001, src_identity=1001, **leg),
        flow(1, src_port=50002, src_identity=1002, **{**leg, "src_labels": ["app=admin"]}),
    ]
    result = derive_connections(frame(*rows))
    assert sorted(result.frame["src_group"].to_list()) == ["pod:shop:app=admin", "pod:shop:app=web"]
    assert set(result.frame["src_key"].to_list()) == {"10.0.3.219#1001", "10.0.3.219#1002"}


def test_socket_lb_trace_events_are_ignored(frame, flow):
    rows = [
        flow(0),
        flow(
            0,
            flow_type="SOCK",
            event_type=7,
            verdict="traced",
            src_port=None,
            dst_ip="10.96.0.10",
            dst_port=80,
            tcp_flags=None,
            is_reply=None,
        ),
    ]
    result = derive_connections(frame(*rows))
    assert result.frame["dst_port"].to_list() == [8080]
    assert result.stats.sock_events_ignored == 1
    assert result.stats.undecidable == 0


def test_hubble_exporter_aggregates_count_their_flows(frame, flow):
    # an aggregated exporter row stands for several flows of the same 5-tuple window
    row = _only(derive_connections(frame(flow(0, flow_count=4))).frame)
    assert row["connections"] == 4


def test_direction_at_the_observation_point_decides(frame, flow, reply_of):
    # neither is_reply nor telling flags, and port 15020 is not known to serve: the traffic
    # direction at TO_ENDPOINT says which way the connection goes
    req = flow(
        0,
        is_reply=None,
        tcp_flags="ACK",
        dst_port=15020,
        src_port=42044,
        observation_point="TO_ENDPOINT",
        direction="ingress",
    )
    rep = reply_of(
        req,
        0.1,
        is_reply=None,
        tcp_flags="ACK,PSH",
        observation_point="TO_ENDPOINT",
        direction="egress",
    )
    out = flow(
        1,
        is_reply=None,
        tcp_flags="ACK",
        dst_port=15021,
        src_port=42045,
        observation_point="TO_STACK",
        direction="egress",
    )
    result = derive_connections(frame(req, rep, out))
    assert sorted(result.frame["dst_port"].to_list()) == [15020, 15021]
    assert result.stats.replies_removed == 1
    assert result.stats.undecidable == 0


def test_pre_translation_service_vip_rows_are_left_out(frame, flow):
    vip = {
        "dst_ip": "10.96.0.20",
        "dst_port": 80,
        "dst_service": "shop/api",
        "dst_pod": None,
        "dst_namespace": None,
        "dst_labels": [],
        "dst_entity": "world",
    }
    rows = [flow(0, src_port=40001, **vip), flow(0.01, src_port=40002)]
    result = derive_connections(frame(*rows))
    assert result.frame["dst_port"].to_list() == [8080]
    assert result.stats.service_vip_ignored == 1
    assert any("Service IP" in w for w in result.stats.warnings)
