"""The transparent rules and the features they read, on hand-built connection frames."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from anomaly_toy import conn, frame

from analyzer.anomaly import RuleThresholds, compute_features, detect_anomalies

APPS = [f"shop/app{i}" for i in range(10)]


def _edges(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return detect_anomalies(frame(rows)).edges


def _rule(
    edges: pl.DataFrame, src: str, dst: str | None = None, port: int | None = None
) -> set[Any]:
    sel = pl.col("src_name") == src
    if dst is not None:
        sel &= pl.col("dst_name") == dst
    if port is not None:
        sel &= pl.col("dst_port") == port
    return set(edges.filter(sel)["rule"].to_list())


def test_features_fan_out_sharing_and_time(shop: list[dict[str, Any]]) -> None:
    rows = [*shop, conn("develop/debug", "shop/api", 22, connections=1, first=45, last=45.5)]
    f = compute_features(frame(rows))
    prom = f.filter(pl.col("src_name") == "monitoring/prometheus")
    assert set(prom["src_fanout_dsts"]) == {12}  # 6 workloads x 2 replicas
    assert set(prom["src_fanout_namespaces"]) == {3.0}
    assert set(prom["unshared_port"]) == {1.0}  # nobody else uses the metrics port
    assert set(prom["sweep_targets"]) == {12}
    assert prom["sweep_span"].min() == pytest.approx(1.0)
    api = f.filter((pl.col("src_name") == "shop/frontend") & (pl.col("dst_port") == 8080))
    assert api["unshared_port"].to_list() == [0.0]  # host probes share 8080
    ssh = f.filter(pl.col("dst_port") == 22).row(0, named=True)
    assert ssh["first_seen_at"] == pytest.approx(0.75)
    assert ssh["inactive_share"] == pytest.approx(1 - 0.5 / 60)
    assert ssh["src_first_seen_at"] == 0.0  # the debug pod has been around all along
    assert ssh["unshared_port"] == 1.0


def test_prometheus_and_ingress_fan_out_is_not_a_sweep() -> None:
    rows = []
    for app in APPS:
        rows.append(conn("monitoring/prometheus", app, 9102, connections=60))
        rows.append(conn("ingress/traefik", app, 8080, connections=300))
        rows.append(conn("host", app, 8081, connections=120))
        rows.append(conn(app, "kube-system/coredns", 53, protocol="UDP"))
    edges = _edges(rows)
    assert not edges["flagged"].any()


def test_burst_to_many_hosts_is_a_sweep_even_when_allowed() -> None:
    rows = [conn("monitoring/prometheus", app, 9102, connections=60) for app in APPS]
    rows += [conn("shop/app0", app, 8080) for app in APPS[1:]]
    rows += [conn("develop/debug", app, 80, connections=1, first=40, last=40.2) for app in APPS]
    edges = _edges(rows)
    assert _rule(edges, "develop/debug") == {"host_sweep"}
    assert _rule(edges, "monitoring/prometheus") == {None}
    assert _rule(edges, "shop/app0") == {None}


def test_denied_sweep_over_the_window_still_fires() -> None:
    rows = [conn(app, "kube-system/coredns", 53, protocol="UDP") for app in APPS]
    rows += [conn("develop/debug", app, 8443, outcome="denied", connections=3) for app in APPS]
    assert _rule(_edges(rows), "develop/debug") == {"host_sweep"}


def test_port_scan_of_one_pod_in_an_open_cluster() -> None:
    rows = [conn(app, "shop/app0", 8080) for app in APPS[1:]]
    rows += [conn("shop/app1", "shop/app0", port, connections=20) for port in (9000, 9001)]
    rows += [
        conn("develop/debug", "shop/app0", port, connections=1, first=30, last=30.5)
        for port in (21, 22, 23, 25, 80, 443, 8080)
    ]
    edges = _edges(rows)
    assert _rule(edges, "develop/debug") == {"port_scan"}  # 8080 too: the scan reached it
    assert _rule(edges, "shop/app1") == {None}


def test_kubelet_probes_are_infrastructure() -> None:
    rows = [conn(app, "kube-system/coredns", 53, protocol="UDP") for app in APPS]
    rows += [
        conn("host", "shop/app0", p, connections=1, first=30, last=30.1) for p in range(8000, 8010)
    ]
    assert not _edges(rows)["flagged"].any()


def test_database_lateral_versus_established_clients() -> None:
    rows = [conn(app, "kube-system/coredns", 53, protocol="UDP") for app in APPS]
    rows.append(conn("shop/app0", "data/postgres", 5432, connections=500))  # established
    rows.append(conn("batch/report", "data/postgres", 5432, connections=40, first=2, last=58))
    rows.append(conn("develop/tool", "data/postgres", 5432, connections=4, first=45, last=46))
    rows.append(conn("develop/tool", "kube-system/coredns", 53, protocol="UDP", first=44, last=46))
    rows.append(conn("shop/app1", "data/cache", 6379, connections=1, outcome="denied", first=5))
    edges = _edges(rows)
    assert _rule(edges, "develop/tool", "data/postgres") == {"database_lateral"}
    assert _rule(edges, "develop/tool", "kube-system/coredns") == {"compromised_source"}
    assert _rule(edges, "shop/app0") == {None}
    assert _rule(edges, "batch/report") == {None}
    assert _rule(edges, "shop/app1", "data/cache") == {"database_lateral"}  # refused


def test_thresholds_are_configurable() -> None:
    rows = [conn(app, "kube-system/coredns", 53, protocol="UDP") for app in APPS]
    rows += [conn("develop/debug", app, 80, connections=1, first=40, last=40.2) for app in APPS[:6]]
    assert _rule(_edges(rows), "develop/debug", port=80) == {"host_sweep"}
    strict = detect_anomalies(frame(rows), thresholds=RuleThresholds(sweep_min_targets=7)).edges
    assert _rule(strict, "develop/debug", port=80) == {None}
