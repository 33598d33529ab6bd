"""``--follow FILE``: growth, rotation, truncation, resuming from the recorded offset, every
line-by-line format, skipped lines with their line numbers, bounded state."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from live_helpers import committed_rows, make_capture, reference, rows

from analyzer.errors import IngestError
from analyzer.live import FileFollower, LiveOptions, LiveStatus, StdinSource, run_stream
from analyzer.live.cadence import Cadence
from analyzer.live.dedup import RecordDeduper
from analyzer.live.follow import last_resume
from analyzer.store import FlowStore

FAST = LiveOptions(cadence=Cadence(seconds=0.1), parse_seconds=0.05)


class Runner:
    """run_stream on a thread, stopped like SIGINT stops the CLI."""

    def __init__(self, store: Path, path: Path, options: LiveOptions = FAST) -> None:
        self.stop = threading.Event()
        self.result: LiveStatus | None = None
        self.error: BaseException | None = None
        resume = None
        if (store / "manifest.json").is_file():
            resume = last_resume(FlowStore.open(store), "file", str(path.absolute()))
        self.source = FileFollower(path, resume=resume, poll_seconds=0.02)

        def target() -> None:
            try:
                self.result = run_stream(store, self.source, options, self.stop)
            except BaseException as exc:  # noqa: BLE001 - re-raised by finish()
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def finish(self) -> LiveStatus:
        self.stop.set()
        self.thread.join(timeout=60)
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _wait(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_growth_rotation_and_truncation(tmp_path: Path, capture_lines: list[bytes]) -> None:
    log = tmp_path / "events.log"
    store = tmp_path / "store"
    log.write_bytes(b"".join(capture_lines[:500]))
    run = Runner(store, log)
    _wait(lambda: committed_rows(store) == 500)
    with open(log, "ab") as fh:  # the file grows, a line arrives in two writes
        fh.write(b"".join(capture_lines[500:800]) + capture_lines[800][:40])
        fh.flush()
        time.sleep(0.3)
        fh.write(capture_lines[800][40:])
    _wait(lambda: committed_rows(store) == 801)
    # rotation: renamed away (with a last line written to the old file), recreated
    with open(log, "ab") as fh:
        fh.write(capture_lines[801])
    log.rename(tmp_path / "events-1.log")
    log.write_bytes(b"".join(capture_lines[802:1500]))
    _wait(lambda: committed_rows(store) == 1500)
    # copytruncate: the file is emptied in place and written again
    log.write_bytes(b"")
    time.sleep(0.3)
    log.write_bytes(b"".join(capture_lines[1500:1700]))
    _wait(lambda: committed_rows(store) == 1700)
    final = run.finish()
    assert final.committed == 1700 and final.duplicates == 0
    assert rows(store).equals(reference(capture_lines[:1700], tmp_path))


def test_restart_resumes_at_the_recorded_offset(tmp_path: Path, capture_lines: list[bytes]) -> None:
    log = tmp_path / "flows.log"
    store = tmp_path / "store"
    log.write_bytes(b"".join(capture_lines[:700]) + capture_lines[700][:25])
    first = Runner(store, log)
    _wait(lambda: committed_rows(store) == 700)
    first.finish()
    resume = last_resume(FlowStore.open(store), "file", str(log.absolute()))
    assert resume is not None and resume["offset"] == len(b"".join(capture_lines[:700]))
    assert resume["line"] == 701
    with open(log, "ab") as fh:
        fh.write(capture_lines[700][25:] + b"".join(capture_lines[701:1000]))
    second = Runner(store, log)
    assert second.source.resumed
    _wait(lambda: committed_rows(store) == 1000)
    final = second.finish()
    # read from the offset: the first 700 lines were not even read again
    assert final.lines == 300 and final.duplicates == 0
    assert rows(store).equals(reference(capture_lines[:1000], tmp_path))


def test_a_replaced_file_is_read_from_its_start(tmp_path: Path, capture_lines: list[bytes]) -> None:
    log = tmp_path / "flows.log"
    store = tmp_path / "store"
    log.write_bytes(b"".join(capture_lines[:300]))
    run = Runner(store, log)
    _wait(lambda: committed_rows(store) == 300)
    run.finish()
    log.unlink()  # another file under the same name: the recorded offset is not for it
    log.write_bytes(b"".join(capture_lines[1000:1600]))
    again = Runner(store, log)
    assert not again.source.resumed
    _wait(lambda: committed_rows(store) == 900)
    final = again.finish()
    assert final.lines == 600 and final.committed == 600


def test_the_same_content_rewritten_resumes(tmp_path: Path, capture_lines: list[bytes]) -> None:
    log = tmp_path / "flows.log"
    store = tmp_path / "store"
    log.write_bytes(b"".join(capture_lines[:300]))
    run = Runner(store, log)
    _wait(lambda: committed_rows(store) == 300)
    run.finish()
    copy = tmp_path / "copy.log"  # rewritten through a copy: a new inode, same bytes
    copy.write_bytes(b"".join(capture_lines[:600]))
    copy.rename(log)
    again = Runner(store, log)
    assert not again.source.resumed  # another inode: read from the start ...
    _wait(lambda: committed_rows(store) == 600)
    final = again.finish()
    assert final.duplicates == 300 and final.committed == 300  # ... and nothing twice


def test_skipped_lines_are_counted_with_stream_line_numbers(
    tmp_path: Path, capture_lines: list[bytes]
) -> None:
    log = tmp_path / "mixed.log"
    body = list(capture_lines[:200])
    body.insert(50, b'{"flow": {"time": "2026-11-02T09:00:00Z"\n')  # truncated JSON: line 51
    body.insert(150, b"agent log line, not JSON\n")  # line 151
    body.insert(170, b'{"lost_events": {"num_events_lost": "12"}, "node_name": "n1"}\n')
    log.write_bytes(b"".join(body))
    store = tmp_path / "store"
    run = Runner(store, log, LiveOptions(cadence=Cadence(records=60), parse_seconds=0.05))
    _wait(lambda: committed_rows(store) == 200)
    run.finish()
    manifest = json.loads((store / "manifest.json").read_text())["inputs"]
    skipped = {s["reason"]: s["first_lines"] for e in manifest for s in e["skipped"]}
    assert skipped["malformed JSON lines"] == [51]
    assert skipped["lines that are not JSON"] == [151]
    assert skipped["lost_events records"] == [171]
    warnings = [w for e in manifest for w in e["warnings"]]
    assert any(w.startswith("12 events were lost by Hubble") for w in warnings)


@pytest.mark.parametrize("fmt", ["calico", "goldmane", "whisker"])
def test_every_line_format_streams_like_a_file_ingest(tmp_path: Path, fmt: str) -> None:
    path = make_capture(tmp_path, 1200, fmt)
    lines = path.read_bytes().splitlines(keepends=True)
    store = tmp_path / "store"
    with open(path, "rb") as fh:
        final = run_stream(
            store,
            StdinSource(fh),
            LiveOptions(cadence=Cadence(records=500), parse_bytes=64 << 10),
            threading.Event(),
        )
    assert final.format == fmt
    assert final.commits >= 1
    assert rows(store).equals(reference(lines, tmp_path))


def test_a_json_array_is_refused_with_follow(tmp_path: Path) -> None:
    path = tmp_path / "array.json"
    path.write_text('[{"flow": {"time": "2026-11-02T09:00:00Z", "verdict": "FORWARDED"}}]\n')
    with open(path, "rb") as fh, pytest.raises(IngestError, match="one record per line"):
        run_stream(tmp_path / "store", StdinSource(fh), FAST, threading.Event())


def test_compressed_input_is_refused_with_follow(tmp_path: Path, capture: Path) -> None:
    import gzip

    path = tmp_path / "flows.jsonl.gz"
    path.write_bytes(gzip.compress(capture.read_bytes()))
    with open(path, "rb") as fh, pytest.raises(IngestError, match="without --follow"):
        run_stream(tmp_path / "store", StdinSource(fh), FAST, threading.Event())


def test_dedup_state_stays_within_the_horizon(tmp_path: Path, capture: Path) -> None:
    """Days of streaming keep only the last horizon of keys in memory."""
    from analyzer.ingest import read_flow_file

    frame = read_flow_file(capture).frame.sort("time")
    store = FlowStore.open_or_create(tmp_path / "store")
    dedup = RecordDeduper(store, horizon=timedelta(seconds=30))
    sizes = []
    for start in range(0, frame.height, 250):
        new, dropped = dedup.filter(frame.slice(start, 250))
        assert dropped == 0 and new.height == min(250, frame.height - start)
        sizes.append(dedup.state_rows)
    span = frame["time"].max() - frame["time"].min()  # type: ignore[operator]
    per_second = frame.height / span.total_seconds()
    assert max(sizes) <= 30 * per_second * 3 + 250  # bounded by the horizon, not the stream
    # rows seen again within the horizon (the last ~10 s) are dropped as a resend
    again, dropped = dedup.filter(frame.tail(30))
    assert again.height == 0 and dropped == 30


def test_a_file_ingest_while_following_is_not_duplicated(
    tmp_path: Path, capture_lines: list[bytes]
) -> None:
    from analyzer.store import ingest

    log = tmp_path / "events.log"
    store = tmp_path / "store"
    log.write_bytes(b"".join(capture_lines[:500]))
    run = Runner(store, log)
    _wait(lambda: committed_rows(store) == 500)
    # another writer commits lines 500..999 while the stream runs (the lock is free between
    # commits) ...
    other = tmp_path / "export.jsonl"
    other.write_bytes(b"".join(capture_lines[500:1000]))
    ingest(store, [str(other)])
    time.sleep(0.3)  # a commit of the stream learns the new parts
    with open(log, "ab") as fh:  # ... and the stream then sees them too
        fh.write(b"".join(capture_lines[500:1200]))
    _wait(lambda: committed_rows(store) == 1200)
    final = run.finish()
    assert final.duplicates == 500
    assert rows(store).equals(reference(capture_lines[:1200], tmp_path))


def test_store_compact_while_following(tmp_path: Path, capture_lines: list[bytes]) -> None:
    """``store compact`` merges the parts a running stream has learned: the stream reads the
    merged part from then on, not the deleted ones, and still drops resent rows."""
    from analyzer.store import ingest
    from analyzer.store.compact import compact_store

    log = tmp_path / "events.log"
    store = tmp_path / "store"
    log.write_bytes(b"".join(capture_lines[:300]))
    run = Runner(store, log)
    _wait(lambda: committed_rows(store) == 300)
    for start in (300, 600):  # other writers' small parts, learned by the stream
        other = tmp_path / f"export-{start}.jsonl"
        other.write_bytes(b"".join(capture_lines[start : start + 300]))
        ingest(store, [str(other)])
    with open(log, "ab") as fh:
        fh.write(b"".join(capture_lines[900:1000]))
    _wait(lambda: committed_rows(store) == 1000)
    before = len(list((store / "flows").glob("part-*.parquet")))
    done = compact_store(store, hours_after=None, days_after=None)
    assert done.parts.parts_after < before
    with open(log, "ab") as fh:  # resends of the merged rows, then new ones
        fh.write(b"".join(capture_lines[300:1200]))
    _wait(lambda: committed_rows(store) == 1200)
    final = run.finish()
    assert final.duplicates == 700
    assert rows(store).equals(reference(capture_lines[:1200], tmp_path))


def test_deduper_reads_again_when_compacted_mid_chunk(
    tmp_path: Path, capture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compaction between the deduper's look at the manifest and its read of the parts: the
    read finds a deleted part, looks at the manifest again and reads the merged one."""
    from analyzer.ingest import read_flow_file
    from analyzer.store import ingest
    from analyzer.store.compact import compact_store

    frame = read_flow_file(capture).frame
    store_dir = tmp_path / "store"
    lines = capture.read_bytes().splitlines(keepends=True)
    for start in (0, 1000):
        part = tmp_path / f"p{start}.jsonl"
        part.write_bytes(b"".join(lines[start : start + 1000]))
        ingest(store_dir, [str(part)])
    dedup = RecordDeduper(FlowStore.open(store_dir))
    compact_store(store_dir, hours_after=None, days_after=None)
    learned = RecordDeduper.refresh
    calls = []

    def stale_once(self: RecordDeduper) -> None:
        calls.append(1)
        if len(calls) > 1:  # the first look (in filter) misses the compaction
            learned(self)

    monkeypatch.setattr(RecordDeduper, "refresh", stale_once)
    new, dropped = dedup.filter(frame.slice(500, 1000))
    assert len(calls) == 2 and dropped == 1000 and new.height == 0
