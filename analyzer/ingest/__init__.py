"""Flow readers: Hubble, Calico flows.log, Goldmane and Whisker into the canonical schema.

Each format module holds a pure ``normalize`` (raw batch -> canonical batch); ``reader`` does
the bytes, ``detect`` picks the format per file, ``analyzer.store`` persists the result.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa

from analyzer.ingest.detect import FORMATS
from analyzer.ingest.reader import DEFAULT_BATCH_ROWS, FlowReader, empty_result_error
from analyzer.ingest.report import ReadResult, Skipped, SkipReason, SkipReport
from analyzer.schema import FLOW_SCHEMA, empty_flows

__all__ = [
    "FORMATS",
    "FlowReader",
    "ReadResult",
    "SkipReason",
    "SkipReport",
    "Skipped",
    "iter_flow_batches",
    "read_flow_file",
]


def read_flow_file(path: str | Path, fmt: str = "auto") -> ReadResult:
    """Read a whole flow file (or ``-`` for stdin) into one canonical frame.

    Raises
    ------
    IngestError
        The input cannot be read, or holds no usable flow record.
    UnknownFormatError
        ``fmt="auto"`` and no reader recognises the content.
    """
    with FlowReader(path, fmt) as reader:
        frames = list(reader.batches())
        if reader.rows == 0:
            raise empty_result_error(reader)
        frame = pl.concat(frames) if frames else empty_flows()
        return ReadResult(
            frame=frame,
            format=reader.format,
            records=reader.rows,
            skipped=reader.report.reasons(),
            warnings=tuple(reader.report.warnings),
            content_hash=reader.stream.content_hash,
            lost_events=reader.report.lost_events,
        )


def iter_flow_batches(
    path: str | Path, fmt: str = "auto", batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Stream a flow file as Arrow record batches of the canonical ``FLOW_SCHEMA``."""
    with FlowReader(path, fmt, batch_rows=batch_rows) as reader:
        for frame in reader.batches():
            yield from frame.to_arrow().cast(FLOW_SCHEMA).to_batches()
