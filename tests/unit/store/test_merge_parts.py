"""``store compact`` merging small raw parts (issue 11): fewer files, the same rows in the same
order; the rollup and the derivation state are re-keyed to the new part names (not derived
again) so the answers are the same and the next ingest still extends the state; killed at any
step, the store serves the same rows and the next command that opens it finishes the work."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from analyzer.connections import DerivationState, derive_connections
from analyzer.store import FlowStore, ingest
from analyzer.store import merge_parts as M
from analyzer.store import rollup as R
from analyzer.store.compact import compact_store
from analyzer.store.flow_summary import read_endpoints, read_summary
from tests.unit.store._helpers import node_capture


@pytest.fixture(scope="module")
def node_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return node_capture(tmp_path_factory.mktemp("merge"), seed=3)[2]


@pytest.fixture
def store(tmp_path: Path, node_files: list[Path]) -> Path:
    """All but the last node file ingested one by one: one small part each."""
    root = tmp_path / "store"
    for path in node_files[:-1]:
        ingest(root, [str(path)])
    return root


def _compact(store: Path) -> Any:
    return compact_store(store, hours_after=None, days_after=None)


def test_plan_runs_merges_consecutive_small_parts_only() -> None:
    small, big = M.SMALL_PART_ROWS - 1, M.PART_ROWS
    parts = [("a", small), ("b", small), ("c", big), ("d", small), ("e", None), ("f", small),
             ("g", small), ("h", small)]
    assert M.plan_runs(parts) == [["a", "b"], ["f", "g", "h"]]
    many = [(f"p{i}", small) for i in range(6)]  # 4 fit in PART_ROWS
    assert M.PART_ROWS // small == 4
    assert M.plan_runs(many) == [["p0", "p1", "p2", "p3"], ["p4", "p5"]]
    assert M.plan_runs([("a", small)]) == []


def test_compaction_merges_parts_and_rekeys_the_rollup_and_state(
    store: Path, node_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = FlowStore.open(store)
    rows = opened.scan().collect()
    rollup = opened.rollup()
    assert rollup is not None
    frame, buckets = rollup.connections().frame, rollup.bucketed().buckets
    summary, seen = read_summary(rollup.path), read_endpoints(rollup.path)
    assert summary is not None and seen is not None
    parts_before = len(list((store / "flows").iterdir()))
    assert parts_before == len(node_files) - 1
    done = _compact(store)
    assert (done.parts.parts_before, done.parts.parts_after, done.parts.runs) == (
        parts_before, 1, 1
    )
    opened = FlowStore.open(store)
    assert [p.name for p in (store / "flows").iterdir()] == opened.part_names()
    assert opened.scan().collect().equals(rows)  # the same rows, the same order
    after = opened.rollup()
    assert after is not None and after.key != rollup.key
    assert after.connections().frame.equals(frame)
    assert after.stats == rollup.stats
    assert after.bucketed().buckets.equals(buckets)
    assert summary.equals(read_summary(after.path))
    assert seen.equals(read_endpoints(after.path))
    assert R.read_state(store, opened.part_names()) is not None
    assert len({p.name.split("-")[1] for p in (store / "rollup").glob("state-*")}) == 1
    entries = opened.manifest()
    assert entries[0].parts == tuple(opened.part_names())
    assert all(e.parts == () and e.merged_into == entries[0].parts[0] for e in entries[1:])
    # merged inputs are still known: ingesting one again changes nothing
    assert [i.status for i in ingest(store, [str(node_files[1])]).inputs] == ["duplicate"]
    # the next ingest extends the re-keyed state: it maps its own rows only
    maps: list[tuple[int, int]] = []
    original = R.derive_state

    def spy(flows: Any, **kwargs: Any) -> DerivationState:
        state = original(flows, **kwargs)
        maps.append((int(kwargs.get("offset", 0)), state.rows))
        return state

    monkeypatch.setattr(R, "derive_state", spy)
    ingest(store, [str(node_files[-1])])
    assert maps and maps[0][0] == rows.height  # offset = the rows before: incremental
    monkeypatch.undo()
    final = FlowStore.open(store)
    fresh = final.rollup()
    assert fresh is not None
    raw = derive_connections(final.scan())
    assert fresh.connections().frame.equals(raw.frame) and fresh.stats == raw.stats
    # nothing small left to merge next to a big run... but the new small part joins it
    again = _compact(store)
    assert again.parts.parts_after == 1


def test_compaction_merges_kept_parts_of_a_mixed_store(
    tmp_path: Path, node_files: list[Path]
) -> None:
    root = tmp_path / "mixed"
    for i, path in enumerate(node_files):
        ingest(root, [str(path)], keep_flows=i != 1)  # kept, dropped, kept, kept...
    rollup = FlowStore.open(root).rollup()
    assert rollup is not None
    frame = rollup.connections().frame
    done = _compact(root)
    assert len(node_files) in (3, 4)  # kept | dropped | kept (, kept: merged with the third)
    assert done.parts.parts_before == len(node_files) - 1
    assert done.parts.parts_after == 2
    after = FlowStore.open(root).rollup()
    assert after is not None and after.connections().frame.equals(frame)
    assert sorted(p.name for p in (root / "flows").iterdir()) == sorted(
        p for e in FlowStore.open(root).manifest() for p in e.kept_parts
    )


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_a_compaction_killed_at_any_rename_serves_the_same_rows(
    store: Path, kill_at: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = FlowStore.open(store)
    rows = opened.scan().collect()
    rollup = opened.rollup()
    assert rollup is not None
    expected = rollup.connections().frame
    calls = 0
    real = os.replace

    def replace(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == kill_at:
            raise KeyboardInterrupt("killed")
        real(*args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)  # a kill cleans nothing up
    try:
        _compact(store)
        killed = False
    except KeyboardInterrupt:
        killed = True
    monkeypatch.undo()
    if not killed:
        pytest.skip(f"compaction makes fewer than {kill_at} renames")
    assert FlowStore(store).scan().collect().equals(rows)  # before any recovery
    recovered = FlowStore.open(store)  # finishes (or drops) the compaction
    assert recovered.scan().collect().equals(rows)
    rollup = recovered.rollup()
    assert rollup is not None
    assert rollup.connections().frame.equals(expected)
    assert not list(store.glob(".tmp-*"))
    listed = {p for e in recovered.manifest() for p in e.kept_parts}
    assert {p.name for p in (store / "flows").iterdir()} == listed
    assert R.read_state(store, recovered.part_names()) is not None  # the next ingest extends it
