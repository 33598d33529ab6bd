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
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from analyzer.errors import IngestError, StoreError
from analyzer.ingest import _native
from analyzer.ingest._io import Digest, digest_file, is_compressed
from analyzer.ingest.detect import spec_for
from analyzer.ingest.reader import DEFAULT_BATCH_ROWS, FlowReader, empty_result_error
from analyzer.store.compact import rebuild_locked
from analyzer.store.files import fsync, os_error_text
from analyzer.store.flow_summary import attach_merged_summary, attach_summary
from analyzer.store.flowstore import (
    FLOWS_DIR,
    LOCK,
    MANIFEST,
    STAGING_PREFIX,
    FlowStore,
    ManifestEntry,
    scan_parts,
)
from analyzer.store.remote import S3Settings, expand_remote, is_remote, is_url, spool_remote
from analyzer.store.rollup import (
    Rollup,
    previous_rollup_file,
    read_schedule,
    rollup_key,
    stage_incremental,
    stage_rollup,
)
from analyzer.store.staging import PART_ROWS, PartWriter, spool
from analyzer.store.summary import (
    IngestSummary,
    InputSummary,
)

__all__ = [
    "run_ingest", "expand_inputs", "rebuild_rollup", "load_one", "Loader", "PART_ROWS",
]

EARLY_HASH_BYTES = 64 << 20
# Hashing compressed input decompresses it: settle duplicates up front only for small files.
EARLY_HASH_COMPRESSED_BYTES = 8 << 20
Progress = Callable[[int], None]
# Loads the inputs into the staging directory, one (summary, entry or None) per target in
# order, given the store's known inputs. The default reads them one by one in this process;
# ``analyzer.spark`` passes one that runs ``load_one`` on Spark executors. Either way the
# lock, staging, and the one atomic commit below are shared.
Loader = Callable[
    [list[tuple[str, bool]], Path, dict[str, ManifestEntry]],
    Iterator[tuple[InputSummary, ManifestEntry | None]],
]


def expand_inputs(
    inputs: Sequence[str], s3: S3Settings | None = None
) -> list[tuple[str, bool]]:
    """``(path, named)`` pairs: named inputs as given, directories walked (hidden entries and
    the store's own files skipped), sorted for a stable order; object-store URLs expanded the
    same way (``store.remote``)."""
    out: list[tuple[str, bool]] = []
    for item in inputs:
        if item == "-":
            out.append(("-", True))
            continue
        if is_url(item):  # an unsupported scheme is refused there, in one line
            out.extend(expand_remote(item, s3))
            continue
        path = Path(item.removeprefix("file://"))
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


def load_one(
    path: str,
    named: bool,
    *,
    staged: Path,
    fmt: str,
    known: dict[str, ManifestEntry],
    progress: Progress | None,
    max_line_bytes: int,
    batch_rows: int,
    s3: S3Settings | None = None,
) -> tuple[InputSummary, ManifestEntry | None]:
    label = path
    source = Path(path.removeprefix("file://"))
    spooled: Path | None = None
    if path == "-":
        label, source = "<stdin>", spool(staged, None, "standard input")
    elif is_remote(path):
        spooled = source = spool_remote(staged, path, s3)
    elif source.exists() and not source.is_file():
        source = spool(staged, source, label)
    try:
        try:
            size = source.stat().st_size
        except OSError as exc:
            raise IngestError(f"cannot read: {exc.strerror or exc}", path=label) from exc
        early = EARLY_HASH_COMPRESSED_BYTES if is_compressed(source) else EARLY_HASH_BYTES
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
    finally:
        if spooled is not None:  # a copy of a remote object: its parts are written by now
            spooled.unlink(missing_ok=True)


def _absolute(label: str) -> str:
    return str(Path(label.removeprefix("file://")).absolute())


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
    writer = PartWriter(staged, digest_future)
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
                writer = PartWriter(staged, digest_future)
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
        fsync(staged / part)
    skipped = reader.report.reasons()
    warnings = tuple(reader.report.warnings)
    entry = ManifestEntry(
        ingest_id=digest.content,
        path=label if label == "<stdin>" or is_url(label) else _absolute(label),
        format=reader.format,
        rows=reader.rows,
        skipped=skipped,
        warnings=warnings,
        ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
        parts=tuple(writer.parts),
        size_bytes=size,
        file_sha256=digest.file,
        compression=digest.compression,
        lost_events=reader.report.lost_events,
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
    loader: Loader | None = None,
    s3: S3Settings | None = None,
    keep_flows: bool | None = None,
) -> IngestSummary:
    """Ingest ``inputs`` into the store at ``store_dir`` (created if missing). ``keep_flows``
    False (``--no-keep-flows``): commit the rollup, its state and summaries but not the raw
    flow parts; None: as the store's last file ingest did (keep, for a new store).

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
    targets = expand_inputs(inputs, s3)
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
                loader=loader,
                s3=s3,
                keep_flows=keep_flows,
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
    loader: Loader | None = None,
    s3: S3Settings | None = None,
    keep_flows: bool | None = None,
) -> list[InputSummary]:
    """The ingest proper, under the writer lock; OS errors become one ``StoreError`` line."""
    root = store.root
    try:
        store.recover()
        keep = store.keeps_flows() if keep_flows is None else keep_flows
        known = {i: e for e in store.manifest() for i in e.identities}
        staged = root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        staged.mkdir()
    except OSError as exc:
        raise StoreError(f"cannot write to the flow store at {root}: {os_error_text(exc)}") from exc

    def load_here(
        targets: list[tuple[str, bool]], staged: Path, known: dict[str, ManifestEntry]
    ) -> Iterator[tuple[InputSummary, ManifestEntry | None]]:
        for path, named in targets:  # `known` grows between inputs (see below)
            yield load_one(
                path,
                named,
                staged=staged,
                fmt=fmt,
                known=known,
                progress=progress,
                max_line_bytes=max_line_bytes,
                batch_rows=batch_rows,
                s3=s3,
            )

    published = True
    try:
        summaries: list[InputSummary] = []
        entries: list[ManifestEntry] = []
        for summary, entry in (loader or load_here)(targets, staged, known):
            summaries.append(summary)
            if entry is not None:
                entry = entry if keep else replace(entry, kept=False)
                entries.append(entry)
                known.update((i, entry) for i in entry.identities)
        if not entries and not any(s.status == "duplicate" for s in summaries):
            notes = "; ".join(f"{s.path}: {s.message}" for s in summaries[:3])
            raise IngestError(f"no flow file among {len(summaries)} input files ({notes})")
        if entries:
            release_memory()  # what parsing freed, before the derivation allocates its own
            rollup = _stage_rollup(store, staged, entries)
            for part in (p for e in entries if not e.kept for p in e.parts):
                (staged / part).unlink()  # read by the rollup's map only: never committed
            published = store.commit(staged, entries, rollup)
    except OSError as exc:
        raise StoreError(
            f"cannot write to the flow store at {root}: {os_error_text(exc)}; "
            "the store is unchanged"
        ) from exc
    finally:
        if published:  # else committed parts wait in staging for FlowStore.recover
            shutil.rmtree(staged, ignore_errors=True)
    return summaries


def release_memory() -> None:
    """Hand memory that is free but cached back to the OS (Arrow's pool, the C heap), so the
    rollup's derivation does not stack its peak on what parsing left behind."""
    import ctypes
    import ctypes.util

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    libc = ctypes.util.find_library("c")
    if libc:
        with suppress(OSError, AttributeError):
            ctypes.CDLL(libc).malloc_trim(0)  # glibc only


def _stage_rollup(store: FlowStore, staged: Path, entries: Sequence[ManifestEntry]) -> Path:
    """The rollup of the store as it will be after committing ``entries`` (their parts are
    still in ``staged``), staged next to them with its derivation state. The stored state of
    the committed parts is extended by the new parts' rows alone (``rollup.stage_incremental``:
    exact, see connections/_state.py); without one (a new store, live commits since, other
    code) it is derived over every part in manifest order. Either way it equals what a raw
    derivation of the committed store gives (rollup.py)."""
    before = store.part_names()
    added_names = [p for e in entries for p in e.parts]
    added = [staged / p for p in added_names]
    names = before + added_names
    schedule = read_schedule(store.root)

    def flows() -> pl.LazyFrame:  # every row: raises when the store did not keep them all
        return scan_parts(store.part_paths() + added, store.root)

    new_rows = scan_parts(added, store.root)
    rollup = stage_incremental(staged, store.root, before, new_rows, added_names, schedule)
    if rollup is None:
        store.refuse_without_flows(
            "cannot ingest: the store's derivation state is missing or of another version "
            "of the analyzer, so the whole store would have to be derived again"
        )
        rollup = stage_rollup(staged, rollup_key(names, schedule), flows(), schedule, names)
        attach_summary(rollup, flows())  # what `analyzer stats` counts (store/flow_summary.py)
    else:
        previous = previous_rollup_file(store.root, before, schedule)
        attach_merged_summary(rollup, previous, new_rows, flows)
    return rollup


def rebuild_rollup(store_dir: Path, *, lock_timeout: float = 600.0) -> Rollup:
    """Derive the rollup again (``analyzer store rebuild``): after an upgrade, or when live
    commits left it stale; from the raw flows, or in a store that did not keep them, from its
    derivation state (``compact.rebuild_locked``). Locked and atomic like an ingest."""
    store = FlowStore.open(Path(store_dir))
    try:
        with store.lock(lock_timeout):
            store.recover()
            return rebuild_locked(store, store.part_names(), read_schedule(store.root))
    except OSError as exc:
        raise StoreError(
            f"cannot write the rollup of the flow store at {store.root}: {os_error_text(exc)}"
        ) from exc


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
