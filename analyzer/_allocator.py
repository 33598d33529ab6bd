"""Polars' allocator (jemalloc) told to hand freed pages back to the OS promptly.

By default jemalloc keeps freed pages for 10 s and then only marks them lazily freeable
(``MADV_FREE``: still counted in RSS until the kernel is short of memory). An ingest runs one
big query after another (parse, then the rollup's scans), each of which frees what it used:
retained, those pages stack up, and the ingest's peak RSS is their sum rather than its largest
step (issue 11: 1M flows, 498 -> 411 MB; ``benchmarks/results/ingest-memory-steps.json``).
Decaying dirty pages after 200 ms and returning them with ``MADV_DONTNEED`` costs no
measurable CPU; returning them at once (0 ms) costs a third more CPU in system time.

Within those 200 ms the rollup's derivation still stacked its steps: every thread allocates
from its own arena, and an arena whose thread has gone idle is purged only when that thread
allocates again. One arena shared by all threads (``narenas:1``: what one step frees, the next
reuses), a background thread that purges idle memory on time, and a 50 ms decay take
40-90 MB off the 1M-flow ingest's derivation at the same CPU (issue 11;
``benchmarks/README.md``, "The derivation's peak").

jemalloc reads its configuration once, when polars is loaded, so this runs before anything
imports polars (``analyzer/__init__.py``); a setting in the environment wins.
"""

from __future__ import annotations

import os

ENV = "_RJEM_MALLOC_CONF"  # the prefix of the jemalloc that polars links
SETTING = "dirty_decay_ms:50,muzzy_decay_ms:0,narenas:1,background_thread:true"


def configure() -> None:
    os.environ.setdefault(ENV, SETTING)
