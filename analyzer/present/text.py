"""One function per fact that output spells: ports, times, spans, text safe for a terminal.

Values from flow logs are hostile text: everything a person reads goes through
:func:`printable` (or :func:`escaped`) first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

__all__ = [
    "escaped",
    "format_span",
    "iso",
    "iso_seconds",
    "port_text",
    "port_text_expr",
    "ports_summary",
    "printable",
    "text_table",
]


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with non-printable characters as ``?`` (at most ``limit`` characters)."""
    safe = "".join(c if c.isprintable() else "?" for c in text)
    return safe if limit is None else safe[:limit]


def escaped(text: str) -> str:
    """Non-printable characters as ``\\xNN``: nothing is lost, nothing reaches a terminal."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def port_text(protocol: str | None, port: int | None) -> str:
    """``TCP/8080``; a bare protocol for ICMP and other portless protocols."""
    proto = protocol or "?"
    return proto if port is None else f"{proto}/{port}"


def port_text_expr(protocol: str = "protocol", port: str = "dst_port") -> pl.Expr:
    """:func:`port_text` as a polars expression over two columns."""
    proto = pl.col(protocol).fill_null("?")
    return (
        pl.when(pl.col(port).is_null())
        .then(proto)
        .otherwise(proto + "/" + pl.col(port).cast(pl.String))
    )


def ports_summary(ports: Sequence[str], shown: int = 8) -> str:
    """``TCP/80, TCP/443``; past ``shown`` ports, the first ones and the count."""
    text = ", ".join(ports[:shown])
    return text if len(ports) <= shown else f"{text} … ({len(ports)} ports)"


def iso(value: datetime | None) -> str | None:
    """RFC 3339 with ``Z`` for UTC, microseconds kept (JSON output)."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def iso_seconds(value: datetime) -> str:
    """RFC 3339 to the second, UTC (annotations and sentences)."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_span(span: timedelta) -> str:
    """A duration for people: ``2d 3h``, ``1h 0m``, ``4m 30s``, ``12s``."""
    seconds = max(0, int(span.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def text_table(
    rows: Sequence[Sequence[str]], *, right: Sequence[int] = (), last_free: bool = False
) -> list[str]:
    """Rows (the first is the header) as aligned lines, two spaces apart; ``right`` columns
    right-aligned; ``last_free`` leaves the last column unpadded (free text)."""
    if not rows:
        return []
    count = len(rows[0]) - (1 if last_free else 0)
    widths = [max(len(r[i]) for r in rows) for i in range(count)]
    lines = []
    for r in rows:
        cells = [
            r[i].rjust(widths[i]) if i in right else r[i].ljust(widths[i]) for i in range(count)
        ]
        if last_free:
            cells.append(r[-1])
        lines.append("  ".join(cells).rstrip())
    return lines
