"""One SparkSession for every Spark test (a JVM start costs seconds), and shared inputs.

Without pyspark or Java the Spark tests skip, saying why; with ANALYZER_REQUIRE_SPARK=1 (set by
.ci/run) they fail instead, so CI cannot pass without running them.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from analyzer.ingest._decompress import zstd


def _unavailable() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install '.[spark]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (apt-get install default-jre-headless)"
    return None


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("ANALYZER_REQUIRE_SPARK") == "1":
            pytest.fail(f"ANALYZER_REQUIRE_SPARK=1 but Spark cannot run: {reason}")
        pytest.skip(reason)
    from analyzer.spark.session import build_session

    session = build_session("local[2]", [("spark.sql.shuffle.partitions", "2")])
    yield session
    session.stop()


HOSTILE_LINES = [
    b"{not json",
    b"\xff\xfe garbage",
    b'{"flow": {"verdict": ',
]


@pytest.fixture(scope="session")
def flow_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every format, several Hubble files (per node), compressed ones, a hostile one, and a
    directory holding a flow file beside a README (walked: the README is skipped)."""
    root = tmp_path_factory.mktemp("spark-inputs")
    scenario = build_scenario(ScenarioConfig(seed=7))
    hubble = write_flows(scenario, root / "hubble-all.jsonl", "hubble", 10_000).read_bytes()
    lines = hubble.splitlines(keepends=True)
    half = len(lines) // 2
    out = {
        "hubble-node1": root / "node1.jsonl",
        "hubble-node2": root / "node2.jsonl.gz",
        "hostile": root / "hostile.jsonl",
    }
    out["hubble-node1"].write_bytes(b"".join(lines[:half]))
    out["hubble-node2"].write_bytes(gzip.compress(b"".join(lines[half:])))
    hostile = [*lines[:200]]
    for i, bad in enumerate(HOSTILE_LINES):
        hostile.insert(10 + 37 * i, bad + b"\n")
    hostile.insert(150, lines[0].replace(b'"destination_port":', b'"destination_port":80.5,"x":'))
    out["hostile"].write_bytes(b"".join(hostile))
    for fmt in ("calico", "goldmane", "whisker"):
        out[fmt] = write_flows(scenario, root / f"{fmt}.jsonl", fmt, 3_000)
    goldmane = out["goldmane"]
    out["goldmane"] = root / "goldmane.jsonl.zst"
    out["goldmane"].write_bytes(zstd.compress(goldmane.read_bytes()))
    goldmane.unlink()
    walked = root / "walked"
    walked.mkdir()
    shutil.copy(out["whisker"], walked / "whisker-copy-dir.jsonl")
    (walked / "README.md").write_text("# not flows\n")
    out["walked"] = walked
    return out
