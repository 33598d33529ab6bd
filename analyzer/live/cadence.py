"""Option values of the live commands: ``--commit-every`` and ``--since``.

``--commit-every`` is a duration (``30s``, ``5m``, ``1h``, ``1500ms``) or a number of records
(``10000``); ``--since`` is a duration before now (``1h``, ``24h``, ``2d``) or an RFC 3339
time (``2026-11-02T09:00:00Z``), as ``hubble observe --since`` takes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from analyzer.errors import UsageError

__all__ = ["Cadence", "DEFAULT_COMMIT_EVERY", "parse_commit_every", "parse_duration", "parse_since"]

DEFAULT_COMMIT_EVERY = "60s"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


@dataclass(frozen=True, slots=True)
class Cadence:
    """When a streaming ingest commits: every ``seconds``, or every ``records`` lines read."""

    seconds: float | None = None
    records: int | None = None

    def describe(self) -> str:
        if self.records is not None:
            return f"every {self.records:,} records"
        return f"every {self.seconds:g} s"


def parse_duration(text: str, option: str) -> timedelta:
    """``30s``, ``5m``, ``1h``, ``2d``, ``1500ms`` -> timedelta; UsageError otherwise."""
    m = _DURATION.match(text)
    if m is None:
        raise UsageError(f"{option} {text!r} is not a duration such as 30s, 5m, 1h or 2d")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_commit_every(text: str) -> Cadence:
    """A duration (``30s``) or a positive number of records (``10000``)."""
    stripped = text.strip()
    if stripped.isdigit():
        records = int(stripped)
        if records <= 0:
            raise UsageError("--commit-every must be a positive number of records or a duration")
        return Cadence(records=records)
    seconds = parse_duration(text, "--commit-every").total_seconds()
    if seconds <= 0:
        raise UsageError("--commit-every must be longer than 0 s")
    return Cadence(seconds=seconds)


def parse_since(text: str, *, now: datetime | None = None, option: str = "--since") -> datetime:
    """A duration before ``now`` or an absolute RFC 3339 time (UTC when no offset is given)."""
    if _DURATION.match(text):
        return (now or datetime.now(UTC)) - parse_duration(text, option)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is neither a duration (30m, 24h, 7d) nor a time such as "
            "2026-11-02T09:00:00Z"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
