"""The Spark engine's inputs and settings, checked without starting Spark (no Java needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.errors import ConfigError, IngestError, UsageError
from analyzer.spark.job import resolve_paths
from analyzer.spark.session import INSTALL_HINT, parse_conf, require_pyspark


def test_without_pyspark_the_engine_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'analyzer\[spark\]'"):
        require_pyspark()
    flows = tmp_path / "f.jsonl"
    flows.write_text("{}\n")
    result = CliRunner().invoke(
        app, ["ingest", "--engine", "spark", "--store", str(tmp_path / "s"), str(flows)]
    )
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {INSTALL_HINT}"
    assert not (tmp_path / "s").exists()


def test_spark_conf_pairs() -> None:
    assert parse_conf(["spark.executor.memory=2g", "a.b=x=y"]) == [
        ("spark.executor.memory", "2g"),
        ("a.b", "x=y"),
    ]
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_conf(["spark.executor.memory"])


def test_paths_the_executors_can_open(tmp_path: Path) -> None:
    for name in ("b.jsonl", "a.jsonl", "c.log"):
        (tmp_path / name).write_text("{}\n")
    assert resolve_paths([f"file://{tmp_path}/c.log", str(tmp_path / "*.jsonl")]) == [
        str(tmp_path / "c.log"),
        str(tmp_path / "a.jsonl"),
        str(tmp_path / "b.jsonl"),
    ]
    # URLs are listed by the store's input expansion (tests/unit/ingest/test_ingest_remote.py)
    assert resolve_paths(["s3a://bucket/flows/*.gz"]) == ["s3a://bucket/flows/*.gz"]
    with pytest.raises(UsageError, match="stdin"):
        resolve_paths(["-"])
    with pytest.raises(IngestError, match="no file matches"):
        resolve_paths([str(tmp_path / "*.gz")])
