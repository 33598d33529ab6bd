"""``analyzer stats`` from the flow summary the rollup carries: the same numbers as counting the
raw flow rows, after every per-node ingest, and the raw pass when the rollup cannot answer."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from analyzer import schema as S
from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from analyzer.store import FlowStore, ingest
from analyzer.store import stats as stats_module
from analyzer.store.compact import compact_store
from analyzer.store.flow_summary import SUMMARY_META, read_summary
from analyzer.store.pipeline import rebuild_rollup
from analyzer.store.rollup import ROLLUP_ENV
from analyzer.store.stats import StoreStats, store_stats


@pytest.fixture(scope="module")
def node_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The first 4,000 of 10,000 generated Hubble events, one file per exporter node."""
    directory = tmp_path_factory.mktemp("stats-nodes")
    full = write_flows(build_scenario(ScenarioConfig(seed=11)), directory / "all.jsonl",
                       "hubble", 10_000)
    lines: dict[str, list[bytes]] = {}
    for line in full.read_bytes().splitlines(keepends=True)[:4000]:
        record = json.loads(line)
        node = str(record.get("flow", record).get("node_name") or "unknown")
        lines.setdefault(node, []).append(line)
    files = []
    for node, chunk in sorted(lines.items()):
        path = directory / f"{node}.jsonl"
        path.write_bytes(b"".join(chunk))
        files.append(path)
    assert len(files) >= 3
    return files


def counted_from_rows(store: FlowStore) -> dict[str, object]:
    """The numbers of ``stats`` counted row by row from the raw flows (independent of the
    summary table)."""
    frame = store.scan().collect()
    per_namespace: dict[str, list[int]] = {}
    for src, dst, flows in frame.select(S.SRC_NAMESPACE, S.DST_NAMESPACE, S.FLOW_COUNT).rows():
        for ns in {n for n in (src, dst) if n is not None} or {"(none)"}:
            entry = per_namespace.setdefault(ns, [0, 0])
            entry[0] += 1
            entry[1] += flows or 0
    verdicts = frame.group_by(S.VERDICT).agg(pl.len(), pl.col(S.FLOW_COUNT).sum())
    return {
        "rows": frame.height,
        "flows": int(frame[S.FLOW_COUNT].sum()),
        "first": frame[S.TIME].min(),
        "last": max(frame[S.TIME].max(), frame[S.END_TIME].max() or frame[S.TIME].max()),
        "verdicts": {(v or "(none)"): (n, f) for v, n, f in verdicts.rows()},
        "namespaces": {k: tuple(v) for k, v in per_namespace.items()},
    }


def as_counted(stats: StoreStats) -> dict[str, object]:
    return {
        "rows": stats.rows,
        "flows": stats.flows,
        "first": stats.first,
        "last": stats.last,
        "verdicts": {k: (r, f) for k, r, f in stats.by_verdict},
        "namespaces": {k: (r, f) for k, r, f in stats.by_namespace},
    }


def test_stats_from_the_rollup_equal_the_raw_rows_after_every_ingest(
    tmp_path: Path, node_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store_dir = tmp_path / "store"
    for path in node_files:
        ingest(store_dir, [str(path)])
        store = FlowStore.open(store_dir)
        rollup = store.rollup()
        assert rollup is not None and read_summary(rollup.path) is not None
        from_rollup = store_stats(store)
        assert as_counted(from_rollup) == counted_from_rows(store)
        with monkeypatch.context() as env:
            env.setenv(ROLLUP_ENV, "1")
            assert store_stats(store) == from_rollup  # the raw pass: same numbers
    assert from_rollup.inputs == len(node_files)


def test_stats_never_scan_the_flows_when_the_rollup_is_fresh(
    tmp_path: Path, node_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store_dir = tmp_path / "store"
    ingest(store_dir, [str(p) for p in node_files[:2]])
    expected = store_stats(FlowStore.open(store_dir))

    def no_scan(*_: object) -> pl.DataFrame:
        raise AssertionError("the raw flows were summarised although the rollup is fresh")

    monkeypatch.setattr(stats_module, "summary_table", no_scan)
    assert store_stats(FlowStore.open(store_dir)) == expected


def test_a_rollup_without_a_summary_falls_back_to_the_raw_flows_until_rebuilt(
    tmp_path: Path, node_files: list[Path]
) -> None:
    store_dir = tmp_path / "store"
    ingest(store_dir, [str(p) for p in node_files])
    store = FlowStore.open(store_dir)
    expected = store_stats(store)
    rollup = store.rollup()
    assert rollup is not None
    table = pq.read_table(rollup.path)
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != SUMMARY_META}
    pq.write_table(table.replace_schema_metadata(meta), rollup.path)  # an older rollup
    assert FlowStore.open(store_dir).rollup() is not None
    assert read_summary(rollup.path) is None
    assert store_stats(FlowStore.open(store_dir)) == expected
    rebuilt = rebuild_rollup(store_dir)  # `analyzer store rebuild` writes the summary again
    assert read_summary(rebuilt.path) is not None
    assert store_stats(FlowStore.open(store_dir)) == expected


def test_compaction_keeps_the_summary_and_the_numbers(
    tmp_path: Path, node_files: list[Path]
) -> None:
    store_dir = tmp_path / "store"
    ingest(store_dir, [str(p) for p in node_files])
    before = FlowStore.open(store_dir).rollup()
    assert before is not None
    expected = store_stats(FlowStore.open(store_dir))
    last = before.stats.window[1]
    assert last is not None
    result = compact_store(store_dir, hours_after=timedelta(0), days_after=None,
                           now=last + timedelta(days=3))
    assert result.after != result.before  # the buckets really were coarsened
    after = FlowStore.open(store_dir).rollup()
    assert after is not None and after.key != before.key
    assert read_summary(after.path) is not None  # carried over, no raw pass needed
    assert store_stats(FlowStore.open(store_dir)) == expected
