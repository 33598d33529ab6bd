"""Polars' allocator (jemalloc) told to hand freed pages back to the OS promptly.

By default jemalloc keeps freed pages for 10 s and then only marks them lazily freeable
(``MADV_FREE``: still counted in RSS until the kernel is short of memory). An ingest runs one
big query after another (parse, then the rollup's scans), each of which frees what it used:
retained, those pages stack up, and the ingest's peak RSS is their sum rather than its largest
step (issue 11: 1M flows, 498 -> 411 MB; ``benchmarks/results/ingest-memory-steps.json``).
Decaying dirty pages after 200 ms and returning them with ``MADV_DONTNEED`` costs no
measurable CPU; returning them at once (0 ms) costs a third more CPU in system time.

Within those 200 ms the rollup's derivation still stacked its steps: every thread allocates
from its own arena (jemalloc makes four per CPU), and an arena whose thread has gone idle is
purged only when that thread allocates again. Fewer arenas shared by the threads (what one
step frees, the next reuses), a background thread that purges idle memory on time, and a
50 ms decay take 40-90 MB off the 1M-flow ingest's derivation at the same CPU (issue 11;
``benchmarks/README.md``, "The derivation's peak"). That was measured on 2 CPUs with one
arena. An arena's lock is shared by its threads, so on larger machines there is one arena per
two CPUs (not measured there: two threads per lock is little contention, and the peak
matters less with the memory such machines have).

jemalloc reads its configuration once, when polars is loaded, so this runs before anything
imports polars (``analyzer/__init__.py``); a setting in the environment wins.
"""

from __future__ import annotations

import os

ENV = "_RJEM_MALLOC_CONF"  # the prefix of the jemalloc that polars links


def setting(cpus: int | None = None) -> str:
    """The jemalloc configuration for ``cpus`` CPUs (default: those this process may use)."""
    if cpus is None:  # (the affinity: those polars' thread pool sizes itself by)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    arenas = max(1, (cpus or os.cpu_count() or 1) // 2)
    return f"dirty_decay_ms:50,muzzy_decay_ms:0,narenas:{arenas},background_thread:true"


def configure() -> None:
    os.environ.setdefault(ENV, setting())
