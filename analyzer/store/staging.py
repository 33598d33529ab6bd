"""What an ingest writes into its staging directory: spooled stdin and Parquet parts.

Nothing here is visible to readers of the store until ``FlowStore.commit``. A part is checked
once more before it is written: Parquet text must be UTF-8 (the readers upstream skip records
that are not; this is the last line of defence), or the ingest fails with the store unchanged.
"""

from __future__ import annotations

import sys
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from analyzer.errors import IngestError, StoreError
from analyzer.ingest._io import Digest
from analyzer.schema import FLOW_SCHEMA, INGEST_ID
from analyzer.store.files import os_error_text

__all__ = ["PART_ROWS", "PartWriter", "Readable", "part_writer", "spool"]

PART_ROWS = 4_000_000
_STATISTICS = [f.name for f in FLOW_SCHEMA if not pa.types.is_list(f.type)]


class Readable(Protocol):
    """An open binary stream: a file, stdin, or a pyarrow stream of a remote object."""

    def read(self, size: int, /) -> bytes: ...

    def close(self) -> None: ...


def spool(staged: Path, source: Path | Readable | None, label: str) -> Path:
    """Copy stdin (None), a pipe (``<(...)``) or an open stream (closed here) into the staging
    directory: it is read twice (hash, parse) and a pipe can be read only once. Bounded
    memory; the copy is removed afterwards (or, if the process is killed, by the next command
    that opens the store)."""
    target = staged / f"spool-{uuid.uuid4().hex}"

    def store_error(exc: OSError) -> StoreError:
        target.unlink(missing_ok=True)
        return StoreError(
            f"cannot copy {label} into the flow store at {staged.parent}: "
            f"{os_error_text(exc)}; the store is unchanged"
        )

    try:
        src: Readable = (
            sys.stdin.buffer
            if source is None
            else open(source, "rb")  # noqa: SIM115 - closed below
            if isinstance(source, Path)
            else source
        )
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


def part_writer(path: Path) -> pq.ParquetWriter:
    """A Parquet writer of flow parts (``FLOW_SCHEMA``), as ingest and compaction write them."""
    return pq.ParquetWriter(
        path,
        FLOW_SCHEMA,
        compression="zstd",
        # level 1: the parts are as small as at the default level, and written faster
        compression_level=1,
        # min/max of list columns help no reader; they cost a fifth of the write
        write_statistics=_STATISTICS,
    )


class PartWriter:
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
        self._failed = False
        self.parts: list[str] = []

    def submit(self, frame: pl.DataFrame) -> None:
        while len(self._pending) >= 1:  # bounded: at most one frame waits in memory
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._write, frame))

    def _write(self, frame: pl.DataFrame) -> None:
        if self._failed:
            return  # the first failure is the one reported; later frames are dropped
        try:
            self._write_frame(frame)
        except BaseException:
            self._failed = True
            raise

    def _write_frame(self, frame: pl.DataFrame) -> None:
        digest = self._digest.result().content
        if self._writer is None or self._rows_in_part >= PART_ROWS:
            if self._writer is not None:
                self._writer.close()
            self.parts.append(f"part-{digest[:16]}-{len(self.parts):04d}.parquet")
            self._writer = part_writer(self._staged / self.parts[-1])
            self._rows_in_part = 0
        table = frame.with_columns(pl.lit(digest).alias(INGEST_ID)).to_arrow().cast(FLOW_SCHEMA)
        try:
            table.validate(full=True)
        except pa.ArrowInvalid as exc:
            raise IngestError(
                f"refusing to write a Parquet part that is not valid ({exc}); nothing was "
                "committed (a reader let an invalid record through: please report it)"
            ) from exc
        self._writer.write_table(table)
        self._rows_in_part += frame.height

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            for f in self._pending:
                f.cancel()
            self._pool.shutdown(wait=True)
            writer, self._writer = self._writer, None
            if writer is not None and self._failed:
                with suppress(Exception):
                    writer.close()
            elif writer is not None:
                writer.close()

    def discard(self) -> None:
        for part in self.parts:
            (self._staged / part).unlink(missing_ok=True)
        self.parts = []
