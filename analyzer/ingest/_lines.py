"""Lines of a flow file: container-log (CRI) unwrapping, line splitting and numbering."""

from __future__ import annotations

import re
from collections.abc import Iterator

import polars as pl

from analyzer.ingest._format import SKIP_MARKER
from analyzer.ingest._io import (
    Chunk,
)

_CRI = re.compile(rb"^\d{4}-\d\d-\d\dT\S+ (?:stdout|stderr) ([FP]) ?(.*)$", re.DOTALL)


_NOT_JSON = "lines that are not JSON"


def _line_numbers(first_line: int, height: int, keep: pl.Series | None = None) -> pl.Series:
    lines = pl.int_range(first_line, first_line + height, dtype=pl.Int64, eager=True)
    return lines if keep is None else lines.filter(keep)


_CRI_PREFIX = re.compile(rb"\d{4}-\d\d-\d\dT\S+ (?:stdout|stderr) ([FP]) ?")


_MARK_CRI = b'{"%s":"container log lines without a JSON record"}' % SKIP_MARKER.encode()


_MARK_NOT_JSON = b'{"%s":"%s"}' % (SKIP_MARKER.encode(), _NOT_JSON.encode())


def _uncri(data: bytes) -> bytes:
    """Unwrap container-log lines for the native reader, one output line per input line: a
    JSON payload of a full (``F``) line stays, anything else becomes a skip marker."""
    out = []
    for line in data.split(b"\n"):
        if line[:1] == b"{" or not line.strip():
            out.append(line)
            continue
        m = _CRI_PREFIX.match(line)
        if m is None:
            out.append(_MARK_NOT_JSON)
        elif m.group(1) == b"F" and line[m.end() : m.end() + 1] == b"{":
            out.append(line[m.end() :])
        else:
            out.append(_MARK_CRI)
    return b"\n".join(out)


def _split_lines(chunk: Chunk) -> Iterator[tuple[int, bytes]]:
    for offset, line in enumerate(chunk.data.split(b"\n")):
        if line:
            yield chunk.first_line + offset, line
