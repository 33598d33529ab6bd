"""build_graph and its renderers on canonical flow rows."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analyzer.connections import derive_connections
from analyzer.identity.graph import EDGE_SCHEMA, build_graph
from analyzer.present.graph import dot_quote, graph_to_dict, render_dot, render_json, render_table
from analyzer.schema import conform

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def pod(side: str, ns: str, name: str, ip: str, **labels: str) -> dict[str, object]:
    return {
        f"{side}_namespace": ns,
        f"{side}_pod": name,
        f"{side}_ip": ip,
        f"{side}_entity": "pod",
        f"{side}_labels": [
            f"{k.replace('__', '.').replace('_', '-')}={v}" for k, v in labels.items()
        ],
    }


def req(t: float, src: dict, dst: dict, port: int, sport: int, **extra: object) -> dict:
    row = {
        "time": T0 + timedelta(seconds=t),
        "source_format": "hubble",
        "node": "n1",
        "verdict": "forwarded",
        "is_reply": False,
        "protocol": "TCP",
        "tcp_flags": "SYN",
        "src_port": sport,
        "dst_port": port,
        **src,
        **dst,
    }
    row.update(extra)
    return row


FRONT1 = pod("src", "develop", "frontend-1", "10.0.0.1", app="frontend", pod_template_hash="abc12")
FRONT2 = pod("src", "develop", "frontend-2", "10.0.0.2", app="frontend", pod_template_hash="def34")
BACK = pod("dst", "develop", "backend-1", "10.0.0.3", app="backend", version="v1")
BACKP = pod("dst", "develop", "backend-primary-1", "10.0.0.4", app="backend-primary")
WORLD = {"dst_ip": "93.184.216.34", "dst_entity": "world", "dst_names": ["example.com"]}


@pytest.fixture
def graph():
    rows = [
        req(0, FRONT1, BACK, 8080, 40001),
        req(1, FRONT2, BACK, 8080, 40002),
        req(2, FRONT1, BACKP, 8080, 40003),
        req(3, FRONT1, WORLD, 443, 40004),
        req(
            4,
            FRONT2,
            BACK,
            5432,
            40005,
            verdict="dropped",
            drop_reason="POLICY_DENIED",
            is_reply=None,
        ),
    ]
    return build_graph(derive_connections(conform(pl.DataFrame(rows, infer_schema_length=None))))


def test_groups_merge_pods_and_choose_selectors(graph):
    front = graph.groups["pod:develop:app=frontend"]
    assert front.pods == ("frontend-1", "frontend-2")
    assert front.ips == ("10.0.0.1", "10.0.0.2")
    assert front.selector == {"app": "frontend"}
    back = graph.groups["pod:develop:app=backend,version=v1"]
    assert back.selector == {"app": "backend"}  # never version
    assert back.selector_unique
    world = graph.groups["ip:93.184.216.34"]
    assert world.entity == "world"
    assert world.dns_names == ("example.com",)
    assert world.selector == {}


def test_edges_aggregate_connections_per_group(graph):
    assert graph.edges.schema == EDGE_SCHEMA
    rows = {
        (r["dst_group"], r["dst_port"], r["outcome"]): r for r in graph.edges.iter_rows(named=True)
    }
    web = rows[("pod:develop:app=backend,version=v1", 8080, "allowed")]
    assert web["connections"] == 2
    assert web["first_seen"] == T0
    assert len(web["evidence"]) == 2
    assert {e["src"] for e in web["evidence"]} == {"develop/frontend-1", "develop/frontend-2"}
    assert rows[("pod:develop:app=backend,version=v1", 5432, "denied")]["connections"] == 1
    assert ("ip:93.184.216.34", 443, "allowed") in rows


def test_namespace_filter_keeps_selectors_unique_and_drops_other_edges(graph):
    rows = [
        req(
            0,
            pod("src", "other", "x", "10.1.0.1", app="x"),
            pod("dst", "other", "y", "10.1.0.2", app="y"),
            80,
            40000,
        )
    ]
    frame = pl.concat([conform(pl.DataFrame(rows, infer_schema_length=None))], how="vertical")
    g = build_graph(derive_connections(frame), namespaces=["develop"])
    assert g.edges.height == 0 and g.groups == {}


def test_empty_graph():
    g = build_graph(derive_connections(conform(pl.DataFrame({"time": []}))))
    assert g.groups == {} and g.edges.height == 0
    assert render_table(g) == "no connections observed\n"
    assert json.loads(render_json(g))["edges"] == []


def test_json_round_trips_and_lists_groups_and_edges(graph):
    data = json.loads(render_json(graph))
    assert {g["key"] for g in data["groups"]} == set(graph.groups)
    assert len(data["edges"]) == graph.edges.height
    assert data["edges"][0]["first_seen"].startswith("2024-06-01T12:00")
    assert data == graph_to_dict(graph) | {"stats": data["stats"]}


def test_table_shows_arrows_ports_and_counts(graph):
    text = render_table(graph)
    assert "develop/app=frontend" in text
    assert "→" in text and "TCP/8080" in text and "denied" in text
    assert "93.184.216.34 (example.com)" in text


HOSTILE = 'evil"];\nn0 -> n1 [label="pwn\\'


def test_dot_escapes_hostile_values():
    assert dot_quote('a"b') == '"a\\"b"'
    assert dot_quote("a\\b") == '"a\\\\b"'
    assert dot_quote("a\nb") == '"a\\\\x0ab"'
    rows = [
        req(
            0,
            pod("src", "ns", "p", "10.0.0.1", app=HOSTILE),
            {**pod("dst", 'ns"x', "q", "10.0.0.2", app="db"), "dst_names": []},
            80,
            40000,
        ),
    ]
    g = build_graph(derive_connections(conform(pl.DataFrame(rows, infer_schema_length=None))))
    dot = render_dot(g)
    # outside quoted strings only our own statements remain: one edge, no injected one
    bare = re.sub(r'"(?:[^"\\\n]|\\.)*"', "Q", dot)
    assert '"' not in bare
    assert bare.count("->") == 1
    assert "pwn" not in bare and "evil" not in bare
    assert "subgraph cluster_0" in dot and "subgraph cluster_1" in dot


def test_table_neutralises_control_characters():
    rows = [
        req(
            0,
            pod("src", "ns", "p\x1b[2J", "10.0.0.1"),
            pod("dst", "ns", "q", "10.0.0.2", app="db\x07"),
            80,
            40000,
        )
    ]
    g = build_graph(derive_connections(conform(pl.DataFrame(rows, infer_schema_length=None))))
    text = render_table(g)
    assert "\x1b" not in text and "\x07" not in text


def test_node_local_edges_and_evidence_limit():
    probe = pod("dst", "develop", "backend-1", "10.0.0.3", app="backend")
    hosts = [{"src_ip": f"10.0.0.{250 + i}", "src_entity": "host"} for i in range(5)]
    rows = [
        req(i, host, probe, 8080, 40000 + i, node="n1", direction="ingress")
        for i, host in enumerate(hosts)
    ]
    g = build_graph(derive_connections(conform(pl.DataFrame(rows, infer_schema_length=None))))
    edge = g.edges.row(0, named=True)
    assert edge["src_group"] == "entity:host"
    assert edge["node_local"] is True
    assert edge["connections"] == 5
    assert len(edge["evidence"]) == 3  # a few, the earliest first
    assert edge["evidence"][0]["first_seen"] == T0


def test_cross_node_edge_is_not_node_local():
    rows = [
        req(0, FRONT1, BACK, 8080, 40001, node="n1", direction="egress"),
        req(0.001, FRONT1, BACK, 8080, 40001, node="n2", direction="ingress"),
    ]
    g = build_graph(derive_connections(conform(pl.DataFrame(rows, infer_schema_length=None))))
    edge = g.edges.row(0, named=True)
    assert edge["node_local"] is False
    assert edge["nodes"] == ["n1", "n2"]
    assert edge["connections"] == 1
