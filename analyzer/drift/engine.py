"""``drift``: what changed since the applied policies were generated, judged by the engine.

Connections that started since ``since`` (the store's time-bucket window, docs/scope.md) are
evaluated against the applied policies with
``evaluate_connections`` (the one implementation of the semantics). A connection they deny is
``would-break`` (it went through when seen) or ``blocked`` (it was dropped by policy when
seen). One they allow whose identity edge (source group, destination group, protocol, port)
does not occur in the connections first seen before the baseline (when the policies were
generated; rounded down to its bucket) is a ``new-edge``. Findings are per identity edge,
ordered so that ``-o json`` is byte-identical across runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from analyzer.drift.model import CATEGORY_SEVERITY, DriftFinding
from analyzer.policy.compile import compile_policies
from analyzer.policy.frame import evaluate_connections

if TYPE_CHECKING:
    from analyzer.connections import BucketedConnections
    from analyzer.k8s.inventory import Inventory
    from analyzer.policy.model import NetworkPolicy

__all__ = ["EDGE_KEYS", "drift_findings", "known_edges"]

EDGE_KEYS = ["src_group", "dst_group", "protocol", "dst_port"]
EXAMPLES = 3


def known_edges(bucketed: BucketedConnections, baseline: datetime) -> tuple[pl.DataFrame, int]:
    """Identity edges of the connections first seen before ``baseline`` -- rounded *down* to
    its bucket, so that an edge first seen after the baseline is never taken for a known one
    (at worst one first seen in the baseline's own bucket is reported new) -- and how many
    flow rows those buckets hold."""
    from analyzer.connections import window_connections

    before = window_connections(bucketed, None, bucketed.schedule.floor(baseline))
    return before.frame.select(EDGE_KEYS).unique(), before.stats.rows_in


def _name(side: str) -> pl.Expr:
    return pl.coalesce(
        pl.concat_str(
            [pl.col(f"{side}_namespace"), pl.coalesce(f"{side}_workload", f"{side}_pod")],
            separator="/",
        ),
        pl.col(f"{side}_ip"),
        pl.lit("reserved:") + pl.col(f"{side}_entity"),
    )


def drift_findings(
    policies: Sequence[NetworkPolicy],
    connections: pl.DataFrame,
    known: pl.DataFrame | None,
    *,
    inventory: Inventory | None = None,
    namespaces: Sequence[str] | None = None,
    ipblock_mode: str = "kubernetes",
) -> list[DriftFinding]:
    """Findings for ``connections`` (seen since the start of the drift window).

    ``known`` holds the identity edges seen before the baseline (None: no baseline, so no
    ``new-edge`` findings).
    """
    if connections.height == 0:
        return []
    compiled = compile_policies(list(policies), ipblock_mode=ipblock_mode)
    judged = evaluate_connections(compiled, connections, inventory)
    if namespaces:
        wanted = list(namespaces)
        judged = judged.filter(
            pl.col("src_namespace").is_in(wanted) | pl.col("dst_namespace").is_in(wanted)
        )
    if known is not None:
        judged = judged.join(
            known.with_columns(pl.lit(True).alias("_known")), on=EDGE_KEYS, how="left",
            nulls_equal=True,
        ).with_columns(pl.col("_known").fill_null(False))
    else:
        judged = judged.with_columns(pl.lit(True).alias("_known"))
    was_allowed = pl.col("outcome") == "allowed"
    category = (
        pl.when(was_allowed & ~pl.col("allowed"))
        .then(pl.lit("would-break"))
        .when(~was_allowed & ~pl.col("allowed"))
        .then(pl.lit("blocked"))
        .when(was_allowed & pl.col("allowed") & ~pl.col("_known"))
        .then(pl.lit("new-edge"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    example = pl.concat_str([pl.col("src_key"), pl.col("dst_key")], separator=" -> ")
    rules = pl.concat_list(
        pl.col("egress_rules").fill_null([]), pl.col("ingress_rules").fill_null([])
    )
    grouped = (
        judged.with_columns(
            category.alias("_category"),
            _name("src").alias("_src"),
            _name("dst").alias("_dst"),
            example.alias("_example"),
            rules.alias("_rules"),
        )
        .filter(pl.col("_category").is_not_null())
        .group_by(["_category", *EDGE_KEYS])
        .agg(
            pl.col("_src").drop_nulls().sort().first(),
            pl.col("_dst").drop_nulls().sort().first(),
            pl.col("connections").sum(),
            pl.col("first_seen").min(),
            pl.col("last_seen").max(),
            pl.col("reason").drop_nulls().sort().first(),
            pl.col("_rules").explode().drop_nulls().unique().sort().alias("_allowed_by"),
            pl.col("_example").drop_nulls().unique().sort().head(EXAMPLES).alias("_examples"),
        )
    )
    rank = {"would-break": 0, "blocked": 1, "new-edge": 2}
    ordered = grouped.with_columns(
        pl.col("_category").replace_strict(rank, return_dtype=pl.Int32).alias("_rank")
    ).sort(
        ["_rank", "connections", "_src", "_dst", "protocol", "dst_port", "src_group",
         "dst_group"],
        descending=[False, True, False, False, False, False, False, False],
        nulls_last=True,
    )
    return [
        DriftFinding(
            category=row["_category"],
            severity=CATEGORY_SEVERITY[row["_category"]],
            src=row["_src"] or row["src_group"],
            dst=row["_dst"] or row["dst_group"],
            src_group=row["src_group"],
            dst_group=row["dst_group"],
            protocol=row["protocol"],
            port=row["dst_port"],
            connections=int(row["connections"] or 0),
            first_seen=row["first_seen"],
            last_seen=row["last_seen"],
            reason=row["reason"] or "",
            allowed_by=tuple(row["_allowed_by"] or ()),
            examples=tuple(row["_examples"] or ()),
        )
        for row in ordered.iter_rows(named=True)
    ]
