"""``analyzer ingest --follow -``: a capture piped slowly, interrupted, piped again.

What was read before an interrupt is in the store exactly once; a second run over the same
capture adds only what the first one had not read. These run the real command in a process
and interrupt it with real signals.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "live"))
from live_helpers import committed_lines, make_capture, reference, rows  # noqa: E402


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_capture(tmp_path_factory.mktemp("cap"))


@pytest.fixture(scope="module")
def capture_lines(capture: Path) -> list[bytes]:
    return capture.read_bytes().splitlines(keepends=True)


CMD = [sys.executable, "-c", "from analyzer.cli import app; app()"]


def _start(store: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CMD, "ingest", "--follow", "-", "--commit-every", "200ms", "--store", str(store),
         "-o", "json", *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for(store: Path, lines: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while committed_lines(store) < lines:
        if time.monotonic() > deadline:
            raise AssertionError(f"{committed_lines(store)} of {lines} lines committed in time")
        time.sleep(0.05)


def _feed_and_interrupt(
    store: Path, lines: list[bytes], upto: int, committed_before: int, sig: int
) -> tuple[dict[str, object], str]:
    """Pipe ``lines[:upto]`` in pieces plus half of the next line, wait for the commit of
    the complete ones, then send ``sig``."""
    proc = _start(store)
    assert proc.stdin is not None
    for start in range(0, upto, 400):
        proc.stdin.write(b"".join(lines[start : min(upto, start + 400)]))
        proc.stdin.flush()
        time.sleep(0.05)
    half = lines[upto][: len(lines[upto]) // 2]
    proc.stdin.write(half)  # a record being written when the interrupt comes
    proc.stdin.flush()
    _wait_for(store, committed_before + upto)
    proc.send_signal(sig)
    proc.wait(timeout=60)  # stdin stays open: the stream was interrupted, not closed
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out), err.decode()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_runs_store_each_record_once(
    tmp_path: Path, capture_lines: list[bytes], sig: int
) -> None:
    store = tmp_path / "store"
    first, err = _feed_and_interrupt(store, capture_lines, 1000, 0, sig)
    assert first["lines"] == 1000 and first["rows_committed"] == 1000
    assert "Traceback" not in err
    # exactly the first 1000 records, each once; the half-written record is not stored
    assert rows(store).equals(reference(capture_lines[:1000], tmp_path))

    # the same capture piped again from its start, interrupted later: only new records added
    second, _ = _feed_and_interrupt(store, capture_lines, 2200, 1000, sig)
    assert second["duplicates"] == 1000
    assert second["rows_committed"] == 1200
    assert rows(store).equals(reference(capture_lines[:2200], tmp_path))


def test_stdin_to_its_end_equals_a_file_ingest(tmp_path: Path, capture: Path) -> None:
    store = tmp_path / "store"
    done = subprocess.run(
        [*CMD, "ingest", "--follow", "-", "--commit-every", "700", "--store", str(store)],
        input=capture.read_bytes(),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"3,000 rows from <stdin>" in done.stdout
    # non-terminal stderr: one log line per commit (record cadence: 700 lines)
    logs = [ln for ln in done.stderr.decode().splitlines() if " committed " in ln]
    assert len(logs) == 5, done.stderr.decode()
    manifest = json.loads((store / "manifest.json").read_text())
    assert [e["stream"]["seq"] for e in manifest["inputs"]] == [1, 2, 3, 4, 5]
    assert all(e["path"] == "<stdin>" for e in manifest["inputs"])
    assert rows(store).equals(reference(capture.read_bytes().splitlines(True), tmp_path))
    # and a plain ingest of the same file afterwards adds nothing either way round
    again = subprocess.run(
        [*CMD, "ingest", "--follow", "-", "--store", str(store), "-o", "json"],
        input=capture.read_bytes(),
        capture_output=True,
        timeout=120,
    )
    assert json.loads(again.stdout)["rows_committed"] == 0
    assert json.loads(again.stdout)["duplicates"] == 3000


def test_relay_from_the_command_line(tmp_path: Path, capture: Path) -> None:
    from relay_server import FakeRelay, load_responses

    relay = FakeRelay(load_responses(capture), drop_after=900, drops=1)
    address = relay.start()
    try:
        store = tmp_path / "store"
        done = subprocess.run(
            [*CMD, "ingest", "--relay", address, "--since", "2000-01-01T00:00:00Z",
             "--store", str(store), "-o", "json"],
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()
        summary = json.loads(done.stdout)
        assert summary["rows_committed"] == 3000 and summary["source"] == f"relay://{address}"
        assert "relay stream lost (UNAVAILABLE" in done.stderr.decode()
        assert rows(store).equals(reference(capture.read_bytes().splitlines(True), tmp_path))
    finally:
        relay.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "1h", "f.jsonl"], "--since needs --relay"),
        (["--follow", "a.jsonl", "b.jsonl"], "--follow reads one input"),
        (["--relay", "localhost:4245"], "--relay without --follow needs --since"),
        (["--relay", "localhost:4245", "--since", "1h", "f.jsonl"], "give no PATH"),
        (["--relay", "nohost", "--since", "1h"], "not HOST:PORT"),
        (["--follow", "-", "--commit-every", "soon"], "not a duration"),
        ([], "give a flow file"),
    ],
)
def test_live_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        [*CMD, "ingest", "--store", str(tmp_path / "s"), *args],
        capture_output=True,
        timeout=60,
        input=b"",
    )
    assert done.returncode == 2, done.stderr.decode()
    err = done.stderr.decode()
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()  # a usage error creates no store
