"""Records decoded one by one (the slow path) waiting for a batch, and the outcome of a chunk
parsed natively."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl


@dataclass(frozen=True, slots=True)
class _FastOutcome:
    frame: pl.DataFrame  # canonical rows of the chunk
    skipped: list[tuple[str, list[int]]]  # (reason, line numbers)
    lost_events: int


@dataclass(slots=True)
class _Pending:
    """Decoded records waiting for a batch, with the line each came from."""

    records: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def add(self, record: dict[str, Any], line: int) -> None:
        self.records.append(record)
        self.lines.append(line)

    def take(self) -> tuple[list[dict[str, Any]], list[int]]:
        out = self.records, self.lines
        self.records, self.lines = [], []
        return out

    def __len__(self) -> int:
        return len(self.records)
