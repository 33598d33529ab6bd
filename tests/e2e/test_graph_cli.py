"""`analyzer graph` end to end: ingest into a store, then table, JSON and DOT."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.store import ingest

runner = CliRunner()

STARWARS = "samples/hubble/cnpgen__testdata1-exporter-kind-starwars.json"


def _flow(t: str, src: dict, dst: dict, sport: int, dport: int, **extra: object) -> str:
    flow = {
        "time": t,
        "verdict": "FORWARDED",
        "IP": {"source": src["ip"], "destination": dst["ip"], "ipVersion": "IPv4"},
        "l4": {"TCP": {"source_port": sport, "destination_port": dport, "flags": {"SYN": True}}},
        "source": {k: v for k, v in src.items() if k != "ip"},
        "destination": {k: v for k, v in dst.items() if k != "ip"},
        "Type": "L3_L4",
        "node_name": "node-1",
        "event_type": {"type": 4},
        "traffic_direction": "EGRESS",
        "is_reply": False,
        **extra,
    }
    return json.dumps({"flow": flow, "node_name": "node-1", "time": t})


HOSTILE = 'x"];\n  evil -> pwned [label="\x1b[2J'


@pytest.fixture
def hostile_store(tmp_path: Path) -> Path:
    web = {
        "ip": "10.0.0.1",
        "namespace": "shop",
        "pod_name": "web-1",
        "identity": 1001,
        "labels": ["k8s:app=web", f"k8s:team={HOSTILE}", "k8s:io.kubernetes.pod.namespace=shop"],
    }
    api = {
        "ip": "10.0.0.2",
        "namespace": "shop",
        "pod_name": "api-1",
        "identity": 1002,
        "labels": ["k8s:app=api", "k8s:io.kubernetes.pod.namespace=shop"],
    }
    other = {
        "ip": "10.0.1.5",
        "namespace": "other",
        "pod_name": "db-1",
        "identity": 1003,
        "labels": ["k8s:app=db", "k8s:io.kubernetes.pod.namespace=other"],
    }
    lines = [
        _flow("2024-01-01T00:00:00Z", web, api, 40000, 8080),
        _flow("2024-01-01T00:00:00.5Z", web, api, 40000, 8080),  # same connection again
        _flow("2024-01-01T00:00:01Z", web, api, 40001, 8080),
        _flow(
            "2024-01-01T00:00:02Z",
            other,
            other | {"ip": "10.0.1.6", "pod_name": "db-2"},
            40002,
            5432,
        ),
    ]
    flows = tmp_path / "flows.json"
    flows.write_text("\n".join(lines) + "\n")
    store = tmp_path / "store"
    ingest(store, [str(flows)])
    return store


def test_graph_star_wars_sample(shared_dir: Path, tmp_path: Path):
    store = tmp_path / "store"
    ingest(store, [str(shared_dir / STARWARS)])
    result = runner.invoke(app, ["graph", "--store", str(store), "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    groups = {g["key"]: g for g in data["groups"]}
    edges = [
        (groups[e["src"]]["selector"], groups[e["dst"]]["selector"], e["protocol"], e["port"])
        for e in data["edges"]
    ]
    tiefighter = {"app.kubernetes.io/name": "tiefighter"}
    deathstar = {"app.kubernetes.io/name": "deathstar"}
    assert (tiefighter, deathstar, "TCP", 80) in edges
    assert (tiefighter, {"k8s-app": "kube-dns"}, "UDP", 53) in edges
    # replies never become edges: no ephemeral destination ports
    assert all(e["port"] is None or e["port"] < 1024 for e in data["edges"])
    death = next(e for e in data["edges"] if e["port"] == 80)
    assert death["connections"] == 2  # two client connections; proxy legs folded in
    assert death["evidence"] and death["evidence"][0]["nodes"]
    assert "replies removed" in result.stderr


def test_graph_table_counts_connections_once(hostile_store: Path):
    result = runner.invoke(app, ["graph", "--store", str(hostile_store)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if "app=api" in x)
    assert "shop/app=web" in line and "TCP/8080" in line
    assert re.search(r"allowed\s+2\s", line)
    assert "\x1b" not in result.stdout


def test_graph_namespace_filter(hostile_store: Path):
    result = runner.invoke(
        app, ["graph", "--store", str(hostile_store), "-n", "other", "-o", "json"]
    )
    data = json.loads(result.stdout)
    assert {g["namespace"] for g in data["groups"]} == {"other"}
    assert [e["port"] for e in data["edges"]] == [5432]


def test_graph_dot_escapes_hostile_labels(hostile_store: Path):
    result = runner.invoke(app, ["graph", "--store", str(hostile_store), "-o", "dot"])
    assert result.exit_code == 0, result.output
    dot = result.stdout
    bare = re.sub(r'"(?:[^"\\\n]|\\.)*"', "Q", dot)
    assert '"' not in bare
    assert "evil" not in bare and "pwned" not in bare
    assert bare.count("->") == 2
    assert "subgraph cluster_0" in dot and "subgraph cluster_1" in dot


def test_graph_json_keeps_hostile_value_but_never_selects_it(hostile_store: Path):
    data = json.loads(
        runner.invoke(app, ["graph", "--store", str(hostile_store), "-o", "json"]).stdout
    )
    web = next(g for g in data["groups"] if "app=web" in g["key"])
    assert web["selector"] == {"app": "web"}
    assert any(HOSTILE in label for label in web["labels"])


def test_graph_without_store_is_one_line_error(tmp_path: Path):
    result = runner.invoke(app, ["graph", "--store", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_graph_rejects_jsonl(hostile_store: Path):
    result = runner.invoke(app, ["graph", "--store", str(hostile_store), "-o", "jsonl"])
    assert result.exit_code == 2
    assert "'table', 'json', 'dot'" in result.stderr


def test_graph_warns_about_lost_events(tmp_path: Path):
    api = {"ip": "10.0.0.2", "namespace": "shop", "pod_name": "api-1", "labels": ["k8s:app=api"]}
    web = {"ip": "10.0.0.1", "namespace": "shop", "pod_name": "web-1", "labels": ["k8s:app=web"]}
    lost = {
        "lost_events": {"source": "HUBBLE_RING_BUFFER", "num_events_lost": "17", "cpu": 1},
        "node_name": "node-1",
        "time": "2024-01-01T00:00:00Z",
    }
    flows = tmp_path / "flows.json"
    flows.write_text(_flow("2024-01-01T00:00:00Z", web, api, 40000, 80) + "\n" + json.dumps(lost))
    ingest(tmp_path / "store", [str(flows)])
    result = runner.invoke(app, ["graph", "--store", str(tmp_path / "store")])
    assert result.exit_code == 0
    assert "17" in result.stderr and "lost" in result.stderr
