"""The flow store: Parquet parts plus a manifest, written by one atomic, locked commit.

::

    flowstore.py   FlowStore (open, scan, manifest, lock, commit, recover), ManifestEntry
    pipeline.py    inputs -> staged parts -> one commit (``analyzer ingest``)
    staging.py     what an ingest writes before the commit (spooled stdin, Parquet parts)
    files.py       fsync, atomic_write, OS errors as one-line reasons
    stats.py       ``analyzer stats`` (from the flow summary the rollup carries: flow_summary.py)
    rollup.py      the connection rollup written at ingest (docs/rollup.md)

The store knows the readers of ``analyzer.ingest``; the readers know nothing of the store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from analyzer.store.files import atomic_write, fsync, os_error_text
from analyzer.store.flowstore import (
    FLOWS_DIR,
    MANIFEST,
    STAGING_PREFIX,
    FlowStore,
    ManifestEntry,
)
from analyzer.store.pipeline import run_ingest
from analyzer.store.summary import IngestSummary, InputSummary

__all__ = [
    "ingest",
    "MANIFEST",
    "FLOWS_DIR",
    "ManifestEntry",
    "FlowStore",
    "IngestSummary",
    "InputSummary",
    "atomic_write",
    "fsync",
    "os_error_text",
    "STAGING_PREFIX",
]


def ingest(
    store_dir: Path,
    inputs: Sequence[str],
    fmt: str = "auto",
    progress: Callable[[int], None] | bool | None = None,
    *,
    keep_flows: bool | None = None,
) -> IngestSummary:
    """Ingest flow files, directories or ``-`` (stdin) into the store at ``store_dir``.

    ``progress``, when callable, is called with the number of input bytes consumed since the
    last call (a bool is accepted and means no callback: the library never prints).
    All-or-nothing: on error the store is left exactly as it was. See
    ``analyzer.store.pipeline.run_ingest`` (``keep_flows``: ``--no-keep-flows``).
    """
    callback = progress if callable(progress) else None
    return run_ingest(Path(store_dir), inputs, fmt, callback, keep_flows=keep_flows)
