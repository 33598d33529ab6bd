"""Chunks of complete lines -> canonical rows, with the readers ``analyzer ingest`` uses.

Each chunk is handed to ``FlowReader`` as a small file in the run's working directory, so a
streamed line is read, screened and normalised by exactly the code that reads it from a file:
same rows, same skip reasons. The format is recognised once, on the first chunk that shows
a record (``--format auto``), and kept for the rest of the stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from analyzer.errors import IngestError, UnknownFormatError
from analyzer.ingest._decompress import GZIP_MAGIC, is_zstd
from analyzer.ingest.detect import HEAD_BYTES
from analyzer.ingest.reader import FlowReader
from analyzer.live.lines import LineChunk
from analyzer.schema import empty_flows

__all__ = ["ChunkParser", "Parsed", "lost_events_warning", "unlabelled_warning"]

_CRI_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\S+ (?:stdout|stderr) [FP]")
_LONG = "lines longer than {cap}"


def lost_events_warning(count: int) -> str:
    # Same words as a file ingest (analyzer.ingest.reader).
    return f"{count} events were lost by Hubble (lost_events records): the flow graph is incomplete"


def unlabelled_warning(count: int) -> str:
    return (
        f"{count} flows carry no endpoint labels (a Hubble field mask without "
        "source.labels/destination.labels, or Calico with flowLogsFileIncludeLabels "
        "off?): policies are built from label identities"
    )


@dataclass(slots=True)
class Parsed:
    """Canonical rows of one chunk and what it skipped (stream line numbers)."""

    frame: pl.DataFrame
    skipped: dict[str, list[int]] = field(default_factory=dict)
    skip_counts: dict[str, int] = field(default_factory=dict)
    lost_events: int = 0
    unlabelled: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def skipped_total(self) -> int:
        return sum(self.skip_counts.values())


class ChunkParser:
    """Parses chunks in stream order; ``format`` is known after the first recognised chunk."""

    def __init__(self, fmt: str, work_dir: Path, max_line_bytes: int, label: str) -> None:
        self.requested = fmt
        self.format: str | None = None if fmt == "auto" else fmt
        self.max_line_bytes = max_line_bytes
        self.label = label
        self._file = work_dir / "chunk.jsonl"
        self._held: list[LineChunk] = []  # chunks waiting for the format to be recognised
        self._checked = False

    def parse(self, chunk: LineChunk, *, final: bool) -> Parsed | None:
        """Rows of ``chunk`` (and of chunks held before it); None while ``--format auto``
        has not seen enough to recognise the format (unless ``final``)."""
        if self.format is None or not self._checked:
            self._checked = True
            if is_compressed_head(chunk.data):
                raise IngestError(
                    "compressed input (gzip or zstd) cannot be followed line by line: "
                    "ingest it without --follow",
                    path=self.label,
                )
        if self.format is None:
            self._held.append(chunk)
            merged = _merge(self._held)
            try:
                parsed = self._read(merged, self.requested)
            except (UnknownFormatError, IngestError) as exc:
                if not final and len(merged.data) < HEAD_BYTES:
                    return None  # a stream's first lines may not show a record yet
                raise IngestError(
                    str(exc).removeprefix(f"{self._file}: "), path=self.label
                ) from exc
            self._held.clear()
            return parsed
        try:
            return self._read(chunk, self.format)
        except UnknownFormatError:
            return self._unreadable(chunk)  # no JSON record at all in this chunk
        except IngestError:
            return self._unreadable(chunk)  # blank lines only

    def _read(self, chunk: LineChunk, fmt: str) -> Parsed:
        self._file.write_bytes(chunk.data)
        frames: list[pl.DataFrame] = []
        with FlowReader(
            self._file, fmt, max_line_bytes=self.max_line_bytes, hash_content=False
        ) as reader:
            if reader.layout in ("array", "stream"):
                raise IngestError(
                    "--follow reads one record per line; this is a JSON array or pretty-printed "
                    "JSON: ingest it without --follow",
                    path=self.label,
                )
            frames = [f for f in reader.batches() if f.height]
            self.format = reader.format
            report = reader.report
            parsed = Parsed(
                frame=pl.concat(frames) if frames else empty_flows(),
                lost_events=report.lost_events,
                unlabelled=reader.unlabelled,
            )
        offset = chunk.first_line - 1
        for reason, count in report.counts.items():
            parsed.skip_counts[reason] = count
            parsed.skipped[reason] = [n + offset for n in report.lines.get(reason, [])]
        # Lost events and unlabelled flows are summed over a batch and worded once per commit.
        parsed.warnings = [
            w
            for w in report.warnings
            if "events were lost" not in w and "no endpoint labels" not in w
        ]
        if chunk.long_lines:
            self._add_long_lines(parsed, chunk)
        return parsed

    def _add_long_lines(self, parsed: Parsed, chunk: LineChunk) -> None:
        cap = self.max_line_bytes
        reason = _LONG.format(cap=f"{cap >> 20} MiB" if cap >> 20 else f"{cap} bytes")
        parsed.skip_counts[reason] = parsed.skip_counts.get(reason, 0) + len(chunk.long_lines)
        parsed.skipped.setdefault(reason, []).extend(chunk.long_lines)

    def _unreadable(self, chunk: LineChunk) -> Parsed:
        """A chunk in which no line is a JSON record: every non-blank line is skipped, under
        the reason a file ingest gives such lines."""
        parsed = Parsed(frame=empty_flows())
        for n, line in enumerate(chunk.data.split(b"\n")[: chunk.lines], start=chunk.first_line):
            if not line.strip() or n in chunk.long_lines:
                continue
            reason = (
                "container log lines without a JSON record"
                if _CRI_LINE.match(line)
                else "lines that are not JSON"
            )
            parsed.skip_counts[reason] = parsed.skip_counts.get(reason, 0) + 1
            parsed.skipped.setdefault(reason, []).append(n)
        if chunk.long_lines:
            self._add_long_lines(parsed, chunk)
        return parsed


def is_compressed_head(data: bytes) -> bool:
    return data.startswith(GZIP_MAGIC) or is_zstd(data[:4])


def _merge(chunks: list[LineChunk]) -> LineChunk:
    if len(chunks) == 1:
        return chunks[0]
    return LineChunk(
        b"".join(c.data for c in chunks),
        chunks[0].first_line,
        sum(c.lines for c in chunks),
        tuple(n for c in chunks for n in c.long_lines),
    )
