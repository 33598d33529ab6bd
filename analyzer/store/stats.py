"""``analyzer stats``: what the store holds, computed lazily over its Parquet parts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from analyzer import schema as S
from analyzer.store.flowstore import FlowStore

__all__ = ["StoreStats", "store_stats"]


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts are flow rows (``rows``) and the connections they stand for (``flows``)."""

    store: str
    inputs: int
    rows: int
    flows: int
    first: datetime | None
    last: datetime | None
    by_format: tuple[tuple[str, int, int], ...]
    by_verdict: tuple[tuple[str, int, int], ...]
    by_namespace: tuple[tuple[str, int, int], ...]
    skipped: tuple[tuple[str, int], ...]
    warnings: tuple[tuple[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        def table(rows: tuple[tuple[str, int, int], ...], key: str) -> list[dict[str, Any]]:
            return [{key: k, "rows": r, "flows": f} for k, r, f in rows]

        return {
            "store": self.store,
            "inputs": self.inputs,
            "rows": self.rows,
            "flows": self.flows,
            "time_window": {
                "first": self.first.isoformat() if self.first else None,
                "last": self.last.isoformat() if self.last else None,
            },
            "by_format": table(self.by_format, "format"),
            "by_verdict": table(self.by_verdict, "verdict"),
            "by_namespace": table(self.by_namespace, "namespace"),
            "skipped": [{"reason": r, "count": c} for r, c in self.skipped],
            "warnings": [{"input": p, "warning": w} for p, w in self.warnings],
        }


def _counts(lf: pl.LazyFrame, key: str) -> tuple[tuple[str, int, int], ...]:
    out = (
        lf.group_by(key)
        .agg(pl.len().alias("rows"), pl.col(S.FLOW_COUNT).sum().alias("flows"))
        .sort(["rows", key], descending=[True, False], nulls_last=True)
        .collect()
    )
    return tuple(
        (str(k) if k is not None else "(none)", int(r), int(f or 0)) for k, r, f in out.iter_rows()
    )


def store_stats(store: FlowStore) -> StoreStats:
    """Summarise ``store``: rows by format, verdict and namespace, time window, skips, warnings.

    A row counts for a namespace when either end is in it (once, even when both are).
    """
    lf = store.scan()
    totals = lf.select(
        pl.len().alias("rows"),
        pl.col(S.FLOW_COUNT).sum().alias("flows"),
        pl.col(S.TIME).min().alias("first"),
        pl.max_horizontal(pl.col(S.TIME).max(), pl.col(S.END_TIME).max()).alias("last"),
    ).collect()
    rows, flows, first, last = totals.row(0)
    ns = lf.select(
        pl.concat_list(S.SRC_NAMESPACE, S.DST_NAMESPACE)
        .list.drop_nulls()
        .list.unique()
        .alias("namespace"),
        S.FLOW_COUNT,
    ).explode("namespace")
    manifest = store.manifest()
    skipped: dict[str, int] = {}
    for entry in manifest:
        for s in entry.skipped:
            skipped[s.reason] = skipped.get(s.reason, 0) + s.count
    return StoreStats(
        store=str(store.root),
        inputs=len(manifest),
        rows=int(rows),
        flows=int(flows or 0),
        first=first,
        last=last,
        by_format=_counts(lf, S.SOURCE_FORMAT),
        by_verdict=_counts(lf, S.VERDICT),
        by_namespace=_counts(ns, "namespace"),
        skipped=tuple(sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0]))),
        warnings=tuple((e.path, w) for e in manifest for w in e.warnings),
    )
