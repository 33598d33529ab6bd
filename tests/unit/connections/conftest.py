"""Builders for canonical flow rows (until every test can read real ingested samples)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from analyzer.schema import conform

T0 = datetime(2024, 3, 22, 15, 0, 0, tzinfo=UTC)

POD_A = {
    "src_ip": "10.0.1.10",
    "src_namespace": "shop",
    "src_pod": "web-7d9c8b6f5-abcde",
    "src_workload": "web",
    "src_labels": ["app=web", "pod-template-hash=7d9c8b6f5"],
    "src_entity": "pod",
}
POD_B = {
    "dst_ip": "10.0.2.20",
    "dst_namespace": "shop",
    "dst_pod": "api-5f6d7c8b9-xyz12",
    "dst_workload": "api",
    "dst_labels": ["app=api", "pod-template-hash=5f6d7c8b9"],
    "dst_entity": "pod",
}


def _flow(seconds: float = 0.0, **fields: Any) -> dict[str, Any]:
    """One Hubble-style request row web -> api:8080 (TCP SYN), overridable field by field."""
    row: dict[str, Any] = {
        "time": T0 + timedelta(seconds=seconds),
        "source_format": "hubble",
        "node": "node-a",
        "verdict": "forwarded",
        "direction": "egress",
        "is_reply": False,
        "protocol": "TCP",
        "src_port": 40000,
        "dst_port": 8080,
        "tcp_flags": "SYN",
        "flow_count": 1,
        **POD_A,
        **POD_B,
    }
    row.update(fields)
    return row


def _reply_of(row: dict[str, Any], seconds: float, **fields: Any) -> dict[str, Any]:
    """The reply packet of a request row: endpoints swapped."""
    swapped = dict(row)
    for a, b in (
        ("src_ip", "dst_ip"),
        ("src_port", "dst_port"),
        ("src_namespace", "dst_namespace"),
        ("src_pod", "dst_pod"),
        ("src_workload", "dst_workload"),
        ("src_labels", "dst_labels"),
        ("src_entity", "dst_entity"),
    ):
        swapped[a], swapped[b] = row[b], row[a]
    swapped.update(time=T0 + timedelta(seconds=seconds), is_reply=True, tcp_flags="ACK,SYN")
    swapped.update(fields)
    return swapped


@pytest.fixture
def frame() -> Callable[..., pl.DataFrame]:
    def build(*rows: dict[str, Any]) -> pl.DataFrame:
        return conform(pl.DataFrame(list(rows), infer_schema_length=None))

    return build


@pytest.fixture
def flow() -> Callable[..., dict[str, Any]]:
    return _flow


@pytest.fixture
def reply_of() -> Callable[..., dict[str, Any]]:
    return _reply_of
