"""The incremental rollup (issue 11): each ingest maps only its new rows and extends the
derivation state stored with the rollup; the result equals a raw derivation of the whole store
after every ingest, with the two ends of each connection in different ingests. A missing or
foreign state falls back to deriving the whole store; compaction keeps the state; rebuild
writes it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analyzer.connections import Buckets, DerivationState, derive_bucketed, derive_connections
from analyzer.generate import write_flows
from analyzer.identity.seen import seen_endpoints
from analyzer.store import FlowStore, flow_summary, ingest
from analyzer.store import rollup as R
from analyzer.store.compact import compact_store
from analyzer.store.flow_summary import read_endpoints, read_summary, summary_table
from analyzer.store.pipeline import rebuild_rollup
from tests.unit.store._helpers import node_capture


@pytest.fixture(scope="module")
def node_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Generated Hubble events of a 3-node cluster, one file per exporter node, plus a Calico
    capture of the same cluster."""
    directory = tmp_path_factory.mktemp("incremental")
    scenario, _, files = node_capture(directory, seed=5)
    calico = write_flows(scenario, directory / "calico.jsonl", "calico", 10_000)
    return [*files, calico]


class Spy:
    """Records the (offset, rows) of every map the rollup module runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.maps: list[tuple[int, int]] = []
        original = R.derive_state

        def spy(flows: Any, **kwargs: Any) -> DerivationState:
            state = original(flows, **kwargs)
            offset = int(kwargs.get("offset", 0))
            self.maps.append((offset, state.rows - offset))
            return state

        monkeypatch.setattr(R, "derive_state", spy)


def _assert_fresh_and_exact(store: Path) -> None:
    flows = FlowStore.open(store)
    rollup = flows.rollup()
    assert rollup is not None
    raw = derive_connections(flows.scan())
    assert rollup.connections().frame.equals(raw.frame)
    assert rollup.stats == raw.stats
    _, bucketed = derive_bucketed(flows.scan(), rollup.schedule)
    mine = rollup.bucketed()
    assert mine.buckets.equals(bucketed.buckets)
    assert mine.counts.equals(bucketed.counts)
    summary = read_summary(rollup.path)
    assert summary is not None and summary.equals(summary_table(flows.scan()))
    seen = read_endpoints(rollup.path)  # explain's endpoint table, merged per ingest
    assert seen is not None and seen.equals(seen_endpoints(flows.scan()))
    assert R.read_state(store, flows.part_names()) is not None
    states = {p.name.split("-")[1] for p in (store / "rollup").glob("state-*.parquet")}
    assert states == {R.state_key(flows.part_names())}  # older states removed


def test_each_ingest_maps_only_its_rows_and_equals_the_raw_derivation(
    tmp_path: Path, node_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(monkeypatch)
    seen_rows: list[int] = []

    def seen_spy(flows: Any) -> Any:
        seen_rows.append(flows.select(pl.len()).collect().item())
        return seen_endpoints(flows)

    monkeypatch.setattr(flow_summary, "seen_endpoints", seen_spy)
    store = tmp_path / "store"
    total = 0
    for path in node_files:
        ingest(store, [str(path)])
        rows = FlowStore.open(store).scan().collect().height
        assert spy.maps[-1] == (total, rows - total)  # the new rows alone, from their position
        assert seen_rows[-1] == rows - total  # explain's endpoint table too
        total = rows
        _assert_fresh_and_exact(store)
    assert len(spy.maps) == len(node_files)


def test_one_ingest_of_every_file_equals_one_ingest_per_file(
    tmp_path: Path, node_files: list[Path]
) -> None:
    for path in node_files:
        ingest(tmp_path / "each", [str(path)])
    ingest(tmp_path / "once", [str(p) for p in node_files])
    a, b = FlowStore.open(tmp_path / "each").rollup(), FlowStore.open(tmp_path / "once").rollup()
    assert a is not None and b is not None
    assert a.connections().frame.equals(b.connections().frame)
    assert a.stats == b.stats
    assert a.bucketed().buckets.equals(b.bucketed().buckets)


def test_a_missing_state_falls_back_to_the_whole_store(
    tmp_path: Path, node_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    ingest(store, [str(node_files[0])])
    for path in (store / "rollup").glob("state-*-sessions.parquet"):
        path.unlink()
    spy = Spy(monkeypatch)
    ingest(store, [str(node_files[1])])
    assert spy.maps == [(0, FlowStore.open(store).scan().collect().height)]  # every row
    _assert_fresh_and_exact(store)
    ingest(store, [str(node_files[2])])  # and incremental again
    assert spy.maps[-1][0] > 0
    _assert_fresh_and_exact(store)


def test_rebuild_writes_the_state_and_compaction_keeps_it(
    tmp_path: Path, node_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    ingest(store, [str(node_files[0])])
    for path in (store / "rollup").iterdir():
        path.unlink()
    rebuild_rollup(store)
    _assert_fresh_and_exact(store)
    flows = FlowStore.open(store)
    last = flows.scan().collect()["time"].max()
    assert last is not None
    result = compact_store(store, hours_after=timedelta(0), days_after=None,
                           now=last + timedelta(days=2))  # type: ignore[operator]
    assert result.after != Buckets()
    assert R.read_state(store, flows.part_names()) is not None
    spy = Spy(monkeypatch)
    ingest(store, [str(node_files[1])])
    assert spy.maps[-1][0] > 0  # extended, not re-derived
    _assert_fresh_and_exact(store)  # under the coarse schedule


def test_stored_sessions_and_endpoints_are_merged_range_by_range(
    tmp_path: Path, node_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With small ranges forced, every ingest reads the stored sessions (5-tuple-hash
    ranges) and endpoint rows (key-hash ranges) one range at a time (the other ranges' row
    groups skipped), and the rollup still equals the raw derivation, per-node files
    (sessions straddling ingests, endpoints seen by several) and Calico mixed in."""
    import pyarrow.parquet as pq

    from analyzer.connections import _dedupe as D
    from analyzer.connections import endpoint_range, session_range

    monkeypatch.setenv(D.PARTITION_ENV, "300")
    reads: dict[str, list[int]] = {"sessions": [], "endpoints": []}
    original = R._read_ranged

    def spy(path: Path, frame: str, rows: Any = None) -> pl.DataFrame:
        out = original(path, frame, rows)
        reads[frame].append(out.height)
        return out

    monkeypatch.setattr(R, "_read_ranged", spy)
    store = tmp_path / "store"
    stored_before = {"sessions": 0, "endpoints": 0}
    ranges = {"sessions": session_range, "endpoints": endpoint_range}
    for path in node_files:
        for seen in reads.values():
            seen.clear()
        ingest(store, [str(path)])
        for frame, seen in reads.items():
            if stored_before[frame]:  # the stored rows were read range by range, never whole
                assert len(seen) > 1 and sum(seen) == stored_before[frame]
                assert max(seen) < stored_before[frame]
        _assert_fresh_and_exact(store)
        names = FlowStore.open(store).part_names()
        for frame, in_range in ranges.items():
            file = store / "rollup" / f"state-{R.state_key(names)}-{frame}.parquet"
            meta = pq.ParquetFile(file).metadata
            # one range per row group (the ranges of the rows before merging, at least as
            # many as the merged ones need): a later ingest's range read skips the others
            parts = meta.num_row_groups
            limit = (D.SESSION_PARTITION_ROWS if frame == "sessions"
                     else D.ENDPOINT_PARTITION_ROWS)
            assert parts >= D.partition_count(meta.num_rows, limit) > 1
            stored = pl.read_parquet(file)
            offsets = [0, *[sum(meta.row_group(g).num_rows for g in range(n + 1))
                            for n in range(meta.num_row_groups)]]
            for part in range(parts):
                group = stored.slice(offsets[part], offsets[part + 1] - offsets[part])
                assert group.filter(in_range(part, parts)).height == group.height
            stored_before[frame] = meta.num_rows
