"""Decode JSON that is not one value per line: a JSON array, or pretty-printed objects.

Values are decoded one at a time from a bounded text buffer, so a 10 GB array is read with the
memory of one element. Line numbers are tracked for skip reports. Bytes that are not UTF-8 are
kept apart while decoding (surrogateescape) so that a value holding them is reported, never
silently "repaired".
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from analyzer.ingest._screen import encodable

__all__ = ["BAD", "NOT_UTF8", "iter_json_values"]

BAD = object()
NOT_UTF8 = object()
_SEPARATORS = re.compile(r"[\s,\[\]\ufeff]*")
_NEXT_OBJECT = re.compile(r"(?:\n|,)\s*\{")
# A byte that was not UTF-8 (decoded as a lone surrogate), or a \uD8xx-\uDFxx escape.
_SUSPECT = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")


def iter_json_values(
    read: Callable[[], bytes], *, max_value_chars: int
) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, value)`` for each top-level value (array elements are unwrapped).

    A value that cannot be decoded is yielded as ``BAD`` and decoding resumes at the next line
    that starts an object; a value whose text is not valid UTF-8 is yielded as ``NOT_UTF8``.
    """
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    buf = ""
    pos = 0
    base_line = 1  # line number of buf[0]
    counted_pos = 0
    counted_line = 1
    eof = False

    def line_at(index: int) -> int:
        nonlocal counted_pos, counted_line
        if index < counted_pos:
            counted_pos, counted_line = 0, base_line
        counted_line += buf.count("\n", counted_pos, index)
        counted_pos = index
        return counted_line

    def fill() -> bool:
        nonlocal buf, pos, base_line, counted_pos, counted_line, eof
        if eof:
            return False
        data = read()
        base_line = line_at(pos)
        buf = buf[pos:]
        pos = 0
        counted_pos, counted_line = 0, base_line
        if not data:
            eof = True
            buf += utf8.decode(b"", final=True)
            return False
        buf += utf8.decode(data)
        return True

    while True:
        pos = _SEPARATORS.match(buf, pos).end()  # type: ignore[union-attr]
        if pos >= len(buf):
            if fill():
                continue
            return
        try:
            value, end = decoder.raw_decode(buf, pos)
        except (json.JSONDecodeError, RecursionError):
            if not eof and len(buf) - pos < max_value_chars:
                fill()
                continue
            yield line_at(pos), BAD
            pos += 1
            while True:
                nxt = _NEXT_OBJECT.search(buf, pos)
                if nxt is not None:
                    pos = nxt.end() - 1
                    break
                pos = max(pos, len(buf) - 1)  # keep a "\n" that may precede the next "{"
                if not fill():
                    return
            continue
        if _SUSPECT.search(buf, pos, end) and not encodable(value):
            value = NOT_UTF8
        yield line_at(pos), value
        pos = end
