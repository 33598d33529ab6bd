"""The store: independent readers see exactly what ingest read; atomic, idempotent, locked."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from analyzer.errors import IngestError, StoreError
from analyzer.ingest import read_flow_file
from analyzer.schema import FLOW_COLUMNS, FLOW_SCHEMA
from analyzer.store import FlowStore, ingest

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"
ALL_FIXTURES = sorted(FIX.iterdir())


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_round_trip_column_by_column_with_pyarrow_and_duckdb(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    summary = ingest(store_dir, [str(p) for p in ALL_FIXTURES])
    assert summary.rows_loaded == sum(read_flow_file(p).records for p in ALL_FIXTURES)

    expected = pl.concat(
        read_flow_file(p).frame.with_columns(
            pl.lit(hashlib.sha256(p.read_bytes()).hexdigest()).alias("ingest_id")
        )
        for p in ALL_FIXTURES
    )
    # pyarrow reads the plain part files (no hive layout, no manifest needed)
    table = pq.read_table(store_dir / "flows")
    assert table.schema.names == list(FLOW_COLUMNS)
    assert table.schema.equals(FLOW_SCHEMA)
    got = pl.from_arrow(table)
    assert isinstance(got, pl.DataFrame)
    key = ["ingest_id", "time", "src_ip", "src_port", "dst_port", "src_pod", "dst_pod", "verdict"]
    got, want = got.sort(key, nulls_last=True), expected.sort(key, nulls_last=True)
    for column in FLOW_COLUMNS:
        assert got[column].to_list() == want[column].to_list(), column

    # DuckDB, another independent reader, agrees on counts and on list columns
    con = duckdb.connect()
    glob = str(store_dir / "flows" / "*.parquet")
    rows = con.sql(f"SELECT count(*), sum(flow_count) FROM read_parquet('{glob}')").fetchall()[0]
    assert rows == (expected.height, expected["flow_count"].sum())
    labels = con.sql(
        f"SELECT src_labels FROM read_parquet('{glob}') WHERE source_format = 'whisker' "
        "ORDER BY time, verdict DESC"
    ).fetchall()
    assert labels[0][0] == ["app=frontend", "pod-template-hash=7d9c8b6f5"]

    # and the library's own scan gives the same rows
    scanned = FlowStore.open(store_dir).scan().collect().sort(key, nulls_last=True)
    assert scanned.equals(got)


def test_manifest_records_inputs_skips_and_warnings(tmp_path: Path) -> None:
    ingest(tmp_path / "s", [str(FIX / "hubble_exporter.jsonl")])
    entries = FlowStore.open(tmp_path / "s").manifest()
    assert len(entries) == 1
    entry = entries[0]
    assert entry.format == "hubble" and entry.rows == 2
    assert (
        entry.ingest_id == hashlib.sha256((FIX / "hubble_exporter.jsonl").read_bytes()).hexdigest()
    )
    assert {s.reason: s.first_lines for s in entry.skipped}["lost_events records"] == (2, 7)
    assert any("lost" in w for w in entry.warnings)
    doc = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert doc["inputs"][0]["parts"] == list(entry.parts)


def test_reingest_identical_content_is_a_noop(tmp_path: Path) -> None:
    store = tmp_path / "s"
    ingest(store, [str(FIX / "hubble_envelope.jsonl")])
    before = _tree_hash(store)
    copy = tmp_path / "renamed-copy.json"
    copy.write_bytes((FIX / "hubble_envelope.jsonl").read_bytes())
    summary = ingest(store, [str(copy), str(FIX / "hubble_envelope.jsonl")])
    assert [i.status for i in summary.inputs] == ["duplicate", "duplicate"]
    assert summary.rows_loaded == 0
    assert "already in the store" in (summary.inputs[0].message or "")
    assert _tree_hash(store) == before


def test_failed_ingest_leaves_store_byte_identical(tmp_path: Path) -> None:
    store = tmp_path / "s"
    ingest(store, [str(FIX / "calico_flows.log")])
    before = _tree_hash(store)
    binary = tmp_path / "blob.bin"
    binary.write_bytes(os.urandom(4096).replace(b"\n", b"") + b"\x00")
    with pytest.raises(IngestError, match="binary"):
        # the good file comes first: its staged parts must vanish too
        ingest(store, [str(FIX / "hubble_envelope.jsonl"), str(binary)])
    assert _tree_hash(store) == before
    assert FlowStore.open(store).scan().collect().height == 7


def test_failed_first_ingest_creates_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(IngestError, match="empty"):
        ingest(tmp_path / "new-store", [str(empty)])
    assert not (tmp_path / "new-store").exists()


def test_directory_walk_skips_non_flow_files(tmp_path: Path) -> None:
    tree = tmp_path / "in" / "nested"
    tree.mkdir(parents=True)
    (tree / "README.md").write_text("# notes\n")
    (tree / "a.jsonl").write_bytes((FIX / "hubble_envelope.jsonl").read_bytes())
    (tmp_path / "in" / "b.log").write_bytes((FIX / "calico_flows.log").read_bytes())
    summary = ingest(tmp_path / "s", [str(tmp_path / "in")])
    assert {(Path(i.path).name, i.status) for i in summary.inputs} == {
        ("README.md", "skipped"),
        ("a.jsonl", "loaded"),
        ("b.log", "loaded"),
    }
    assert summary.rows_loaded == 14


def test_directory_without_flow_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("hello\n")
    with pytest.raises(IngestError, match="no flow file"):
        ingest(tmp_path / "s", [str(tmp_path / "in")])
    assert not (tmp_path / "s").exists()


def test_open_missing_store_and_empty_scan(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no flow store"):
        FlowStore.open(tmp_path / "nothing")
    store = FlowStore.open_or_create(tmp_path / "fresh")
    assert store.manifest() == []
    assert store.scan().collect().columns == list(FLOW_COLUMNS)


def test_lock_times_out_with_a_clear_error(tmp_path: Path) -> None:
    store = FlowStore.open_or_create(tmp_path / "s")
    with store.lock(), pytest.raises(StoreError, match="busy"), store.lock(timeout=0.2):
        pass


def _ingest_worker(store: str, path: str) -> None:
    ingest(Path(store), [path])


def test_concurrent_ingests_leave_a_consistent_store(tmp_path: Path) -> None:
    store = tmp_path / "s"
    inputs = []
    base = (FIX / "hubble_envelope.jsonl").read_bytes()
    for i in range(2):
        path = tmp_path / f"in{i}.jsonl"
        path.write_bytes(base + f'{{"lost_events":{{"num_events_lost":"{i}"}}}}\n'.encode())
        inputs.append(str(path))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_ingest_worker, args=(str(store), p)) for p in inputs + inputs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    fs = FlowStore.open(store)
    entries = fs.manifest()
    assert len(entries) == 2  # each distinct content once, duplicates were no-ops
    assert sorted(p.name for p in (store / "flows").iterdir()) == sorted(
        part for e in entries for part in e.parts
    )
    assert fs.scan().collect().height == 2 * 7
    assert not list(store.glob(".tmp-*"))


def test_stdin_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    data = (FIX / "whisker_lines.jsonl").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    summary = ingest(tmp_path / "s", ["-"])
    assert summary.inputs[0].path == "<stdin>" and summary.rows_loaded == 2


def test_named_pipe_input(tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "flows.pipe"
    os.mkfifo(fifo)
    data = (FIX / "goldmane_emitter.ndjson").read_bytes()

    def feed() -> None:
        with open(fifo, "wb") as fh:
            fh.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    summary = ingest(tmp_path / "s", [str(fifo)])
    writer.join(10)
    assert summary.rows_loaded == 2 and summary.inputs[0].format == "goldmane"
    assert not any(p.name.startswith("spool") for p in (tmp_path / "s").rglob("*"))


def test_crash_leftovers_are_invisible_then_cleaned(tmp_path: Path) -> None:
    store = tmp_path / "s"
    ingest(store, [str(FIX / "calico_flows.log")])
    # what a crash between the part renames and the manifest write would leave behind
    orphan = store / "flows" / "part-deadbeefdeadbeef-0000.parquet"
    orphan.write_bytes((next((store / "flows").iterdir())).read_bytes())
    (store / ".tmp-crashed").mkdir()
    assert FlowStore.open(store).scan().collect().height == 7  # manifest decides what counts
    ingest(store, [str(FIX / "whisker_lines.jsonl")])
    assert not orphan.exists() and not (store / ".tmp-crashed").exists()
    assert FlowStore.open(store).scan().collect().height == 9


def test_refuses_to_turn_a_foreign_directory_into_a_store(tmp_path: Path) -> None:
    home = tmp_path / "documents"
    home.mkdir()
    (home / "thesis.txt").write_text("precious\n")
    with pytest.raises(StoreError, match="not a flow store"):
        ingest(home, [str(FIX / "calico_flows.log")])
    assert sorted(p.name for p in home.iterdir()) == ["thesis.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ingest(empty, [str(FIX / "calico_flows.log")]).rows_loaded == 7
