"""Stores without raw flows (issue 11, ``ingest --no-keep-flows``): the rollup, its derivation
state, the ``stats`` summary and explain's endpoint table are committed as with kept flows and
equal those of a store that kept them; no part file is published; idempotence, stickiness and
kill-safety hold; everything that would need the raw rows refuses in one line. Across upgrades
(docs/rollup.md, "Versions"): a rollup version bump refuses reads in one line until the next
ingest derives the rollup again from the state; a state version bump refuses ingests but keeps
serving the rollup; a rollup of this version keyed otherwise is served with a note. (An upgrade
that keeps the derivation, run for real: tests/e2e/test_no_keep_flows_cli.py.)"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
from kill_script import killed_ingests

from analyzer.errors import FlowsNotKeptError, KeptRollupWarning, StoreError
from analyzer.live.follow import open_store
from analyzer.store import FlowStore, ingest
from analyzer.store import rollup as R
from analyzer.store.compact import compact_store
from analyzer.store.flow_summary import read_endpoints, read_summary
from analyzer.store.pipeline import rebuild_rollup
from tests.unit.store._helpers import node_capture


@pytest.fixture(scope="module")
def node_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Generated Hubble events of a 3-node cluster, one file per exporter node."""
    return node_capture(tmp_path_factory.mktemp("nokeep"), seed=11)[2]


@pytest.fixture(scope="module")
def kept(node_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same files ingested one by one, raw flows kept."""
    store = tmp_path_factory.mktemp("kept") / "store"
    for path in node_files:
        ingest(store, [str(path)])
    return store


def _same_rollup(a: Path, b: Path) -> None:
    """The two stores' rollups, states, summaries and endpoint tables hold the same."""
    ra, rb = FlowStore.open(a).rollup(), FlowStore.open(b).rollup()
    assert ra is not None and rb is not None
    assert ra.key == rb.key  # same part names, same schedule, same code
    assert ra.connections().frame.equals(rb.connections().frame)
    assert ra.stats == rb.stats
    assert (ra.records, ra.masked) == (rb.records, rb.masked)
    assert ra.bucketed().buckets.equals(rb.bucketed().buckets)
    summary_a, summary_b = read_summary(ra.path), read_summary(rb.path)
    assert summary_a is not None and summary_b is not None and summary_a.equals(summary_b)
    seen_a, seen_b = read_endpoints(ra.path), read_endpoints(rb.path)
    assert seen_a is not None and seen_b is not None and seen_a.equals(seen_b)
    names = FlowStore.open(a).part_names()
    assert names == FlowStore.open(b).part_names()
    state_a, state_b = R.read_state(a, names), R.read_state(b, names)
    assert state_a is not None and state_b is not None
    for frame in state_a.frames():  # the state's frames are sets of rows: order is free
        fa, fb = getattr(state_a, frame), getattr(state_b, frame)
        assert fa.sort(fa.columns, nulls_last=True).equals(fb.sort(fb.columns, nulls_last=True))


def test_no_keep_ingests_commit_the_same_rollup_and_no_part(
    tmp_path: Path, node_files: list[Path], kept: Path
) -> None:
    store = tmp_path / "store"
    for path in node_files:
        ingest(store, [str(path)], keep_flows=False)
        assert not list((store / "flows").iterdir())
        assert not list(store.glob(".tmp-*"))
    _same_rollup(store, kept)
    doc = json.loads((store / "manifest.json").read_text())
    assert doc["version"] == 3
    assert all(e["flows_kept"] is False for e in doc["inputs"])
    assert json.loads((kept / "manifest.json").read_text())["version"] == 2
    # idempotent: the same content again is a duplicate, nothing changes
    before = (store / "manifest.json").read_bytes()
    again = ingest(store, [str(node_files[0])])
    assert [i.status for i in again.inputs] == ["duplicate"]
    assert (store / "manifest.json").read_bytes() == before


def test_no_keep_is_sticky_until_keep_flows(tmp_path: Path, node_files: list[Path]) -> None:
    store = tmp_path / "store"
    ingest(store, [str(node_files[0])], keep_flows=False)
    assert not FlowStore.open(store).keeps_flows()
    ingest(store, [str(node_files[1])])  # not told: as the last ingest
    assert [e.kept for e in FlowStore.open(store).manifest()] == [False, False]
    ingest(store, [str(node_files[2])], keep_flows=True)
    entries = FlowStore.open(store).manifest()
    assert [e.kept for e in entries] == [False, False, True]
    assert sorted(p.name for p in (store / "flows").iterdir()) == sorted(entries[2].parts)
    assert FlowStore.open(store).keeps_flows()


def test_a_mixed_store_answers_from_its_rollup_and_refuses_raw_reads(
    tmp_path: Path, node_files: list[Path], kept: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    for i, path in enumerate(node_files):
        ingest(store, [str(path)], keep_flows=i % 2 == 0)
    _same_rollup(store, kept)
    opened = FlowStore.open(store)
    with pytest.raises(FlowsNotKeptError, match="did not keep the raw flows of 1 of its 3 inputs"):
        opened.scan()
    rebuild_rollup(store)  # from the derivation state: the same rollup
    _same_rollup(store, kept)
    with pytest.raises(FlowsNotKeptError, match="cannot ingest live"):
        open_store(store)
    monkeypatch.setenv(R.ROLLUP_ENV, "1")
    assert opened.rollup() is None
    with pytest.raises(FlowsNotKeptError, match="ANALYZER_NO_ROLLUP=1"):
        opened.scan()


def test_a_missing_state_refuses_the_ingest_and_leaves_the_store(
    tmp_path: Path, node_files: list[Path]
) -> None:
    store = tmp_path / "store"
    ingest(store, [str(node_files[0])], keep_flows=False)
    for path in (store / "rollup").glob("state-*"):
        path.unlink()
    before = {p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file()}
    with pytest.raises(FlowsNotKeptError, match="cannot ingest: the store's derivation state"):
        ingest(store, [str(node_files[1])], keep_flows=False)
    with pytest.raises(FlowsNotKeptError, match="cannot derive the rollup again .the store's "
                       "derivation state is missing"):
        rebuild_rollup(store)
    after = {p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file()}
    assert after == before
    assert FlowStore.open(store).rollup() is not None  # still serves what it has


def _two_nodes_without_flows(tmp_path: Path, node_files: list[Path]) -> tuple[Path, R.Rollup]:
    """A store of the first two node files, each ingested with ``--no-keep-flows``, and its
    rollup."""
    store = tmp_path / "store"
    for path in node_files[:2]:
        ingest(store, [str(path)], keep_flows=False)
    built = FlowStore.open(store).rollup()
    assert built is not None
    return store, built


def test_a_rollup_version_bump_refuses_reads_until_the_state_derives_it_again(
    tmp_path: Path, node_files: list[Path], kept: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, built = _two_nodes_without_flows(tmp_path, node_files)
    monkeypatch.setattr(R, "ROLLUP_VERSION", R.ROLLUP_VERSION + 1)
    opened = FlowStore.open(store)
    assert opened.rollup() is None  # another version's: not served
    with pytest.raises(FlowsNotKeptError) as refused:
        opened.scan()
    said = str(refused.value)
    assert "\n" not in said
    assert f"built in rollup format {R.ROLLUP_VERSION - 1}" in said
    assert f"run 'analyzer store rebuild --store {store}' to derive it again" in said
    assert "did not keep the raw flows of 2 of its 2 inputs" in said
    # the state is this version's: `store rebuild` finishes it (no raw flow needed), with the
    # summary and endpoint table carried over from the old rollup file ...
    rebuilt_store = tmp_path / "rebuilt"
    shutil.copytree(store, rebuilt_store)
    rebuilt = rebuild_rollup(rebuilt_store)
    assert rebuilt.connections().frame.equals(built.connections().frame)
    assert rebuilt.bucketed().buckets.equals(built.bucketed().buckets)
    assert (rebuilt.stats, rebuilt.records) == (built.stats, built.records)
    for read in (read_summary, read_endpoints):
        assert read(rebuilt.path).equals(read(built.path))  # type: ignore[union-attr]
    assert len(list((rebuilt_store / "rollup").glob("connections-*"))) == 1
    # ... so does compaction, which needs a rollup of this version ...
    compacted = tmp_path / "compacted"
    shutil.copytree(store, compacted)
    compact_store(compacted, hours_after=None, days_after=None)
    assert FlowStore.open(compacted).rollup() is not None
    # ... and the next ingest extends the state and writes the new rollup
    ingest(store, [str(node_files[2])], keep_flows=False)
    reference = tmp_path / "kept"  # the kept store, its rollup rebuilt by this version
    shutil.copytree(kept, reference)
    rebuild_rollup(reference)
    _same_rollup(store, reference)
    assert len(list((store / "rollup").glob("connections-*"))) == 1


def test_a_rebuild_from_the_state_killed_before_its_index_keeps_the_new_rollup(
    tmp_path: Path, node_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Published files first, ``rollup.json`` last: killed in between, the index still names
    the old version's rollup. Recovery keeps this version's (what readers read), not the one
    the index names."""
    store, _ = _two_nodes_without_flows(tmp_path, node_files)
    directory = store / "rollup"
    old = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    monkeypatch.setattr(R, "ROLLUP_VERSION", R.ROLLUP_VERSION + 1)
    rebuilt = rebuild_rollup(store)
    for name, data in old.items():  # the old files and index back, the new files kept
        if not (directory / name).exists() or name == R.INDEX:
            (directory / name).write_bytes(data)
    assert R.kept_rollup_file(store, FlowStore(store).part_names()) != rebuilt.path
    with FlowStore(store).lock():
        FlowStore(store).recover()
    assert FlowStore.open(store).rollup() == rebuilt


def test_a_state_version_bump_refuses_ingests_and_keeps_serving(
    tmp_path: Path, node_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, built = _two_nodes_without_flows(tmp_path, node_files)
    monkeypatch.setattr(R, "STATE_VERSION", R.STATE_VERSION + 1)
    assert FlowStore.open(store).rollup() == built  # the rollup's key holds no state version
    manifest = (store / "manifest.json").read_bytes()
    with pytest.raises(FlowsNotKeptError, match="derivation state is missing or of another"):
        ingest(store, [str(node_files[2])], keep_flows=False)
    assert (store / "manifest.json").read_bytes() == manifest
    assert FlowStore.open(store).rollup() == built


def test_a_rollup_keyed_otherwise_is_served_with_a_note_and_ingests_refused(
    tmp_path: Path, node_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rollup of this version under another key (written by an analyzer that keyed rollups
    by its source, or under other schemas) in a store without raw flows: served as built,
    since nothing could derive it again."""
    store, built = _two_nodes_without_flows(tmp_path, node_files)
    monkeypatch.setattr(R, "rollup_fingerprint", lambda: "another analyzer")
    monkeypatch.setattr(R, "state_fingerprint", lambda: "another analyzer")
    assert R.read_rollup(store, FlowStore.open(store).part_names()) is None  # stale by key
    with pytest.warns(KeptRollupWarning, match="built by another version"):
        served = FlowStore.open(store).rollup()
    assert served is not None and served.path == built.path
    assert served.connections().frame.equals(built.connections().frame)
    assert served.stats == built.stats
    manifest = (store / "manifest.json").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KeptRollupWarning)
        with pytest.raises(FlowsNotKeptError, match="derivation state is missing or of another"):
            ingest(store, [str(node_files[2])], keep_flows=False)
    assert (store / "manifest.json").read_bytes() == manifest
    # recovery (run by that ingest, and by any writer) never deletes the only rollup there is
    monkeypatch.setenv(R.ROLLUP_ENV, "1")
    with FlowStore.open(store).lock():
        FlowStore(store).recover()
    monkeypatch.delenv(R.ROLLUP_ENV)
    with pytest.warns(KeptRollupWarning):
        again = FlowStore.open(store).rollup()
    assert again is not None and again.connections().frame.equals(built.connections().frame)
    # nor one of another version, which it cannot serve but whose summary a later state-based
    # derivation carries over
    monkeypatch.setattr(R, "ROLLUP_VERSION", R.ROLLUP_VERSION + 1)
    with FlowStore.open(store).lock():
        FlowStore(store).recover()
    assert (store / "rollup" / built.path.name).is_file()
    monkeypatch.undo()
    # a store that kept its flows is not served an old rollup: it derives again instead
    whole = tmp_path / "kept"
    ingest(whole, [str(node_files[0])])
    ingest(whole, [str(node_files[1])])
    monkeypatch.setattr(R, "rollup_fingerprint", lambda: "another analyzer")
    assert FlowStore(whole).rollup() is None


def test_an_old_analyzer_refuses_a_store_without_flows(
    tmp_path: Path, node_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    ingest(store, [str(node_files[0])], keep_flows=False)
    monkeypatch.setattr("analyzer.store.flowstore.MANIFEST_VERSION", 2)
    with pytest.raises(StoreError, match="written by a newer analyzer"):
        FlowStore.open(store)


def test_kill_at_every_rename_of_a_no_keep_ingest(
    tmp_path: Path, node_files: list[Path], kept: Path
) -> None:
    first, *rest = node_files
    pristine = tmp_path / "pristine"
    ingest(pristine, [str(first)], keep_flows=False)
    crashed = 0
    # every rename: manifest, state files, rollup, its index
    for target, store in killed_ingests(
        pristine, [str(p) for p in rest], tmp_path, limit=30, env={"KILL_KEEP_FLOWS": "0"}
    ):
        crashed += 1
        committed = len(FlowStore(store).manifest())
        seen = FlowStore(store).rollup()  # before any recovery: none, or the committed rows'
        if seen is not None:
            assert seen.records == sum(e.rows for e in FlowStore(store).manifest())
        opened = FlowStore.open(store)  # recovers: the commit is finished, rollup included
        rollup = opened.rollup()
        assert rollup is not None, target
        assert not list((store / "flows").iterdir())
        assert not list(store.glob(".tmp-*"))
        if committed == len(node_files):  # the ingest was committed: the kept store's rollup
            _same_rollup(store, kept)
        else:  # it was not: the store is the pristine one
            assert opened.part_names() == FlowStore.open(pristine).part_names()
            assert rollup.connections().frame.equals(
                FlowStore.open(pristine).rollup().connections().frame  # type: ignore[union-attr]
            )
    assert crashed >= 8  # manifest, six state files, rollup, its index
