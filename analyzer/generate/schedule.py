"""When each connection happens in a per-event (Hubble) capture.

Time follows output progress: the k-th of N records falls at ``k/N`` of the window, so the
flows always span the window whatever N is. Paths are drawn by rate; on top of that every
legitimate path is scheduled once at a random point (so small files still show every path),
and the attacks run as bursts a little after the middle of the window.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Callable, Iterator

from analyzer.errors import UsageError
from analyzer.generate.model import TrafficPath
from analyzer.generate.scenario import Scenario

__all__ = ["Schedule", "ATTACK_WINDOWS"]

# Fraction of the capture window in which each attack runs.
ATTACK_WINDOWS: dict[str, tuple[float, float]] = {
    "scan": (0.60, 0.62),
    "sweep": (0.63, 0.64),
    "lateral": (0.65, 0.70),
    "exfil": (0.72, 0.74),
}
# Scheduled (coverage + attack) events may use at most this share of the output.
_SCHEDULED_SHARE = 0.25


class Schedule:
    """Iterate ``(path, start time in ns)``; call :meth:`progress` with records written."""

    def __init__(
        self,
        scenario: Scenario,
        flows: int,
        rng: random.Random,
        events_per_connection: Callable[[TrafficPath], float],
    ) -> None:
        if flows < 1:
            raise UsageError(f"--flows must be positive, not {flows}")
        cfg = scenario.config
        self.rng = rng
        self.flows = flows
        self.emitted = 0
        self.start_ns = int(cfg.start.timestamp()) * 1_000_000_000
        self.window_ns = cfg.window_seconds * 1_000_000_000
        planned: list[tuple[float, int, TrafficPath]] = []
        seq = itertools.count()
        for path in scenario.legit_paths:
            planned.append((rng.uniform(0.0, 0.9), next(seq), path))
        for path in scenario.attack_paths:
            lo, hi = ATTACK_WINDOWS[path.category]
            for _ in range(max(1, int(path.rate))):
                planned.append((rng.uniform(lo, hi), next(seq), path))
        planned.sort(key=lambda item: (item[0], item[1]))
        needed = sum(events_per_connection(p) for _, _, p in planned)
        minimum = math.ceil(needed / _SCHEDULED_SHARE / 1000) * 1000
        if flows < minimum:
            raise UsageError(
                f"--flows {flows} is too small for this scenario: showing every path once "
                f"needs at least {minimum} flow records (or use fewer attacks/namespaces)"
            )
        self.planned = planned
        self.paths = list(scenario.legit_paths)
        self.cum = list(itertools.accumulate(p.rate for p in self.paths))

    def progress(self, emitted: int) -> None:
        self.emitted = emitted

    def __iter__(self) -> Iterator[tuple[TrafficPath, int]]:
        rng = self.rng
        planned = self.planned
        i = 0
        total = self.cum[-1]
        end = self.start_ns + self.window_ns - 4_000_000_000
        while True:
            frac = self.emitted / self.flows
            if i < len(planned) and planned[i][0] <= frac:
                at, _, path = planned[i]
                i += 1
                yield path, min(end, self.start_ns + int(at * self.window_ns))
                continue
            path = self.paths[bisect.bisect_right(self.cum, rng.random() * total)]
            t = self.start_ns + int(frac * self.window_ns) + rng.randrange(1_000_000_000)
            yield path, min(end, t)
