"""Line assembly (partial lines, the line cap, stream line numbers) and option values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analyzer.errors import UsageError
from analyzer.live.cadence import Cadence, parse_commit_every, parse_since
from analyzer.live.lines import LineAssembler


def test_only_complete_lines_are_handed_on() -> None:
    a = LineAssembler(100)
    a.feed(b'{"a":1}\n{"b"')
    chunk = a.take()
    assert chunk is not None and chunk.data == b'{"a":1}\n' and chunk.first_line == 1
    assert a.tail_bytes == 4 and a.take() is None
    a.feed(b":2}\n")
    chunk = a.take()
    assert chunk is not None and chunk.data == b'{"b":2}\n' and chunk.first_line == 2
    assert a.tail_bytes == 0 and a.next_line == 3


def test_lines_over_the_cap_are_dropped_unread_and_numbered() -> None:
    a = LineAssembler(10)
    a.feed(b"ok\n" + b"x" * 8)
    a.feed(b"x" * 8)  # the partial line outgrows the cap: discarded, not buffered
    assert a.tail_bytes == 16
    a.feed(b"x\nfine\n" + b"y" * 30 + b"\nend\n")
    chunk = a.take()
    assert chunk is not None
    assert chunk.long_lines == (2, 4)
    # blank placeholders keep positions equal to line numbers
    assert chunk.data.split(b"\n")[:5] == [b"ok", b"", b"fine", b"", b"end"]


def test_finish_makes_the_last_partial_line_a_line() -> None:
    a = LineAssembler(100)
    a.feed(b"one\ntwo")
    a.finish()
    chunk = a.take()
    assert chunk is not None and chunk.data == b"one\ntwo\n" and chunk.lines == 2
    a.restart_numbering(1)
    a.feed(b"three\n")
    chunk = a.take()
    assert chunk is not None and chunk.first_line == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60s", Cadence(seconds=60)),
        ("5m", Cadence(seconds=300)),
        ("1500ms", Cadence(seconds=1.5)),
        ("10000", Cadence(records=10000)),
    ],
)
def test_commit_every_values(text: str, expected: Cadence) -> None:
    assert parse_commit_every(text) == expected


@pytest.mark.parametrize("text", ["0", "0s", "soon", "-5", "5 minutes"])
def test_commit_every_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_commit_every(text)


def test_since_durations_and_times() -> None:
    now = datetime(2026, 11, 2, 12, tzinfo=UTC)
    assert parse_since("1h", now=now) == now - timedelta(hours=1)
    assert parse_since("2d", now=now) == now - timedelta(days=2)
    assert parse_since("2026-11-02T09:00:00Z") == datetime(2026, 11, 2, 9, tzinfo=UTC)
    assert parse_since("2026-11-02T09:00:00") == datetime(2026, 11, 2, 9, tzinfo=UTC)
    with pytest.raises(UsageError, match="neither a duration"):
        parse_since("yesterday")
