"""The DuckDB whole-file path reads exactly what the chunked path reads, and hands bad files
back to it (so skip reports keep their line numbers)."""

from __future__ import annotations

import gzip
import itertools
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.ingest import _native
from analyzer.ingest.reader import FlowReader
from analyzer.schema import FLOW_COLUMNS
from analyzer.store import FlowStore, ingest


@pytest.fixture(scope="module")
def hubble_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    out = tmp_path_factory.mktemp("gen")
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--format",
            "hubble",
            "--flows",
            "10000",
            "--seed",
            "3",
            "--lost-events",
            "4",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return (out / "flows.jsonl").read_bytes().splitlines()


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _chunked(path: Path) -> tuple[pl.DataFrame, FlowReader]:
    with FlowReader(path, batch_rows=700) as reader:
        frame = pl.concat(list(reader.batches()))
    return frame, reader


def _native_read(path: Path) -> tuple[pl.DataFrame, FlowReader]:
    with FlowReader(path, batch_rows=700) as reader:
        assert reader.native_ok
        frame = pl.concat(list(reader.native_batches()))
    return frame, reader


def _assert_same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.height == b.height
    assert a.schema == b.schema
    assert set(FLOW_COLUMNS) - {"ingest_id"} <= set(a.columns)
    for column in a.columns:
        assert a[column].to_list() == b[column].to_list(), column


def test_native_and_chunked_paths_give_identical_frames(
    tmp_path: Path, hubble_lines: list[bytes]
) -> None:
    path = _write(tmp_path / "flows.jsonl", hubble_lines)
    native, nr = _native_read(path)
    chunked, cr = _chunked(path)
    _assert_same(native, chunked)
    assert nr.rows == cr.rows == native.height
    # the generated file holds lost_events lines: same reasons, counts, line numbers, warnings
    assert nr.report.reasons() == cr.report.reasons()
    assert any(r.reason == "lost_events records" for r in nr.report.reasons())
    assert nr.report.warnings == cr.report.warnings
    assert nr.report.lost_events == cr.report.lost_events > 0


def test_native_path_types_and_spellings_match(tmp_path: Path, hubble_lines: list[bytes]) -> None:
    # integer enums, absent fields, unknown extra fields
    lines = [ln for ln in hubble_lines if b'"flow"' in ln][:50]
    first = json.loads(lines[0])
    first["flow"]["verdict"] = 2
    first["flow"]["traffic_direction"] = 1
    first["flow"]["something_new"] = {"nested": [1, 2, 3]}
    del first["flow"]["source"]
    second = json.loads(lines[1])
    second["flow"].pop("time")  # the envelope's time is used
    path = _write(
        tmp_path / "f.jsonl", [json.dumps(first).encode(), json.dumps(second).encode(), *lines[2:]]
    )
    native, _ = _native_read(path)
    chunked, _ = _chunked(path)
    _assert_same(native, chunked)
    assert native["verdict"][0] == "dropped"
    assert native["src_labels"][0] is None


@pytest.mark.parametrize(
    ("damage", "skipped"),
    [
        pytest.param(lambda ln: ln[: len(ln) // 2], True, id="truncated"),
        pytest.param(lambda ln: b"not json at all", True, id="text"),
        pytest.param(lambda ln: ln + ln, True, id="two-objects"),
        # the chunked path unwraps a one-line array of flows: not a skip, still a refusal
        pytest.param(lambda ln: b"[" + ln + b"]", False, id="array"),
    ],
)
def test_bad_line_in_the_middle_falls_back_with_the_same_report(
    tmp_path: Path, hubble_lines: list[bytes], damage: object, skipped: bool
) -> None:
    lines = list(hubble_lines)
    assert callable(damage)
    lines[5000] = damage(lines[5000])
    path = _write(tmp_path / "bad.jsonl", lines)
    with FlowReader(path) as reader, pytest.raises(_native.Refused):
        list(reader.native_batches())
    chunked, cr = _chunked(path)
    summary = ingest(tmp_path / "store", [str(path)])
    (loaded,) = summary.inputs
    assert loaded.rows == cr.rows == chunked.height
    assert loaded.skipped == cr.report.reasons()
    assert any(5001 in r.first_lines for r in loaded.skipped) is skipped
    stored = FlowStore.open(tmp_path / "store").scan().collect().drop("ingest_id")
    key = ["time", "src_ip", "src_port", "dst_ip", "dst_port", "observation_point"]
    _assert_same(stored.sort(key), chunked.drop("ingest_id").sort(key))


def test_blank_lines_with_skips_fall_back(tmp_path: Path, hubble_lines: list[bytes]) -> None:
    # DuckDB drops blank lines: row numbers would not be line numbers for the lost_events lines
    lines = [*hubble_lines[:10], b"", *hubble_lines[10:]]
    path = _write(tmp_path / "blank.jsonl", lines)
    with FlowReader(path) as reader, pytest.raises(_native.Refused):
        list(reader.native_batches())
    _, cr = _chunked(path)
    (loaded,) = ingest(tmp_path / "store", [str(path)]).inputs
    assert loaded.skipped == cr.report.reasons()


def test_store_rows_equal_between_paths(tmp_path: Path, hubble_lines: list[bytes]) -> None:
    path = _write(tmp_path / "flows.jsonl", hubble_lines)
    ingest(tmp_path / "store", [str(path)])
    stored = FlowStore.open(tmp_path / "store").scan().collect().drop("ingest_id")
    chunked, _ = _chunked(path)
    _assert_same(stored, chunked.drop("ingest_id"))


def test_camel_case_files_are_not_native(tmp_path: Path, hubble_lines: list[bytes]) -> None:
    camel = tmp_path / "camel.jsonl"
    rec = json.loads([ln for ln in hubble_lines if b'"flow"' in ln][0])
    rec["nodeName"] = rec.pop("node_name")
    rec["flow"]["trafficDirection"] = rec["flow"].pop("traffic_direction", "INGRESS")
    camel.write_bytes(json.dumps(rec).encode() + b"\n")
    with FlowReader(camel) as reader:
        assert not reader.native_ok


def _gzip_members(lines: list[bytes]) -> bytes:
    half = len(lines) // 2  # two members, as log rotation writes them
    return gzip.compress(b"\n".join(lines[:half]) + b"\n") + gzip.compress(
        b"\n".join(lines[half:]) + b"\n"
    )


def test_gzip_native_equals_chunked(tmp_path: Path, hubble_lines: list[bytes]) -> None:
    path = tmp_path / "flows.jsonl.gz"
    path.write_bytes(_gzip_members(hubble_lines))
    native, nr = _native_read(path)
    chunked, cr = _chunked(path)
    _assert_same(native, chunked)
    assert nr.report.reasons() == cr.report.reasons()
    assert nr.report.warnings == cr.report.warnings


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) * 3 // 4], id="truncated"),
        pytest.param(lambda data: data + b"garbage\n", id="trailing-garbage"),
        pytest.param(lambda data: data + bytes(20), id="trailing-zeros"),
    ],
)
def test_damaged_gzip_reads_as_the_chunked_path_does(
    tmp_path: Path, hubble_lines: list[bytes], damage: object
) -> None:
    assert callable(damage)
    path = tmp_path / "flows.jsonl.gz"
    path.write_bytes(damage(_gzip_members(hubble_lines)))
    chunked, cr = _chunked(path)
    (loaded,) = ingest(tmp_path / "store", [str(path)]).inputs
    assert loaded.rows == chunked.height
    assert loaded.skipped == cr.report.reasons()
    assert loaded.warnings == tuple(cr.report.warnings)
    stored = FlowStore.open(tmp_path / "store").scan().collect().drop("ingest_id")
    _assert_same(stored, chunked.drop("ingest_id"))


def test_cut_off_last_line_is_refused_before_parsing(
    tmp_path: Path, hubble_lines: list[bytes]
) -> None:
    path = tmp_path / "cut.jsonl"
    path.write_bytes(b"\n".join(hubble_lines) + b"\n" + hubble_lines[-1][:100])
    with FlowReader(path) as reader:
        batches = reader.native_batches()
        with pytest.raises(_native.Refused, match="last line"):
            next(batches)
    chunked, cr = _chunked(path)
    (loaded,) = ingest(tmp_path / "store", [str(path)]).inputs
    assert loaded.rows == chunked.height == len(hubble_lines) - cr.report.total + 1
    assert loaded.skipped == cr.report.reasons()
    assert any(len(hubble_lines) + 1 in r.first_lines for r in loaded.skipped)


_SETTING_DURING_READ = """
import sys
import duckdb
from analyzer.ingest.reader import FlowReader

real = duckdb.connect

class Spy:
    def __init__(self, con):
        self._con = con
    def __getattr__(self, name):
        return getattr(self._con, name)
    def close(self):
        query = "SELECT current_setting('enable_progress_bar')"
        print(self._con.sql(query).fetchall()[0][0])
        self._con.close()

duckdb.connect = lambda *a, **k: Spy(real(*a, **k))
with FlowReader(sys.argv[1]) as reader:
    assert sum(f.height for f in reader.native_batches()) > 0
"""


def test_duckdb_draws_no_progress_bar_into_stdout(
    tmp_path: Path, hubble_lines: list[bytes]
) -> None:
    # DuckDB draws a progress bar on stdout once a query has run 2 s (a 200k-flow gzip file
    # does): it corrupted the output of `ingest -o json`. (Under pytest DuckDB turns the bar
    # off by itself, hence the separate process.)
    import subprocess
    import sys

    path = _write(tmp_path / "flows.jsonl", hubble_lines)
    proc = subprocess.run(
        [sys.executable, "-c", _SETTING_DURING_READ, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False"]


def test_json_reader_parses_on_one_duckdb_thread(
    tmp_path: Path, hubble_lines: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # issue 11: each DuckDB thread holds its own read buffer and parsed documents; a second
    # one raised the peak RSS of a 1M-flow ingest by ~50 MB. One thread also cuts the record
    # batches at exactly batch_rows rows, whatever DuckDB's read buffers (the parts' row
    # groups then follow the input, not the reader's buffering).
    import duckdb

    real = duckdb.connect
    threads: list[int] = []

    class Spy:
        def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
            self._con = con

        def __getattr__(self, name: str) -> object:
            return getattr(self._con, name)

        def close(self) -> None:
            threads.append(self._con.sql("SELECT current_setting('threads')").fetchall()[0][0])
            self._con.close()

    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: Spy(real(*a, **k)))
    path = _write(tmp_path / "flows.jsonl", hubble_lines)
    with FlowReader(path, batch_rows=1000) as reader:
        heights = [f.height for f in reader.native_batches()]
    assert threads == [1]
    # every batch but the last is whole (the generated file has a few lost-events records,
    # which are counted, not kept: a batch holding one is that much shorter)
    assert sum(heights) == reader.rows
    assert len(heights) == -(-len(hubble_lines) // 1000)


def _padded(line: bytes, size: int) -> bytes:
    """``line`` (a flow envelope) grown to exactly ``size`` bytes by an unknown field."""
    obj = json.loads(line)
    obj["pad"] = ""
    bare = len(json.dumps(obj, separators=(",", ":")).encode())
    obj["pad"] = "x" * (size - bare)
    out = json.dumps(obj, separators=(",", ":")).encode()
    assert len(out) == size
    return out


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(
    ("over", "where"),
    [
        pytest.param(0, 20, id="at-the-cap"),
        pytest.param(1, 20, id="one-byte-over"),
        # DuckDB reads objects up to its read buffer, far over maximum_object_size
        pytest.param(3_000, 20, id="far-over"),
        pytest.param(1, -1, id="last-line-without-newline"),
    ],
)
def test_a_line_over_the_cap_is_reported_as_the_chunked_path_does(
    tmp_path: Path, hubble_lines: list[bytes], over: int, where: int, compressed: bool
) -> None:
    cap = 4096
    lines = list(hubble_lines[:200])
    lines[where] = _padded(lines[where], cap + over)
    data = b"\n".join(lines) + (b"\n" if where != -1 else b"")
    path = tmp_path / "long.jsonl"
    path.write_bytes(gzip.compress(data) if compressed else data)
    with FlowReader(path, max_line_bytes=cap) as reader:
        if over:
            with pytest.raises(_native.Refused, match="longer than"):
                list(reader.native_batches())
            native = None
        else:
            native = pl.concat(list(reader.native_batches()))
    with FlowReader(path, max_line_bytes=cap) as cr:
        chunked = pl.concat(list(cr.batches()))
    reasons = cr.report.reasons()
    if over:
        line = where + 1 if where >= 0 else len(lines)
        assert [(r.reason, r.first_lines) for r in reasons if "longer" in r.reason] == [
            (f"lines longer than {cap} bytes", (line,))
        ]
    else:
        assert native is not None
        _assert_same(native, chunked)
        assert not any("longer" in r.reason for r in reasons)


def test_the_long_line_scans_find_every_length_around_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every line length and position around the cap, its half-windows and the read blocks,
    # against a direct count; both scans: the plain file's windows, the stream's blocks
    cap = 64
    path = tmp_path / "f"
    for block, length in itertools.product((48, 200), range(cap - 3, 2 * cap + 4)):
        monkeypatch.setattr(_native, "_READ_BLOCK", block)
        for offset in (0, 1, cap // 2 - 1, cap // 2, cap // 2 + 1, cap - 1, 47, 48):
            for tail in (b"\n" + b"c" * 5, b"\n", b"", b"\n" + b"c" * (cap + 1)):
                data = b"a" * offset + b"\n" + b"b" * length + tail
                path.write_bytes(data)
                longest = max(len(x) for x in data.split(b"\n"))
                case = (block, length, offset, tail[:3])
                assert _native._plain_line_over(path, cap) is (longest > cap), case
                lines, over = _native._scan_lines(path, False, cap)
                assert over is (longest > cap), case
                assert lines == data.count(b"\n") + (not data.endswith(b"\n")), case


def test_a_gzip_file_that_cannot_be_read_again_takes_the_chunked_path(
    tmp_path: Path, hubble_lines: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the line-cap scan of a gzip file re-reads it after DuckDB: a read error there is a
    # refusal (the chunked path decides), never an error of the ingest
    path = tmp_path / "flows.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(hubble_lines[:50]) + b"\n"))

    def fail(*_: object) -> tuple[int, bool]:
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    monkeypatch.setattr(_native, "_scan_lines", fail)
    with FlowReader(path) as reader, pytest.raises(_native.Refused, match="again"):
        list(reader.native_batches())


_INTERRUPTED_READS = """
import _thread, sys, threading, time
from pathlib import Path
from analyzer.ingest import _native, hubble

def classify(env, first_line):
    return env.head(0), [], 0

for delay in [i / 200 for i in range(60)]:  # 0 to 0.3 s: the query starts in there
    timer = threading.Timer(delay, _thread.interrupt_main)
    try:
        timer.start()
        for _ in _native.read_envelopes(Path(sys.argv[1]), hubble.ENVELOPE_SCHEMA,
                                        max_line_bytes=1 << 24, batch_rows=8192,
                                        classify=classify):
            pass
        outcome = "finished"
    except KeyboardInterrupt:
        outcome = "KeyboardInterrupt"
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    try:  # an interrupt that comes after the read lands here, not in the next one
        timer.join()
        time.sleep(0.02)
    except KeyboardInterrupt:
        pass
    print(delay, outcome, flush=True)
"""


def test_ctrl_c_while_duckdb_starts_the_query_is_a_keyboard_interrupt(
    tmp_path: Path, hubble_lines: list[bytes]
) -> None:
    """DuckDB checks for signals itself while it runs on the main thread, and turns the
    ``KeyboardInterrupt`` it takes into ``RuntimeError("Query interrupted")`` (seen in CI: a
    traceback instead of ``interrupted``) or its ``InterruptException`` (which read as a
    refusal would make the ingest read the file again). Either is a ``KeyboardInterrupt``."""
    path = _write(tmp_path / "flows.jsonl", hubble_lines * 5)
    done = subprocess.run([sys.executable, "-c", _INTERRUPTED_READS, str(path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    outcomes = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert len(outcomes) == 60, done.stdout
    assert set(outcomes.values()) <= {"KeyboardInterrupt", "finished"}, outcomes
