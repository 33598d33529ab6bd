"""A SparkSession for the ingest, with the one-line errors the CLI shows."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analyzer.errors import ConfigError, UsageError

__all__ = ["INSTALL_HINT", "require_pyspark", "parse_conf", "build_session", "is_local"]

INSTALL_HINT = (
    "--engine spark needs pyspark: pip install 'analyzer[spark]' (and Java 17: "
    "apt-get install default-jre-headless)"
)


def require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc


def parse_conf(items: Sequence[str]) -> list[tuple[str, str]]:
    """``k=v`` strings (``--spark-conf``) -> pairs; a malformed one is a UsageError."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--spark-conf wants KEY=VALUE, got {item!r}")
        out.append((key.strip(), value))
    return out


def is_local(master: str) -> bool:
    return master == "local" or master.startswith("local[")


def _local_worker_env() -> None:
    """In local mode the Python workers are started by this machine's JVM: make them the same
    interpreter with this ``analyzer`` importable (a cluster ships both; docs/spark.md)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    root = str(Path(__file__).resolve().parents[2])
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *parts])


def build_session(master: str | None, conf: Sequence[tuple[str, str]]) -> Any:
    """Start (or join) a SparkSession; ConfigError with the reason when it cannot start."""
    require_pyspark()
    from pyspark.sql import SparkSession

    master = master or "local[*]"
    if is_local(master):
        _local_worker_env()
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise ConfigError(
                "--engine spark needs Java 17 (no java on PATH and no JAVA_HOME): "
                "apt-get install default-jre-headless"
            )
    builder = SparkSession.builder.master(master).appName("analyzer ingest")
    # Arrow batches between the JVM and Python; the UI is of no use to a CLI run.
    builder = builder.config("spark.ui.enabled", "false")
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    for key, value in conf:
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - py4j/pyspark raise many kinds; one line out
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"cannot start Spark (master {master}): {first}") from exc
    session.sparkContext.setLogLevel("ERROR")  # the CLI reports; Spark's WARN lines are noise
    return session
