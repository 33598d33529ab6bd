"""``analyzer store compact``, first step: merge small raw flow parts into larger ones.

Every ingest adds at least one part (a live commit one per second), so a long-lived store
collects thousands of small files, which every reader of ``flows/`` (this analyzer, DuckDB,
Spark) pays for per file. Runs of consecutive parts smaller than ``SMALL_PART_ROWS`` are
rewritten as one part of at most ``PART_ROWS`` rows: the same rows in the same (manifest)
order, so every row keeps its global position and the derivation state and the rollup are
*re-keyed* to the new part names, not derived again. The merged part is listed by the entry
that held the run's first part; later entries of the run list none and say ``merged_into``
(they keep their content hash: ingesting them again is still a duplicate). Parts of inputs
whose flows were not kept (``--no-keep-flows``) have no file and end a run.

Kill-safety, under the store's lock: the merged parts, the re-keyed state and rollup are
staged and fsynced; the manifest is replaced (the commit point); then the merged parts are
moved into ``flows/``, the rollup published and the old parts deleted. Killed before the
commit, the store is as it was (``FlowStore.recover`` removes the staging directory); after,
readers find the merged parts in staging and ``recover`` finishes the moves, publishes the
staged rollup and deletes the parts no entry lists.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow.parquet as pq

from analyzer.connections import Buckets, DerivationState
from analyzer.errors import StoreError
from analyzer.schema import FLOW_SCHEMA
from analyzer.store.files import fsync
from analyzer.store.flowstore import STAGING_PREFIX, FlowStore, ManifestEntry, scan_parts
from analyzer.store.rollup import (
    Rollup,
    publish_rollup,
    read_rollup,
    read_state,
    rekey_rollup,
    rollup_key,
    state_key,
    write_state,
)
from analyzer.store.staging import PART_ROWS, part_writer

__all__ = ["SMALL_PART_ROWS", "PartsMerged", "merge_small_parts", "plan_runs"]

# A part below this many rows is "small": merged with its small neighbours.
SMALL_PART_ROWS = PART_ROWS // 4


@dataclass(frozen=True, slots=True)
class PartsMerged:
    """Part files before and after (kept parts only), and the runs merged."""

    parts_before: int
    parts_after: int
    runs: int


def plan_runs(parts: Sequence[tuple[str, int | None]]) -> list[list[str]]:
    """Runs of two or more consecutive small parts, each at most ``PART_ROWS`` rows, given
    ``(name, rows)`` in manifest order (rows None: not kept, ends a run)."""
    runs: list[list[str]] = []
    run: list[str] = []
    total = 0
    for name, rows in parts:
        small = rows is not None and rows < SMALL_PART_ROWS
        if not small or total + (rows or 0) > PART_ROWS:
            if len(run) > 1:
                runs.append(run)
            run, total = [], 0
        if small:
            run.append(name)
            total += rows or 0
    if len(run) > 1:
        runs.append(run)
    return runs


def _rewritten(entries: Sequence[ManifestEntry], runs: list[list[str]]) -> tuple[
    list[ManifestEntry], dict[str, list[str]]
]:
    """The manifest with each run replaced by one new part, and that part's run by name."""
    merged: dict[str, list[str]] = {}
    into: dict[str, str] = {}
    for run in runs:
        name = f"part-{uuid.uuid4().hex[:16]}-merged.parquet"
        merged[name] = run
        into.update((part, name) for part in run)
    out = []
    for entry in entries:
        parts: list[str] = []
        moved: str | None = entry.merged_into
        for part in entry.parts:
            target = into.get(part)
            if target is None:
                parts.append(part)
            elif merged[target][0] == part:
                parts.append(target)
            else:
                moved = moved or target
        out.append(replace(entry, parts=tuple(parts), merged_into=moved))
    return out, merged


def merge_small_parts(store: FlowStore, schedule: Buckets) -> PartsMerged:
    """Merge runs of small parts (``plan_runs``) and re-key the rollup and derivation state
    to the new names (callers hold the lock, after ``recover``). The rollup must be fresh
    (compaction rebuilds a stale one of a store with all its flows first); without a
    derivation state of the old parts none is written (the next ingest derives the store)."""
    entries = store.manifest()
    names = store.part_names()
    kept = {p for e in entries for p in e.kept_parts}
    count = len(kept)
    sizes = [
        (p, pq.read_metadata(store.flows_dir / p).num_rows if p in kept else None) for p in names
    ]
    runs = plan_runs(sizes)
    if not runs:
        return PartsMerged(count, count, 0)
    rollup = read_rollup(store.root, names, switchable=False)
    state = read_state(store.root, names)
    new_entries, merged = _rewritten(entries, runs)
    staged = store.root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    staged.mkdir()
    new_names = [p for e in new_entries for p in e.parts]
    try:
        done = _commit(store, staged, new_entries, merged, rollup, state, schedule)
    except BaseException:
        with suppress(StoreError):  # else committed parts wait in staging for ``recover``
            if store.part_names() != new_names:
                shutil.rmtree(staged, ignore_errors=True)
        raise
    if done:  # else committed: ``FlowStore.recover`` moves and publishes from staging
        shutil.rmtree(staged, ignore_errors=True)
    kept_after = sum(len(e.kept_parts) for e in new_entries)
    return PartsMerged(count, kept_after, len(runs))


def _copy_rows(store: FlowStore, path: Path, writer: pq.ParquetWriter) -> None:
    """Append the rows of the part at ``path`` to ``writer``, one row group at a time (memory
    bounded by a row group, not the part); a part of an older schema goes through
    ``scan_parts`` (missing columns inserted as nulls), whole: it predates this compaction."""
    source = pq.ParquetFile(path)
    if source.schema_arrow.remove_metadata().equals(FLOW_SCHEMA.remove_metadata()):
        for group in range(source.num_row_groups):
            writer.write_table(source.read_row_group(group))
        return
    frame = scan_parts([path], store.root).collect()
    writer.write_table(frame.to_arrow().cast(FLOW_SCHEMA))


def _commit(
    store: FlowStore,
    staged: Path,
    new_entries: list[ManifestEntry],
    merged: dict[str, list[str]],
    rollup: Rollup | None,
    state: DerivationState | None,
    schedule: Buckets,
) -> bool:
    """Stage, commit and publish (module docstring); False when a file-system failure after
    the commit point leaves moves for ``FlowStore.recover``."""
    new_names = [p for e in new_entries for p in e.parts]
    for name, run in merged.items():
        writer = part_writer(staged / name)
        try:
            for part in run:
                _copy_rows(store, store.flows_dir / part, writer)
        finally:
            writer.close()
        fsync(staged / name)
    built = None
    if rollup is not None:
        if state is not None:
            write_state(staged, state_key(new_names), state)
        built = rekey_rollup(staged, rollup, rollup_key(new_names, schedule))
    fsync(staged)
    store.write_manifest(new_entries)  # the commit point
    try:
        for name in merged:
            os.replace(staged / name, store.flows_dir / name)
        fsync(store.flows_dir)
        if built is not None:
            publish_rollup(store.root, built, new_names)
    except OSError:
        return False
    for run in merged.values():
        for part in run:
            (store.flows_dir / part).unlink(missing_ok=True)
    return True
