"""What an analysis looks at: namespaces and a time window.

The time window selects time buckets of the connections derived over the whole source
(``analysis.connection_source.window_of`` rounds it out to whole buckets; see
``analyzer.connections.buckets`` for the definition); the namespaces only filter results (an
edge is in scope when its source or its destination is in one of them). Derived values that
need the whole population, such as the anomaly model's "normal" and the selectors that must
stay unique per namespace, are computed over every namespace of the window and then filtered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from analyzer import schema as S
from analyzer.errors import UsageError

__all__ = ["Scope", "parse_duration", "parse_time"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d``, ``1h30m`` (or plain seconds) as a timedelta."""
    spec = text.strip().lower()
    if spec.isdigit():
        return timedelta(seconds=int(spec))
    parts = _DURATION.findall(spec)
    if not parts or "".join(n + u for n, u in parts) != spec:
        raise UsageError(f"{text!r} is not a duration such as 90s, 15m, 24h, 7d or 1h30m")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


def parse_time(text: str, *, option: str, now: datetime | None = None) -> datetime:
    """An RFC 3339 time (``2026-11-02T09:00:00Z``), or a duration meaning that long before
    ``now`` (the current time): ``--since 24h`` is the last day, as in ``kubectl logs``."""
    spec = text.strip()
    wrong = UsageError(
        f"{option} {text!r} is not an RFC 3339 time (2026-11-02T09:00:00Z) or a duration "
        "before now (24h, 7d, 1h30m)"
    )
    if spec and spec[0].isdigit() and ("T" in spec or "-" in spec[1:]):
        try:
            value = datetime.fromisoformat(spec.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            raise wrong from None
        if value.tzinfo is None:
            raise UsageError(f"{option} {text!r}: give a time zone (Z or +01:00)")
        return value.astimezone(UTC)
    try:
        span = parse_duration(spec)
    except UsageError:
        raise wrong from None
    return (now or datetime.now(UTC)) - span


@dataclass(frozen=True, slots=True)
class Scope:
    """Namespaces (empty: all) and a half-open time window (None: unbounded)."""

    namespaces: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(
        cls,
        namespaces: Sequence[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        *,
        now: datetime | None = None,
    ) -> Scope:
        """The scope of the command-line options ``-n``, ``--since``, ``--until``."""
        moment = now or datetime.now(UTC)
        start = parse_time(since, option="--since", now=moment) if since else None
        end = parse_time(until, option="--until", now=moment) if until else None
        if start is not None and end is not None and start >= end:
            raise UsageError(f"--since {since} is not before --until {until}")
        for ns in namespaces or ():
            if not ns or "/" in ns:
                raise UsageError(f"invalid namespace {ns!r}")
        return cls(tuple(dict.fromkeys(namespaces or ())), start, end)

    @property
    def windowed(self) -> bool:
        return self.since is not None or self.until is not None

    def flow_filter(self) -> pl.Expr | None:
        """The flow rows of the time window (None: every row)."""
        conditions = []
        if self.since is not None:
            conditions.append(pl.col(S.TIME) >= self.since)
        if self.until is not None:
            conditions.append(pl.col(S.TIME) < self.until)
        if not conditions:
            return None
        return pl.all_horizontal(conditions).fill_null(False)

    def edge_filter(self) -> pl.Expr | None:
        """Rows (connections, edges) with a source or destination in the namespaces."""
        if not self.namespaces:
            return None
        wanted = list(self.namespaces)
        return pl.col(S.SRC_NAMESPACE).is_in(wanted).fill_null(False) | pl.col(
            S.DST_NAMESPACE
        ).is_in(wanted).fill_null(False)

    def select(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` (with src/dst namespace columns) filtered to the namespaces."""
        condition = self.edge_filter()
        if condition is None or frame.height == 0:
            return frame
        return frame.filter(condition)

    def describe(self) -> str:
        """For people: ``namespaces develop, production; 2026-11-02T09:00:00Z to now``."""
        where = f"namespaces {', '.join(self.namespaces)}" if self.namespaces else "all namespaces"
        if not self.windowed:
            return where
        start = self.since.strftime("%Y-%m-%dT%H:%M:%SZ") if self.since else "the first flow"
        end = self.until.strftime("%Y-%m-%dT%H:%M:%SZ") if self.until else "the last flow"
        return f"{where}; flows from {start} to {end}"
