"""Driver side of ``analyzer ingest --engine spark``.

The store's ``run_ingest`` keeps everything but the per-file work: input expansion, the
writer lock, recovery, the staging directory, the "no flow file at all" check and the ONE
atomic commit (``FlowStore.commit``; a rollup written at commit covers Spark ingests too).
This module supplies its ``Loader``: one Spark task per input path (largest first), each
running ``store.pipeline.load_one`` on an executor (``task.py``); then, in input order, the
first failure is raised as the local ingest would raise it (nothing is committed and the
staging directory, parts of the inputs that did load included, is removed), inputs whose
content another input of the same job already holds become duplicates, and the parts of the
others move into the staging directory for the commit.
"""

from __future__ import annotations

import errno as errno_codes
import glob
import os
import pickle
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from analyzer.errors import (
    AnalyzerError,
    IngestError,
    StoreError,
    UnknownFormatError,
    UsageError,
)
from analyzer.ingest._io import MAX_LINE_BYTES
from analyzer.ingest.reader import DEFAULT_BATCH_ROWS
from analyzer.spark.session import build_session, require_pyspark
from analyzer.spark.task import IN_SCHEMA, OUT_SCHEMA, Outcome, TaskSpec, run_partition
from analyzer.store.flowstore import ManifestEntry
from analyzer.store.pipeline import _duplicate, run_ingest
from analyzer.store.remote import S3Settings, is_remote, is_url, remote_size
from analyzer.store.summary import IngestSummary, InputSummary

__all__ = ["spark_ingest", "resolve_paths", "s3a_settings"]

_GLOB = frozenset("*?[")


def resolve_paths(inputs: Sequence[str]) -> list[str]:
    """Paths the executors open themselves: local paths, ``file://`` URIs, globs (expanded
    here, sorted), and object-store or HDFS URLs (``store.remote``), which the executors
    copy into the staging directory before reading them."""
    out: list[str] = []
    for item in inputs:
        if item == "-":
            raise UsageError("--engine spark reads files, not stdin (-): save it to a file first")
        if is_url(item):  # listed and expanded by the store's input expansion
            out.append(item)
            continue
        item = item.removeprefix("file://")
        if not os.path.exists(item) and _GLOB & set(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise IngestError("no file matches this pattern", path=item)
            out.extend(matches)
        else:
            out.append(item)
    return out


def spark_ingest(
    store_dir: Path,
    inputs: Sequence[str],
    fmt: str = "auto",
    *,
    master: str | None = None,
    conf: Sequence[tuple[str, str]] = (),
    session: Any = None,
    lock_timeout: float = 600.0,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    keep_flows: bool | None = None,
) -> IngestSummary:
    """``analyzer ingest`` with the per-file work on Spark; same store, same errors (and the
    same ``keep_flows``: ``--no-keep-flows``).

    ``session``: an existing SparkSession (left running); else one is started from
    ``master``/``conf`` and stopped at the end.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    paths = resolve_paths(inputs)
    if session is None:
        session = SparkSession.getActiveSession()  # a caller's session: used, left running
    spark = session if session is not None else build_session(master, conf)
    try:
        s3 = s3a_settings(spark)
        loader = partial(_load_on_spark, spark, fmt, batch_rows, s3)
        return run_ingest(
            Path(store_dir),
            paths,
            fmt,
            None,
            lock_timeout=lock_timeout,
            loader=loader,
            s3=s3,
            keep_flows=keep_flows,
        )
    finally:
        if session is None:
            spark.stop()


def s3a_settings(spark: Any) -> S3Settings | None:
    """The S3 settings a Spark user gives for ``s3a://`` (``spark.hadoop.fs.s3a.*``), for the
    executors' pyarrow reads; None when none is set (the executors' AWS environment then)."""

    def get(key: str) -> str | None:
        value = spark.conf.get(f"spark.hadoop.fs.s3a.{key}", None)
        return str(value) if value else None

    tls = get("connection.ssl.enabled")
    settings = S3Settings(
        endpoint=get("endpoint"),
        access_key=get("access.key"),
        secret_key=get("secret.key"),
        session_token=get("session.token"),
        region=get("endpoint.region") or get("region"),
        tls=None if tls is None else tls.strip().lower() == "true",
    )
    return None if settings == S3Settings() else settings


def _load_on_spark(
    spark: Any,
    fmt: str,
    batch_rows: int,
    s3: S3Settings | None,
    targets: list[tuple[str, bool]],
    staged: Path,
    known: dict[str, ManifestEntry],
) -> Iterator[tuple[InputSummary, ManifestEntry | None]]:
    spec = TaskSpec(str(staged), fmt, dict(known), MAX_LINE_BYTES, batch_rows, s3)
    rows = [(i, path, named) for i, (path, named) in enumerate(targets)]
    # Largest first: the long tasks start early, the small ones fill in (tasks run in order).
    rows.sort(key=lambda r: -_size(r[1], s3))
    paths = spark.createDataFrame(spark.sparkContext.parallelize(rows, len(rows)), IN_SCHEMA)
    try:
        answers = paths.mapInArrow(partial(run_partition, spec), OUT_SCHEMA).collect()
    except Exception as exc:  # noqa: BLE001 - py4j wraps executor failures; one line out
        raise IngestError(
            f"the Spark job failed ({_first_line(exc)}); nothing was committed"
        ) from exc
    outcomes: dict[int, Outcome] = {
        int(row["idx"]): pickle.loads(bytes(row["payload"])) for row in answers
    }
    missing = [i for i in range(len(targets)) if i not in outcomes]
    if missing:
        raise IngestError(
            f"the Spark job returned no result for {targets[missing[0]][0]}; nothing was "
            "committed"
        )
    for outcome in (outcomes[i] for i in range(len(targets))):
        _raise(outcome)
    seen: dict[str, ManifestEntry] = {}
    for i in range(len(targets)):
        outcome = outcomes[i]
        summary, entry = outcome.summary, outcome.entry
        assert summary is not None and outcome.directory is not None
        if entry is None:
            yield summary, None
            continue
        prior = seen.get(entry.ingest_id) or seen.get(entry.file_sha256)
        if prior is not None:  # the same content twice in one job: the first one loads
            yield _duplicate(summary.path, entry.ingest_id, prior), None
            continue
        seen.update((key, entry) for key in entry.identities)
        for part in entry.parts:
            os.replace(staged / outcome.directory / part, staged / part)
        yield summary, entry


def _raise(outcome: Outcome) -> None:
    if outcome.error is None:
        return
    if outcome.error == "format":
        raise UnknownFormatError(outcome.message, path=outcome.path)
    if outcome.error == "ingest":
        raise IngestError(outcome.message, path=outcome.path)
    if outcome.error == "store":
        raise StoreError(outcome.message)
    if outcome.error == "os":  # run_ingest turns it into its one StoreError line
        raise OSError(outcome.errno or errno_codes.EIO, outcome.message)
    raise AnalyzerError(outcome.message)


def _size(path: str, s3: S3Settings | None) -> int:
    if is_remote(path):
        return remote_size(path, s3)
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _first_line(exc: BaseException) -> str:
    """The useful line of a py4j/pyspark error (the Python exception an executor raised)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error:" in line or "Exception:" in line:
            return line[:300]
    return (lines[0] if lines else type(exc).__name__)[:300]
