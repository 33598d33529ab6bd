"""Every supported format and spelling reads into the same canonical rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from analyzer.ingest import read_flow_file
from analyzer.schema import FLOW_POLARS_SCHEMA

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"


def _read(name: str, fmt: str = "auto") -> pl.DataFrame:
    result = read_flow_file(FIX / name, fmt)
    assert result.frame.schema == FLOW_POLARS_SCHEMA
    return result.frame


def test_hubble_envelope_fields() -> None:
    f = _read("hubble_envelope.jsonl")
    syn, synack, drop, verdict, dns, world, apiserver = f.iter_rows(named=True)
    assert syn["time"] == datetime(2024, 3, 22, 15, 49, 59, 77269, tzinfo=UTC)
    assert (syn["verdict"], syn["direction"], syn["is_reply"]) == ("forwarded", "ingress", False)
    assert (syn["protocol"], syn["src_port"], syn["dst_port"]) == ("TCP", 51528, 8080)
    assert syn["src_labels"] == ["app.kubernetes.io/name=web", "tier=front"]
    assert syn["src_namespace_labels"] == ["kubernetes.io/metadata.name=shop", "team=payments"]
    assert syn["dst_labels"] == ["app.kubernetes.io/name=api"]
    assert (syn["src_namespace"], syn["src_pod"], syn["src_workload"]) == (
        "shop",
        "web-6d8f7c9b5-abcde",
        "web",
    )
    assert (syn["src_entity"], syn["dst_entity"]) == ("pod", "pod")
    assert (syn["src_identity"], syn["node"], syn["source_format"]) == (
        31246,
        "kind-worker2",
        "hubble",
    )
    assert (syn["tcp_flags"], syn["trace_reason"], syn["observation_point"]) == (
        "SYN",
        "NEW",
        "TO_ENDPOINT",
    )
    assert (syn["flow_type"], syn["event_type"], syn["flow_count"]) == ("L3_L4", 4, 1)
    assert synack["is_reply"] is True and synack["tcp_flags"] == "ACK,SYN"
    assert (drop["verdict"], drop["drop_reason"], drop["is_reply"]) == (
        "dropped",
        "POLICY_DENIED",
        None,
    )
    assert drop["src_entity"] == "world" and drop["src_labels"] == []
    assert drop["node"] == "kind-kind/kind-worker"
    assert verdict["policies_enforced"] == ["allow-all-egress", "shop/allow-web"]
    assert (verdict["event_type"], syn["policies_enforced"]) == (5, None)
    assert (dns["dns_query"], dns["l7_type"], dns["l7_protocol"]) == (
        "api.example.com",
        "request",
        "dns",
    )
    assert (dns["protocol"], dns["dst_port"], dns["direction"]) == ("UDP", 53, "egress")
    assert world["dst_entity"] == "world" and world["dst_names"] == ["api.example.com"]
    assert world["dst_labels"] == [] and world["flow_count"] == 4  # aggregate counters
    assert apiserver["src_entity"] == "kube-apiserver"


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("hubble_bare.jsonl", slice(0, 7)),
        ("hubble_camel.jsonl", [0, 1, 2, 4]),
        ("hubble_int_enums.jsonl", slice(0, 3)),
        ("hubble_array.json", slice(0, 3)),
        ("hubble_pretty_stream.json", slice(0, 2)),
        ("hubble_cri.log", slice(0, 3)),
    ],
)
def test_hubble_spellings_match_envelope(name: str, rows: slice | list[int]) -> None:
    expected = _read("hubble_envelope.jsonl")[rows]
    assert _read(name).equals(expected)


def test_hubble_exporter_skips_and_counts_non_flow_records() -> None:
    result = read_flow_file(FIX / "hubble_exporter.jsonl")
    assert result.records == 2
    reasons = {s.reason: (s.count, s.first_lines) for s in result.skipped}
    assert reasons == {
        "lost_events records": (2, (2, 7)),
        "agent_event records": (1, (4,)),
        "debug_event records": (1, (5,)),
        "node_status records": (1, (6,)),
    }
    assert any("84 events were lost" in w for w in result.warnings)


def test_cri_log_lines_are_skipped_with_reasons() -> None:
    result = read_flow_file(FIX / "hubble_cri.log")
    assert [(s.reason, s.first_lines) for s in result.skipped] == [
        ("container log lines without a JSON record", (1, 4))
    ]


def test_field_masked_flows_warn_about_missing_labels() -> None:
    result = read_flow_file(FIX / "hubble_field_masked.jsonl")
    assert result.records == 2
    assert any("no endpoint labels" in w for w in result.warnings)
    row = result.frame.row(0, named=True)
    assert (row["src_pod"], row["dst_namespace"], row["src_labels"]) == ("client", "default", None)
    assert row["src_entity"] == "pod"


def test_calico_flows_log() -> None:
    f = _read("calico_flows.log")
    new, legacy, old4, deny_pub, pvt_in, hep, nset = f.iter_rows(named=True)
    assert new["time"] == datetime(2024, 6, 3, 16, 0, tzinfo=UTC)
    assert new["end_time"] == datetime(2024, 6, 3, 16, 5, tzinfo=UTC)
    assert (new["verdict"], new["direction"], new["is_reply"]) == ("forwarded", "egress", False)
    assert (new["src_pod"], new["src_workload"], new["src_ip"]) == (
        "frontend-7d9c8b6f5-*",
        "frontend",
        None,
    )
    assert new["src_labels"] == ["app=frontend", "pod-template-hash=7d9c8b6f5"]
    assert (new["flow_count"], new["dst_service"], new["reporter"]) == (3, "shop/cart", "src")
    assert new["policies_enforced"] == ["security.tenant", "shop/allow-frontend"]
    assert new["policies_pending"] == ["shop/namespace-isolation.shop-x7k2p"]
    assert legacy["direction"] == "ingress"
    assert legacy["policies_enforced"] == ["profile:kns.shop"]
    assert legacy["policies_pending"] == ["shop/shop-x7k2p"]
    assert (old4["policies_enforced"], old4["policies_pending"]) == (
        ["shop/allow-frontend"],
        ["shop/trial"],
    )
    assert (deny_pub["verdict"], deny_pub["dst_entity"], deny_pub["dst_namespace"]) == (
        "dropped",
        "public-network",
        None,
    )
    assert (deny_pub["src_pod"], deny_pub["src_ip"], deny_pub["src_port"]) == (
        "frontend-7d9c8b6f5-x1",
        "10.0.0.5",
        51000,
    )
    assert deny_pub["dst_names"] == ["api.example.com"] and deny_pub["dst_service"] is None
    assert (pvt_in["src_entity"], pvt_in["src_pod"]) == ("private-network", None)
    assert (hep["src_entity"], hep["src_workload"], hep["protocol"], hep["src_labels"]) == (
        "host-endpoint",
        "node-1",
        "ICMPv4",
        None,
    )
    assert (nset["dst_entity"], nset["dst_workload"], nset["dst_pod"]) == (
        "network-set",
        "partner-ips",
        None,
    )


@pytest.mark.parametrize("name", ["goldmane_grpcurl.json", "goldmane_bare_flows.jsonl"])
def test_goldmane_protojson(name: str) -> None:
    f = _read(name)
    allow, deny = f.iter_rows(named=True)
    assert allow["source_format"] == "goldmane"
    assert (allow["verdict"], allow["direction"], allow["dst_port"]) == (
        "forwarded",
        "egress",
        7070,
    )
    assert (allow["src_pod"], allow["src_workload"], allow["dst_service"]) == (
        "frontend-7d9c8b6f5-*",
        "frontend",
        "shop/cart",
    )
    assert allow["policies_enforced"] == ["profile:kns.shop"]
    assert allow["policies_pending"] == ["shop/shop-allow"]
    assert (allow["flow_count"], allow["bytes"]) == (1, 6832)
    assert (deny["verdict"], deny["direction"], deny["src_entity"]) == (
        "dropped",
        "ingress",
        "public-network",
    )
    assert deny["policies_enforced"] == ["shop/cart-ingress"]  # end of tier: the selecting policy
    assert deny["flow_count"] == 4


def test_goldmane_emitter_integer_enums() -> None:
    allow, deny = _read("goldmane_emitter.ndjson").iter_rows(named=True)
    assert (allow["verdict"], allow["direction"], allow["src_entity"]) == (
        "forwarded",
        "egress",
        "pod",
    )
    assert (allow["flow_count"], allow["reporter"]) == (5, "src")
    assert (deny["verdict"], deny["dst_entity"]) == ("dropped", "private-network")
    assert deny["policies_enforced"] == ["shop/default.deny-db"]


@pytest.mark.parametrize("name", ["whisker_items.json", "whisker_lines.jsonl"])
def test_whisker(name: str) -> None:
    allow, deny = _read(name).iter_rows(named=True)
    assert allow["source_format"] == "whisker"
    assert allow["dst_labels"] == ["app=cart", "pod-template-hash=5f6d7c8b9"]
    assert (allow["time"], allow["direction"], allow["protocol"]) == (
        datetime(2024, 6, 3, 16, 0, tzinfo=UTC),
        "egress",
        "TCP",
    )
    assert (deny["src_entity"], deny["verdict"], deny["direction"]) == (
        "public-network",
        "dropped",
        "ingress",
    )
    assert deny["policies_enforced"] == ["shop/default.cart-ingress"]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("hubble_envelope.jsonl", "hubble"),
        ("calico_flows.log", "calico"),
        ("goldmane_grpcurl.json", "goldmane"),
        ("goldmane_emitter.ndjson", "goldmane"),
        ("whisker_items.json", "whisker"),
    ],
)
def test_auto_detection_matches_explicit_format(name: str, fmt: str) -> None:
    assert read_flow_file(FIX / name).format == fmt
    assert _read(name, fmt).equals(_read(name))


def test_envelope_time_and_node_fill_a_masked_flow(tmp_path: Path) -> None:
    line = (
        '{"flow":{"verdict":"DROPPED","IP":{"source":"10.0.0.1","destination":"10.0.0.2"},'
        '"source":{"namespace":"a","pod_name":"x"},"destination":{"namespace":"a","pod_name":"y"}},'
        '"node_name":"n1","time":"2023-08-21T12:12:18.5Z"}\n'
    )
    for name, text in (("fast.jsonl", line), ("slow.jsonl", line + "{broken\n")):
        path = tmp_path / name
        path.write_text(text)
        row = read_flow_file(path).frame.row(0, named=True)
        assert row["time"] == datetime(2023, 8, 21, 12, 12, 18, 500000, tzinfo=UTC)
        assert row["node"] == "n1"


def test_clean_files_take_the_native_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.ingest import FlowReader

    def refuse(*_: object) -> None:
        pytest.fail("the per-line path was used")

    monkeypatch.setattr(FlowReader, "_slow_line", refuse)
    for name, rows in (
        ("hubble_envelope.jsonl", 7),
        ("hubble_exporter.jsonl", 2),
        ("hubble_cri.log", 3),
        ("calico_flows.log", 7),
    ):
        assert read_flow_file(FIX / name).records == rows


def test_grpc_web_spelling_with_list_suffixes_and_timestamp_objects(tmp_path: Path) -> None:
    # old Hubble UI (gRPC-web objects): camelCase, repeated fields suffixed "List",
    # Timestamp as {seconds, nanos}, enums as integers
    flow = {
        "time": {"seconds": 1711122599, "nanos": 77269678},
        "verdict": 1,
        "IP": {"source": "10.0.3.43", "destination": "10.0.3.179"},
        "l4": {"TCP": {"sourcePort": 51528, "destinationPort": 8080, "flags": {"SYN": True}}},
        "source": {
            "identity": 31246,
            "namespace": "shop",
            "podName": "web-1",
            "labelsList": ["k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"],
        },
        "destination": {
            "identity": 43055,
            "namespace": "shop",
            "podName": "api-1",
            "labelsList": ["k8s:app=api"],
        },
        "Type": 1,
        "nodeName": "kind-worker2",
        "trafficDirection": 1,
        "isReply": False,
        "eventType": {"type": 4},
    }
    path = tmp_path / "grpcweb.json"
    path.write_text(json.dumps([flow]))
    row = read_flow_file(path).frame.row(0, named=True)
    assert row["time"] == datetime(2024, 3, 22, 15, 49, 59, 77269, tzinfo=UTC)
    assert (row["verdict"], row["direction"], row["flow_type"]) == ("forwarded", "ingress", "L3_L4")
    assert (row["src_pod"], row["src_labels"], row["dst_port"]) == ("web-1", ["app=web"], 8080)


def test_saved_whisker_event_stream() -> None:
    result = read_flow_file(FIX / "whisker_watch.sse")
    assert result.format == "whisker" and result.records == 2 and not result.skipped
    assert result.frame.equals(_read("whisker_lines.jsonl"))
