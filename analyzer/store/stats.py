"""``analyzer stats``: what the store holds, from the flow summary the rollup carries (see
``flow_summary``), or one streaming pass over the Parquet parts when the rollup is stale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from analyzer import schema as S
from analyzer.store.flow_summary import read_summary, summary_table
from analyzer.store.flowstore import FlowStore

__all__ = ["StoreStats", "store_stats"]


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts are flow rows (``rows``) and the connections they stand for (``flows``)."""

    store: str
    inputs: int
    # inputs ingested with --no-keep-flows (the rollup alone holds them), and whether the
    # next file ingest keeps its raw flows when not told (the option is sticky)
    inputs_without_raw_flows: int
    keeps_raw_flows: bool
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
            "inputs_without_raw_flows": self.inputs_without_raw_flows,
            "keeps_raw_flows": self.keeps_raw_flows,
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


def _counts(table: pl.DataFrame, key: str | pl.Expr) -> tuple[tuple[str, int, int], ...]:
    """Rows and flows per ``key`` of the summary table, most rows first."""
    name = "key"
    column = pl.col(key) if isinstance(key, str) else key
    keyed = table.select(column.alias(name), "rows", "flows")
    if isinstance(key, pl.Expr):
        keyed = keyed.explode(name)  # a list of keys per row (a namespace list)
    out = (
        keyed.group_by(name)
        .agg(pl.col("rows").sum(), pl.col("flows").sum())
        .sort(["rows", name], descending=[True, False], nulls_last=True)
    )
    return tuple(
        (str(k) if k is not None else "(none)", int(r), int(f or 0)) for k, r, f in out.iter_rows()
    )


def _summary(store: FlowStore) -> pl.DataFrame:
    rollup = store.rollup()
    table = read_summary(rollup.path) if rollup is not None else None
    return table if table is not None else summary_table(store.scan())


def store_stats(store: FlowStore) -> StoreStats:
    """Summarise ``store``: rows by format, verdict and namespace, time window, skips, warnings.

    A row counts for a namespace when either end is in it (once, even when both are).
    """
    table = _summary(store)
    totals = table.select(
        pl.col("rows").sum(), pl.col("flows").sum(), pl.col("first").min(), pl.col("last").max()
    )
    rows, flows, first, last = totals.row(0)
    namespaces = (
        pl.concat_list(S.SRC_NAMESPACE, S.DST_NAMESPACE).list.drop_nulls().list.unique()
    )
    manifest = store.manifest()
    skipped: dict[str, int] = {}
    for entry in manifest:
        for s in entry.skipped:
            skipped[s.reason] = skipped.get(s.reason, 0) + s.count
    return StoreStats(
        store=str(store.root),
        inputs=len(manifest),
        inputs_without_raw_flows=sum(1 for e in manifest if not e.kept),
        keeps_raw_flows=store.keeps_flows(),
        rows=int(rows or 0),
        flows=int(flows or 0),
        first=first,
        last=last,
        by_format=_counts(table, S.SOURCE_FORMAT),
        by_verdict=_counts(table, S.VERDICT),
        by_namespace=_counts(table, namespaces),
        skipped=tuple(sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0]))),
        warnings=tuple((e.path, w) for e in manifest for w in e.warnings),
    )
