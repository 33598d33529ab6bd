"""The streaming ingest loop: read, parse, drop what is stored already, commit on a cadence.

``run_stream`` drives any ``ByteSource`` (stdin, a followed file, Hubble Relay) until the
source ends or ``stop`` is set (the CLI sets it on SIGINT/SIGTERM); then what was read is
committed and the summary returned. Memory is bounded by the parse chunk, the Parquet writer's
two pending frames and the deduplication state of the last ``horizon`` of stream time, never by
the length of the run or the commit interval (rows go to disk as they are parsed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from analyzer.errors import IngestError, StoreError
from analyzer.ingest._io import MAX_LINE_BYTES
from analyzer.ingest.detect import spec_for
from analyzer.live.batch import BatchWriter, Committed
from analyzer.live.cadence import Cadence
from analyzer.live.dedup import DEFAULT_HORIZON, RecordDeduper
from analyzer.live.lines import LineAssembler
from analyzer.live.parse import ChunkParser
from analyzer.live.sources import ByteSource
from analyzer.store import FLOWS_DIR, MANIFEST, FlowStore

__all__ = ["LiveOptions", "LiveStatus", "LiveEvent", "run_stream", "last_resume"]

PARSE_BYTES = 16 << 20  # parse when this much is waiting (two reader blocks: both cores) ...
PARSE_SECONDS = 1.0  # ... or this long after the last parse
STATUS_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class LiveOptions:
    fmt: str = "auto"
    cadence: Cadence = Cadence(seconds=60.0)
    max_line_bytes: int = MAX_LINE_BYTES
    lock_timeout: float = 600.0
    horizon: timedelta = DEFAULT_HORIZON
    parse_bytes: int = PARSE_BYTES
    parse_seconds: float = PARSE_SECONDS
    status_seconds: float = STATUS_SECONDS


@dataclass(frozen=True, slots=True)
class LiveStatus:
    """Counters of a run so far (every count says what it counts)."""

    source: str
    format: str | None
    lines: int = 0  # lines read
    flows: int = 0  # flow records parsed from them
    duplicates: int = 0  # flow records dropped: already in the store
    committed: int = 0  # rows committed (flows minus duplicates, once committed)
    skipped: int = 0  # lines that were not flow records
    commits: int = 0
    elapsed: float = 0.0  # seconds since the run started
    rate: float = 0.0  # flows read per second over the last status interval
    since_commit: float = 0.0  # seconds since the last commit (or the start)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """What the caller is told: ``status`` ticks, ``commit``s, ``note``s (reconnects, ...)."""

    kind: str
    status: LiveStatus
    commit: Committed | None = None
    message: str | None = None


Report = Callable[[LiveEvent], None]


def last_resume(store: FlowStore, kind: str, source: str) -> dict[str, Any] | None:
    """The resume point of the last batch committed from ``source`` (None if none)."""
    for entry in reversed(store.manifest()):
        info = entry.stream
        if info and info.get("kind") == kind and info.get("source") == source:
            resume = info.get("resume")
            return dict(resume) if isinstance(resume, dict) else None
    return None


def open_store(store_dir: Path) -> FlowStore:
    """The store at ``store_dir``, created if missing; never someone else's directory."""
    root = Path(store_dir)
    if root.exists() and not root.is_dir():
        raise StoreError(f"{root} is not a flow store (it is a file)")
    if root.is_dir() and not (root / MANIFEST).is_file():
        foreign = [p.name for p in root.iterdir() if p.name not in (FLOWS_DIR, ".lock")]
        if foreign:
            raise StoreError(
                f"{root} is not a flow store (no {MANIFEST}, and it holds other files such as "
                f"{sorted(foreign)[0]!r}); use a new or empty directory for --store"
            )
    store = FlowStore.open_or_create(root)
    # Live commits leave the rollup to be derived again from the raw flows (docs/live.md).
    store.refuse_without_flows(
        "cannot ingest live (--follow, --relay): its commits leave the rollup to be derived "
        "again from the raw flows"
    )
    return store


class _Run:
    def __init__(self, store: FlowStore, source: ByteSource, options: LiveOptions, report: Report):
        if options.fmt != "auto":
            spec_for(options.fmt)
        self.store = store
        self.source = source
        self.options = options
        self.report = report
        self.writer = BatchWriter(
            store, kind=source.kind, label=source.label, lock_timeout=options.lock_timeout
        )
        self.parser = ChunkParser(
            options.fmt, self.writer.work_dir, options.max_line_bytes, source.label
        )
        self.dedup = RecordDeduper(store, options.horizon)
        first = int(getattr(source, "first_line", 1))
        self.lines = LineAssembler(options.max_line_bytes, first)
        self.status = LiveStatus(source.label, self.parser.format)
        now = time.monotonic()
        self.started = now
        self.last_parse = now
        self.last_commit = now
        self.batch_started: float | None = None
        self.last_status = now
        self.flows_at_status = 0

    def parse(self, *, final: bool = False) -> None:
        chunk = self.lines.take()
        if chunk is None:
            return
        self.last_parse = time.monotonic()
        parsed = self.parser.parse(chunk, final=final)
        if parsed is None:  # the format is not recognised yet: the parser holds the chunk
            return
        new, dropped = self.dedup.filter(parsed.frame)
        data, lines = chunk.data, chunk.lines
        self.writer.add(data, lines, parsed, new, dropped)
        s = self.status
        self.status = replace(
            s,
            format=self.parser.format,
            lines=s.lines + lines,
            flows=s.flows + parsed.frame.height,
            duplicates=s.duplicates + dropped,
            skipped=s.skipped + parsed.skipped_total,
        )

    def commit(self) -> None:
        self.parse(final=False)
        resume = self.source.resume_point(self.lines.tail_bytes, self.lines.next_line)
        done = self.writer.commit(self.parser.format, resume)
        self.last_commit = time.monotonic()
        self.batch_started = None
        if done is None:
            return
        paths = {p: self.writer.part_path(p) for p in done.entry.parts}
        self.dedup.committed(done.entry.parts, paths)
        self.status = replace(
            self.status,
            committed=self.status.committed + done.entry.rows,
            commits=self.status.commits + 1,
        )
        self.report(LiveEvent("commit", self.snapshot(), commit=done))

    def due(self) -> bool:
        cadence = self.options.cadence
        if self.writer.bytes_read == 0 and self.lines.pending_bytes == 0:
            return False
        if cadence.records is not None:
            return self.writer.lines + self.lines.pending_lines >= cadence.records
        started = self.batch_started if self.batch_started is not None else self.last_commit
        return time.monotonic() - started >= (cadence.seconds or 60.0)

    def snapshot(self) -> LiveStatus:
        now = time.monotonic()
        return replace(self.status, elapsed=now - self.started, since_commit=now - self.last_commit)

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last_status < self.options.status_seconds:
            return
        rate = (self.status.flows - self.flows_at_status) / max(1e-9, now - self.last_status)
        self.last_status = now
        self.flows_at_status = self.status.flows
        self.report(LiveEvent("status", replace(self.snapshot(), rate=rate)))


def run_stream(
    store_dir: Path,
    source: ByteSource,
    options: LiveOptions,
    stop: threading.Event,
    report: Report | None = None,
) -> LiveStatus:
    """Stream ``source`` into the store at ``store_dir`` until it ends or ``stop`` is set.

    Every ``options.cadence`` the rows read so far are committed (atomically, like a file
    ingest); at the end what was read is committed too. Records already in the store are
    dropped (see ``dedup``). Returns the final counters.

    Raises
    ------
    IngestError
        The stream cannot be read or its format recognised (what was committed stays).
    StoreError
        The store cannot be written.
    """
    run: _Run | None = None
    try:
        store = open_store(store_dir)
        run = _Run(store, source, options, report or (lambda event: None))
        while not stop.is_set():
            try:
                got = source.read(timeout=0.2)
            except IngestError:
                run.parse(final=True)
                run.commit()  # what was read before the source failed is kept
                raise
            if stop.is_set() and got.ended:
                # Interrupted, then the input closed (the writer died of the same ^C): the
                # incomplete last line is not a record that was read before the interrupt.
                got = replace(got, ended=False)
            if got.data:
                if run.batch_started is None:
                    run.batch_started = time.monotonic()
                run.lines.feed(got.data)
            if got.new_file or got.ended:
                run.lines.finish()
                run.parse(final=got.ended)
                if got.new_file:
                    run.lines.restart_numbering(1)
                    note = "file rotated or truncated: reading the new file from its start"
                    run.report(LiveEvent("note", run.snapshot(), message=note))
            for message in source.notes():
                run.report(LiveEvent("note", run.snapshot(), message=message))
            if got.ended:
                break
            if run.lines.pending_bytes >= options.parse_bytes or (
                run.lines.pending_bytes
                and time.monotonic() - run.last_parse >= options.parse_seconds
            ):
                run.parse()
            if run.due():
                run.commit()
            run.tick()
        run.parse(final=True)
        run.commit()
        return run.snapshot()
    finally:
        if run is not None:
            run.writer.close()
        source.close()
