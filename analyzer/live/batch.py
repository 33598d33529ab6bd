"""Streamed rows -> committed batches, through the store's own commit protocol.

Rows of the current batch are written as Parquet parts (``PartWriter``, as a file ingest
writes them) into the run's working directory ``STORE/.live-<run>/``, which the store's
recovery leaves alone while the run holds its lock file. A commit takes the store's writer
lock, moves the batch's fsynced parts into a staging directory (``.tmp-<id>``) and calls
``FlowStore.commit``: the manifest write is the commit point, exactly as for a file ingest.
Working directories of runs that were killed are removed by the next run.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from analyzer.errors import StoreError
from analyzer.ingest._io import Digest
from analyzer.ingest.report import SkipReason
from analyzer.live.parse import Parsed, lost_events_warning, unlabelled_warning
from analyzer.store import STAGING_PREFIX, FlowStore, ManifestEntry
from analyzer.store.files import fsync, os_error_text
from analyzer.store.staging import PartWriter

__all__ = ["BatchWriter", "Committed", "LIVE_PREFIX", "remove_stale_runs"]

LIVE_PREFIX = ".live-"
_OWNER = ".owner"
_FIRST_LINES = 5


@dataclass(frozen=True, slots=True)
class Committed:
    """One commit: the manifest entry and when it was made."""

    entry: ManifestEntry
    duplicates: int
    seconds: float  # time the commit took (lock, fsync, manifest, rename)


@dataclass(slots=True)
class _Batch:
    seq: int
    batch_id: str
    writer: PartWriter
    hasher: Any = field(default_factory=hashlib.sha256)
    rows: int = 0
    bytes: int = 0
    lines: int = 0
    duplicates: int = 0
    lost_events: int = 0
    unlabelled: int = 0
    skip_counts: dict[str, int] = field(default_factory=dict)
    skip_lines: dict[str, list[int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    first_time: Any = None
    last_time: Any = None


def remove_stale_runs(root: Path) -> None:
    """Delete working directories of streaming runs that no longer hold their lock."""
    for directory in root.glob(f"{LIVE_PREFIX}*"):
        owner = directory / _OWNER
        try:
            fd = os.open(owner, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a running stream
        os.close(fd)
        shutil.rmtree(directory, ignore_errors=True)


def _done(value: Digest) -> Future[Digest]:
    future: Future[Digest] = Future()
    future.set_result(value)
    return future


class BatchWriter:
    """The current batch of one streaming run, and its commits."""

    def __init__(self, store: FlowStore, *, kind: str, label: str, lock_timeout: float) -> None:
        self.store = store
        self.kind = kind
        self.label = label
        self.lock_timeout = lock_timeout
        self.run = uuid.uuid4().hex
        remove_stale_runs(store.root)
        self.work_dir = store.root / f"{LIVE_PREFIX}{self.run}"
        try:
            self.work_dir.mkdir()
            self._owner = os.open(self.work_dir / _OWNER, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._owner, fcntl.LOCK_EX)
        except OSError as exc:
            raise StoreError(
                f"cannot write to the flow store at {store.root}: {os_error_text(exc)}"
            ) from exc
        self._seq = 0
        self._batch = self._begin()

    def _begin(self) -> _Batch:
        self._seq += 1
        seed = f"analyzer-stream\0{self.kind}\0{self.label}\0{self.run}\0{self._seq}"
        batch_id = hashlib.sha256(seed.encode()).hexdigest()
        writer = PartWriter(self.work_dir, _done(Digest(batch_id, batch_id, None)))
        return _Batch(self._seq, batch_id, writer)

    # --- filling the batch -------------------------------------------------------------------

    @property
    def bytes_read(self) -> int:
        return self._batch.bytes

    @property
    def lines(self) -> int:
        return self._batch.lines

    def add(self, data: bytes, lines: int, parsed: Parsed, new: pl.DataFrame, dropped: int) -> None:
        """The bytes of complete lines read, what they parsed to, the rows to store."""
        b = self._batch
        b.hasher.update(data)
        b.bytes += len(data)
        b.lines += lines
        b.duplicates += dropped
        b.lost_events += parsed.lost_events
        b.unlabelled += parsed.unlabelled
        for reason, count in parsed.skip_counts.items():
            b.skip_counts[reason] = b.skip_counts.get(reason, 0) + count
            kept = b.skip_lines.setdefault(reason, [])
            kept.extend(parsed.skipped.get(reason, [])[: max(0, _FIRST_LINES - len(kept))])
        b.warnings.extend(w for w in parsed.warnings if w not in b.warnings)
        if new.height:
            b.writer.submit(new)
            b.rows += new.height
            lo, hi = new.get_column("time").min(), new.get_column("time").max()
            if lo is not None:
                b.first_time = lo if b.first_time is None else min(b.first_time, lo)
            if hi is not None:
                b.last_time = hi if b.last_time is None else max(b.last_time, hi)

    # --- committing -----------------------------------------------------------------------

    def commit(self, fmt: str | None, resume: dict[str, Any]) -> Committed | None:
        """Commit the current batch (None if it read nothing) and start the next one."""
        b = self._batch
        if b.bytes == 0:
            return None
        started = datetime.now(UTC)
        try:
            b.writer.close()
            for part in b.writer.parts:
                fsync(self.work_dir / part)
            entry = self._entry(b, fmt or "unknown", resume, started)
            with self.store.lock(self.lock_timeout):
                self.store.recover()
                staged = self.store.root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
                staged.mkdir()
                for part in entry.parts:
                    os.replace(self.work_dir / part, staged / part)
                published = self.store.commit(staged, [entry])
                if published:
                    shutil.rmtree(staged, ignore_errors=True)
        except OSError as exc:
            raise StoreError(
                f"cannot commit to the flow store at {self.store.root}: {os_error_text(exc)}; "
                f"the {b.rows:,} rows read since the last commit were not stored"
            ) from exc
        self._batch = self._begin()
        seconds = (datetime.now(UTC) - started).total_seconds()
        return Committed(entry, b.duplicates, seconds)

    def _entry(
        self, b: _Batch, fmt: str, resume: dict[str, Any], started: datetime
    ) -> ManifestEntry:
        warnings = list(b.warnings)
        if b.unlabelled:
            warnings.append(unlabelled_warning(b.unlabelled))
        if b.lost_events:
            warnings.append(lost_events_warning(b.lost_events))
        skipped = tuple(
            SkipReason(reason, count, tuple(sorted(b.skip_lines.get(reason, []))))
            for reason, count in sorted(b.skip_counts.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        stream = {
            "kind": self.kind,
            "source": self.label,
            "run": self.run,
            "seq": b.seq,
            "lines": b.lines,
            "duplicates": b.duplicates,
            "first_time": _iso(b.first_time),
            "last_time": _iso(b.last_time),
            "resume": resume,
        }
        return ManifestEntry(
            ingest_id=b.batch_id,
            path=self.label,
            format=fmt,
            rows=b.rows,
            skipped=skipped,
            warnings=tuple(warnings),
            ingested_at=started.isoformat(timespec="seconds"),
            parts=tuple(b.writer.parts),
            size_bytes=b.bytes,
            file_sha256=b.hasher.hexdigest(),
            compression=None,
            stream=stream,
        )

    def part_path(self, name: str) -> Path:
        path = self.store.flows_dir / name
        return (
            path
            if path.is_file()
            else next(
                (
                    d / name
                    for d in self.store.root.glob(f"{STAGING_PREFIX}*")
                    if (d / name).is_file()
                ),
                path,
            )
        )

    def close(self) -> None:
        """Discard an uncommitted batch and remove the working directory."""
        try:
            self._batch.writer.close()
        except Exception:  # noqa: BLE001 - the run is ending; its batch is discarded
            pass
        os.close(self._owner)
        shutil.rmtree(self.work_dir, ignore_errors=True)


def _iso(value: Any) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
