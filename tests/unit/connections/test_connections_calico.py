"""Calico aggregates: both reporters describe the same connections; count them once."""

from __future__ import annotations

import pytest

from analyzer.connections import derive_connections


@pytest.fixture
def calico(flow):
    def build(seconds: float = 0, **fields):
        base = dict(
            source_format="calico",
            is_reply=None,
            tcp_flags=None,
            src_port=None,
            src_ip=None,
            dst_ip=None,
            src_pod="web-7d9c8b6f5-*",
            dst_pod="api-5f6d7c8b9-*",
            direction=None,
        )
        base.update(fields)
        return flow(seconds, **base)

    return build


def test_src_and_dst_reports_are_deduplicated(frame, calico):
    rows = [
        calico(0, reporter="src", node="node-a", flow_count=3, direction="egress"),
        calico(0, reporter="dst", node="node-b", flow_count=3, direction="ingress"),
        calico(300, reporter="src", node="node-a", flow_count=2),
        calico(300, reporter="dst", node="node-b", flow_count=2),
    ]
    result = derive_connections(frame(*rows))
    assert result.frame.height == 1
    row = result.frame.row(0, named=True)
    assert (row["connections"], row["events"]) == (5, 4)
    assert (row["src_node"], row["dst_node"]) == ("node-a", "node-b")
    assert row["src_key"] == "shop/web-7d9c8b6f5-*"
    assert row["src_group"] == "pod:shop:app=web"


def test_source_nodes_add_up(frame, calico):
    rows = [
        calico(0, reporter="src", node="node-a", flow_count=3),
        calico(0, reporter="src", node="node-c", flow_count=4),
        calico(0, reporter="dst", node="node-b", flow_count=7),
    ]
    assert derive_connections(frame(*rows)).frame["connections"].to_list() == [7]


def test_only_one_side_reporting(frame, calico):
    rows = [
        calico(
            0,
            reporter="dst",
            flow_count=4,
            src_namespace=None,
            src_pod="pub",
            src_entity="public-network",
            src_labels=[],
        )
    ]
    row = derive_connections(frame(*rows)).frame.row(0, named=True)
    assert row["connections"] == 4
    assert row["src_group"] == "entity:public-network"


def test_allowed_at_source_denied_at_destination_is_denied(frame, calico):
    rows = [
        calico(0, reporter="src", flow_count=3),
        calico(0, reporter="dst", flow_count=3, verdict="dropped"),
    ]
    result = derive_connections(frame(*rows))
    assert result.frame.select("outcome", "connections").rows() == [("denied", 3)]


def test_partly_denied(frame, calico):
    rows = [
        calico(0, reporter="src", flow_count=5),
        calico(0, reporter="dst", flow_count=3),
        calico(0, reporter="dst", flow_count=2, verdict="dropped"),
    ]
    got = dict(derive_connections(frame(*rows)).frame.select("outcome", "connections").rows())
    assert got == {"allowed": 3, "denied": 2}
