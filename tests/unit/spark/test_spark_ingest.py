"""``--engine spark`` builds the store the local ingest builds: same rows, parts, manifest
entries (skips with line numbers, warnings, hashes), same errors, same duplicates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.errors import IngestError
from analyzer.spark import spark_ingest
from analyzer.store import FlowStore, ingest
from analyzer.store.summary import IngestSummary

# every manifest field but the wall-clock time of the ingest
_VOLATILE = {"ingested_at"}


def _manifest(store: Path) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in e.to_json().items() if k not in _VOLATILE}
        for e in FlowStore.open(store).manifest()
    ]


def _rows(store: Path) -> pl.DataFrame:
    frame = FlowStore.open(store).scan().collect()
    return frame.sort(frame.columns, nulls_last=True)


def _listing(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.name != ".lock")


def _summaries(summary: IngestSummary) -> list[tuple[Any, ...]]:
    return [(i.path, i.status, i.format, i.rows, i.skipped, i.warnings, i.ingest_id, i.message)
            for i in summary.inputs]


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_spark_store_equals_local_store_for_every_format(
    spark: Any, flow_inputs: dict[str, Path], tmp_path: Path
) -> None:
    inputs = [str(p) for p in flow_inputs.values()]
    local = ingest(tmp_path / "local", inputs)
    remote = spark_ingest(tmp_path / "spark", inputs, session=spark)
    assert _summaries(remote) == _summaries(local)
    formats = {i.format for i in remote.inputs if i.status == "loaded"}
    assert formats == {"hubble", "calico", "goldmane", "whisker"}
    # the walked README is skipped, the copy of whisker in the walked directory a duplicate
    assert sorted(i.status for i in remote.inputs).count("duplicate") == 1
    assert any(i.status == "skipped" for i in remote.inputs)
    hostile = next(i for i in remote.inputs if i.path.endswith("hostile.jsonl"))
    assert hostile.skipped_total == 4 and hostile.rows == 200
    assert _manifest(tmp_path / "spark") == _manifest(tmp_path / "local")
    assert _listing(tmp_path / "spark") == _listing(tmp_path / "local")
    assert _rows(tmp_path / "spark").equals(_rows(tmp_path / "local"))
    for part in (tmp_path / "local" / "flows").iterdir():  # the parts, byte for byte
        assert (tmp_path / "spark" / "flows" / part.name).read_bytes() == part.read_bytes()
    # what every other command reads: stats and recommend, byte for byte
    stats = [_cli("stats", "--store", str(tmp_path / s), "-o", "json") for s in ("local", "spark")]
    assert stats[0].replace(str(tmp_path / "local"), "S") == stats[1].replace(
        str(tmp_path / "spark"), "S"
    )
    namespaces = sorted(set(_rows(tmp_path / "local")["src_namespace"].drop_nulls()))
    assert len(namespaces) >= 4
    policies = 0
    for ns in namespaces:
        outs = [
            _cli("recommend", "--store", str(tmp_path / s), "-n", ns,
                 "--include-system-namespaces")
            for s in ("local", "spark")
        ]
        assert outs[0] == outs[1]
        policies += outs[0].count("kind: NetworkPolicy")
    assert policies >= len(namespaces)


def test_reingest_is_a_noop_and_failure_leaves_the_store_unchanged(
    spark: Any, flow_inputs: dict[str, Path], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    first = [str(flow_inputs["calico"]), str(flow_inputs["hubble-node1"])]
    spark_ingest(store, first, session=spark)
    before = (_manifest(store), _listing(store), (store / "manifest.json").read_bytes())
    again = spark_ingest(store, first, session=spark)
    assert [i.status for i in again.inputs] == ["duplicate", "duplicate"]
    assert (store / "manifest.json").read_bytes() == before[2]
    # A named input that is no flow file, after one that loads: the job's other task wrote
    # its parts to staging; none of them may reach the store, and the error is the local one.
    blob = tmp_path / "notes.jsonl"
    blob.write_text('{"name": "x", "value": 1}\n')
    failing = [str(flow_inputs["whisker"]), str(blob)]
    with pytest.raises(IngestError, match="no reader recognises") as local_error:
        ingest(tmp_path / "local", failing)
    with pytest.raises(IngestError) as spark_error:
        spark_ingest(store, failing, session=spark)
    assert type(spark_error.value) is type(local_error.value)
    assert str(spark_error.value) == str(local_error.value)
    assert (_manifest(store), _listing(store)) == before[:2]
    assert not any(p.name.startswith(".tmp-") for p in store.iterdir())
    with pytest.raises(IngestError, match="no such file"):
        spark_ingest(store, [str(flow_inputs["goldmane"]), str(tmp_path / "nope.jsonl")],
                     session=spark)
    assert (_manifest(store), _listing(store)) == before[:2]


def test_cli_engine_spark(spark: Any, flow_inputs: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    out = _cli("ingest", "--engine", "spark", "--master", "local[2]", "--spark-conf",
               "spark.sql.shuffle.partitions=2", "--store", str(store), "-o", "json",
               str(flow_inputs["goldmane"]), str(flow_inputs["hostile"]))
    doc = json.loads(out)
    assert [i["status"] for i in doc["inputs"]] == ["loaded", "loaded"]
    hostile = doc["inputs"][1]
    local = ingest(tmp_path / "local", [str(flow_inputs["hostile"])]).inputs[0]
    assert hostile["rows"] == local.rows == 200
    assert [(s["reason"], s["count"], s["first_lines"]) for s in hostile["skipped"]] == [
        (s.reason, s.count, list(s.first_lines)) for s in local.skipped
    ]
    # the session the CLI found running is the test's: still usable
    assert spark.range(3).count() == 3


def test_cli_refuses_spark_options_without_the_engine(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ingest", "--master", "local[2]", "--store",
                                      str(tmp_path / "s"), str(tmp_path)])
    assert result.exit_code == 2 and "need --engine spark" in result.output
    result = CliRunner().invoke(app, ["ingest", "--engine", "spark", "--spark-conf", "novalue",
                                      "--store", str(tmp_path / "s"), str(tmp_path)])
    assert result.exit_code != 0
