"""Properties of derive_connections: order-independent, replies never count, counts add up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analyzer.connections import EPHEMERAL_MIN, derive_connections
from analyzer.schema import conform

T0 = datetime(2024, 1, 1, tzinfo=UTC)
PODS = [
    ("shop", "web-1", "10.0.0.1", ["app=web"]),
    ("shop", "api-1", "10.0.0.2", ["app=api", "pod-template-hash=abc12"]),
    ("shop", "api-2", "10.0.0.3", ["app=api", "pod-template-hash=abc12"]),
    ("data", "db-0", "10.0.1.1", ["app=db", "statefulset.kubernetes.io/pod-name=db-0"]),
]

conn = st.tuples(
    st.integers(0, len(PODS) - 1),  # client
    st.integers(0, len(PODS) - 1),  # server
    st.sampled_from([80, 443, 5432, 8080]),
    st.integers(EPHEMERAL_MIN, 60999),  # client port
    st.integers(0, 3600),  # start second
    st.sampled_from(["known", "flags", "ports"]),  # how the direction shows
    st.booleans(),  # denied
)


def _endpoint(side: str, i: int) -> dict[str, object]:
    ns, pod, ip, labels = PODS[i]
    return {
        f"{side}_namespace": ns,
        f"{side}_pod": pod,
        f"{side}_ip": ip,
        f"{side}_labels": labels,
        f"{side}_entity": "pod",
    }


def _rows(spec) -> list[dict[str, object]]:
    client, server, port, cport, start, mode, denied = spec
    t = T0 + timedelta(seconds=start)
    base = {"source_format": "hubble", "protocol": "TCP", "node": "n1", "flow_count": 1}
    request = {
        **base,
        **_endpoint("src", client),
        **_endpoint("dst", server),
        "src_port": cport,
        "dst_port": port,
        "time": t,
        "tcp_flags": {"known": "ACK", "flags": "SYN", "ports": "ACK,PSH"}[mode],
        "is_reply": False if mode == "known" else None,
        "verdict": "forwarded",
    }
    if denied:
        request.update(verdict="dropped", drop_reason="POLICY_DENIED", tcp_flags="SYN")
        return [request, {**request, "time": t + timedelta(seconds=1)}]
    reply = {
        **base,
        **_endpoint("src", server),
        **_endpoint("dst", client),
        "src_port": port,
        "dst_port": cport,
        "time": t + timedelta(milliseconds=1),
        "tcp_flags": {"known": "ACK", "flags": "ACK,SYN", "ports": "ACK"}[mode],
        "is_reply": True if mode == "known" else None,
        "verdict": "forwarded",
    }
    again = {**request, "time": t + timedelta(milliseconds=2), "node": "n2", "tcp_flags": "ACK"}
    return [request, reply, again]


def _frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    return conform(pl.DataFrame(rows, infer_schema_length=None))


@settings(max_examples=25, deadline=None)
@given(st.lists(conn, min_size=1, max_size=12, unique_by=lambda c: (c[0], c[3])), st.randoms())
def test_connections_are_order_independent_and_replies_never_count(specs, rnd):
    rows = [r for spec in specs for r in _rows(spec)]
    first = derive_connections(_frame(rows))
    rnd.shuffle(rows)
    second = derive_connections(_frame(rows))
    assert_frame_equal(first.frame, second.frame)
    # every spec is one connection (distinct client port per client), replies never count;
    # with neither is_reply nor telling flags, only a serving port decides the direction
    known = {s[2] for s in specs if s[5] != "ports" or s[6]}
    undecided = [s for s in specs if s[5] == "ports" and not s[6] and s[2] >= 1024]
    undecided = [s for s in undecided if s[2] not in known]
    assert first.stats.connections == len(specs) - len(undecided)
    assert first.stats.undecidable == 3 * len(undecided)
    assert all(p < EPHEMERAL_MIN for p in first.frame["dst_port"].to_list())
    denied = sum(1 for s in specs if s[6])
    got = first.frame.filter(pl.col("outcome") == "denied")["connections"].sum()
    assert got == denied
