"""Bytes as they arrive -> chunks of complete lines, with stream line numbers.

A record is a line: only complete lines (ending in a newline) are handed on, so a record being
written while it is read is never parsed half-way. A line longer than the cap is dropped unread
(its number is reported) and memory stays bounded whatever arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LineAssembler", "LineChunk"]


@dataclass(frozen=True, slots=True)
class LineChunk:
    """Complete lines (each ending in a newline) and where they are in the stream."""

    data: bytes
    first_line: int  # stream line number of the first line (1-based)
    lines: int
    long_lines: tuple[int, ...]  # lines dropped for exceeding the cap (blank in ``data``)


class LineAssembler:
    """Accumulates bytes; ``take`` returns the complete lines gathered so far.

    ``tail_bytes`` is the length of the incomplete last line: a file's resume offset is the
    offset of the bytes read minus it.
    """

    def __init__(self, max_line_bytes: int, first_line: int = 1) -> None:
        self.max_line_bytes = max_line_bytes
        self._blocks: list[bytes] = []
        self._pending_bytes = 0
        self._pending_lines = 0
        self._partial = bytearray()
        self._discarding = False  # inside a line that outgrew the cap
        self._tail = 0  # bytes of the current incomplete line (kept or discarded)
        self._first_line = first_line  # line number of the first pending line
        self._long: list[int] = []

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def pending_lines(self) -> int:
        return self._pending_lines

    @property
    def tail_bytes(self) -> int:
        return self._tail

    @property
    def next_line(self) -> int:
        """The stream line number of the line after the complete ones (the incomplete one)."""
        return self._first_line + self._pending_lines

    def feed(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:
                self._extend_partial(data[pos:])
                return
            # The line that ends here: partial + data[pos:nl+1]
            if self._discarding or len(self._partial) + (nl - pos) > self.max_line_bytes:
                self._drop_long_line()
                self._partial.clear()
                self._discarding = False
                self._tail = 0
                pos = nl + 1
                continue
            last = data.rfind(b"\n")
            if self._partial:
                self._partial += data[pos : nl + 1]
                self._push(bytes(self._partial), 1)
                self._partial.clear()
                self._tail = 0
                pos = nl + 1
                continue
            # Every line between pos and the last newline is shorter than the block read.
            block = data[pos : last + 1]
            if len(block) > self.max_line_bytes:  # only a huge feed can hide a long line
                self._push_checked(block)
            else:
                self._push(block, block.count(b"\n"))
            self._tail = 0
            pos = last + 1
        return

    def _extend_partial(self, data: bytes) -> None:
        self._tail += len(data)
        if self._discarding:
            return
        if len(self._partial) + len(data) > self.max_line_bytes:
            self._partial.clear()
            self._discarding = True
            return
        self._partial += data

    def _drop_long_line(self) -> None:
        # A blank line in its place keeps the positions of the lines after it line numbers.
        self._long.append(self.next_line)
        self._push(b"\n", 1)

    def _push(self, block: bytes, lines: int) -> None:
        self._blocks.append(block)
        self._pending_bytes += len(block)
        self._pending_lines += lines

    def _push_checked(self, block: bytes) -> None:
        start = 0
        while start < len(block):
            end = block.index(b"\n", start) + 1
            if end - start - 1 > self.max_line_bytes:
                self._drop_long_line()
            else:
                self._push(block[start:end], 1)
            start = end

    def finish(self) -> None:
        """End of this input (EOF, rotation): an incomplete last line counts as a line."""
        if self._partial and not self._discarding:
            self._partial += b"\n"
            self._push(bytes(self._partial), 1)
        elif self._discarding:
            self._drop_long_line()
        self._partial.clear()
        self._discarding = False
        self._tail = 0

    def restart_numbering(self, first_line: int = 1) -> None:
        """A new file (rotation, truncation): line numbers start again. Call ``finish`` and
        ``take`` first: nothing may be pending."""
        if self._blocks or self._partial:
            raise RuntimeError("restart_numbering with lines pending")
        self._first_line = first_line

    def take(self) -> LineChunk | None:
        """The complete lines gathered since the last call (None if there are none)."""
        if not self._blocks and not self._long:
            return None
        data = b"".join(self._blocks)
        chunk = LineChunk(data, self._first_line, self._pending_lines, tuple(self._long))
        self._first_line += self._pending_lines
        self._blocks.clear()
        self._long.clear()
        self._pending_bytes = 0
        self._pending_lines = 0
        return chunk
