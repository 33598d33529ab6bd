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

import numpy as np
import polars as pl

from analyzer.diff.directions import IntArray, SubjectTable, Verdicts
from analyzer.diff.universe import Universe

__all__ = ["SetTables", "Comparison", "compare"]

_BLOCK_CELLS = 2_000_000  # probes per block: four int32 arrays of this size at most


@dataclass(frozen=True, slots=True)
class SetTables:
    """One policy set's egress and ingress tables and their verdict registry."""

    egress: list[SubjectTable]
    ingress: list[SubjectTable]
    verdicts: Verdicts


@dataclass(frozen=True, slots=True)
class Comparison:
    """Changed probes (``i``, ``j``, ``c``, verdict ids ``old_eg``, ``old_in``, ``new_eg``,
    ``new_in``) and, per namespace pair, how many probes stayed allowed or denied."""

    cells: pl.DataFrame
    unchanged: pl.DataFrame
    probes: int


def compare(
    universe: Universe, old: SetTables, new: SetTables, namespaces: Sequence[str] | None
) -> Comparison:
    """Every probe judged by both sets; the changed ones, and counts of the others."""
    endpoints = universe.endpoints
    n, m = len(endpoints), len(universe.ports)
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
            cells.append(
                pl.DataFrame(
                    {
                        "i": block[bi].astype(np.int32),
                        "j": j.astype(np.int32),
                        "c": c.astype(np.int32),
                        "old_eg": oe[bi, j, c],
                        "old_in": oi[bi, j, c],
                        "new_eg": ne[bi, j, c],
                        "new_in": ni[bi, j, c],
                    }
                )
            )
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


def _gather(tables: SetTables, block: IntArray) -> tuple[IntArray, IntArray]:
    """Egress ids of the block's sources and ingress ids of every destination from them,
    both shaped (sources, destinations, port classes)."""
    egress = np.stack([tables.egress[i].row(slice(None)) for i in block.tolist()])
    ingress = np.stack([t.row(block) for t in tables.ingress], axis=1)
    return egress, ingress


def _empty_cells() -> pl.DataFrame:
    return pl.DataFrame(
        schema={k: pl.Int32 for k in ("i", "j", "c", "old_eg", "old_in", "new_eg", "new_in")}
    )
