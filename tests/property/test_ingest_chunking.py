"""Property: chunking keeps every line under the cap exactly once, with its line number, and
reports every line over the cap, whatever the block size."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.ingest._io import Chunk, InputStream, LongLine, iter_chunks


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.integers(0, 300), max_size=40),
    trailing_newline=st.booleans(),
    cap=st.sampled_from([64, 100, 200, 1000]),
    block=st.sampled_from([1, 7, 16, 64, 1000]),
)
def test_chunks_cover_lines(lines: list[int], trailing_newline: bool, cap: int, block: int) -> None:
    texts = [(b"%d:" % i).ljust(n, b"x") if n else b"" for i, n in enumerate(lines)]
    data = b"\n".join(texts) + (b"\n" if trailing_newline and texts else b"")
    stream = InputStream(io.BytesIO(data), "t", None, b"", False)
    got: list[tuple[int, bytes]] = []
    long_lines: list[int] = []
    for item in iter_chunks(stream, block_bytes=block, max_line_bytes=cap):
        if isinstance(item, LongLine):
            long_lines.append(item.line)
            continue
        assert isinstance(item, Chunk)
        assert item.newlines == item.data.count(b"\n")
        parts = item.data.split(b"\n")
        if item.data.endswith(b"\n"):
            parts = parts[:-1]
        got.extend((item.first_line + i, part) for i, part in enumerate(parts))
    split = data.split(b"\n")
    if split[-1] == b"":  # nothing after the final newline (or an empty input)
        split = split[:-1]
    expected = list(enumerate(split, start=1))
    assert got == [(n, t) for n, t in expected if len(t) <= cap]
    assert long_lines == [n for n, t in expected if len(t) > cap]
