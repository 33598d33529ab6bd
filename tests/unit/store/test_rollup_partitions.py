"""Bounded-memory derivation (issue 11): above ``PARTITION_ROWS`` Hubble request rows, sessions
are sorted per 5-tuple-hash partition (a spilled compact projection at ingest, re-scans
otherwise). The answer must not change: forced on a small store, every partition count gives
frames, statistics, buckets and counts equal to the unpartitioned derivation, and an ingest's
rollup equals the one built without partitions."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from analyzer.connections import Buckets, derive_bucketed
from analyzer.connections import _dedupe as D
from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from analyzer.store import FlowStore, ingest
from analyzer.store import rollup as R


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("partitions")
    scenario = build_scenario(ScenarioConfig(seed=7))
    return write_flows(scenario, directory / "f.jsonl", "hubble", 10_000)


def _derive(lf: pl.LazyFrame, spill: Path | None) -> tuple[pl.DataFrame, ...]:
    connections, bucketed = derive_bucketed(lf, Buckets(), spill=spill)
    return (
        connections.frame,
        bucketed.buckets,
        bucketed.counts,
        pl.DataFrame({"stats": [repr(connections.stats)]}),
    )


def test_partition_count_follows_the_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(D.PARTITION_ENV, raising=False)
    assert D.partition_count(0) == 1
    assert D.partition_count(D.PARTITION_ROWS) == 1
    assert D.partition_count(D.PARTITION_ROWS + 1) == 2
    monkeypatch.setenv(D.PARTITION_ENV, "1000")
    assert D.partition_count(4_500) == 5


@pytest.mark.parametrize("limit", ["700", "1500", "4000"])
@pytest.mark.parametrize("spilled", [True, False])
def test_partitioned_derivation_equals_the_whole(
    flows: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str, spilled: bool
) -> None:
    store = tmp_path / "store"
    ingest(store, [str(flows)])
    lf = FlowStore.open(store).scan()
    monkeypatch.delenv(D.PARTITION_ENV, raising=False)
    whole = _derive(lf, None)
    monkeypatch.setenv(D.PARTITION_ENV, limit)
    spill = tmp_path / "spill" if spilled else None
    if spill is not None:
        spill.mkdir()
    parts = _derive(lf, spill)
    assert D.partition_count(int(whole[2]["requests"].sum())) > 1
    for a, b in zip(whole, parts, strict=True):
        assert a.equals(b)
    if spill is not None:
        assert list(spill.iterdir()) == []  # the temporary projection is gone


def test_an_ingest_with_partitions_writes_the_same_rollup(
    flows: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(D.PARTITION_ENV, raising=False)
    ingest(tmp_path / "a", [str(flows)])
    monkeypatch.setenv(D.PARTITION_ENV, "500")
    ingest(tmp_path / "b", [str(flows)])
    files = []
    for name in ("a", "b"):
        store = FlowStore.open(tmp_path / name)
        rollup = R.read_rollup(store.root, store.part_names())
        assert rollup is not None
        files.append(rollup)
        assert not [p for p in store.root.rglob(".hubble-*")]
    a, b = files
    assert a.connections().frame.equals(b.connections().frame)
    assert a.stats == b.stats
    assert a.bucketed().buckets.equals(b.bucketed().buckets)
    assert a.counts().equals(b.counts())
