"""The one place that opens what the command line names: the flow store, flow files, policy
files and the inventory. Everything below the analysis layer takes the values read here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import polars as pl

from analyzer.connections import Buckets
from analyzer.errors import UsageError
from analyzer.ingest import ReadResult, read_flow_file
from analyzer.k8s.inventory import Inventory, load_inventory
from analyzer.policy.load import LoadResult, load_policies, require_policies
from analyzer.store import FlowStore, ManifestEntry
from analyzer.store.rollup import Rollup, read_schedule

__all__ = [
    "FileFlows",
    "FlowSource",
    "IngestNotes",
    "StoreFlows",
    "load_inventory_file",
    "load_policy_files",
    "open_flows",
    "open_store",
    "read_flow_files",
]


@dataclass(frozen=True, slots=True)
class IngestNotes:
    """What happened when the flows were read: events the sources lost, records skipped (by
    reason, lost-events records excepted) and the readers' warnings (``path: text``)."""

    lost_events: int = 0
    skipped: tuple[tuple[str, int], ...] = ()
    warnings: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """One line each for a person (the ingest warnings, then the skip counts)."""
        out = [f"ingest: {w}" for w in self.warnings]
        out += [f"{n} record(s) skipped at ingest: {reason}" for reason, n in self.skipped]
        return out


class FlowSource(Protocol):
    """Flow rows in the canonical schema, and what reading them reported."""

    def scan(self) -> pl.LazyFrame: ...

    def ingest_notes(self) -> IngestNotes: ...

    def rollup(self) -> Rollup | None:
        """The connections of every row, derived at ingest, when fresh (None: derive)."""
        ...

    def buckets(self) -> Buckets:
        """The time buckets a window is made of (``analyzer.connections.buckets``)."""
        ...


def _notes(
    inputs: Sequence[tuple[str, int, Sequence[tuple[str, int]], Sequence[str]]],
) -> IngestNotes:
    """``(path, lost events, [(skip reason, count)], [warning])`` per input."""
    skipped: dict[str, int] = {}
    warnings: list[str] = []
    lost = 0
    for path, lost_events, skips, texts in inputs:
        lost += lost_events
        for reason, count in skips:
            if "lost" not in reason.lower():  # counted as lost events
                skipped[reason] = skipped.get(reason, 0) + count
        warnings.extend(f"{path}: {w}" for w in texts)
    return IngestNotes(lost, tuple(sorted(skipped.items())), tuple(dict.fromkeys(warnings)))


@dataclass(frozen=True, slots=True)
class StoreFlows:
    """The flows of a flow store; its manifest says what ingest skipped and lost."""

    store: FlowStore

    def scan(self) -> pl.LazyFrame:
        return self.store.scan()

    def rollup(self) -> Rollup | None:
        return self.store.rollup()

    def buckets(self) -> Buckets:
        return read_schedule(self.store.root)

    def ingest_notes(self) -> IngestNotes:
        entries: list[ManifestEntry] = self.store.manifest()
        return _notes(
            [
                (e.path, e.lost_events, [(s.reason, s.count) for s in e.skipped], e.warnings)
                for e in entries
            ]
        )


@dataclass(frozen=True, slots=True)
class FileFlows:
    """Flow files read directly (``simulate``/``audit`` with FLOWFILE arguments)."""

    results: tuple[tuple[str, ReadResult], ...]

    def scan(self) -> pl.LazyFrame:
        frames = [result.frame for _, result in self.results]
        return pl.concat(frames, how="vertical_relaxed").lazy()

    def rollup(self) -> Rollup | None:
        return None  # files read directly: derived from their rows

    def buckets(self) -> Buckets:
        return Buckets()  # minutes

    def ingest_notes(self) -> IngestNotes:
        return _notes(
            [
                (path, r.lost_events, [(s.reason, s.count) for s in r.skipped], r.warnings)
                for path, r in self.results
            ]
        )


def open_store(path: Path) -> StoreFlows:
    """The store at ``path`` (``StoreError`` when there is none)."""
    return StoreFlows(FlowStore.open(Path(path)))


def read_flow_files(paths: Sequence[str]) -> FileFlows:
    """Read flow files in any ingest format (``IngestError`` for an unusable one)."""
    return FileFlows(tuple((str(p), read_flow_file(p)) for p in paths))


def open_flows(store: Path, flow_files: Sequence[str] = ()) -> FlowSource:
    """Flow files when given, else the store."""
    return read_flow_files(flow_files) if flow_files else open_store(store)


def load_policy_files(
    paths: Sequence[str | Path], *, include_staged: bool = False, required: bool = True
) -> LoadResult:
    """Policies from files or directories; ``PolicyError`` when ``required`` and none loaded."""
    if required and not paths:
        raise UsageError("give the policies with --policies PATH")
    loaded = load_policies(list(paths), include_staged=include_staged)
    if required:
        require_policies(loaded, list(paths))
    return loaded


def load_inventory_file(path: Path | None) -> Inventory | None:
    """``kubectl get pods,namespaces -A -o json`` output, when given."""
    return load_inventory(path) if path is not None else None
