"""Read one flow input into canonical batches, skipping (and counting) what is not a flow.

Two parse paths produce the same raw frame for a format's ``normalize``:

* fast: a chunk of NDJSON lines goes to pyarrow's native JSON reader with the format's raw
  schema (only the fields the store needs);
* slow: per line ``json.loads`` + the format's ``prepare`` (envelopes, camelCase, CRI log
  wrapping, integer enums, arrays), used for any chunk the fast path refuses.

Every path hands its raw rows, with their line numbers, to ``_screen.screen``: records the
store must not hold (invalid UTF-8, invalid ports, times out of range) are skipped and
reported by line, the same whichever path read them. A chunk that is not valid UTF-8 takes
the per-line path, which finds the offending lines.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl

from analyzer.errors import IngestError
from analyzer.ingest import _native, detect, hubble
from analyzer.ingest._format import Skip
from analyzer.ingest._io import (
    MAX_LINE_BYTES,
    Chunk,
    InputStream,
    LongLine,
    iter_chunks,
    open_input,
)
from analyzer.ingest._jsonstream import BAD, NOT_UTF8, iter_json_values
from analyzer.ingest._lines import (
    _CRI,
    _NOT_JSON,
    _line_numbers,
    _split_lines,
    _uncri,
)
from analyzer.ingest._pending import (
    _FastOutcome,
    _Pending,
)
from analyzer.ingest._screen import (
    INVALID_UTF8,
    encodable,
    may_hold_lone_surrogate,
    screen,
    valid_utf8,
)
from analyzer.ingest.report import SkipReport
from analyzer.schema import DST_LABELS, INGEST_ID, SRC_LABELS

__all__ = ["FlowReader", "DEFAULT_BATCH_ROWS", "empty_result_error"]

DEFAULT_BATCH_ROWS = 65_536
SLOW_BATCH_ROWS = 8_192
# DuckDB's envelope batches are wide (nested label structs): several are alive at once (being
# parsed, classified, queued, written), so small batches bound the peak memory of an ingest
# at no cost in throughput (issue 11: peak RSS at most 300 MB whatever the input size).
NATIVE_BATCH_ROWS = 8_192
FAST_WORKERS = 2
_SSE_FIELDS = (b"event:", b"id:", b"retry:", b":")
_MALFORMED = "malformed JSON lines"








class FlowReader:
    """One input, read lazily: ``batches()`` yields canonical frames; ``report`` says what was
    skipped. Use as a context manager (closes the file).

    Raises ``IngestError`` (not found, binary, empty) or ``UnknownFormatError`` on open.
    """

    def __init__(
        self,
        path: str | Path,
        fmt: str = "auto",
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        max_line_bytes: int = MAX_LINE_BYTES,
        ingest_id: str | None = None,
        hash_content: bool = True,
    ) -> None:
        self.path = str(path)
        self.batch_rows = batch_rows
        # Decoded dicts cost kilobytes each: the per-line path flushes much more often.
        self.slow_batch_rows = min(batch_rows, SLOW_BATCH_ROWS)
        self.max_line_bytes = max_line_bytes
        self.ingest_id = ingest_id
        self.report = SkipReport()
        self.rows = 0
        self.unlabelled = 0
        self.stream: InputStream = open_input(path, hashing=hash_content)
        try:
            head = self._peek()
            # File bytes per line of the head (compressed bytes when compressed): estimates
            # progress where the reader does not count bytes itself.
            consumed = self.stream.raw_bytes_read if self.stream.compression else len(head)
            self.head_line = max(1, consumed // max(1, head.count(b"\n")))
            self.layout, self.spec = detect.detect(head, fmt, name=self.stream.name)
        except BaseException:
            self.stream.close()
            raise

    def __enter__(self) -> FlowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stream.close()

    @property
    def format(self) -> str:
        return self.spec.name

    def _peek(self) -> bytes:
        # At least one whole line (bounded by the line cap), so a first line of megabytes
        # can still be recognised.
        head = b""
        while len(head) < detect.HEAD_BYTES or (
            b"\n" not in head and len(head) <= self.max_line_bytes
        ):
            data = self.stream.read(detect.HEAD_BYTES)
            if not data:
                break
            head += data
        self.stream.unread(head)
        if self.stream.damage and not head:
            raise IngestError(self.stream.damage, path=self.stream.name)
        return head

    # --- batches ----------------------------------------------------------------------------

    def batches(self) -> Iterator[pl.DataFrame]:
        """Canonical frames of at most about ``batch_rows`` rows each."""
        if self.layout in ("array", "stream"):
            yield from self._value_batches()
        else:
            yield from self._line_batches()
        self._final_warnings()

    @property
    def native_ok(self) -> bool:
        """Whether ``native_batches`` may read this input: a plain or gzip file of snake_case
        Hubble envelope lines. (DuckDB refuses gzip damage the chunked path reads around,
        such as trailing garbage: then the chunked path reads it and warns.)"""
        return (
            self.spec is hubble.SPEC
            and self.layout == "ndjson"
            and self.stream.compression in (None, "gzip")
            and self.path != "-"
            and Path(self.path).is_file()
        )

    def native_batches(self) -> Iterator[pl.DataFrame]:
        """Canonical frames of the whole file read by DuckDB (see ``_native``), same rows, skips
        and warnings as ``batches()``.

        Raises ``_native.Refused`` (possibly after yielding frames): the caller then discards
        what it got and reads the input again with a new reader's ``batches()``.
        """

        def classify(env: pl.DataFrame, first_line: int) -> _native.NativeBatch:
            try:
                result = hubble.classify_envelopes(env)
            except ValueError as exc:
                raise _native.Refused(str(exc)) from exc
            skipped = _native.skip_lines(result.skip_reason, first_line)
            keep = result.skip_reason.is_null() if skipped else None
            raw = result.raw if keep is None else result.raw.filter(keep)
            frame, problems = self._screen(raw, _line_numbers(first_line, env.height, keep))
            return frame, skipped + problems, result.lost_events

        for frame, skipped, lost in _native.read_envelopes(
            Path(self.path),
            hubble.ENVELOPE_SCHEMA,
            compression=self.stream.compression,
            max_line_bytes=self.max_line_bytes,
            batch_rows=min(self.batch_rows, NATIVE_BATCH_ROWS),
            classify=classify,
        ):
            for reason, lines in skipped:
                self.report.add_many(reason, lines)
            self.report.lost_events += lost
            frame = self._account(frame)
            if frame.height:
                yield frame
        self._final_warnings()

    def _final_warnings(self) -> None:
        if self.stream.damage:
            self.report.warn(f"{self.stream.damage}")
        if self.unlabelled:
            self.report.warn(
                f"{self.unlabelled} flows carry no endpoint labels (a Hubble field mask without "
                "source.labels/destination.labels, or Calico with flowLogsFileIncludeLabels "
                "off?): policies are built from label identities"
            )
        if self.report.lost_events:
            self.report.warn(
                f"{self.report.lost_events} events were lost by Hubble (lost_events records): "
                "the flow graph is incomplete"
            )

    def _screen(
        self, raw: pl.DataFrame, lines: pl.Series
    ) -> tuple[pl.DataFrame, list[tuple[str, list[int]]]]:
        """Canonical rows of ``raw``, without (and reporting) what the store must not hold.
        Pure: runs on worker threads."""
        return screen(raw, lines, self.spec.normalize, self.spec.raw_problems)

    def _account(self, frame: pl.DataFrame) -> pl.DataFrame:
        self.unlabelled += frame.select(
            (pl.col(SRC_LABELS).is_null() & pl.col(DST_LABELS).is_null()).sum()
        ).item()
        if self.ingest_id is not None:
            frame = frame.with_columns(pl.lit(self.ingest_id).alias(INGEST_ID))
        self.rows += frame.height
        return frame

    def _line_batches(self) -> Iterator[pl.DataFrame]:
        if self.spec.fast_read is None or self.layout not in ("ndjson", "cri"):
            pending = _Pending()
            for item in self._chunks():
                yield from self._slow_chunk(item, pending, flush_at_end=False)
            if pending:
                yield self._build(pending)
            return
        # Native path: parse + normalize chunks on two worker threads (pyarrow and polars
        # release the GIL), settle them in file order on this one.
        with ThreadPoolExecutor(FAST_WORKERS, thread_name_prefix="ingest") as pool:
            inflight: deque[tuple[Chunk, Future[_FastOutcome | None]]] = deque()
            for item in self._chunks():
                inflight.append((item, pool.submit(self._fast_job, item)))
                while len(inflight) > FAST_WORKERS:
                    yield from self._settle(*inflight.popleft())
            while inflight:
                yield from self._settle(*inflight.popleft())

    def _chunks(self) -> Iterator[Chunk]:
        for item in iter_chunks(self.stream, max_line_bytes=self.max_line_bytes):
            if isinstance(item, LongLine):
                cap = self.max_line_bytes
                unit = f"{cap >> 20} MiB" if cap >> 20 else f"{cap} bytes"
                self.report.add(f"lines longer than {unit}", item.line)
            else:
                yield item

    def _settle(self, chunk: Chunk, future: Future[_FastOutcome | None]) -> Iterator[pl.DataFrame]:
        outcome = future.result()
        if outcome is None:  # refused: the per-line path reads this chunk
            yield from self._slow_chunk(chunk, _Pending(), flush_at_end=True)
            return
        for reason, lines in outcome.skipped:
            self.report.add_many(reason, lines)
        self.report.lost_events += outcome.lost_events
        frame = self._account(outcome.frame)
        if frame.height:
            yield frame

    def _slow_chunk(
        self, chunk: Chunk, pending: _Pending, *, flush_at_end: bool
    ) -> Iterator[pl.DataFrame]:
        for line_no, line in _split_lines(chunk):
            self._slow_line(line_no, line, pending)
            if len(pending) >= self.slow_batch_rows:
                yield self._build(pending)
        if flush_at_end and pending:
            yield self._build(pending)

    def _fast_job(self, chunk: Chunk) -> _FastOutcome | None:
        """Runs on a worker thread: touches no reader state."""
        if not valid_utf8(chunk.data):
            return None  # the per-line path finds and skips the lines that are not UTF-8
        data = _uncri(chunk.data) if self.layout == "cri" else chunk.data
        assert self.spec.fast_read is not None
        try:
            result = self.spec.fast_read(data)
        except Exception:  # noqa: BLE001 - any refusal means: use the per-line path
            return None
        # Blank lines are dropped by the native reader: then row numbers would not be line
        # numbers, so such chunks take the per-line path.
        lines = chunk.newlines + (0 if data.endswith(b"\n") else 1)
        if result.raw.height != lines:
            return None
        skipped = _native.skip_lines(result.skip_reason, chunk.first_line)
        keep = result.skip_reason.is_null() if skipped else None
        raw = result.raw if keep is None else result.raw.filter(keep)
        frame, problems = self._screen(raw, _line_numbers(chunk.first_line, lines, keep))
        return _FastOutcome(frame, skipped + problems, result.lost_events)

    def _slow_line(self, line_no: int, line: bytes, out: _Pending) -> None:
        text = line.strip()
        if not text:
            return
        if text[:1] not in (b"{", b"["):
            if text.startswith(b"data:"):  # a saved Server-Sent-Events stream (Whisker watch)
                text = text[5:].strip()
            elif text.startswith(_SSE_FIELDS):
                return  # SSE bookkeeping (event/id/retry lines, comments): not records
            else:
                m = _CRI.match(text)
                if m is None:
                    self.report.add(_NOT_JSON, line_no)
                    return
                text = m.group(2).strip()
                if m.group(1) == b"P" or text[:1] not in (b"{", b"["):
                    # Partial CRI lines and agent log lines carry no whole JSON record.
                    self.report.add("container log lines without a JSON record", line_no)
                    return
        if not valid_utf8(text):
            self.report.add(INVALID_UTF8, line_no)
            return
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            self.report.add(_MALFORMED, line_no)
            return
        if may_hold_lone_surrogate(text) and not encodable(value):
            self.report.add(INVALID_UTF8, line_no)
            return
        self._accept(line_no, value, out)

    def _accept(self, line_no: int, value: Any, out: _Pending) -> None:
        for v in detect.expand(value):
            for rec in self.spec.prepare(v):
                if isinstance(rec, Skip):
                    self.report.add(rec.reason, line_no)
                    self.report.lost_events += rec.lost_events
                else:
                    out.add(rec, line_no)

    def _value_batches(self) -> Iterator[pl.DataFrame]:
        pending = _Pending()
        for line_no, value in iter_json_values(
            self.stream.read, max_value_chars=self.max_line_bytes
        ):
            if value is BAD:
                self.report.add("malformed JSON values", line_no)
                continue
            if value is NOT_UTF8:
                self.report.add(INVALID_UTF8, line_no)
                continue
            self._accept(line_no, value, pending)
            if len(pending) >= self.slow_batch_rows:
                yield self._build(pending)
        if pending:
            yield self._build(pending)

    def _build(self, pending: _Pending) -> pl.DataFrame:
        records, lines = pending.take()
        schema = self.spec.raw_schema
        try:
            raw = pl.DataFrame(records, schema=schema, strict=False)
        except Exception:  # noqa: BLE001 - isolate the records polars cannot take
            good, kept = [], []
            for rec, line in zip(records, lines, strict=True):
                try:
                    good.append(pl.DataFrame([rec], schema=schema, strict=False))
                    kept.append(line)
                except Exception:  # noqa: BLE001
                    self.report.add("records with unusable field types", line)
            raw = pl.concat(good) if good else pl.DataFrame(schema=schema)
            lines = kept
        frame, problems = self._screen(raw, pl.Series(lines, dtype=pl.Int64))
        for reason, where in problems:
            self.report.add_many(reason, where)
        return self._account(frame)








def empty_result_error(reader: FlowReader) -> IngestError:
    """The error for an input that produced no flow row at all."""
    report = reader.report
    if report.total == 0 and reader.stream.damage:
        return IngestError(reader.stream.damage, path=reader.stream.name)
    if report.total == 0:
        return IngestError("empty: no flow records", path=reader.stream.name)
    return IngestError(
        f"no usable {reader.format} flow record: {report.describe()}", path=reader.stream.name
    )
