"""What a read skipped and why: counts per reason with the first offending line numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

__all__ = ["FIRST_LINES_KEPT", "SkipReason", "Skipped", "SkipReport", "ReadResult"]

FIRST_LINES_KEPT = 5


@dataclass(frozen=True, slots=True)
class SkipReason:
    """One reason: how many records were skipped and the first line numbers."""

    reason: str
    count: int
    first_lines: tuple[int, ...]

    def describe(self) -> str:
        lines = ", ".join(str(n) for n in self.first_lines)
        more = ", ..." if self.count > len(self.first_lines) else ""
        where = f" (line{'s' if len(self.first_lines) > 1 else ''} {lines}{more})" if lines else ""
        return f"{self.count} {self.reason}{where}"


class Skipped(tuple[SkipReason, ...]):
    """The skip reasons of one input (iterate them), most frequent first, with their total."""

    __slots__ = ()

    @property
    def total(self) -> int:
        return sum(r.count for r in self)

    def describe(self) -> str:
        return "; ".join(r.describe() for r in self)


@dataclass(slots=True)
class SkipReport:
    """Accumulates skipped records while a file is read (mutable; owned by one reader)."""

    counts: dict[str, int] = field(default_factory=dict)
    lines: dict[str, list[int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    lost_events: int = 0

    def add(self, reason: str, line: int | None, count: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + count
        kept = self.lines.setdefault(reason, [])
        if line is not None and len(kept) < FIRST_LINES_KEPT:
            kept.append(line)

    def add_many(self, reason: str, lines: list[int]) -> None:
        if not lines:
            return
        self.counts[reason] = self.counts.get(reason, 0) + len(lines)
        kept = self.lines.setdefault(reason, [])
        kept.extend(lines[: max(0, FIRST_LINES_KEPT - len(kept))])

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def reasons(self) -> Skipped:
        return Skipped(
            SkipReason(reason, count, tuple(sorted(self.lines.get(reason, []))))
            for reason, count in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        )

    def describe(self) -> str:
        return "; ".join(r.describe() for r in self.reasons())


@dataclass(frozen=True, slots=True)
class ReadResult:
    """A whole flow file read into memory (see ``iter_flow_batches`` for streaming)."""

    frame: pl.DataFrame
    format: str
    records: int
    skipped: Skipped
    warnings: tuple[str, ...]
    content_hash: str | None
    lost_events: int = 0  # events the source reported lost (Hubble lost_events records)
