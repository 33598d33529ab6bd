"""derive_connections on the real Hubble and Calico samples (read by the ingest readers)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from analyzer.connections import EPHEMERAL_MIN, derive_connections
from analyzer.ingest import read_flow_file

HUBBLE = [
    "cnpgen__testdata1-exporter-kind-starwars.json",
    "hubble-otel__basic-sample-10-flows.json",
    "hubble-otel__basic-sample-5-dns-flows.json",
    "hubble-otel__basic-sample-5-http-flows.json",
    "hubble-otel__basic-sample-400-icmpv4-flows.json",
    "hubble-otel__basic-sample-400-tcp-flows.json",
    "hubble-otel__basic-sample-400-udp-flows.json",
]


def _read(shared_dir: Path, rel: str) -> pl.DataFrame:
    return read_flow_file(shared_dir / "samples" / rel).frame


@pytest.mark.parametrize("name", HUBBLE)
def test_no_reply_becomes_a_connection(shared_dir: Path, name: str):
    flows = _read(shared_dir, f"hubble/{name}")
    result = derive_connections(flows)
    stats = result.stats
    assert stats.rows_in == flows.height
    assert (
        stats.requests
        + stats.replies_removed
        + stats.undecidable
        + stats.non_policy_drops_ignored
        + stats.sock_events_ignored
        + stats.service_vip_ignored
        == stats.rows_in
    )
    # a rule on a client's ephemeral port is the classic reply mistake
    ports = result.frame["dst_port"].drop_nulls().to_list()
    assert all(p < EPHEMERAL_MIN for p in ports), ports
    assert result.frame["connections"].sum() == stats.connections


def test_star_wars_sample(shared_dir: Path):
    result = derive_connections(_read(shared_dir, f"hubble/{HUBBLE[0]}"))
    frame = result.frame
    edges = set(frame.select("src_group", "dst_group", "protocol", "dst_port").iter_rows())
    tie = "pod:default:app.kubernetes.io/name=tiefighter,class=tiefighter,org=empire"
    death = "pod:default:app.kubernetes.io/name=deathstar,class=deathstar,org=empire"
    assert (tie, death, "TCP", 80) in edges
    assert (tie, "pod:kube-system:k8s-app=kube-dns", "UDP", 53) in edges
    to_death = frame.filter(pl.col("dst_group") == death)
    # two client connections (one per deathstar pod); Envoy's upstream legs folded in
    assert to_death["connections"].sum() == 2
    assert result.stats.proxy_legs_collapsed == 4
    assert result.stats.non_policy_drops_ignored == 2  # the IPv6 UNSUPPORTED_L3_PROTOCOL drops
    assert set(frame["outcome"]) == {"allowed"}


def test_calico_sample_counts_flows(shared_dir: Path):
    flows = _read(shared_dir, "calico/enterprise_flows_log_felix_testdata.jsonl")
    result = derive_connections(flows)
    assert result.frame.height > 0
    assert result.stats.replies_removed == 0
    assert result.stats.connections <= int(flows["flow_count"].fill_null(1).sum())
