"""Scope: namespaces filter results, --since/--until select flows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analyzer.analysis import Scope, parse_duration, parse_time
from analyzer.errors import UsageError

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("24h", 86400), ("7d", 604800), ("1h30m", 5400),
     ("2w", 1209600), ("1.5h", 5400), ("500ms", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "h", "24x", "1h 30m", "-5m", "24hours"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration(text)


def test_times_are_rfc3339_or_a_duration_before_now() -> None:
    assert parse_time("2026-11-02T09:00:00Z", option="--since") == datetime(
        2026, 11, 2, 9, tzinfo=UTC
    )
    assert parse_time("2026-11-02T10:00:00+01:00", option="--since") == datetime(
        2026, 11, 2, 9, tzinfo=UTC
    )
    assert parse_time("3h", option="--since", now=NOW) == datetime(2026, 11, 2, 9, tzinfo=UTC)
    with pytest.raises(UsageError, match="time zone"):
        parse_time("2026-11-02T09:00:00", option="--since")
    with pytest.raises(UsageError, match="--until 'yesterday'"):
        parse_time("yesterday", option="--until")
    with pytest.raises(UsageError, match="--since '2026-13-40T00:00:00Z' is not an RFC 3339"):
        parse_time("2026-13-40T00:00:00Z", option="--since")


def test_scope_refuses_an_empty_window_and_bad_namespaces() -> None:
    with pytest.raises(UsageError, match="is not before"):
        Scope.parse(None, "1h", "2h", now=NOW)
    with pytest.raises(UsageError, match="invalid namespace"):
        Scope.parse(["a/b"])
    scope = Scope.parse(["b", "a", "b"], "2h", "1h", now=NOW)
    assert scope.namespaces == ("b", "a")
    assert (scope.since, scope.until) == (NOW - timedelta(hours=2), NOW - timedelta(hours=1))


def test_window_is_half_open_and_namespaces_filter_either_end() -> None:
    t0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    flows = pl.DataFrame(
        {
            "time": [t0, t0 + timedelta(minutes=30), t0 + timedelta(hours=1), None],
            "src_namespace": ["a", "b", None, "a"],
            "dst_namespace": [None, "c", "a", "b"],
        }
    )
    scope = Scope(("a",), t0, t0 + timedelta(hours=1))
    condition = scope.flow_filter()
    assert condition is not None
    assert flows.filter(condition)["time"].to_list() == [t0, t0 + timedelta(minutes=30)]
    assert scope.select(flows)["src_namespace"].to_list() == ["a", None, "a"]
    assert Scope().flow_filter() is None and Scope().select(flows).height == 4
