"""Join egress and ingress tables into verdicts for every probe, and keep what changed.

A probe is (source endpoint, destination endpoint, port class) where at least one end is a
pod (NetworkPolicy never applies between two non-pods) and, with a namespace filter, a pod
end is in one of the namespaces. Its verdict under one set is the source's egress verdict AND
the destination's ingress verdict (``policy.evaluate``). Sources are processed in blocks so
memory stays bounded whatever the number of identities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from analyzer.diff.directions import IntArray, SubjectTable, Verdicts
from analyzer.diff.universe import Universe

__all__ = ["SetTables", "Comparison", "compare"]

_BLOCK_CELLS = 2_000_000
_IDS = (
    "old_eg",
    "old_in",
    "new_eg",
    "new_in",
)  # probes per block: four int32 arrays of this size at most


@dataclass(frozen=True, slots=True)
class SetTables:
    """One policy set's egress and ingress tables and their verdict registry."""

    egress: list[SubjectTable]
    ingress: list[SubjectTable]
    verdicts: Verdicts


@dataclass(frozen=True, slots=True)
class Comparison:
    """Changed probes as runs (``i``, ``j``, verdict ids ``old_eg``, ``old_in``, ``new_eg``,
    ``new_in``, port classes ``lo``..``hi``, ``probes``) and, per namespace pair, how many
    probes stayed allowed or denied."""

    cells: pl.DataFrame
    unchanged: pl.DataFrame
    probes: int


def compare(
    universe: Universe, old: SetTables, new: SetTables, namespaces: Sequence[str] | None
) -> Comparison:
    """Every probe judged by both sets; the changed ones, and counts of the others."""
    endpoints = universe.endpoints
    n, m = len(endpoints), len(universe.ports)
    if not old.egress:  # probes not wanted: nothing enumerated
        n = 0
    is_pod = np.array([e.kind == "pod" for e in endpoints], dtype=np.bool_)
    names = sorted({e.namespace for e in endpoints if e.namespace is not None})
    ns_id = np.array(
        [names.index(e.namespace) + 1 if e.namespace is not None else 0 for e in endpoints]
    )
    in_scope = (
        np.array([e.namespace in namespaces for e in endpoints]) & is_pod
        if namespaces is not None
        else is_pod
    )
    old_ok, new_ok = old.verdicts.allowed(), new.verdicts.allowed()
    protocol = np.array([p.protocol for p in universe.ports])
    pairs = len(names) + 1
    kept_allowed = np.zeros(pairs * pairs, dtype=np.int64)
    kept_denied = np.zeros(pairs * pairs, dtype=np.int64)
    cells: list[pl.DataFrame] = []
    probes = 0
    step = max(1, _BLOCK_CELLS // max(1, n * m))
    for start in range(0, n, step):
        block = np.arange(start, min(n, start + step), dtype=np.int32)
        valid = (is_pod[block, None] | is_pod[None, :]) & (
            in_scope[block, None] | in_scope[None, :]
        )
        oe, oi = _gather(old, block)
        ne, ni = _gather(new, block)
        before = old_ok[oe] & old_ok[oi]
        after = new_ok[ne] & new_ok[ni]
        probes += int(valid.sum()) * m
        pair_id = (ns_id[block, None] * pairs + ns_id[None, :]).ravel()
        same = valid[:, :, None] & (before == after)
        kept_allowed += np.bincount(
            pair_id, weights=(same & after).sum(axis=2).ravel(), minlength=pairs * pairs
        ).astype(np.int64)
        kept_denied += np.bincount(
            pair_id, weights=(same & ~after).sum(axis=2).ravel(), minlength=pairs * pairs
        ).astype(np.int64)
        bi, j, c = np.nonzero(valid[:, :, None] & (before != after))
        if len(bi):
            ids = [a[bi, j, c] for a in (oe, oi, ne, ni)]
            cells.append(_runs(block[bi], j, c, ids, protocol))
    labels = [None, *names]
    unchanged = pl.DataFrame(
        {
            "src_namespace": [labels[k // pairs] for k in range(pairs * pairs)],
            "dst_namespace": [labels[k % pairs] for k in range(pairs * pairs)],
            "allowed": kept_allowed,
            "denied": kept_denied,
        },
        schema={
            "src_namespace": pl.String,
            "dst_namespace": pl.String,
            "allowed": pl.Int64,
            "denied": pl.Int64,
        },
    ).filter((pl.col("allowed") + pl.col("denied")) > 0)
    frame = pl.concat(cells) if cells else _empty_cells()
    return Comparison(frame, unchanged, probes)


def _runs(
    i: IntArray,
    j: np.ndarray[Any, Any],
    c: np.ndarray[Any, Any],
    ids: list[IntArray],
    protocol: np.ndarray[Any, Any],
) -> pl.DataFrame:
    """Changed probes (in (i, j, c) order) folded into runs of consecutive port classes of one
    protocol with the same four verdict ids: one row per run with ``lo``/``hi`` classes."""
    brk = np.ones(len(i), dtype=np.bool_)
    brk[1:] = (
        (i[1:] != i[:-1])
        | (j[1:] != j[:-1])
        | (c[1:] != c[:-1] + 1)
        | (protocol[c[1:]] != protocol[c[:-1]])
    )
    for a in ids:
        brk[1:] |= a[1:] != a[:-1]
    starts = np.flatnonzero(brk)
    ends = np.append(starts[1:], len(i)) - 1
    return pl.DataFrame(
        {
            "i": i[starts].astype(np.int32),
            "j": j[starts].astype(np.int32),
            **{k: a[starts] for k, a in zip(_IDS, ids, strict=True)},
            "lo": c[starts].astype(np.int32),
            "hi": c[ends].astype(np.int32),
            "probes": (ends - starts + 1).astype(np.int64),
        }
    )


def _gather(tables: SetTables, block: IntArray) -> tuple[IntArray, IntArray]:
    """Egress ids of the block's sources and ingress ids of every destination from them,
    both shaped (sources, destinations, port classes)."""
    egress = np.stack([tables.egress[i].row(slice(None)) for i in block.tolist()])
    ingress = np.stack([t.row(block) for t in tables.ingress], axis=1)
    return egress, ingress


def _empty_cells() -> pl.DataFrame:
    schema: dict[str, Any] = {k: pl.Int32 for k in ("i", "j", *_IDS, "lo", "hi")}
    return pl.DataFrame(schema={**schema, "probes": pl.Int64})
