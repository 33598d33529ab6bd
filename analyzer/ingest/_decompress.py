"""Bounded, multi-member gzip and multi-frame zstd decoding.

Compressed input is hostile input: a few megabytes of gzip (or a few kilobytes of zstd) can
stand for gigabytes of zeros. The decoders here never return more than the caller asks for
(``read(max_bytes)``), whatever the compression ratio, so memory stays bounded by the block
size. Both read every member/frame of a concatenated stream (log rotation and log shippers
append them), and tell a stream cut off mid-member (truncated) from one that ends cleanly.
"""

from __future__ import annotations

import sys
import zlib

if sys.version_info >= (3, 14):
    from compression import zstd
else:  # pragma: no cover - exercised on the Python the project runs on
    from backports import zstd

__all__ = ["DecodeError", "Decoder", "GzipDecoder", "ZstdDecoder", "GZIP_MAGIC", "ZSTD_MAGIC"]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# A zstd skippable frame (seekable-format index, pzstd headers): magic 0x184D2A50..5F, LE.
_SKIPPABLE_LOW = 0x184D2A50


class DecodeError(Exception):
    """The compressed stream is damaged; output already returned stays valid."""


class Decoder:
    """Feed compressed bytes with ``feed`` when ``read`` returns ``b""``; call ``finish`` at
    the end of the input (raises ``DecodeError`` when it ends inside a member/frame)."""

    def feed(self, data: bytes) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def read(self, max_bytes: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class GzipDecoder(Decoder):
    """Concatenated gzip members; anything after the last member that is not another
    member (zero padding, garbage) ends the stream, as gzip(1) treats it."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._in = b""
        self._in_member = False
        self._pending_output = False  # the last read filled its limit: more may be buffered
        self._trailing = False

    def feed(self, data: bytes) -> None:
        if not self._trailing:
            self._in = self._in + data if self._in else data

    def read(self, max_bytes: int) -> bytes:
        while (self._in or self._pending_output) and not self._trailing:
            if not self._in_member:
                if len(self._in) < len(GZIP_MAGIC):
                    return b""  # wait for more input before deciding
                if not self._in.startswith(GZIP_MAGIC):
                    self._trailing, self._in = True, b""
                    return b""
                self._in_member = True
            data, self._in = self._in, b""
            try:
                out = self._z.decompress(data, max_bytes)
            except zlib.error as exc:
                raise DecodeError(str(exc)) from exc
            self._in = self._z.unconsumed_tail
            self._pending_output = len(out) == max_bytes
            if self._z.eof:
                # the bytes after the member's end (zlib also leaves them in unconsumed_tail)
                self._in = self._z.unused_data
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._in_member = False
                self._pending_output = False
            if out:
                return out
        return b""

    def finish(self) -> None:
        if self._in_member:
            raise DecodeError("truncated: the compressed stream ends early")


class ZstdDecoder(Decoder):
    """Concatenated zstd frames (skippable frames included), as ``zstd`` writes when
    appending and as log shippers produce them."""

    def __init__(self) -> None:
        self._d = zstd.ZstdDecompressor()
        self._in = b""
        self._in_frame = False

    def feed(self, data: bytes) -> None:
        self._in = self._in + data if self._in else data

    def read(self, max_bytes: int) -> bytes:
        while True:
            if self._d.needs_input:
                if not self._in:
                    return b""
                data, self._in = self._in, b""
            else:
                data = b""  # output is buffered inside the decompressor: drain it first
            self._in_frame = True
            try:
                out = self._d.decompress(data, max_bytes)
            except zstd.ZstdError as exc:
                raise DecodeError(str(exc)) from exc
            if self._d.eof:
                self._in = self._d.unused_data + self._in
                self._d = zstd.ZstdDecompressor()
                self._in_frame = False
            if out:
                return out

    def finish(self) -> None:
        if self._in_frame or self._in:
            raise DecodeError("truncated: the compressed stream ends early")


def is_zstd(head: bytes) -> bool:
    """A zstd frame or a skippable frame starts ``head``."""
    if head.startswith(ZSTD_MAGIC):
        return True
    if len(head) < 4:
        return False
    return int.from_bytes(head[:4], "little") & 0xFFFFFFF0 == _SKIPPABLE_LOW
