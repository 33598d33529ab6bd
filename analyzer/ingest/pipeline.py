"""``analyzer ingest``: inputs -> staged Parquet parts -> one atomic commit into the store.

An ingest is all-or-nothing: if a named input cannot be used (unreadable, binary, empty, no
usable record, unknown format) nothing is committed. Files found by walking a directory that
are not flow files are skipped with a note instead, so a directory with a README still loads.
An input is identified by the SHA-256 of its decompressed content: the same flows given again,
plain or compressed, are a no-op. File-system failures (disk full, read-only store) become one
``StoreError`` line and leave the store as it was.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from analyzer.errors import IngestError, StoreError
from analyzer.ingest import _native
from analyzer.ingest._io import Digest, digest_file
from analyzer.ingest.detect import spec_for
from analyzer.ingest.reader import DEFAULT_BATCH_ROWS, FlowReader, empty_result_error
from analyzer.ingest.report import SkipReason
from analyzer.schema import FLOW_SCHEMA, INGEST_ID
from analyzer.store import (
    FLOWS_DIR,
    LOCK,
    MANIFEST,
    STAGING_PREFIX,
    FlowStore,
    ManifestEntry,
    os_error_text,
)

__all__ = ["InputSummary", "IngestSummary", "run_ingest", "expand_inputs", "PART_ROWS"]

PART_ROWS = 4_000_000
_STATISTICS = [f.name for f in FLOW_SCHEMA if not pa.types.is_list(f.type)]
EARLY_HASH_BYTES = 64 << 20
# Hashing compressed input decompresses it: settle duplicates up front only for small files.
EARLY_HASH_COMPRESSED_BYTES = 8 << 20
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


def _is_compressed(path: Path) -> bool:
    from analyzer.ingest._decompress import GZIP_MAGIC, is_zstd

    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith(GZIP_MAGIC) or is_zstd(head)


def _spool(staged: Path, source: Path | None, label: str) -> Path:
    """Copy stdin or a pipe (``<(...)``) into the staging directory: it is read twice (hash,
    parse) and a pipe can be read only once. Bounded memory; the copy is removed afterwards
    (or, if the process is killed, by the next command that opens the store)."""
    target = staged / f"spool-{uuid.uuid4().hex}"

    def store_error(exc: OSError) -> StoreError:
        target.unlink(missing_ok=True)
        return StoreError(
            f"cannot copy {label} into the flow store at {staged.parent}: "
            f"{os_error_text(exc)}; the store is unchanged"
        )

    try:
        src = sys.stdin.buffer if source is None else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise IngestError(f"cannot read: {os_error_text(exc)}", path=label) from exc
    try:
        out = open(target, "wb")  # noqa: SIM115 - closed below, where its errors are handled
    except OSError as exc:
        raise store_error(exc) from exc
    try:
        while True:
            try:
                block = src.read(1 << 20)
            except OSError as exc:
                raise IngestError(f"cannot read: {os_error_text(exc)}", path=label) from exc
            if not block:
                break
            try:
                out.write(block)
            except OSError as exc:
                raise store_error(exc) from exc
        try:
            out.close()
        except OSError as exc:
            raise store_error(exc) from exc
    finally:
        with suppress(OSError):
            out.close()
        if source is not None:
            src.close()
    return target


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _PartWriter:
    """Writes canonical frames to Parquet parts on a background thread, in order, stamping each
    row with the input's content hash once it is known (hashing runs concurrently too).

    The first failure (a full disk, say) is raised by ``submit`` or ``close``; the writer is
    then closed quietly (pyarrow raises again on closing a file whose write failed)."""

    def __init__(self, staged: Path, digest: Future[Digest]) -> None:
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
        digest = self._digest.result().content
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
        failed = True
        try:
            while self._pending:
                self._pending.popleft().result()
            failed = False
        finally:
            for f in self._pending:
                f.cancel()
            self._pool.shutdown(wait=True)
            writer, self._writer = self._writer, None
            if writer is not None:
                if failed:
                    with suppress(Exception):
                        writer.close()
                else:
                    writer.close()

    def discard(self) -> None:
        for part in self.parts:
            (self._staged / part).unlink(missing_ok=True)
        self.parts = []


def _known(digest: Digest, known: dict[str, ManifestEntry]) -> ManifestEntry | None:
    """The stored input with this content (or, for stores from before content hashing, with
    these file bytes)."""
    return known.get(digest.content) or known.get(digest.file)


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
        label, source = "<stdin>", _spool(staged, None, "standard input")
    elif source.exists() and not source.is_file():
        source = _spool(staged, source, label)
    try:
        size = source.stat().st_size
    except OSError as exc:
        raise IngestError(f"cannot read: {exc.strerror or exc}", path=label) from exc
    early = EARLY_HASH_COMPRESSED_BYTES if _is_compressed(source) else EARLY_HASH_BYTES
    with ThreadPoolExecutor(1, thread_name_prefix="sha256") as hasher:
        digest_future = hasher.submit(digest_file, source)
        if size < early:
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


def _digest_of(future: Future[Digest], label: str) -> Digest:
    try:
        return future.result()
    except OSError as exc:
        raise IngestError(f"cannot read: {exc.strerror or exc}", path=label) from exc


def _load_hashed(
    label: str,
    named: bool,
    source: Path,
    size: int,
    digest_future: Future[Digest],
    *,
    staged: Path,
    fmt: str,
    known: dict[str, ManifestEntry],
    progress: Progress | None,
    max_line_bytes: int,
    batch_rows: int,
) -> tuple[InputSummary, ManifestEntry | None]:
    def already() -> ManifestEntry | None:
        if digest_future.done():
            return _known(_digest_of(digest_future, label), known)
        return None

    if (prior := already()) is not None:
        if progress:
            progress(size)
        return _duplicate(label, _digest_of(digest_future, label).content, prior), None
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
    if (prior := _known(digest, known)) is not None:
        writer.discard()
        return _duplicate(label, digest.content, prior), None
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
        ingest_id=digest.content,
        path=label if label == "<stdin>" else str(Path(label).absolute()),
        format=reader.format,
        rows=reader.rows,
        skipped=skipped,
        warnings=warnings,
        ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
        parts=tuple(writer.parts),
        size_bytes=size,
        file_sha256=digest.file,
        compression=digest.compression,
    )
    summary = InputSummary(
        label, "loaded", reader.format, reader.rows, skipped, warnings, digest.content
    )
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
        The store is damaged, not a directory, locked past ``lock_timeout``, or cannot be
        written (read-only, disk full); nothing was committed.
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
        raise StoreError(f"cannot create a flow store at {root}: {os_error_text(exc)}") from exc
    fresh = True
    try:
        with store.lock(lock_timeout):
            fresh = not store.manifest_path.is_file()
            summaries = _ingest_locked(
                store,
                targets,
                fmt=fmt,
                progress=progress,
                max_line_bytes=max_line_bytes or MAX_LINE_BYTES,
                batch_rows=batch_rows,
            )
    except BaseException:
        if fresh:
            _remove_created(root, made_root, made_flows, made_lock)
        raise
    return IngestSummary(str(root), fresh, tuple(summaries))


def _ingest_locked(
    store: FlowStore,
    targets: list[tuple[str, bool]],
    *,
    fmt: str,
    progress: Progress | None,
    max_line_bytes: int,
    batch_rows: int,
) -> list[InputSummary]:
    """The ingest proper, under the writer lock; OS errors become one ``StoreError`` line."""
    root = store.root
    try:
        store.recover()
        known = {i: e for e in store.manifest() for i in e.identities}
        staged = root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        staged.mkdir()
    except OSError as exc:
        raise StoreError(f"cannot write to the flow store at {root}: {os_error_text(exc)}") from exc
    published = True
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
                max_line_bytes=max_line_bytes,
                batch_rows=batch_rows,
            )
            summaries.append(summary)
            if entry is not None:
                entries.append(entry)
                known.update((i, entry) for i in entry.identities)
        if not entries and not any(s.status == "duplicate" for s in summaries):
            notes = "; ".join(f"{s.path}: {s.message}" for s in summaries[:3])
            raise IngestError(f"no flow file among {len(summaries)} input files ({notes})")
        if entries:
            published = store.commit(staged, entries)
    except OSError as exc:
        raise StoreError(
            f"cannot write to the flow store at {root}: {os_error_text(exc)}; "
            "the store is unchanged"
        ) from exc
    finally:
        if published:  # else committed parts wait in staging for FlowStore.recover
            shutil.rmtree(staged, ignore_errors=True)
    return summaries


def _refuse_foreign_directory(root: Path) -> None:
    """A non-empty directory without a manifest is someone else's: never write into it."""
    if not root.is_dir() or (root / MANIFEST).is_file():
        return
    ours = {FLOWS_DIR, LOCK}
    foreign = [
        p.name
        for p in root.iterdir()
        if p.name not in ours and not p.name.startswith(STAGING_PREFIX)
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
