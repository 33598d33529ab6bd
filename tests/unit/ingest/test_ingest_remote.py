"""Object-store inputs (``s3://``, ``s3a://``): read through a real S3 API (moto's server),
they build the store the same files build from disk; errors are one line, the store unchanged."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from s3_server import S3Server
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.errors import IngestError, UsageError
from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from analyzer.store import FlowStore, ingest
from analyzer.store.remote import S3Settings, _matches, expand_remote


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return s3


@pytest.fixture(scope="module")
def node_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two per-node Hubble files (one gzipped), a hostile one, a Calico log, a README."""
    root = tmp_path_factory.mktemp("remote-inputs")
    scenario = build_scenario(ScenarioConfig(seed=11))
    lines = write_flows(scenario, root / "all.jsonl", "hubble", 10_000).read_bytes().splitlines(
        keepends=True
    )
    half = len(lines) // 2
    files = {
        "node-a.jsonl": b"".join(lines[:half]),
        "node-b.jsonl.gz": gzip.compress(b"".join(lines[half:])),
        "node-c.jsonl": b"".join([*lines[:50], b"{not json\n", b"\xff\xfe\n", *lines[50:90]]),
    }
    out: dict[str, Path] = {}
    for name, data in files.items():
        out[name] = root / name
        out[name].write_bytes(data)
    out["calico.log"] = write_flows(scenario, root / "calico.log", "calico", 3_000)
    (root / "all.jsonl").unlink()
    return out


def _upload(s3: S3Server, files: dict[str, Path], prefix: str) -> str:
    bucket = s3.bucket()
    for name, path in files.items():
        s3.upload(path, f"{bucket}/{prefix}/{name}")
    return bucket


def _rows(store: Path) -> pl.DataFrame:
    frame = FlowStore.open(store).scan().collect()
    return frame.sort(frame.columns, nulls_last=True)


def _entries(store: Path) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in e.to_json().items() if k not in {"ingested_at", "path"}}
        for e in FlowStore.open(store).manifest()
    ]


def _listing(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.name != ".lock")


def test_a_pattern_in_a_bucket_builds_the_store_the_files_build(
    s3_env: S3Server, node_files: dict[str, Path], tmp_path: Path
) -> None:
    bucket = _upload(s3_env, node_files, "cluster-1/2026-12-06")
    local = ingest(tmp_path / "local", [str(p) for p in sorted(node_files.values())])
    remote = ingest(tmp_path / "remote", [f"s3a://{bucket}/cluster-1/*/*"])
    assert [i.path for i in remote.inputs] == [
        f"s3a://{bucket}/cluster-1/2026-12-06/{name}" for name in sorted(node_files)
    ]
    strip = [(i.status, i.format, i.rows, i.skipped, i.ingest_id) for i in local.inputs]
    assert [(i.status, i.format, i.rows, i.skipped, i.ingest_id) for i in remote.inputs] == strip
    hostile = next(i for i in remote.inputs if i.path.endswith("node-c.jsonl"))
    assert hostile.skipped_total == 2 and hostile.rows == 90
    assert _rows(tmp_path / "remote").equals(_rows(tmp_path / "local"))
    assert _entries(tmp_path / "remote") == _entries(tmp_path / "local")
    # no copy of an object is left behind: the same files as the local store
    assert _listing(tmp_path / "remote") == _listing(tmp_path / "local")
    manifest_paths = [e.path for e in FlowStore.open(tmp_path / "remote").manifest()]
    assert all(p.startswith(f"s3a://{bucket}/") for p in manifest_paths)
    # the same content again, now from disk: nothing to do
    again = ingest(tmp_path / "remote", [str(node_files["node-a.jsonl"])])
    assert [i.status for i in again.inputs] == ["duplicate"]


def test_a_prefix_is_walked_like_a_directory(
    s3_env: S3Server, node_files: dict[str, Path], tmp_path: Path
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# not flows\n")
    files = {**node_files, "README.md": readme, ".hidden/x.jsonl": node_files["node-a.jsonl"]}
    bucket = _upload(s3_env, files, "logs")
    summary = ingest(tmp_path / "store", [f"s3://{bucket}/logs/"])
    statuses = {Path(i.path).name: i.status for i in summary.inputs}
    assert statuses == {
        "README.md": "skipped",
        "calico.log": "loaded",
        "node-a.jsonl": "loaded",
        "node-b.jsonl.gz": "loaded",
        "node-c.jsonl": "loaded",
    }


def test_remote_errors_are_one_line_and_leave_no_store(
    s3_env: S3Server, node_files: dict[str, Path], tmp_path: Path
) -> None:
    bucket = _upload(s3_env, {"a.jsonl": node_files["node-a.jsonl"]}, "p")
    store = tmp_path / "store"
    with pytest.raises(IngestError, match="no such file or directory") as missing:
        ingest(store, [f"s3://{bucket}/p/missing.jsonl"])
    assert f"s3://{bucket}/p/missing.jsonl" in str(missing.value)
    with pytest.raises(IngestError, match="no file matches this pattern"):
        ingest(store, [f"s3://{bucket}/p/*.csv"])
    with pytest.raises(IngestError):
        ingest(store, ["s3://no-such-bucket-anywhere/x.jsonl"])
    with pytest.raises(UsageError, match=r"ftp:// inputs are not supported"):
        ingest(store, ["ftp://example.com/flows.jsonl"])
    assert not store.exists()


def test_ingest_cli_reads_a_bucket(
    s3: S3Server, node_files: dict[str, Path], tmp_path: Path
) -> None:
    bucket = _upload(s3, {"a.jsonl.gz": node_files["node-b.jsonl.gz"]}, "in")
    env = {**os.environ, **s3.env()}
    url = f"s3a://{bucket}/in/a.jsonl.gz"
    result = CliRunner().invoke(app, ["ingest", "--store", str(tmp_path / "s"), url], env=env)
    assert result.exit_code == 0, result.output
    assert url in result.output
    missing = CliRunner().invoke(
        app, ["ingest", "--store", str(tmp_path / "s"), url + ".nope"], env=env
    )
    assert missing.exit_code != 0
    assert len(missing.output.strip().splitlines()) == 1, missing.output


def test_explicit_settings_reach_the_bucket_without_the_environment(
    s3: S3Server, node_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = _upload(s3, {"a.jsonl": node_files["node-a.jsonl"]}, "x")
    for key in s3.env():
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    from s3_server import ACCESS_KEY, REGION, SECRET_KEY

    settings = S3Settings(s3.endpoint, ACCESS_KEY, SECRET_KEY, region=REGION)
    assert expand_remote(f"s3a://{bucket}/x/*.jsonl", settings) == [
        (f"s3a://{bucket}/x/a.jsonl", True)
    ]
    assert SECRET_KEY not in repr(settings)
    assert settings.options()["scheme"] == "http"


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("*.jsonl", "a.jsonl", True),
        ("*.jsonl", "d/a.jsonl", False),  # * stays within one segment
        ("*/*.jsonl", "d/a.jsonl", True),
        ("**/*.jsonl", "a.jsonl", True),
        ("**/*.jsonl", "d/e/a.jsonl", True),
        ("d/**", "d/e/a.gz", True),
        ("node-[ab].jsonl*", "node-b.jsonl.gz", True),
        ("node-?.jsonl", "node-10.jsonl", False),
    ],
)
def test_patterns_match_by_path_segment(pattern: str, path: str, hit: bool) -> None:
    assert _matches(pattern.split("/"), path.split("/")) is hit


@pytest.fixture(autouse=True)
def _no_instance_metadata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Without it a missing credential makes the AWS SDK probe EC2 metadata (a slow timeout).
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield
