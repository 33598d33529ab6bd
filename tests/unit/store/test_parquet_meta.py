"""``store.parquet_meta``: the rollup's key-value metadata read by polars' footer reader holds
what pyarrow's ``read_schema`` reads, and every unreadable file is an OSError or a ValueError
(which the rollup's readers treat as "no fresh rollup")."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from analyzer.store import FlowStore, ingest
from analyzer.store import flow_summary as F
from analyzer.store import rollup as R
from analyzer.store.parquet_meta import parquet_metadata


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("meta")
    capture = write_flows(
        build_scenario(ScenarioConfig(seed=5)), directory / "cap.jsonl", "hubble", 10_000
    )
    ingest(directory / "store", [str(capture)])
    return directory / "store"


KEYS = (
    b"analyzer.rollup", F.SUMMARY_META, F.ENDPOINTS_META, b"analyzer.summary_version",
    b"absent",
)


def test_the_rollup_files_metadata_as_pyarrow_reads_it(stored: Path) -> None:
    store = FlowStore.open(stored)
    rollup = store.rollup()
    assert rollup is not None
    for prefix in ("connections-", "buckets-", "counts-"):
        path = rollup.path.with_name(prefix + rollup.path.name.removeprefix("connections-"))
        expected = pq.read_schema(path).metadata or {}
        got = parquet_metadata(path, *KEYS)
        assert got == {k: expected[k] for k in KEYS if k in expected}
        assert b"analyzer.rollup" in got and b"absent" not in got
    # the connections file carries the summary and the endpoint table; only what is asked
    # for is returned
    assert set(parquet_metadata(rollup.path, F.SUMMARY_META)) == {F.SUMMARY_META}
    assert parquet_metadata(rollup.path) == {}
    assert F.read_summary(rollup.path) is not None
    assert F.read_endpoints(rollup.path) is not None


def test_unreadable_files_raise_what_the_readers_catch(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        parquet_metadata(tmp_path / "missing.parquet", b"k")
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"PAR1 not a parquet file")
    with pytest.raises(ValueError, match="damaged.parquet"):
        parquet_metadata(damaged, b"k")
    with pytest.raises((OSError, ValueError)):
        parquet_metadata(tmp_path, b"k")
    binary = tmp_path / "binary.parquet"
    pq.write_table(pa.table({"a": [1]}).replace_schema_metadata({b"k": b"\xff\xfe"}), binary)
    with pytest.raises(ValueError):
        parquet_metadata(binary, b"k")
    # the readers built on it: no summary, no endpoint table, never an exception
    for path in (tmp_path / "missing.parquet", damaged, binary):
        assert F.read_summary(path) is None
        assert F.read_endpoints(path) is None


def test_a_rollup_whose_metadata_is_not_utf8_is_not_read(stored: Path, tmp_path: Path) -> None:
    shutil.copytree(stored, tmp_path / "store")
    store = FlowStore.open(tmp_path / "store")
    rollup = store.rollup()
    assert rollup is not None
    table = pq.read_table(rollup.path)
    metadata = {**(table.schema.metadata or {}), b"analyzer.seen_endpoints": b"\xff"}
    pq.write_table(table.replace_schema_metadata(metadata), rollup.path)
    assert R.read_rollup(store.root, store.part_names()) is None
