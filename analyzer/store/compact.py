"""``analyzer store compact``: merge small raw parts (``merge_parts``), then coarsen old time
buckets of the rollup (minutes -> hours -> days).

The rollup keeps one row per edge and minute in which the edge was used; over weeks that grows
with time. Compaction moves the store's bucket schedule (``STORE/buckets.json``) so that
buckets older than an age are hours, older than another age days, and re-aggregates the
rollup's buckets under it (sums, min/max, sorted unions: counts, first and last seen are kept
exactly, no raw flow is read). The whole-store connections are unchanged; windows keep
working at the coarser grain (a window is rounded out to whole buckets).

Kill-safety: under the store's lock, the coarse rollup is staged and fsynced, then the schedule
is replaced (the commit point), then the rollup is published. Killed in between, readers see
the new schedule with no fresh rollup and derive from the raw flows under it (the same
answer); ``FlowStore.recover`` publishes the staged rollup later.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from analyzer.connections import Buckets
from analyzer.errors import StoreError
from analyzer.store.files import os_error_text
from analyzer.store.flow_summary import attach_merged_summary, attach_summary, copy_summary
from analyzer.store.flowstore import STAGING_PREFIX, FlowStore, scan_parts
from analyzer.store.merge_parts import PartsMerged, merge_small_parts
from analyzer.store.rollup import (
    Rollup,
    coarsen_rollup,
    previous_rollup_file,
    publish_rollup,
    read_rollup,
    read_schedule,
    rollup_key,
    stage_incremental,
    stage_rollup,
    write_schedule,
)

__all__ = ["CompactResult", "compact_store"]


@dataclass(frozen=True, slots=True)
class CompactResult:
    """What compaction did: the schedules, bucket rows before and after, the rollup, the
    raw parts merged."""

    before: Buckets
    after: Buckets
    bucket_rows_before: int
    bucket_rows_after: int
    reference: datetime | None
    rollup: Rollup
    parts: PartsMerged


def compact_store(
    store_dir: Path,
    *,
    hours_after: timedelta | None,
    days_after: timedelta | None,
    now: datetime | None = None,
    lock_timeout: float = 600.0,
) -> CompactResult:
    """Make buckets older than ``hours_after`` hours and older than ``days_after`` days,
    ages counted back from ``now`` (default: the store's newest request) and rounded down to
    UTC midnight. Boundaries only ever move later: compaction never splits a bucket."""
    store = FlowStore.open(Path(store_dir))
    try:
        with store.lock(lock_timeout):
            store.recover()
            names = store.part_names()
            before = read_schedule(store.root)
            current = read_rollup(store.root, names, switchable=False)
            if current is None:
                current = rebuild_locked(store, names, before)
            merged = merge_small_parts(store, before)
            if merged.runs:
                names = store.part_names()
                current = read_rollup(store.root, names, switchable=False)
                if current is None:
                    raise StoreError(
                        f"the rollup of {store.root} could not be read back after merging parts"
                    )
            rows_before = current.bucketed().buckets.height
            reference = now if now is not None else current.stats.window[1]
            after = before
            if reference is not None:
                after = Buckets.coarsened(
                    before,
                    None if hours_after is None else reference - hours_after,
                    None if days_after is None else reference - days_after,
                )
            if after != before:
                staged = store.root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
                staged.mkdir()
                try:
                    built = coarsen_rollup(staged, current, rollup_key(names, after), after)
                    copy_summary(current.path, built)  # `analyzer stats` (flow_summary.py)
                    write_schedule(store.root, after)  # the commit point
                    publish_rollup(store.root, built, names)
                finally:
                    shutil.rmtree(staged, ignore_errors=True)
    except OSError as exc:
        raise StoreError(
            f"cannot compact the flow store at {store.root}: {os_error_text(exc)}"
        ) from exc
    rollup = read_rollup(store.root, store.part_names(), switchable=False)
    if rollup is None:
        raise StoreError(f"the rollup of {store.root} could not be read back after compacting")
    return CompactResult(
        before, after, rows_before, rollup.bucketed().buckets.height, reference, rollup, merged
    )


def rebuild_locked(store: FlowStore, names: list[str], schedule: Buckets) -> Rollup:
    """Derive the rollup of ``names`` again, publish it and read it back (lock held):
    ``analyzer store rebuild``, and compaction of a missing or stale rollup. From the raw
    flows; in a store that did not keep them all, by finishing its stored derivation state
    (what a derivation of the rows does: ``rollup.stage_incremental`` with no new rows),
    carrying the ``stats`` summary and endpoint table over; refused when that state is
    missing or of another state version (docs/rollup.md, "Versions")."""
    staged = store.root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    staged.mkdir()
    try:
        if store.dropped():
            none = scan_parts([], store.root)
            built = stage_incremental(staged, store.root, names, none, [], schedule)
            if built is None:
                store.refuse_without_flows(
                    "cannot derive the rollup again (the store's derivation state is missing "
                    "or of another version of the analyzer)"
                )
            assert built is not None  # refused above: some raw flows were not kept
            previous = previous_rollup_file(store.root, names, schedule)
            attach_merged_summary(built, previous, none, store.scan)
        else:
            built = stage_rollup(
                staged, rollup_key(names, schedule), store.scan(), schedule, names
            )
            attach_summary(built, store.scan())
        publish_rollup(store.root, built, names)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    rollup = read_rollup(store.root, names, switchable=False)
    if rollup is None:
        raise StoreError(f"the rollup of {store.root} could not be read back after rebuilding")
    return rollup
