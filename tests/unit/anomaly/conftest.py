"""Fixtures of the anomaly tests; the builders live in anomaly_toy.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl
import pytest
from anomaly_toy import Generated, baseline, frame, generate_connections


@pytest.fixture
def make_frame() -> Callable[[list[dict[str, Any]]], pl.DataFrame]:
    return frame


@pytest.fixture
def shop() -> list[dict[str, Any]]:
    return baseline()


@pytest.fixture(scope="session")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """Hubble capture of the seed's cluster with every planted attack (scan, sweep, lateral)."""
    return generate_connections(
        tmp_path_factory.mktemp("attacked"),
        seed=11,
        attacks=frozenset({"scan", "sweep", "lateral"}),
        flows=20_000,
        fmt="hubble",
    )


@pytest.fixture(scope="session")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """Calico capture of the same cluster without the compromised pod."""
    return generate_connections(
        tmp_path_factory.mktemp("clean"), seed=12, attacks=frozenset(), flows=20_000, fmt="calico"
    )
