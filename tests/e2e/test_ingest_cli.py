"""``analyzer ingest`` and ``analyzer stats`` from the command line, exit codes included."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from analyzer.cli import app

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"
runner = CliRunner()


def _analyzer(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-c", "from analyzer.cli import app; app()", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=120)


def test_ingest_then_stats(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    result = runner.invoke(
        app,
        [
            "ingest",
            str(FIX / "hubble_exporter.jsonl"),
            str(FIX / "calico_flows.log"),
            "--store",
            store,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "loaded" in result.stdout and "2 hubble rows" in result.stdout
    assert "2 lost_events records (lines 2, 7)" in result.stdout
    assert "9 rows from 2 inputs" in result.stdout

    stats = runner.invoke(app, ["stats", "--store", store, "-o", "json"])
    assert stats.exit_code == 0, stats.output
    doc = json.loads(stats.stdout)
    assert doc["rows"] == 9 and doc["inputs"] == 2
    assert {r["format"]: r["rows"] for r in doc["by_format"]} == {"hubble": 2, "calico": 7}
    assert {r["verdict"] for r in doc["by_verdict"]} == {"forwarded", "dropped"}
    assert {r["namespace"]: r["rows"] for r in doc["by_namespace"]}["shop"] == 9
    assert {r["reason"]: r["count"] for r in doc["skipped"]}["lost_events records"] == 2
    assert any("lost" in w["warning"] for w in doc["warnings"])
    assert doc["time_window"]["first"].startswith("2024-03-22T15:49:59")

    table = runner.invoke(app, ["stats", "--store", store])
    assert table.exit_code == 0 and "verdict" in table.stdout and "lost_events" in table.stdout


def test_reingest_says_nothing_changed(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    args = ["ingest", str(FIX / "whisker_items.json"), "--store", store]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, [*args, "-o", "json"])
    assert again.exit_code == 0
    doc = json.loads(again.stdout)
    assert doc["rows_loaded"] == 0 and doc["inputs"][0]["status"] == "duplicate"


def test_explicit_format_option(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "ingest",
            str(FIX / "goldmane_emitter.ndjson"),
            "--format",
            "goldmane",
            "--store",
            str(tmp_path / "s"),
            "-o",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["inputs"][0]["format"] == "goldmane"


def test_bad_inputs_exit_1_with_one_line_and_no_store(tmp_path: Path) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\x01\x02" * 1000)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"{oops\n{also bad\n")
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress((FIX / "hubble_envelope.jsonl").read_bytes())[:20])
    for path, message in [
        (binary, "binary data"),
        (empty, "empty"),
        (broken, "not JSON"),
        (cut, "truncated"),
        (tmp_path / "missing.jsonl", "no such file"),
    ]:
        proc = runner.invoke(app, ["ingest", str(path), "--store", str(tmp_path / "store")])
        err = proc.stderr
        assert proc.exit_code == 1, (path, err)
        assert message in err, (path, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "store").exists()


def test_malformed_lines_reported_with_line_numbers(tmp_path: Path) -> None:
    lines = (FIX / "hubble_envelope.jsonl").read_bytes().splitlines()
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"\n".join([lines[0], b"{bad", lines[1], b"{bad"]) + b"\n")
    proc = _analyzer("ingest", str(mixed), "--store", str(tmp_path / "s"))
    out = proc.stdout.decode()
    assert proc.returncode == 0
    assert "2 hubble rows, 2 skipped" in out
    assert "2 malformed JSON lines (lines 2, 4)" in out
    assert proc.stderr == b""  # no progress bar when stderr is not a terminal


def test_stdin_and_unknown_format_value(tmp_path: Path) -> None:
    data = (FIX / "calico_flows.log").read_bytes()
    proc = _analyzer("ingest", "-", "--store", str(tmp_path / "s"), stdin=data)
    assert proc.returncode == 0, proc.stderr
    assert "7 calico rows" in proc.stdout.decode()
    bad = runner.invoke(app, ["ingest", "-", "--format", "netflow", "--store", str(tmp_path)])
    assert bad.exit_code == 2


def test_stats_without_store_is_one_line_error(tmp_path: Path) -> None:
    proc = runner.invoke(app, ["stats", "--store", str(tmp_path / "none")])
    assert proc.exit_code == 1
    assert "no flow store" in proc.stderr and "Traceback" not in proc.stderr


def test_binary_input_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 100)
    proc = _analyzer("ingest", str(binary), "--store", str(tmp_path / "s"))
    assert proc.returncode == 1
    assert proc.stderr.decode().startswith("error: ") and b"Traceback" not in proc.stderr


def test_help() -> None:
    for command in ("ingest", "stats"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "--store" in result.stdout
