"""Executor side: each task opens its input PATHS itself and runs the store's per-file ingest.

A task gets rows ``(idx, path, named)`` (a DataFrame of paths, never file contents: the
executor streams each file in bounded batches, so a file's size does not bound the JVM or
the Python worker), writes that input's Parquet parts into its own directory under the
ingest's staging directory, and answers one small row per input: the pickled ``Outcome``.
The driver commits (``analyzer.spark.job``).
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from analyzer.errors import AnalyzerError, IngestError, StoreError, UnknownFormatError
from analyzer.store.flowstore import ManifestEntry
from analyzer.store.pipeline import load_one
from analyzer.store.remote import S3Settings
from analyzer.store.summary import InputSummary

__all__ = ["TaskSpec", "Outcome", "OUT_SCHEMA", "IN_SCHEMA", "run_partition", "load_task"]

IN_SCHEMA = "idx long, path string, named boolean"
OUT_SCHEMA = "idx long, payload binary"
_OUT_ARROW = pa.schema([pa.field("idx", pa.int64()), pa.field("payload", pa.binary())])


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What every task needs (pickled into the job's closure)."""

    staged: str
    fmt: str
    known: dict[str, ManifestEntry]
    max_line_bytes: int
    batch_rows: int
    s3: S3Settings | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One input's result. ``error`` kinds: ingest (IngestError), format (UnknownFormatError),
    store (StoreError), os (an OSError: errno in ``errno``), other (any AnalyzerError)."""

    summary: InputSummary | None = None
    entry: ManifestEntry | None = None
    directory: str | None = None  # this attempt's directory under staging (holds the parts)
    error: str | None = None
    message: str = ""
    path: str | None = None
    errno: int = 0


def load_task(spec: TaskSpec, idx: int, path: str, named: bool) -> Outcome:
    # One directory per attempt: a retried or speculative attempt never mixes its parts with
    # a failed one's; the driver moves only the parts of the attempt whose answer it got.
    directory = f"spark-{idx:06d}-{uuid.uuid4().hex[:12]}"
    task_dir = Path(spec.staged) / directory
    try:
        task_dir.mkdir()
        summary, entry = load_one(
            path,
            named,
            staged=task_dir,
            fmt=spec.fmt,
            known=spec.known,
            progress=None,
            max_line_bytes=spec.max_line_bytes,
            batch_rows=spec.batch_rows,
            s3=spec.s3,
        )
    except UnknownFormatError as exc:
        return Outcome(error="format", message=_bare(exc), path=exc.path)
    except IngestError as exc:
        return Outcome(error="ingest", message=_bare(exc), path=exc.path)
    except StoreError as exc:
        return Outcome(error="store", message=str(exc))
    except AnalyzerError as exc:
        return Outcome(error="other", message=str(exc))
    except OSError as exc:
        return Outcome(error="os", message=exc.strerror or str(exc), errno=exc.errno or 0)
    return Outcome(summary, entry, directory)


def _bare(exc: IngestError) -> str:
    """The message without the ``path: `` prefix ``IngestError`` adds (re-added on raise)."""
    text = str(exc)
    return text.removeprefix(f"{exc.path}: ") if exc.path else text


def run_partition(spec: TaskSpec, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: rows of paths in, one outcome row per path out."""
    for batch in batches:
        columns = batch.to_pydict()
        for idx, path, named in zip(
            columns["idx"], columns["path"], columns["named"], strict=True
        ):
            outcome = load_task(spec, int(idx), str(path), bool(named))
            yield pa.RecordBatch.from_pydict(
                {"idx": [idx], "payload": [pickle.dumps(outcome)]}, schema=_OUT_ARROW
            )
