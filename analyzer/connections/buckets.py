"""Time buckets of the connections: what a ``--since``/``--until`` window means.

A window is *the connections of the whole-source derivation that were observed in the
window's time buckets*. Direction (ports seen anywhere), reply removal, deduplication across
observation points, sessions and identities (latest labels) are decided once over every flow;
each deduplicated connection is then counted in the bucket of its first event (a Hubble
session's first event, a Calico aggregate's start time), and per-bucket request statistics
count flow rows by their own time. A window sums the buckets it touches: it is rounded *out*
to whole buckets, and the warning the commands print says the window actually used.

Buckets are UTC-aligned and nest (a minute lies in one hour, an hour in one day). A
``Buckets`` schedule says which grain applies where: days before ``days_before``, hours before
``hours_before``, minutes after that (both boundaries fall on a UTC midnight, so no bucket
straddles a change of grain). Coarsening (``analyzer store compact``) moves the boundaries
later and re-aggregates; because every aggregate is a sum, min, max, any or sorted union, the
coarse buckets equal a derivation made with the coarse schedule from the start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from analyzer.connections._dedupe import edge_aggs
from analyzer.connections._derive_columns import _BUCKET
from analyzer.schema import (
    AUDIT,
    CONNECTION_SCHEMA,
    CONNECTIONS,
    DST_NODE,
    EVENTS,
    FIRST_SEEN,
    LAST_SEEN,
    NODES,
    SRC_NODE,
)

__all__ = [
    "BUCKET",
    "BUCKET_SCHEMA",
    "COUNT_SCHEMA",
    "EDGE_INDEX",
    "MINUTE",
    "BucketedConnections",
    "Buckets",
    "in_window",
]

MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_TS = pl.Datetime("us", "UTC")

BUCKET = _BUCKET  # a bucket's start (UTC); its grain follows from the schedule
EDGE_INDEX = "edge"  # the row of the connection in the whole-source frame

_AGGS = (CONNECTIONS, EVENTS, FIRST_SEEN, LAST_SEEN, NODES, SRC_NODE, DST_NODE, AUDIT)
BUCKET_SCHEMA = pl.Schema(
    {EDGE_INDEX: pl.UInt32(), BUCKET: _TS, **{c: CONNECTION_SCHEMA[c] for c in _AGGS}}
)
# per-bucket statistics of the flow rows (by each row's own time); ``first``/``last``: the
# requests' first start and last end; ``proxied``: L7-proxy legs collapsed (by their bucket)
_SUMS = (
    "rows_in", "requests", "replies", "undecidable", "ignored", "sock", "vip", "by_ports",
    "masked", "proxied",
)
COUNT_SCHEMA = pl.Schema(
    {BUCKET: _TS, **{c: pl.Int64() for c in _SUMS}, "first": _TS, "last": _TS}
)


def _floor(t: datetime, grain: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return t - ((t - epoch) % grain)


def _midnight(t: datetime | None) -> datetime | None:
    return None if t is None else _floor(t.astimezone(UTC), _DAY)


@dataclass(frozen=True, slots=True)
class Buckets:
    """Which grain applies where: days before ``days_before``, hours before ``hours_before``,
    minutes after (None: no such region). Both are UTC midnights."""

    hours_before: datetime | None = None
    days_before: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("hours_before", "days_before"):
            value = getattr(self, name)
            if value is not None and value != _midnight(value):
                raise ValueError(f"{name} must be a UTC midnight, not {value.isoformat()}")

    @classmethod
    def coarsened(
        cls, old: Buckets, hours_before: datetime | None, days_before: datetime | None
    ) -> Buckets:
        """``old`` with the boundaries moved later (never earlier: buckets are only ever
        merged), rounded down to UTC midnight; days never extend past hours."""
        hours = _latest(old.hours_before, _midnight(hours_before))
        days = _latest(old.days_before, _midnight(days_before))
        if days is not None:
            hours = _latest(hours, days)
        return cls(hours, days)

    def grain_at(self, t: datetime) -> timedelta:
        if self.days_before is not None and t < self.days_before:
            return _DAY
        if self.hours_before is not None and t < self.hours_before:
            return _HOUR
        return MINUTE

    def floor(self, t: datetime) -> datetime:
        """The start of the bucket holding ``t``."""
        return _floor(t, self.grain_at(t))

    def ceil(self, t: datetime) -> datetime:
        """The first bucket boundary at or after ``t``."""
        start = self.floor(t)
        return start if start == t else start + self.grain_at(t)

    def expr(self, time: pl.Expr) -> pl.Expr:
        """The bucket start of each time (null stays null)."""
        out: pl.Expr = time.dt.truncate("1m")
        if self.hours_before is not None:
            out = pl.when(time < self.hours_before).then(time.dt.truncate("1h")).otherwise(out)
        if self.days_before is not None:
            out = pl.when(time < self.days_before).then(time.dt.truncate("1d")).otherwise(out)
        return out.cast(_TS)

    def token(self) -> str:
        """A stable text of the schedule (part of the rollup key)."""
        return f"m1;h<{_iso(self.hours_before)};d<{_iso(self.days_before)}"

    def describe(self) -> str:
        parts = []
        if self.days_before is not None:
            parts.append(f"days before {_iso(self.days_before)}")
        if self.hours_before is not None and self.hours_before != self.days_before:
            parts.append(f"hours before {_iso(self.hours_before)}")
        parts.append("minutes after" if parts else "minutes")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "grain": "1m",
            "hours_before": _iso(self.hours_before),
            "days_before": _iso(self.days_before),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Buckets:
        def when(key: str) -> datetime | None:
            value = data.get(key)
            return None if value is None else datetime.fromisoformat(str(value)).astimezone(UTC)

        if int(data.get("version", 0)) != 1 or data.get("grain") != "1m":
            raise ValueError("unknown bucket schedule")
        return cls(when("hours_before"), when("days_before"))


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def in_window(since: datetime | None, until: datetime | None) -> pl.Expr:
    """Rows (buckets or counts) whose bucket starts in ``[since, until)``."""
    conditions = [pl.lit(True)]
    if since is not None:
        conditions.append(pl.col(BUCKET) >= since)
    if until is not None:
        conditions.append(pl.col(BUCKET) < until)
    return pl.all_horizontal(conditions).fill_null(False)


@dataclass(frozen=True, slots=True)
class BucketedConnections:
    """The whole-source connections (``CONNECTION_SCHEMA``, one row per edge, sorted), their
    per-bucket aggregates (``BUCKET_SCHEMA``, sorted by edge and bucket) and per-bucket flow
    statistics (``COUNT_SCHEMA``, sorted by bucket) under one schedule."""

    frame: pl.DataFrame
    buckets: pl.DataFrame
    counts: pl.DataFrame
    schedule: Buckets

    def window(
        self, since: datetime | None, until: datetime | None
    ) -> tuple[pl.DataFrame, dict[str, Any]]:
        """The connections observed in the buckets from ``since`` to ``until`` (bucket
        boundaries, see ``Buckets.floor``/``ceil``) and the window's flow statistics."""
        inside = in_window(since, until)
        sums = (
            self.buckets.filter(inside)
            .group_by(EDGE_INDEX)
            .agg(edge_aggs())
            .filter(pl.col(CONNECTIONS) > 0)
        )
        attrs = self.frame.drop(*_AGGS).with_row_index(EDGE_INDEX)
        frame = (
            attrs.join(sums, on=EDGE_INDEX, how="inner")
            .sort(EDGE_INDEX)
            .select(pl.col(n).cast(t) for n, t in CONNECTION_SCHEMA.items())
        )
        row = (
            self.counts.filter(inside)
            .select(
                *(pl.col(c).sum() for c in _SUMS),
                pl.col("first").min(),
                pl.col("last").max(),
            )
            .row(0, named=True)
        )
        return frame, row

    def coarsen(self, schedule: Buckets) -> BucketedConnections:
        """The same connections under a coarser schedule (buckets merged, nothing lost)."""
        buckets = (
            self.buckets.with_columns(schedule.expr(pl.col(BUCKET)).alias(BUCKET))
            .group_by(EDGE_INDEX, BUCKET)
            .agg(edge_aggs())
        )
        counts = (
            self.counts.with_columns(schedule.expr(pl.col(BUCKET)).alias(BUCKET))
            .group_by(BUCKET)
            .agg(*(pl.col(c).sum() for c in _SUMS), pl.col("first").min(), pl.col("last").max())
        )
        return replace(
            self, buckets=sort_buckets(buckets), counts=sort_counts(counts), schedule=schedule
        )


def sort_buckets(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.col(n).cast(t) for n, t in BUCKET_SCHEMA.items()).sort(
        EDGE_INDEX, BUCKET, nulls_last=True
    )


def sort_counts(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.col(n).cast(t) for n, t in COUNT_SCHEMA.items()).sort(
        BUCKET, nulls_last=True
    )
