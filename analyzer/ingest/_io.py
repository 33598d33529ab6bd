"""Bytes in: open a path or stdin, undo compression, hash the content, cut it into bounded chunks.

Compression is recognised by magic bytes (a rotated ``events.log`` can be gzip without ``.gz``).
Memory stays bounded whatever the input: content is read in blocks (a decompressed block is
never larger than asked for, whatever the compression ratio), and a single line longer than
``max_line_bytes`` is skipped (and reported) instead of being buffered.

An input's identity is the SHA-256 of its *decompressed* content (``digest_file``), so the same
flows ingested plain, gzipped or zstd-compressed are recognised as one input.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from analyzer.errors import IngestError
from analyzer.ingest._decompress import (
    GZIP_MAGIC,
    DecodeError,
    Decoder,
    GzipDecoder,
    ZstdDecoder,
    is_zstd,
)

__all__ = [
    "BLOCK_BYTES",
    "MAX_LINE_BYTES",
    "Chunk",
    "Digest",
    "LongLine",
    "InputStream",
    "digest_file",
    "is_compressed",
    "open_input",
    "iter_chunks",
]

BLOCK_BYTES = 8 << 20
MAX_LINE_BYTES = 16 << 20
# Compressed bytes read per refill: the decoders bound the output, this bounds the input.
_RAW_BLOCK = 1 << 20


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


@dataclass(frozen=True, slots=True)
class Digest:
    """SHA-256 of an input's decompressed content (its identity) and of its file bytes
    (equal for uncompressed input; stores written before content hashing used the latter)."""

    content: str
    file: str
    compression: str | None


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
        self._decoder: Decoder | None = None
        if compression == "gzip":
            self._decoder = GzipDecoder()
        elif compression == "zstd":
            self._decoder = ZstdDecoder()

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
        """Up to ``size`` decompressed bytes (more only for bytes put back with ``unread``);
        ``b""`` at the end."""
        if self._unread:
            data, self._unread = self._unread, b""
            return data
        while not self._eof:
            if self._decoder is None:
                out = self._read_raw(size)
                self._eof = not out
            else:
                out = self._decode(size)
            if out:
                if self._hash is not None:
                    self._hash.update(out)
                return out
        return b""

    def _decode(self, size: int) -> bytes:
        assert self._decoder is not None
        try:
            out = self._decoder.read(size)
            if not out:
                raw = self._read_raw(_RAW_BLOCK)
                if raw:
                    self._decoder.feed(raw)
                else:
                    self._eof = True
                    self._decoder.finish()
            return out
        except DecodeError as exc:
            self.damage = f"{self.compression} stream is corrupt ({exc}); later bytes ignored"
            self._eof = True
            return b""

    def close(self) -> None:
        if self._raw is not sys.stdin.buffer:
            self._raw.close()


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
    if head.startswith(GZIP_MAGIC):
        compression = "gzip"
    elif is_zstd(head):
        compression = "zstd"
    stream = InputStream(raw, name, compression, head, hashing)
    stream.raw_bytes_read = len(head)
    return stream


def is_compressed(path: Path) -> bool:
    """Whether the file starts with a gzip or zstd magic number (False if unreadable)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith(GZIP_MAGIC) or is_zstd(head)


def digest_file(path: Path) -> Digest:
    """Hash a file's decompressed content (and its bytes) in bounded memory.

    Raises ``OSError`` when the file cannot be read.
    """
    with open(path, "rb") as fh:
        file_hash = hashlib.file_digest(fh, "sha256").hexdigest()
    try:
        stream = open_input(path, hashing=True)
    except IngestError as exc:
        raise OSError(str(exc)) from exc
    try:
        if stream.compression is None:
            return Digest(file_hash, file_hash, None)
        while stream.read(_RAW_BLOCK):
            pass
        content = stream.content_hash
        assert content is not None
        return Digest(content, file_hash, stream.compression)
    finally:
        stream.close()


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
