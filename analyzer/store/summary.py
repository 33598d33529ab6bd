"""What an ingest reports, per input and in total."""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.ingest.report import SkipReason


@dataclass(frozen=True, slots=True)
class InputSummary:
    """What happened to one input: ``loaded``, ``duplicate`` (no-op) or ``skipped``."""

    path: str
    status: str
    format: str | None = None
    rows: int = 0
    skipped: tuple[SkipReason, ...] = ()
    warnings: tuple[str, ...] = ()
    ingest_id: str | None = None
    message: str | None = None

    @property
    def skipped_total(self) -> int:
        return sum(s.count for s in self.skipped)


@dataclass(frozen=True, slots=True)
class IngestSummary:
    store: str
    created: bool
    inputs: tuple[InputSummary, ...]

    @property
    def rows_loaded(self) -> int:
        return sum(i.rows for i in self.inputs if i.status == "loaded")
