"""``--engine spark`` on ``s3a://`` inputs: the executors read the objects with the settings a
Spark user gives for s3a (``spark.hadoop.fs.s3a.*``) and build the store the files build from
disk through the local ingest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from s3_server import ACCESS_KEY, SECRET_KEY, S3Server

from analyzer.spark import spark_ingest
from analyzer.spark.job import s3a_settings
from analyzer.store import FlowStore, ingest

_S3A = "spark.hadoop.fs.s3a."


@pytest.fixture
def s3a_conf(spark: Any, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Only Spark's settings: the driver's environment must not be what makes it work.
    for key in s3.env():
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    conf = {
        "endpoint": s3.endpoint,
        "access.key": ACCESS_KEY,
        "secret.key": SECRET_KEY,
        "connection.ssl.enabled": "false",
        "path.style.access": "true",
    }
    for key, value in conf.items():
        spark.conf.set(_S3A + key, value)
    yield
    for key in conf:
        spark.conf.unset(_S3A + key)


def _rows(store: Path) -> pl.DataFrame:
    frame = FlowStore.open(store).scan().collect()
    return frame.sort(frame.columns, nulls_last=True)


def test_spark_reads_s3a_like_the_local_ingest_reads_files(
    spark: Any, s3: S3Server, s3a_conf: None, flow_inputs: dict[str, Path], tmp_path: Path
) -> None:
    files = {k: v for k, v in flow_inputs.items() if v.is_file()}
    bucket = s3.bucket()
    for path in files.values():
        s3.upload(path, f"{bucket}/exports/{path.name}")
    settings = s3a_settings(spark)
    assert settings is not None and settings.options()["scheme"] == "http"
    by_name = sorted(files.values(), key=lambda p: p.name)
    local = ingest(tmp_path / "local", [str(p) for p in by_name])
    remote = spark_ingest(tmp_path / "spark", [f"s3a://{bucket}/exports/*"], session=spark)
    assert [i.path for i in remote.inputs] == [
        f"s3a://{bucket}/exports/{p.name}" for p in by_name
    ]

    def facts(summary: Any) -> list[tuple[Any, ...]]:
        return [(i.status, i.format, i.rows, i.skipped, i.ingest_id) for i in summary.inputs]

    assert facts(remote) == facts(local)
    assert {i.format for i in remote.inputs} == {"hubble", "calico", "goldmane", "whisker"}
    assert _rows(tmp_path / "spark").equals(_rows(tmp_path / "local"))
    for part in (tmp_path / "local" / "flows").iterdir():
        assert (tmp_path / "spark" / "flows" / part.name).read_bytes() == part.read_bytes()
    assert not list((tmp_path / "spark").glob(".tmp-*")), "a spooled copy was left behind"
