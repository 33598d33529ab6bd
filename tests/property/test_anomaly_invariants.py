"""Properties of detect_anomalies: row order does not matter; flagged + kept = input."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "anomaly"))
from anomaly_toy import baseline, conn, frame  # noqa: E402

from analyzer.anomaly import detect_anomalies, exclude_anomalies  # noqa: E402

ROWS = baseline() + [
    conn("develop/debug", "data/postgres", p, outcome="denied", connections=1, first=50, last=51)
    for p in range(20, 28)
]
KEYS = ["src_key", "dst_key", "protocol", "dst_port", "outcome"]


def _canon(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort(KEYS, nulls_last=True)


BASE = detect_anomalies(frame(ROWS), random_state=1)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations(range(len(ROWS))))
def test_row_order_does_not_change_the_result(order: list[int]) -> None:
    shuffled = frame([ROWS[i] for i in order])
    result = detect_anomalies(shuffled, random_state=1)
    assert _canon(result.flagged).equals(_canon(BASE.flagged))
    assert result.edges.equals(BASE.edges)
    kept = exclude_anomalies(shuffled, result)
    assert kept.height + result.flagged.height == shuffled.height
    both = pl.concat([kept, result.flagged.select(shuffled.columns)])
    assert _canon(both).equals(_canon(shuffled))
