"""A Spark task that dies mid-job (after another input's parts, and part of its own, reached
staging) fails the ingest with one line and leaves the store exactly as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from analyzer.errors import IngestError
from analyzer.spark import job, spark_ingest
from analyzer.spark.task import TaskSpec, run_partition
from analyzer.store import FlowStore


def test_a_task_failure_mid_job_leaves_the_store_unchanged(
    spark: Any, flow_inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    spark_ingest(store, [str(flow_inputs["calico"])], session=spark)
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    manifest = (store / "manifest.json").read_bytes()

    def _dying(spec: TaskSpec, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """``run_partition``, except that after loading the goldmane input (its parts are in
        staging) the executor raises what no ``load_task`` handler catches, as a crash would.
        A closure (not importable by the workers): cloudpickle ships it by value."""
        for batch in batches:
            for answer in run_partition(spec, iter([batch])):
                yield answer
                if any(p.endswith(".zst") for p in batch.column("path").to_pylist()):
                    staged = list(Path(spec.staged).rglob("part-*.parquet"))
                    raise RuntimeError(f"injected executor failure after {len(staged)} parts")

    monkeypatch.setattr(job, "run_partition", _dying)
    inputs = [str(flow_inputs[k]) for k in ("hubble-node1", "goldmane", "whisker")]
    with pytest.raises(IngestError) as failed:
        spark_ingest(store, inputs, session=spark)
    message = str(failed.value)
    assert "the Spark job failed" in message and "nothing was committed" in message
    assert "injected executor failure after" in message
    assert "\n" not in message
    assert (store / "manifest.json").read_bytes() == manifest
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before

    # the same job without the failure commits all three, and the store reads them
    monkeypatch.setattr(job, "run_partition", run_partition)
    done = spark_ingest(store, inputs, session=spark)
    assert [i.status for i in done.inputs] == ["loaded"] * 3
    assert len(FlowStore.open(store).manifest()) == 4
