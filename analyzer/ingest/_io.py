"""Bytes in: open a path or stdin, undo compression, hash the content, cut it into bounded chunks.

Compression is recognised by magic bytes (a rotated ``events.log`` can be gzip without ``.gz``).
Memory stays bounded whatever the input: content is read in blocks, and a single line longer
than ``max_line_bytes`` is skipped (and reported) instead of being buffered.
"""

from __future__ import annotations

import hashlib
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from analyzer.errors import IngestError

__all__ = [
    "BLOCK_BYTES",
    "MAX_LINE_BYTES",
    "Chunk",
    "LongLine",
    "InputStream",
    "open_input",
    "iter_chunks",
]

BLOCK_BYTES = 8 << 20
MAX_LINE_BYTES = 16 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True, slots=True)
class Chunk:
    """Complete lines (each ending in a newline, except perhaps at end of input)."""

    data: bytes
    first_line: int
    newlines: int


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line that exceeded the cap and was dropped unread."""

    line: int


class InputStream:
    """A decompressed, hashing, counting reader over one input.

    ``content_hash`` is the SHA-256 of the decompressed bytes read so far; ``raw_bytes_read``
    counts bytes of the underlying file (for progress); ``damage`` describes a truncated or
    corrupt compressed stream (the bytes before the damage are still delivered).
    """

    def __init__(
        self, raw: BinaryIO, name: str, compression: str | None, head: bytes, hashing: bool
    ) -> None:
        self.name = name
        self.compression = compression
        self.damage: str | None = None
        self.raw_bytes_read = 0
        self._hash = hashlib.sha256() if hashing else None
        self._raw = raw
        self._pending = head
        self._eof = False
        self._unread = b""
        self._decoder: _Decoder | None = None
        if compression == "gzip":
            self._decoder = _GzipDecoder()
        elif compression == "zstd":
            self._decoder = _ZstdDecoder()

    @property
    def content_hash(self) -> str | None:
        return self._hash.hexdigest() if self._hash is not None else None

    def _read_raw(self, size: int) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        data = self._raw.read(size)
        self.raw_bytes_read += len(data)
        return data

    def unread(self, data: bytes) -> None:
        """Put already-read (and already hashed) bytes back in front of the stream."""
        self._unread = data + self._unread

    def read(self, size: int = BLOCK_BYTES) -> bytes:
        """Up to about ``size`` decompressed bytes; ``b""`` at the end."""
        if self._unread:
            data, self._unread = self._unread, b""
            return data
        while not self._eof:
            raw = self._read_raw(size)
            if self._decoder is None:
                if not raw:
                    self._eof = True
                    break
                if self._hash is not None:
                    self._hash.update(raw)
                return raw
            try:
                out = self._decoder.feed(raw) if raw else self._decoder.finish()
            except _DecodeError as exc:
                self.damage = f"{self.compression} stream is corrupt ({exc}); later bytes ignored"
                self._eof = True
                out = exc.partial
            if not raw:
                self._eof = True
            if out:
                if self._hash is not None:
                    self._hash.update(out)
                return out
        return b""

    def close(self) -> None:
        if self._raw is not sys.stdin.buffer:
            self._raw.close()


class _DecodeError(Exception):
    def __init__(self, message: str, partial: bytes = b"") -> None:
        super().__init__(message)
        self.partial = partial


class _Decoder:
    def feed(self, data: bytes) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError


class _GzipDecoder(_Decoder):
    """Multi-member gzip (rotated logs are often concatenated members)."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._in_member = False

    def feed(self, data: bytes) -> bytes:
        out = []
        try:
            while data:
                self._in_member = True
                out.append(self._z.decompress(data))
                if not self._z.eof:
                    break
                self._in_member = False
                data = self._z.unused_data
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                if data[:2] != _GZIP_MAGIC:
                    break  # trailing padding after the last member: ignore
        except zlib.error as exc:
            raise _DecodeError(str(exc), b"".join(out)) from exc
        return b"".join(out)

    def finish(self) -> bytes:
        if self._in_member:
            raise _DecodeError("truncated: the compressed stream ends early", self._z.flush())
        return b""


class _ZstdDecoder(_Decoder):
    def __init__(self) -> None:
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._fed = False

    def feed(self, data: bytes) -> bytes:
        self._fed = True
        try:
            return self._d.decompress(data)
        except zstandard.ZstdError as exc:
            raise _DecodeError(str(exc)) from exc

    def finish(self) -> bytes:
        if self._fed and not self._d.eof:
            raise _DecodeError("truncated: the compressed stream ends early")
        return b""


def open_input(path: str | Path, *, hashing: bool = True) -> InputStream:
    """Open ``path`` (``-`` for stdin), recognising gzip/zstd by magic bytes.

    Raises
    ------
    IngestError
        The path does not exist, is a directory, or cannot be read.
    """
    name = str(path)
    raw: BinaryIO
    if name == "-":
        raw = sys.stdin.buffer
        name = "<stdin>"
    else:
        p = Path(path)
        if p.is_dir():
            raise IngestError("is a directory", path=name)
        try:
            raw = open(p, "rb")  # noqa: SIM115 - closed by InputStream.close
        except FileNotFoundError as exc:
            raise IngestError("no such file", path=name) from exc
        except OSError as exc:
            raise IngestError(f"cannot read: {exc.strerror or exc}", path=name) from exc
    try:
        head = raw.read(4)
    except OSError as exc:
        raise IngestError(f"cannot read: {exc}", path=name) from exc
    compression = None
    if head.startswith(_GZIP_MAGIC):
        compression = "gzip"
    elif head.startswith(_ZSTD_MAGIC):
        compression = "zstd"
    stream = InputStream(raw, name, compression, head, hashing)
    stream.raw_bytes_read = len(head)
    return stream


def iter_chunks(
    stream: InputStream,
    *,
    block_bytes: int = BLOCK_BYTES,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[Chunk | LongLine]:
    """Cut the stream into chunks of whole lines, dropping lines longer than the cap.

    Reads are at most ``min(block_bytes, max_line_bytes)``, so the buffer never holds more
    than twice the cap; a line that outgrows it is dropped unread (``LongLine``). Only chunks
    bigger than the cap can hide an over-long line, and only those are scanned line by line.
    """
    block_bytes = min(block_bytes, max_line_bytes)
    buf = b""
    line = 1
    discarding = False
    while True:
        data = stream.read(block_bytes)
        if not data:
            break
        if discarding:
            nl = data.find(b"\n")
            if nl < 0:
                continue
            data = data[nl + 1 :]
            line += 1
            discarding = False
        last = data.rfind(b"\n")
        if last < 0:
            buf = buf + data if buf else data
            if len(buf) > max_line_bytes:
                yield LongLine(line)
                buf = b""
                discarding = True
            continue
        # One copy per block: the carried partial line joins the block's complete lines.
        chunk = b"".join((buf, memoryview(data)[: last + 1])) if buf else data[: last + 1]
        buf = data[last + 1 :]
        newlines = chunk.count(b"\n")
        if len(chunk) > max_line_bytes:
            yield from _cut_long_lines(chunk, line, max_line_bytes)
        else:
            yield Chunk(chunk, line, newlines)
        line += newlines
    if buf and not discarding:
        if len(buf) > max_line_bytes:
            yield LongLine(line)
        else:
            yield Chunk(buf, line, buf.count(b"\n"))


def _cut_long_lines(
    chunk: bytes, first_line: int, max_line_bytes: int
) -> Iterator[Chunk | LongLine]:
    """Split a chunk that may hold lines over the cap into good chunks and LongLine marks."""
    start = 0  # start of the current run of good lines
    pos = 0
    line = first_line
    run_line = first_line
    while pos < len(chunk):
        end = chunk.find(b"\n", pos)
        end = len(chunk) if end < 0 else end + 1
        if end - pos - 1 > max_line_bytes:
            if pos > start:
                yield Chunk(chunk[start:pos], run_line, line - run_line)
            yield LongLine(line)
            start = end
            run_line = line + 1
        pos = end
        line += 1
    if start < len(chunk):
        tail = chunk[start:]
        yield Chunk(tail, run_line, tail.count(b"\n"))
