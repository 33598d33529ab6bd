"""Reasons are sentences a reviewer can check against the connections."""

from __future__ import annotations

import polars as pl
from anomaly_toy import conn, frame

from analyzer.anomaly import detect_anomalies
from analyzer.anomaly.records import flagged_edge_records
from analyzer.present.anomalies import anomaly_table

APPS = [f"shop/app{i}" for i in range(8)]


def _result() -> object:
    rows = [conn(app, "kube-system/coredns", 53, protocol="UDP") for app in APPS]
    rows += [conn("monitoring/prometheus", app, 9102, connections=60) for app in APPS]
    rows += [
        conn("develop/debug", app, 80, outcome="denied" if i < 2 else "allowed", connections=1,
             first=40, last=40.2)
        for i, app in enumerate(APPS)
    ]  # fmt: skip
    rows.append(conn("develop/debug", "kube-system/coredns", 53, protocol="UDP", first=39, last=41))
    return detect_anomalies(frame(rows))


def test_sweep_and_escalation_reasons() -> None:
    result = _result()
    edges = result.edges.filter(pl.col("flagged"))  # type: ignore[attr-defined]
    sweep = edges.filter(pl.col("rule") == "host_sweep").row(0, named=True)
    assert sweep["reasons"][0] == (
        "develop/debug reached 8 destinations on TCP/80, 25% of attempts denied; "
        "no other source reaches most of them on this port"
    )
    assert sweep["reasons"][-1] == "first seen 67% into the window and active for 0% of it"
    assert len(sweep["reasons"]) == 4  # the rule, then the strongest evidence
    dns = edges.filter(pl.col("rule") == "compromised_source").row(0, named=True)
    assert dns["reasons"][0] == (
        "develop/debug was caught on 8 other edges (host sweep); "
        "its new traffic is held back for review (its established traffic stays allowed)"
    )


def test_table_folds_a_sweep_into_one_row() -> None:
    result = _result()
    text = anomaly_table(result)  # type: ignore[arg-type]
    rows = [line for line in text.splitlines()[1:] if line.strip()]
    assert len(rows) == 4  # the sweep, the DNS lookup, the summary line, the suspect
    assert rows[0].split()[:4] == [
        "0.9" + rows[0].split()[0][3],
        "host_sweep",
        "develop/debug",
        "8",
    ]
    assert "8 destinations" in rows[0] and "TCP/80" in rows[0]
    assert rows[-2].startswith("9 of ")
    assert rows[-1].startswith("suspect: develop/debug looks compromised (host sweep on 8 edges)")
    records = flagged_edge_records(result)  # type: ignore[arg-type]
    assert len(records) == 9
    assert all(r["endpoints"] for r in records)
