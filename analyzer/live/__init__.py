"""Live sources: streaming ingest of ``hubble observe --follow`` output, growing files and
Hubble Relay, committed as they stream (docs/live.md).

``follow.run_stream`` drives a ``ByteSource`` (``sources.StdinSource``, ``sources.FileFollower``,
``relay.RelaySource``) through the file readers, drops records the store holds already
(``dedup``) and commits batches through the store's commit protocol (``batch``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from analyzer.live.cadence import Cadence, parse_commit_every, parse_since
from analyzer.live.sources import FileFollower, StdinSource

if TYPE_CHECKING:
    from analyzer.live.follow import LiveEvent, LiveOptions, LiveStatus, last_resume, run_stream

# ``follow`` pulls in the ingest readers and the store writer: every command imports the CLI,
# which names this package's options, so load it on first use (``analyzer ingest`` only).
_LAZY = {name: "follow" for name in ("LiveEvent", "LiveOptions", "LiveStatus", "last_resume",
                                     "run_stream")}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


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
