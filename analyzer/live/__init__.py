"""Live sources: streaming ingest of ``hubble observe --follow`` output, growing files and
Hubble Relay, committed as they stream (docs/live.md).

``follow.run_stream`` drives a ``ByteSource`` (``sources.StdinSource``, ``sources.FileFollower``,
``relay.RelaySource``) through the file readers, drops records the store holds already
(``dedup``) and commits batches through the store's commit protocol (``batch``).
"""

from __future__ import annotations

from analyzer.live.cadence import Cadence, parse_commit_every, parse_since
from analyzer.live.follow import LiveEvent, LiveOptions, LiveStatus, last_resume, run_stream
from analyzer.live.sources import FileFollower, StdinSource

__all__ = [
    "Cadence",
    "FileFollower",
    "LiveEvent",
    "LiveOptions",
    "LiveStatus",
    "StdinSource",
    "last_resume",
    "parse_commit_every",
    "parse_since",
    "run_stream",
]
