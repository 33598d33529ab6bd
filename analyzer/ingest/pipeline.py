"""``analyzer ingest``: inputs -> staged Parquet parts -> one atomic commit into the store.

An ingest is all-or-nothing: if a named input cannot be used (unreadable, binary, empty, no
usable record, unknown format) nothing is committed. Files found by walking a directory that
are not flow files are skipped with a note instead, so a directory with a README still loads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from analyzer.errors import IngestError, StoreError
from analyzer.ingest import _native
from analyzer.ingest.detect import spec_for
from analyzer.ingest.reader import DEFAULT_BATCH_ROWS, FlowReader, empty_result_error
from analyzer.ingest.report import SkipReason
from analyzer.schema import FLOW_SCHEMA, INGEST_ID
from analyzer.store import FLOWS_DIR, LOCK, MANIFEST, FlowStore, ManifestEntry

__all__ = ["InputSummary", "IngestSummary", "run_ingest", "expand_inputs", "PART_ROWS"]

PART_ROWS = 4_000_000
_STATISTICS = [f.name for f in FLOW_SCHEMA if not pa.types.is_list(f.type)]
EARLY_HASH_BYTES = 64 << 20
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class InputSummary:
    """What happened to one input: ``loaded``, ``duplicate`` (no-op) or ``skipped``."""

    path: str
    status: str
    format: str | None = None
    rows: int = 0
    skipped: tuple[SkipReason, ...] = ()
    warnings: tuple[str, ...] = ()
    ingest_id: str | None = None
    message: str | None = None

    @property
    def skipped_total(self) -> int:
        return sum(s.count for s in self.skipped)


@dataclass(frozen=True, slots=True)
class IngestSummary:
    store: str
    created: bool
    inputs: tuple[InputSummary, ...]

    @property
    def rows_loaded(self) -> int:
        return sum(i.rows for i in self.inputs if i.status == "loaded")


def expand_inputs(inputs: Sequence[str]) -> list[tuple[str, bool]]:
    """``(path, named)`` pairs: named inputs as given, directories walked (hidden entries and
    the store's own files skipped), sorted for a stable order."""
    out: list[tuple[str, bool]] = []
    for item in inputs:
        if item == "-":
            out.append(("-", True))
            continue
        path = Path(item)
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                if (Path(dirpath) / MANIFEST).is_file() and (Path(dirpath) / FLOWS_DIR).is_dir():
                    dirnames[:] = []  # a flow store inside the tree: not input
                    continue
                out.extend(
                    (str(Path(dirpath) / f), False)
                    for f in sorted(filenames)
                    if not f.startswith(".")
                )
        elif path.exists():
            out.append((item, True))
        else:
            raise IngestError("no such file or directory", path=item)
    return out


def _file_hash(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _spool(staged: Path, source: Path | None) -> Path:
    """Copy stdin or a pipe (``<(...)``) into the staging directory: it is read twice (hash,
    parse) and a pipe can be read only once. Bounded memory; the copy is removed afterwards."""
    target = staged / f"spool-{uuid.uuid4().hex}"
    with open(target, "wb") as out:
        if source is None:
            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
        else:
            with open(source, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 20)
    return target


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _PartWriter:
    """Writes canonical frames to Parquet parts on a background thread, in order, stamping each
    row with the input's content hash once it is known (hashing runs concurrently too)."""

    def __init__(self, staged: Path, digest: Future[str]) -> None:
        self._staged = staged
        self._digest = digest
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="parquet")
        self._pending: deque[Future[None]] = deque()
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_part = 0
        self.parts: list[str] = []

    def submit(self, frame: pl.DataFrame) -> None:
        while len(self._pending) >= 2:  # bounded: at most two frames wait in memory
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._write, frame))

    def _write(self, frame: pl.DataFrame) -> None:
        digest = self._digest.result()
        if self._writer is None or self._rows_in_part >= PART_ROWS:
            if self._writer is not None:
                self._writer.close()
            self.parts.append(f"part-{digest[:16]}-{len(self.parts):04d}.parquet")
            self._writer = pq.ParquetWriter(
                self._staged / self.parts[-1],
                FLOW_SCHEMA,
                compression="zstd",
                # level 1: the parts are as small as at the default level, and written faster
                compression_level=1,
                # min/max of list columns help no reader; they cost a fifth of the write
                write_statistics=_STATISTICS,
            )
            self._rows_in_part = 0
        table = frame.with_columns(pl.lit(digest).alias(INGEST_ID)).to_arrow()
        self._writer.write_table(table.cast(FLOW_SCHEMA))
        self._rows_in_part += frame.height

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            for f in self._pending:
                f.cancel()
            self._pool.shutdown(wait=True)
            if self._writer is not None:
                self._writer.close()

    def discard(self) -> None:
        for part in self.parts:
            (self._staged / part).unlink(missing_ok=True)
        self.parts = []


def _duplicate(label: str, digest: str, prior: ManifestEntry) -> InputSummary:
    return InputSummary(
        label,
        "duplicate",
        prior.format,
        ingest_id=digest,
        message=f"identical content already in the store (from {prior.path}); nothing to do",
    )


def _load_one(
    path: str,
    named: bool,
    *,
    staged: Path,
    fmt: str,
    known: dict[str, ManifestEntry],
    progress: Progress | None,
    max_line_bytes: int,
    batch_rows: int,
) -> tuple[InputSummary, ManifestEntry | None]:
    label = path
    source = Path(path)
    if path == "-":
        label, source = "<stdin>", _spool(staged, None)
    elif source.exists() and not source.is_file():
        try:
            source = _spool(staged, source)
        except OSError as exc:
            raise IngestError(f"cannot read: {exc.strerror or exc}", path=label) from exc
    try:
        size = source.stat().st_size
    except OSError as exc:
        raise IngestError(f"cannot read: {exc.strerror or exc}", path=label) from exc
    with ThreadPoolExecutor(1, thread_name_prefix="sha256") as hasher:
        digest_future = hasher.submit(_file_hash, source)
        if size < EARLY_HASH_BYTES:
            digest_future.result()  # cheap: settle "already ingested?" before parsing
        return _load_hashed(
            label,
            named,
            source,
            size,
            digest_future,
            staged=staged,
            fmt=fmt,
            known=known,
            progress=progress,
            max_line_bytes=max_line_bytes,
            batch_rows=batch_rows,
        )


def _digest_of(future: Future[str], label: str) -> str:
    try:
        return future.result()
    except OSError as exc:
        raise IngestError(f"cannot read: {exc.strerror or exc}", path=label) from exc


def _load_hashed(
    label: str,
    named: bool,
    source: Path,
    size: int,
    digest_future: Future[str],
    *,
    staged: Path,
    fmt: str,
    known: dict[str, ManifestEntry],
    progress: Progress | None,
    max_line_bytes: int,
    batch_rows: int,
) -> tuple[InputSummary, ManifestEntry | None]:
    def already() -> str | None:
        if digest_future.done():
            digest = _digest_of(digest_future, label)
            return digest if digest in known else None
        return None

    if (dup := already()) is not None:
        if progress:
            progress(size)
        return _duplicate(label, dup, known[dup]), None
    try:
        reader = FlowReader(
            source, fmt, max_line_bytes=max_line_bytes, batch_rows=batch_rows, hash_content=False
        )
    except IngestError as exc:
        if named:
            raise IngestError(str(exc).removeprefix(f"{source}: "), path=label) from exc
        if progress:
            progress(size)
        return InputSummary(label, "skipped", message=str(exc).removeprefix(f"{source}: ")), None
    writer = _PartWriter(staged, digest_future)
    done = 0

    def consume(frames: Iterator[pl.DataFrame], position: Callable[[], int]) -> None:
        nonlocal done
        try:
            for frame in frames:
                if progress and (now := position()) > done:
                    progress(now - done)
                    done = now
                if frame.height:
                    writer.submit(frame)
                if already() is not None:
                    break
        finally:
            writer.close()

    native = reader.native_ok
    if native:
        with reader:
            try:
                # Progress estimate: rows so far times the mean line length of the head.
                consume(reader.native_batches(), lambda: min(size, reader.rows * reader.head_line))
            except _native.Refused:
                # Read again, chunk by chunk: that path reports bad lines with their numbers.
                native = False
                writer.discard()
                writer = _PartWriter(staged, digest_future)
                reader = FlowReader(
                    source,
                    fmt,
                    max_line_bytes=max_line_bytes,
                    batch_rows=batch_rows,
                    hash_content=False,
                )
    if not native:
        with reader:
            consume(reader.batches(), lambda: reader.stream.raw_bytes_read)
    digest = _digest_of(digest_future, label)
    if progress:
        progress(max(0, size - done))
    if digest in known:
        writer.discard()
        return _duplicate(label, digest, known[digest]), None
    if reader.rows == 0:
        writer.discard()
        err = str(empty_result_error(reader)).removeprefix(f"{source}: ")
        if named:
            raise IngestError(err, path=label)
        return InputSummary(label, "skipped", reader.format, message=err), None
    for part in writer.parts:
        _fsync(staged / part)
    skipped = reader.report.reasons()
    warnings = tuple(reader.report.warnings)
    entry = ManifestEntry(
        ingest_id=digest,
        path=label if label == "<stdin>" else str(Path(label).absolute()),
        format=reader.format,
        rows=reader.rows,
        skipped=skipped,
        warnings=warnings,
        ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
        parts=tuple(writer.parts),
        size_bytes=size,
    )
    summary = InputSummary(label, "loaded", reader.format, reader.rows, skipped, warnings, digest)
    return summary, entry


def run_ingest(
    store_dir: Path,
    inputs: Sequence[str],
    fmt: str = "auto",
    progress: Progress | None = None,
    *,
    lock_timeout: float = 600.0,
    max_line_bytes: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> IngestSummary:
    """Ingest ``inputs`` into the store at ``store_dir`` (created if missing).

    Raises
    ------
    IngestError
        A named input is unusable; nothing was committed.
    StoreError
        The store is damaged, not a directory, or locked past ``lock_timeout``.
    """
    from analyzer.ingest._io import MAX_LINE_BYTES

    if fmt != "auto":
        spec_for(fmt)
    root = Path(store_dir)
    if root.exists() and not root.is_dir():
        raise StoreError(f"{root} is not a flow store (it is a file)")
    _refuse_foreign_directory(root)
    targets = expand_inputs(inputs)
    if not targets:
        raise IngestError("no input files found", path=", ".join(inputs))
    made_root = not root.exists()
    made_flows = not (root / FLOWS_DIR).exists()
    made_lock = not (root / LOCK).exists()
    store = FlowStore(root)
    try:
        (root / FLOWS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create a flow store at {root}: {exc.strerror}") from exc
    fresh = True
    try:
        with store.lock(lock_timeout):
            fresh = not store.manifest_path.is_file()
            if not fresh:
                store.remove_orphans()
            known = {e.ingest_id: e for e in store.manifest()}
            staged = root / f".tmp-{uuid.uuid4().hex}"
            staged.mkdir()
            try:
                summaries: list[InputSummary] = []
                entries: list[ManifestEntry] = []
                for path, named in targets:
                    summary, entry = _load_one(
                        path,
                        named,
                        staged=staged,
                        fmt=fmt,
                        known=known,
                        progress=progress,
                        max_line_bytes=max_line_bytes or MAX_LINE_BYTES,
                        batch_rows=batch_rows,
                    )
                    summaries.append(summary)
                    if entry is not None:
                        entries.append(entry)
                        known[entry.ingest_id] = entry
                if not entries and not any(s.status == "duplicate" for s in summaries):
                    notes = "; ".join(f"{s.path}: {s.message}" for s in summaries[:3])
                    raise IngestError(f"no flow file among {len(summaries)} input files ({notes})")
                if entries:
                    store.commit(staged, entries)
            finally:
                shutil.rmtree(staged, ignore_errors=True)
    except BaseException:
        if fresh:
            _remove_created(root, made_root, made_flows, made_lock)
        raise
    return IngestSummary(str(root), fresh, tuple(summaries))


def _refuse_foreign_directory(root: Path) -> None:
    """A non-empty directory without a manifest is someone else's: never write into it."""
    if not root.is_dir() or (root / MANIFEST).is_file():
        return
    ours = {FLOWS_DIR, LOCK}
    foreign = [
        p.name for p in root.iterdir() if p.name not in ours and not p.name.startswith(".tmp-")
    ]
    if foreign:
        raise StoreError(
            f"{root} is not a flow store (no {MANIFEST}, and it holds other files such as "
            f"{sorted(foreign)[0]!r}); use a new or empty directory for --store"
        )


def _remove_created(root: Path, made_root: bool, made_flows: bool, made_lock: bool) -> None:
    """Undo the directories a failed first ingest created (only if still empty)."""
    try:
        if made_flows and not any((root / FLOWS_DIR).iterdir()):
            (root / FLOWS_DIR).rmdir()
        if made_lock:
            (root / LOCK).unlink(missing_ok=True)
        if made_root and not any(root.iterdir()):
            root.rmdir()
    except OSError:
        pass
