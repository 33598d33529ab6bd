"""Why a store's rollup is not read: the one-line hint a reading command gives.

A stale rollup is never read (``rollup.read_rollup``): commands derive from the raw flows and
print the same answers, only slower. Without a hint a person cannot tell why a command got
slow, so the reading side (``FlowStore.rollup``) raises a :class:`StaleRollupWarning` saying
why and what to run; the CLI prints each distinct one once per command on stderr (``note:
...``), stdout is untouched.

No hint when the rollup is switched off (``ANALYZER_NO_ROLLUP=1``: asked for) or when the
store never had one (no ``STORE/rollup/``: a store written before the rollup existed, or an
empty store): there is nothing stale to rebuild. ``rollup.json`` (informative, never consulted
for freshness) only words the reason.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from analyzer.errors import StaleRollupWarning, StoreError
from analyzer.store import rollup
from analyzer.store.rollup import INDEX, ROLLUP_DIR, ROLLUP_ENV, read_schedule, rollup_version

__all__ = ["StaleRollupWarning", "stale_reason", "warn_if_stale"]


def _had_rollup(root: Path) -> bool:
    directory = root / ROLLUP_DIR
    return (directory / INDEX).is_file() or any(directory.glob("connections-*.parquet"))


def stale_reason(root: Path, parts: Sequence[str]) -> str | None:
    """Why the rollup of ``root`` is not the one of ``parts`` (call when ``read_rollup``
    returned None); None when there is nothing to say (switched off, never had one)."""
    if os.environ.get(ROLLUP_ENV, "") not in ("", "0") or not _had_rollup(root):
        return None
    try:
        index = json.loads((root / ROLLUP_DIR / INDEX).read_bytes())
        built = [str(p) for p in index["parts"]]
        schedule = index["schedule"]
    except (OSError, ValueError, KeyError, TypeError):
        return "its description rollup/rollup.json is missing or unreadable"
    if built != list(parts):
        added = len(set(parts) - set(built))
        if added and set(built) <= set(parts):
            return f"{added} flow part(s) committed since it was built, e.g. by a live ingest"
        return "it was built for other flow parts than the store now lists"
    try:
        current = read_schedule(root).to_json()
    except StoreError:
        current = None
    if current != schedule:
        return "it was built under another bucket schedule (STORE/buckets.json)"
    version = rollup_version(root / ROLLUP_DIR / str(index.get("file", "")))
    if version is not None and version != rollup.ROLLUP_VERSION:
        return (
            f"it was built in rollup format {version} and this analyzer reads format "
            f"{rollup.ROLLUP_VERSION}"
        )
    return "it was built by another version of the analyzer, or its files are unreadable"


def warn_if_stale(root: Path, parts: Sequence[str]) -> None:
    """Raise a :class:`StaleRollupWarning` when the store's rollup is stale (see module)."""
    reason = stale_reason(root, parts)
    if reason is not None:
        warnings.warn(
            f"the store's connection rollup is stale ({reason}); commands derive from the raw "
            f"flows meanwhile (same answers, slower): run 'analyzer store rebuild --store "
            f"{root}' to make them fast again",
            StaleRollupWarning,
            stacklevel=3,
        )
