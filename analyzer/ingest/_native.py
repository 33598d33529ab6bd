"""Whole-file fast path for NDJSON Hubble envelope files (plain or gzip): DuckDB's JSON reader.

DuckDB parses on all cores, in less than half the CPU time pyarrow's reader needs for the same
chunks, and it materialises only the fields named in ``columns``. It is strict about what it
refuses (a malformed line, a non-object line, a line over the size cap, invalid UTF-8, damaged
gzip): then this module raises :class:`Refused`, and the caller reads the file again with the
chunked path, which reports the bad lines with their numbers. A cut-off last line (the usual
damage) is caught before parsing, so such files are not read twice. Skips (lost events, agent
events) are reported only when row numbers are proven to be line numbers (no blank lines), so
skip reports are the same whichever path read the file.
"""

from __future__ import annotations

import gzip
import json
import os
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from analyzer._sigint import deferred

__all__ = ["Refused", "NativeBatch", "Classifier", "duckdb_type", "read_envelopes", "skip_lines"]

_READ_BLOCK = 1 << 22
_MEMORY_SETTINGS = (
    "SET allocator_flush_threshold = '8MiB'",
    "SET allocator_bulk_deallocation_flush_threshold = '8MiB'",
)


class Refused(Exception):
    """The native path cannot read this file exactly; use the chunked path instead."""


NativeBatch = tuple[pl.DataFrame, list[tuple[str, list[int]]], int]
# (envelope rows, line number of the first) -> (flow rows, skips, lost events)
Classifier = Callable[[pl.DataFrame, int], NativeBatch]


def duckdb_type(dtype: object) -> str:
    """The DuckDB column type for a polars raw-schema type (STRUCTs, lists, scalars)."""
    if isinstance(dtype, pl.Struct):
        inner = ", ".join(f'"{f.name}" {duckdb_type(f.dtype)}' for f in dtype.fields)
        return f"STRUCT({inner})"
    if isinstance(dtype, pl.List):
        return f"{duckdb_type(dtype.inner)}[]"
    for polars_type, name in (
        (pl.String, "VARCHAR"),
        (pl.Int64, "BIGINT"),
        (pl.Float64, "DOUBLE"),
        (pl.Boolean, "BOOLEAN"),
    ):
        if dtype == polars_type:
            return name
    raise TypeError(f"no DuckDB type for {dtype}")


def _columns_sql(schema: pl.Schema) -> str:
    items = ", ".join(f"'{name}': '{duckdb_type(dtype)}'" for name, dtype in schema.items())
    return "{" + items + "}"


def _scan_lines(path: Path, compressed: bool, cap: int) -> tuple[int, bool]:
    """The number of lines of the (decompressed) file, and whether one is longer than ``cap``."""
    lines = 0
    run = 0  # bytes of the line still open at the end of the blocks read so far
    over = False
    last = b"\n"
    with gzip.open(path, "rb") if compressed else open(path, "rb") as fh:
        while block := fh.read(_READ_BLOCK):
            lines += block.count(b"\n")
            last = block[-1:]
            if over:
                continue
            first = block.find(b"\n")
            if first < 0:
                run += len(block)
            else:
                end = block.rfind(b"\n")
                over = run + first > cap or _line_over(block, first + 1, end, cap)
                run = len(block) - end - 1
            over = over or run > cap
    return lines + (0 if last == b"\n" else 1), over


class _Searchable(Protocol):
    def find(self, sub: bytes, start: int, end: int, /) -> int: ...

    def rfind(self, sub: bytes, start: int, end: int, /) -> int: ...


class _FileBytes:
    """``find``/``rfind`` of a byte over an open file, reading it in small pieces: a window
    of a normal file finds a newline in its first piece, and a huge line is measured without
    holding it (an mmap would count every page of it in the RSS)."""

    _PIECE = 1 << 16

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def find(self, sub: bytes, start: int, end: int, /) -> int:
        pos = start
        while pos < end:
            data = os.pread(self._fd, min(self._PIECE, end - pos), pos)
            if not data:
                return -1
            if (i := data.find(sub)) >= 0:
                return pos + i
            pos += len(data)
        return -1

    def rfind(self, sub: bytes, start: int, end: int, /) -> int:
        pos = end
        while pos > start:
            low = max(start, pos - self._PIECE)
            data = os.pread(self._fd, pos - low, low)
            if (i := data.rfind(sub)) >= 0:
                return low + i
            pos = low
        return -1


def _line_over(data: _Searchable, start: int, end: int, cap: int) -> bool:
    """Whether the whole lines in ``data[start:end]`` hold one longer than ``cap`` bytes, the
    newline not counted: the lines ``_io.iter_chunks`` skips and reports.

    DuckDB's ``maximum_object_size`` is no such cap: it reads objects up to the size of its
    read buffer (measured: a 25 MB line with a 16 MiB cap). A line longer than ``cap`` covers
    at least one whole window of ``h = cap // 2`` bytes of any grid of step ``h`` that starts
    at or before it, so only windows without a newline are measured; finding a newline in
    the others reads a few kilobytes (one line)."""
    if end - start <= cap:
        return False
    half = max(1, cap // 2)
    pos = start
    while pos < end:
        stop = min(end, pos + half)
        if data.find(b"\n", pos, stop) < 0:
            before = data.rfind(b"\n", start, pos)
            after = data.find(b"\n", stop, end)
            first = start if before < 0 else before + 1
            last = end if after < 0 else after
            if last - first > cap:
                return True
            pos = last  # the next grid starts at this line's newline
        pos += half
    return False


def _plain_line_over(path: Path, cap: int) -> bool:
    size = path.stat().st_size
    if size <= cap:
        return False
    with open(path, "rb") as fh:
        return _line_over(_FileBytes(fh.fileno()), 0, size, cap)


def _tail_is_whole(path: Path) -> bool:
    """False when the file's last line is cut off (not decodable JSON); True when it is whole
    or too long to tell from the last ``_READ_BLOCK`` bytes (DuckDB then decides)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - _READ_BLOCK))
        tail = fh.read().rstrip()
    if size > _READ_BLOCK and b"\n" not in tail:
        return True
    last = tail.rsplit(b"\n", 1)[-1].strip()
    if not last:
        return True
    try:
        json.loads(last)
    except (ValueError, RecursionError):
        return False
    return True


def _threads() -> int:
    """DuckDB's parser threads: one. Each thread holds its own read buffer and parsed
    documents: a second one raised the peak RSS of a 1M-flow ingest by ~50 MB (420 -> 370
    MB) for no CPU saved (issue 11: ingest bounded in memory; benchmarks/README.md). Parsing
    still overlaps classification and Parquet writing, which run on other threads. With one
    thread DuckDB also cuts its record batches at exactly ``batch_rows`` rows instead of at its
    read-buffer boundaries, so a part's row groups no longer depend on DuckDB's buffering."""
    return 1


def read_envelopes(
    path: Path,
    schema: pl.Schema,
    *,
    compression: str | None = None,
    max_line_bytes: int,
    batch_rows: int,
    classify: Classifier,
) -> Iterator[NativeBatch]:
    """Yield ``(rows, skipped, lost_events)`` per batch of a plain NDJSON file, in file order.

    ``classify(env, first_line)`` turns a batch of envelope rows into that triple (raising
    :class:`Refused` for rows it cannot classify exactly); it runs on a worker thread.
    Raises :class:`Refused` when DuckDB refuses the file, or when skips were found but row
    numbers are not line numbers.
    """
    try:
        with deferred():  # a Ctrl-C in DuckDB's import would abort the process
            import duckdb
    except ImportError as exc:  # a trimmed install: the chunked path still works
        raise Refused("duckdb is not installed") from exc

    if compression is None and not _tail_is_whole(path):
        # An interrupted copy: DuckDB would fail only after parsing the whole file, and the
        # file would then be read twice.
        raise Refused("the last line is not a whole JSON value")
    if compression is None and _plain_line_over(path, max_line_bytes):
        # The chunked path skips such a line and reports its number; DuckDB would read it.
        raise Refused(f"a line is longer than {max_line_bytes} bytes")
    literal = "'" + str(path).replace("'", "''") + "'"
    sql = (
        f"SELECT * FROM read_json({literal}, format='newline_delimited', "
        f"compression='{'gzip' if compression == 'gzip' else 'none'}', "
        f"columns={_columns_sql(schema)}, maximum_object_size={int(max_line_bytes)})"
    )
    con = None
    try:
        try:
            con = duckdb.connect(config={"threads": _threads()})
            # DuckDB draws a progress bar on stdout after 2 s: into the output of `ingest -o json`
            con.execute("SET enable_progress_bar = false")
            # DuckDB's allocator keeps up to 128 MiB (512 MiB after bulk frees) of freed memory
            # for reuse; a streaming read reuses little of it: give it back, so the peak RSS of
            # an ingest stays bounded
            for setting in _MEMORY_SETTINGS:
                con.execute(setting)
            rel = con.sql(sql)
            # DuckDB 2 renamed fetch_record_batch (still there, deprecated) to to_arrow_reader
            stream = getattr(rel, "to_arrow_reader", None) or rel.fetch_record_batch
            result = stream(batch_rows)
            assert result is not None
        except (duckdb.Error, RuntimeError) as exc:
            if _interrupted(exc, duckdb.InterruptException):
                raise KeyboardInterrupt from exc
            if isinstance(exc, duckdb.Error):
                raise Refused(str(exc).splitlines()[0]) from exc
            raise
        yield from _pipelined(
            result, classify, (duckdb.Error, OSError), path, compression == "gzip", max_line_bytes
        )
    finally:
        if con is not None:
            con.close()


def _interrupted(exc: BaseException, interrupt_error: type[BaseException]) -> bool:
    """Whether DuckDB raised ``exc`` for a Ctrl-C: the query ran on this (the main) thread,
    where DuckDB checks for signals itself and turns the ``KeyboardInterrupt`` it takes into
    its ``InterruptException`` or ``RuntimeError("Query interrupted")`` (any call: connecting,
    a setting, starting the streamed query). Read as a refusal, the ingest would read the
    whole file again; let through, it would end in a traceback."""
    return isinstance(exc, interrupt_error) or (
        isinstance(exc, RuntimeError) and str(exc).strip() == "Query interrupted"
    )


_DONE = object()


def _pipelined(
    reader: Any,
    classify: Classifier,
    errors: tuple[type[BaseException], ...],
    path: Path,
    compressed: bool,
    cap: int,
) -> Iterator[NativeBatch]:
    """Pull and classify batches on a worker thread, one batch ahead of the consumer: DuckDB
    parses only while it is being pulled, so this keeps it busy while the caller writes.

    At the end, a compressed file is read once more for lines over the cap (a plain file was
    checked before parsing), and so is any file with skips, for blank lines."""
    out: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        rows = 0
        skipped_any = False
        try:
            while not stop.is_set():
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except errors as exc:
                    raise Refused(str(exc).splitlines()[0]) from exc
                env = pl.from_arrow(batch)
                assert isinstance(env, pl.DataFrame)
                item = classify(env, rows + 1)
                skipped_any = skipped_any or bool(item[1])
                rows += env.height
                if not put(item):
                    return
            if compressed or skipped_any:
                try:
                    lines, over = _scan_lines(path, compressed, cap)
                except (OSError, EOFError, zlib.error) as exc:  # gzip damage DuckDB read past
                    raise Refused(f"cannot read the file again: {exc}") from exc
                if compressed and over:
                    raise Refused(f"a line is longer than {cap} bytes")
                # DuckDB drops blank lines; then row numbers are not line numbers.
                if skipped_any and lines != rows:
                    raise Refused("blank lines: row numbers are not line numbers")
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(exc)

    worker = threading.Thread(target=produce, name="duckdb-read", daemon=True)
    try:
        with deferred():  # a thread half started could not be joined
            worker.start()
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        if worker.ident is not None:  # (interrupted before it started)
            worker.join()  # before DuckDB's connection closes: it refuses while read


def skip_lines(reasons: pl.Series, first_line: int) -> list[tuple[str, list[int]]]:
    """Group the non-null entries of a per-row reason column into ``(reason, lines)``."""
    if reasons.null_count() == len(reasons):
        return []
    table = pl.DataFrame({"r": reasons}).with_row_index("i").drop_nulls("r")
    return [
        (str(reason), [first_line + i for i in group["i"]])
        for (reason,), group in table.group_by("r", maintain_order=True)
    ]
