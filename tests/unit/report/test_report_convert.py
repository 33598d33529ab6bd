"""Identity graph -> report graph nodes/edges; connection frame -> denied and anomaly rows."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from analyzer.anomaly import AnomalyResult, AnomalySummary
from analyzer.connections import CONNECTION_SCHEMA
from analyzer.identity.graph import build_graph
from analyzer.report.convert import anomaly_rows, denied_rows, graph_model

T = datetime(2026, 1, 1, tzinfo=UTC)


def _row(
    src: str, dst: str, port: int | None, proto: str = "TCP", outcome: str = "allowed", n: int = 1
) -> dict[str, object]:
    def side(key: str) -> dict[str, object]:
        if "/" in key:
            ns, pod = key.split("/")
            app = pod.split("-")[0]
            return {
                "namespace": ns,
                "pod": pod,
                "workload": app,
                "ip": "10.0.0.1",
                "entity": "pod",
                "labels": [f"app={app}", "tier=x"],
                "group": f"pod:{ns}:app={app},tier=x",
            }
        if key.startswith("reserved:"):
            return {
                "namespace": None,
                "pod": None,
                "workload": None,
                "ip": None,
                "entity": key.split(":")[1],
                "labels": [],
                "group": f"entity:{key[9:]}",
            }
        return {
            "namespace": None,
            "pod": None,
            "workload": None,
            "ip": key,
            "entity": "world",
            "labels": [],
            "group": f"ip:{key}",
        }

    s, d = side(src), side(dst)
    row: dict[str, object] = {
        "src_key": src,
        "dst_key": dst,
        "protocol": proto,
        "dst_port": port,
        "outcome": outcome,
        "connections": n,
        "last_seen": T,
        "dst_names": ["evil.example"] if d["ip"] == "203.0.113.5" else [],
    }
    row.update({f"src_{k}": v for k, v in s.items()})
    row.update({f"dst_{k}": v for k, v in d.items()})
    return row


SCHEMA = {
    "dst_port": pl.Int32,
    "src_labels": pl.List(pl.String),
    "dst_labels": pl.List(pl.String),
    "dst_names": pl.List(pl.String),
    "last_seen": pl.Datetime("us", "UTC"),
}


def _frame() -> pl.DataFrame:
    rows = [
        _row("web/frontend-1", "web/backend-1", 8080, n=5),
        _row("web/frontend-2", "web/backend-1", 8080, n=3),
        _row("web/frontend-1", "web/backend-1", 9090, n=1),
        _row("web/backend-1", "kube-system/coredns-1", 53, "UDP", n=7),
        _row("web/backend-1", "203.0.113.5", 443, n=2),
        _row("develop/debug-1", "web/backend-1", 5432, outcome="denied", n=40),
        _row("develop/debug-1", "web/backend-1", 8080, n=1),
        _row("reserved:host", "web/backend-1", 8080, n=9),
        _row("develop/debug-1", "web/frontend-1", None, "ICMPv4", n=1),
    ]
    return pl.DataFrame(rows, schema_overrides=SCHEMA)


def _connections(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every column of the connections contract (absent ones null)."""
    return frame.with_columns(
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in CONNECTION_SCHEMA.items()
        if name not in frame.columns
    ).select(pl.col(name).cast(dtype) for name, dtype in CONNECTION_SCHEMA.items())


def _flagged(*edges: tuple[str, str, str, int]) -> AnomalyResult:
    frame = pl.DataFrame(
        [(*e, True) for e in edges],
        schema={"src_group": pl.String, "dst_group": pl.String, "protocol": pl.String,
                "dst_port": pl.Int32, "flagged": pl.Boolean},
        orient="row",
    )
    return AnomalyResult(pl.DataFrame(), frame, frame.height, AnomalySummary(0, 0, 0, 0))


def test_nodes_are_identity_groups_named_as_the_graph_command_names_them() -> None:
    graph = graph_model(build_graph(_connections(_frame())))
    nodes = {n.key: n for n in graph.nodes}
    fe = nodes["pod:web:app=frontend,tier=x"]
    # inside the namespace's box: the name `analyzer graph` prints, less the namespace
    assert (fe.namespace, fe.label, fe.kind, fe.pods) == ("web", "app=frontend", "pod", 2)
    assert "pod frontend-1" in fe.detail and "pod frontend-2" in fe.detail
    ext = nodes["ip:203.0.113.5"]
    assert (ext.namespace, ext.kind, ext.label) == ("", "ip", "203.0.113.5 (evil.example)")
    assert nodes["entity:host"].namespace == "" and nodes["entity:host"].label == "host"
    assert len(nodes) == 6


def test_edges_merge_ports_and_outcomes() -> None:
    flagged = _flagged(("pod:develop:app=debug,tier=x", "pod:web:app=backend,tier=x", "TCP", 5432))
    graph = graph_model(build_graph(_connections(_frame())), flagged)
    edges = {(e.src, e.dst): e for e in graph.edges}
    fe_be = edges[("pod:web:app=frontend,tier=x", "pod:web:app=backend,tier=x")]
    assert fe_be.ports == ("TCP/8080", "TCP/9090") and fe_be.connections == 9
    assert fe_be.outcome == "allowed" and not fe_be.anomalous
    dbg = edges[("pod:develop:app=debug,tier=x", "pod:web:app=backend,tier=x")]
    assert dbg.outcome == "mixed" and dbg.anomalous and dbg.connections == 41
    icmp = edges[("pod:develop:app=debug,tier=x", "pod:web:app=frontend,tier=x")]
    assert icmp.ports == ("ICMPv4",)


def test_denied_rows_most_frequent_first() -> None:
    rows = denied_rows(_frame())
    assert len(rows) == 1
    assert (rows[0].src, rows[0].dst, rows[0].port, rows[0].connections) == (
        "develop/debug-1",
        "web/backend-1",
        "TCP/5432",
        40,
    )
    assert rows[0].last_seen.startswith("2026-01-01")


def test_anomaly_rows_sorted_by_score() -> None:
    flagged = (
        _frame()
        .head(3)
        .with_columns(
            pl.Series("score", [0.2, 0.9, 0.5]),
            pl.Series("reasons", [["a"], ["scan", "new port"], []], dtype=pl.List(pl.String)),
        )
    )
    rows = anomaly_rows(flagged)
    # Rows of one source and destination fold into one line with all their ports.
    assert [(r.src, r.dst, r.score) for r in rows] == [
        ("web/frontend-2", "web/backend-1", 0.9),
        ("web/frontend-1", "web/backend-1", 0.5),
    ]
    assert rows[0].reasons == ("scan", "new port")
    assert rows[1].port == "TCP/8080, TCP/9090" and rows[1].connections == 6
    assert rows[1].reasons == ("a",)


def test_many_ports_are_summarised() -> None:
    scan = pl.DataFrame(
        [_row("develop/debug-1", "web/backend-1", p, outcome="denied") for p in range(1, 21)],
        schema_overrides=SCHEMA,
    )
    (row,) = denied_rows(scan)
    assert row.port.startswith("TCP/1, TCP/2, TCP/3,") and row.port.endswith("… (20 ports)")
    assert row.connections == 20


def test_empty_frame() -> None:
    empty = _frame().clear()
    assert graph_model(build_graph(_connections(empty))).nodes == ()
    assert denied_rows(empty) == () and anomaly_rows(empty) == ()
