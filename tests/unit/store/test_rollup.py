"""The connection rollup (issue 11): written at ingest, equal to a raw derivation of the same
store whatever files the rows came from and in whatever order, stale (never read) once the
parts or the code change, kill-safe like the parts, rebuilt by ``rebuild_rollup``."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from kill_script import killed_ingests

from analyzer.analysis import Analysis, Scope
from analyzer.analysis.connection_source import connections_for, flow_counts
from analyzer.analysis.inputs import StoreFlows
from analyzer.connections import (
    Buckets,
    Connections,
    derive_bucketed,
    derive_connections,
    finish_bucketed,
    window_connections,
)
from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from analyzer.live import FileFollower, LiveOptions, run_stream
from analyzer.live.cadence import Cadence
from analyzer.schema import CONNECTIONS, DST_KEY, DST_PORT, EVENTS, OUTCOME, PROTOCOL, SRC_KEY
from analyzer.store import FlowStore, ingest
from analyzer.store import rollup as R
from analyzer.store.pipeline import rebuild_rollup
from analyzer.store.rollup import flow_record_counts
from benchmarks.split_nodes import split_by_node

EDGE = [SRC_KEY, DST_KEY, PROTOCOL, DST_PORT, OUTCOME]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 5,000 of 10,000 generated Hubble events of a 3-node cluster."""
    directory = tmp_path_factory.mktemp("rollup-cap")
    scenario = build_scenario(ScenarioConfig(seed=7))
    full = write_flows(scenario, directory / "all.jsonl", "hubble", 10_000)
    out = directory / "flows.jsonl"
    out.write_bytes(b"".join(full.read_bytes().splitlines(keepends=True)[:5000]))
    return out


@pytest.fixture(scope="module")
def nodes(capture: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    files = split_by_node(capture, tmp_path_factory.mktemp("rollup-nodes"))
    assert len(files) >= 3
    return files


def raw(store: Path) -> Connections:
    return derive_connections(FlowStore.open(store).scan())


def assert_same(a: Connections, b: Connections) -> None:
    assert a.frame.equals(b.frame)
    assert a.stats == b.stats


def edge_counts(c: Connections) -> pl.DataFrame:
    return c.frame.select(*EDGE, CONNECTIONS, EVENTS).sort(EDGE, nulls_last=True)


def test_ingest_writes_a_rollup_equal_to_the_raw_derivation(
    tmp_path: Path, nodes: list[Path]
) -> None:
    store = tmp_path / "store"
    for path in nodes:
        ingest(store, [str(path)])
        rollup = FlowStore.open(store).rollup()
        assert rollup is not None  # fresh after every ingest
        assert_same(rollup.connections(), raw(store))
        assert (rollup.records, rollup.masked) == flow_record_counts(FlowStore.open(store).scan())
    index = json.loads((store / "rollup" / "rollup.json").read_text())
    assert index["parts"] == FlowStore.open(store).part_names()
    assert [p.name for p in (store / "rollup").glob("connections-*")] == [index["file"]]


def test_per_node_files_in_any_order_give_the_edges_of_one_file(
    tmp_path: Path, capture: Path, nodes: list[Path]
) -> None:
    whole = tmp_path / "whole"
    ingest(whole, [str(capture)])
    reference = edge_counts(raw(whole))
    assert reference[CONNECTIONS].sum() > 0
    for order in (nodes, nodes[::-1], nodes[1:] + nodes[:1]):
        store = tmp_path / ("store-" + "-".join(path.stem for path in order))
        for path in order:
            ingest(store, [str(path)])
        rollup = FlowStore.open(store).rollup()
        assert rollup is not None
        assert_same(rollup.connections(), raw(store))
        # the two ends of each connection sit in different files, ingested apart: still one
        assert edge_counts(rollup.connections()).equals(reference), order


def test_commands_read_the_rollup_and_windows_its_buckets(
    tmp_path: Path, capture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    ingest(store, [str(capture)])
    source = StoreFlows(FlowStore.open(store))
    whole = Scope()
    assert_same(connections_for(source, whole), raw(store))
    counts = flow_counts(source, whole)
    assert (counts.records, counts.masked) == flow_record_counts(FlowStore.open(store).scan())
    first = FlowStore.open(store).scan().select(pl.col("time").min()).collect().item()
    # a window is the whole-store derivation's connections in the window's minute buckets
    # (the window rounded out): see tests/unit/store/test_rollup_windows.py for the definition
    window = Scope(since=first + timedelta(minutes=10))
    since = window.since.replace(second=0, microsecond=0)  # type: ignore[union-attr]
    _, bucketed = derive_bucketed(FlowStore.open(store).scan(), Buckets())
    expected = window_connections(bucketed, since, None)

    def no_rollup(self: R.Rollup) -> Connections:
        raise AssertionError("read the whole-store rollup for a window")

    monkeypatch.setattr(R.Rollup, "connections", no_rollup)
    got = connections_for(source, window)
    assert got.frame.equals(expected.frame)
    assert got.stats.warnings[:-1] == expected.stats.warnings
    assert "rounded out to whole buckets" in got.stats.warnings[-1]
    assert flow_counts(source, window).records == expected.stats.rows_in < counts.records
    with pytest.raises(AssertionError, match="rollup"):
        connections_for(source, whole)


def test_switch_corruption_and_version_bumps_fall_back_to_the_flows(
    tmp_path: Path, capture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    ingest(store, [str(capture)])
    opened = FlowStore.open(store)
    fresh = opened.rollup()
    assert fresh is not None
    monkeypatch.setenv(R.ROLLUP_ENV, "1")
    assert opened.rollup() is None
    monkeypatch.delenv(R.ROLLUP_ENV)
    # an upgrade that changes what the rollup holds (it bumps the rollup's version): the old
    # rollup is never read (test_derivation_version.py makes such changes bump it)
    monkeypatch.setattr(R, "ROLLUP_VERSION", R.ROLLUP_VERSION + 1)
    assert opened.rollup() is None
    assert_same(Analysis(StoreFlows(opened), Scope()).connections, raw(store))
    rebuilt = rebuild_rollup(store)
    assert opened.rollup() == rebuilt
    assert_same(rebuilt.connections(), raw(store))
    assert len(list((store / "rollup").glob("connections-*"))) == 1  # the old one removed
    monkeypatch.undo()
    # a damaged file: not read
    path = R.rollup_file(store, opened.part_names())
    assert opened.rollup() is None  # the old version's file was replaced by rebuild
    rebuild_rollup(store)
    path.write_bytes(b"PAR1 not a parquet file")
    assert opened.rollup() is None
    assert_same(Analysis(StoreFlows(opened), Scope()).connections, raw(store))


def test_a_commit_without_a_rollup_leaves_it_stale(tmp_path: Path, nodes: list[Path]) -> None:
    first, second, *_ = nodes
    store = tmp_path / "store"
    ingest(store, [str(first)])
    other = tmp_path / "other"
    ingest(other, [str(second)])
    # commit the other store's part as a streaming ingest does: FlowStore.commit, no rollup
    opened = FlowStore.open(store)
    entry = FlowStore.open(other).manifest()[0]
    staged = store / ".tmp-live"
    staged.mkdir()
    for part in entry.parts:
        shutil.copy(other / "flows" / part, staged / part)
    with opened.lock():
        assert opened.commit(staged, [dataclasses.replace(entry, ingest_id="x" * 64)])
    shutil.rmtree(staged, ignore_errors=True)
    assert opened.rollup() is None
    assert_same(Analysis(StoreFlows(opened), Scope()).connections, raw(store))


def test_live_commits_leave_the_rollup_stale_and_commands_fall_back(
    tmp_path: Path, nodes: list[Path]
) -> None:
    first, second, *_ = nodes
    store = tmp_path / "store"
    ingest(store, [str(first)])
    assert FlowStore.open(store).rollup() is not None
    log = tmp_path / "live.jsonl"
    log.write_bytes(second.read_bytes())
    stop = threading.Event()
    options = LiveOptions(cadence=Cadence(seconds=0.1), parse_seconds=0.05)
    runner = threading.Thread(
        target=run_stream,
        args=(store, FileFollower(log, resume=None, poll_seconds=0.02), options, stop),
        daemon=True,
    )
    runner.start()
    lines = len(second.read_bytes().splitlines())
    deadline = time.monotonic() + 60
    while sum(e.rows for e in FlowStore.open(store).manifest()[1:]) < lines:
        assert time.monotonic() < deadline, "live ingest did not commit"
        time.sleep(0.05)
    stop.set()
    runner.join(timeout=60)
    opened = FlowStore.open(store)
    assert len(opened.manifest()) >= 2
    assert opened.rollup() is None  # stale: the live parts are not in it
    assert_same(Analysis(StoreFlows(opened), Scope()).connections, raw(store))
    assert_same(rebuild_rollup(store).connections(), raw(store))




def test_kill_at_every_rename_never_serves_a_wrong_rollup(
    tmp_path: Path, nodes: list[Path]
) -> None:
    first, *rest = nodes
    pristine = tmp_path / "pristine"
    ingest(pristine, [str(first)])
    crashed = 0
    # every rename: manifest, parts, state files, rollup, index
    for target, store in killed_ingests(pristine, [str(p) for p in rest], tmp_path, limit=30):
        crashed += 1
        # before any recovery: a rollup, when read, is that of the committed rows
        seen = FlowStore(store).rollup()
        if seen is not None:
            assert_same(seen.connections(), derive_connections(FlowStore(store).scan()))
        # the next command that opens the store finishes the commit, rollup included
        opened = FlowStore.open(store)
        rollup = opened.rollup()
        assert rollup is not None, target
        assert_same(rollup.connections(), raw(store))
        # the derivation state the next ingest extends, when present, is that of these parts
        state = R.read_state(store, opened.part_names())
        if state is not None:
            assert_same(finish_bucketed(state, rollup.schedule)[0], rollup.connections())
        assert not list(store.glob(".tmp-*"))
    assert crashed >= 10  # manifest, parts, state files, rollup, its index
