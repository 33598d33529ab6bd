"""A store that took every hostile record still serves every command (issue 16).

A generated capture is mixed with records that used to poison the store (text that is not
UTF-8, lone surrogates, ports -1/65536/80.5/1e30, year 0), the valid extremes (year 1, year
9999, no time at all), and ingested from the command line: once by the chunked path (the file
with invalid UTF-8, which DuckDB refuses) and once by the DuckDB path (ports and times only).
Then the store reads back with DuckDB and pyarrow, and stats, graph, recommend, audit,
anomalies and report all run.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from analyzer.cli import app

runner = CliRunner()
PORT = "records with an invalid port (not an integer in 0..65535)"
TIME = "records with a time outside 0001-01-01..9999-12-31"
UTF8 = "records with invalid UTF-8 text"


def _edit(line: bytes, edit: Any) -> bytes:
    rec = json.loads(line)
    edit(rec["flow"])
    return json.dumps(rec).encode()


def _set(*path_and_value: Any) -> Any:
    *path, key, value = path_and_value

    def edit(flow: dict[str, Any]) -> None:
        node = flow
        for step in path:
            node = node[step]
        if value is _DROP:
            node.pop(key, None)
        else:
            node[key] = value

    return edit


_DROP = object()


Planted = list[tuple[bytes, str | None]]


def _mix(lines: list[bytes], extra: Planted) -> tuple[bytes, dict[str, list[int]]]:
    """Spread ``extra`` (line, skip reason or None) through ``lines``; reason -> line numbers."""
    out: list[bytes] = []
    where: dict[str, list[int]] = {}
    every = len(lines) // (len(extra) + 1)
    pending = list(extra)
    for i, line in enumerate(lines):
        out.append(line)
        if i % every == every - 1 and pending:
            hostile, reason = pending.pop(0)
            out.append(hostile)
            if reason is not None:
                where.setdefault(reason, []).append(len(out))
    return b"\n".join(out) + b"\n", where


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("hostile-e2e")
    cluster = str(base / "cluster")
    gen = runner.invoke(app, ["generate", "--out", cluster, "--flows", "10000", "--seed", "11"])
    assert gen.exit_code == 0, gen.output
    lines = (base / "cluster" / "flows.jsonl").read_bytes().splitlines()
    tcp = [ln for ln in lines if b'"TCP"' in ln and b'"labels"' in ln]
    ports_and_times = [
        (_edit(tcp[0], _set("l4", "TCP", "destination_port", -1)), PORT),
        (_edit(tcp[1], _set("l4", "TCP", "destination_port", 65536)), PORT),
        (_edit(tcp[2], _set("l4", "TCP", "destination_port", 31337.5)), PORT),
        (_edit(tcp[3], _set("l4", "TCP", "source_port", 1e30)), PORT),
        (_edit(tcp[4], _set("time", "0000-01-01T00:00:00Z")), TIME),
        (_edit(tcp[5], _set("time", "0001-01-01T00:00:00Z")), None),
        (_edit(tcp[6], _set("time", "9999-12-31T23:59:59.999999Z")), None),
        (_edit(tcp[7], _set("time", _DROP)), None),
    ]
    text = [
        (tcp[8].replace(b'"k8s:', b'"k8s:bad=\xff\xfe", "k8s:', 1), UTF8),
        (_edit(tcp[9], lambda f: f["source"]["labels"].append("k8s:lone=\udcff")), UTF8),
        (_edit(tcp[10], _set("source", "pod_name", "pod-\ud800")), UTF8),
    ]
    # raw bytes only: pyarrow's reader took these without a complaint, and the store broke
    label_bytes = [(tcp[11].replace(b'"k8s:', b'"k8s:tier=\xc3(", "k8s:', 1), UTF8)] * 2
    third = len(lines) // 3
    native_data, native_where = _mix(lines[:third], ports_and_times)
    chunked_data, chunked_where = _mix(lines[third : 2 * third], ports_and_times + text)
    labels_data, labels_where = _mix(lines[2 * third :], label_bytes)
    (base / "native.jsonl").write_bytes(native_data)
    (base / "chunked.jsonl").write_bytes(chunked_data)
    (base / "chunked.jsonl.gz").write_bytes(gzip.compress(chunked_data))
    (base / "labels.jsonl").write_bytes(labels_data)
    store = base / "store"
    names = ("native.jsonl", "chunked.jsonl", "labels.jsonl")
    result = runner.invoke(
        app, ["ingest", *(str(base / n) for n in names), "--store", str(store), "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    return {
        "base": base,
        "store": store,
        "ingest": json.loads(result.stdout),
        "where": {
            "native.jsonl": native_where,
            "chunked.jsonl": chunked_where,
            "labels.jsonl": labels_where,
        },
    }


def _store(capture: dict[str, Any]) -> str:
    return str(capture["store"])


def test_every_hostile_record_is_skipped_by_line_and_counted(capture: dict[str, Any]) -> None:
    inputs = {Path(i["path"]).name: i for i in capture["ingest"]["inputs"]}
    lost_lines = set()
    for name, where in capture["where"].items():
        got = {s["reason"]: s for s in inputs[name]["skipped"]}
        for reason, lines in where.items():
            assert got[reason]["count"] == len(lines), (name, reason)
            assert got[reason]["first_lines"] == lines[:5], (name, reason)
        lost_lines |= {r for r in got if r not in where and r != "lost_events records"}
    assert not lost_lines  # nothing skipped for a reason the test did not plant
    stats = runner.invoke(app, ["stats", "--store", _store(capture), "-o", "json"])
    assert stats.exit_code == 0, stats.output
    doc = json.loads(stats.stdout)
    assert doc["rows"] == capture["ingest"]["rows_loaded"]
    skipped = {s["reason"]: s["count"] for s in doc["skipped"]}
    assert skipped[PORT] == 8 and skipped[TIME] == 2 and skipped[UTF8] == 5
    assert doc["time_window"]["first"].startswith("0001-01-01")
    assert doc["time_window"]["last"].startswith("9999-12-31")


def test_independent_parquet_readers_read_everything(capture: dict[str, Any]) -> None:
    store = capture["store"]
    rows = capture["ingest"]["rows_loaded"]
    glob = str(store / "flows" / "*.parquet")
    con = duckdb.connect()
    assert len(con.sql(f"SELECT * FROM read_parquet('{glob}')").fetchall()) == rows
    ports = con.sql(
        f"SELECT min(dst_port), max(dst_port), count(*) FILTER (dst_port IN (31337, 31338)) "
        f"FROM read_parquet('{glob}')"
    ).fetchall()[0]
    assert ports[0] >= 0 and ports[1] <= 65535 and ports[2] == 0  # 31337.5 was not rounded
    table = pq.read_table(store / "flows")
    table.validate(full=True)
    assert table.num_rows == rows


def test_same_content_gzipped_is_unchanged(capture: dict[str, Any]) -> None:
    result = runner.invoke(
        app, ["ingest", str(capture["base"] / "chunked.jsonl.gz"), "--store", _store(capture)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("unchanged")


@pytest.mark.parametrize(
    "args",
    [
        ["stats"],
        ["graph", "-o", "json"],
        ["recommend"],
        ["audit", "--policies", "{policies}", "-o", "json"],
        ["anomalies", "-o", "json"],
        ["report", "--out", "{base}/report.html"],
    ],
    ids=["stats", "graph", "recommend", "audit", "anomalies", "report"],
)
def test_every_command_runs_on_the_store(capture: dict[str, Any], args: list[str]) -> None:
    base = capture["base"]
    argv = [a.format(policies=base / "cluster" / "existing-policies.yaml", base=base) for a in args]
    result = runner.invoke(app, [*argv, "--store", _store(capture)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.stderr
    if "json" in argv:
        json.loads(result.stdout)


def test_both_ingest_paths_were_exercised(capture: dict[str, Any]) -> None:
    from analyzer.ingest import _native
    from analyzer.ingest.reader import FlowReader

    with FlowReader(capture["base"] / "native.jsonl") as reader:
        assert reader.native_ok
        assert sum(f.height for f in reader.native_batches()) == reader.rows > 0
    for name in ("chunked.jsonl", "labels.jsonl"):
        with FlowReader(capture["base"] / name) as reader:
            assert reader.native_ok
            with pytest.raises(_native.Refused, match="UTF-8|surrogate"):
                list(reader.native_batches())
