"""Real captures streamed line by line store what a file ingest stores; the status output."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from live_helpers import rows

from analyzer.cli.live_cmd import _Printer
from analyzer.live import LiveEvent, LiveOptions, LiveStatus, StdinSource, run_stream
from analyzer.live.cadence import Cadence
from analyzer.store import ingest

SAMPLES = [
    "hubble/hubble-otel__basic-sample-400-tcp-flows.json",
    "hubble/hubble-otel__basic-sample-400-udp-flows.json",
    "hubble/hubble-otel__basic-sample-5-dns-flows.json",
    "hubble/cnpgen__testdata1-exporter-kind-starwars.json",
    "calico/enterprise_flows_log_felix_testdata.jsonl",
]


@pytest.mark.parametrize("sample", SAMPLES)
def test_real_samples_stream_like_a_file_ingest(
    shared_dir: Path, tmp_path: Path, sample: str
) -> None:
    path = shared_dir / "samples" / sample
    ingest(tmp_path / "file", [str(path)])
    with open(path, "rb") as fh:
        run_stream(
            tmp_path / "live",
            StdinSource(fh),
            LiveOptions(cadence=Cadence(records=37), parse_bytes=8 << 10),
            threading.Event(),
        )
    assert rows(tmp_path / "live").equals(rows(tmp_path / "file"))


def _status(**kw: object) -> LiveStatus:
    base: dict[str, object] = {"source": "<stdin>", "format": "hubble", "flows": 1200,
                               "committed": 1000, "commits": 2, "rate": 150.0}
    base.update(kw)
    return LiveStatus(**base)  # type: ignore[arg-type]


def test_terminal_status_line_is_rewritten_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    printer = _Printer(interactive=True)
    printer(LiveEvent("status", _status()))
    printer(LiveEvent("status", _status(flows=1500)))
    printer.end()
    text = err.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "1,500 flows read, 1,000 committed (2 commits" in text and "150 flows/s" in text


def test_log_lines_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.live.batch import Committed
    from analyzer.store import ManifestEntry

    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    printer = _Printer(interactive=False)
    printer(LiveEvent("status", _status(elapsed=1.0)))  # no heartbeat yet
    entry = ManifestEntry("x", "<stdin>", "hubble", 500, (), (), "", (), 10)
    printer(LiveEvent("commit", _status(elapsed=2.0), commit=Committed(entry, 7, 0.01)))
    printer(LiveEvent("note", _status(), message="relay stream lost (UNAVAILABLE: x)"))
    printer(LiveEvent("status", _status(elapsed=400.0)))  # five minutes: a heartbeat line
    lines = err.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in err.getvalue()
    assert "committed 500 rows, 7 already stored in 0.01 s" in lines[0]
    assert lines[1].endswith("relay stream lost (UNAVAILABLE: x)")
    assert "1,200 flows read" in lines[2]
