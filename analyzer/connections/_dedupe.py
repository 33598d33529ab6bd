"""One connection however often it was seen: the edge aggregates, the Calico reporter choice,
and the partitioning of big Hubble sorts (the map, merge and finish around them: ``_state``)."""

from __future__ import annotations

import os

import polars as pl

from analyzer.connections._derive_columns import (
    _BUCKET,
    _DST_H,
    _EDGE_SCHEMA,
    _SRC_H,
)
from analyzer.schema import (
    ALLOWED,
    AUDIT,
    CONNECTIONS,
    DENIED,
    DST_KEY,
    DST_NODE,
    EVENTS,
    FIRST_SEEN,
    LAST_SEEN,
    NODES,
    OUTCOME,
    SRC_KEY,
    SRC_NODE,
)


def edge_aggs() -> list[pl.Expr]:
    return [
        pl.col(CONNECTIONS).sum(),
        pl.col(EVENTS).sum(),
        pl.col(FIRST_SEEN).min(),
        pl.col(LAST_SEEN).max(),
        pl.col(NODES).explode().drop_nulls().unique().sort(),
        pl.col(SRC_NODE).drop_nulls().min(),
        pl.col(DST_NODE).drop_nulls().min(),
        pl.col(AUDIT).any(),
    ]


_TS = pl.Datetime("us", "UTC")


def calico_select(agg: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """Allowed and denied edge rows (per bucket) from the per-(edge, bucket) pre-aggregates of
    ``_state._map_calico``: which sides report is decided over all the buckets of the edge (so the
    buckets sum to the edge)."""
    agg = agg.with_columns(pl.col("has_src", "has_dst").any().over(keys))
    allowed = (
        pl.when(pl.col("has_dst"))
        .then(pl.col("a_dst"))
        .when(pl.col("has_src"))
        .then(pl.col("a_src"))
        .otherwise(pl.col("a_oth"))
    )
    denied = (
        pl.col("d_src")
        + pl.col("d_dst")
        + pl.when(pl.col("has_src") | pl.col("has_dst")).then(0).otherwise(pl.col("d_oth"))
    )
    # an edge without requests on one side is no edge; the whole edge decides (a bucket of an
    # edge may hold 0 requests but events, first/last seen, nodes)
    positive = pl.col(CONNECTIONS).sum().over(keys) > 0
    parts = [
        agg.select(
            *keys,
            _BUCKET,
            pl.lit(outcome).alias(OUTCOME),
            count.cast(pl.Int64).alias(CONNECTIONS),
            pl.col(f"{outcome}_events").alias(EVENTS),
            pl.col(f"{outcome}_first").alias(FIRST_SEEN),
            pl.col(f"{outcome}_last").alias(LAST_SEEN),
            pl.col(f"{outcome}_nodes").alias(NODES),
            SRC_NODE,
            DST_NODE,
            pl.lit(False).alias(AUDIT),
        ).filter(positive)
        for outcome, count in ((ALLOWED, allowed), (DENIED, denied))
    ]
    return pl.concat(parts)


def empty_hub(bucketed: bool = False) -> pl.DataFrame:
    schema = {k: v for k, v in _EDGE_SCHEMA.items() if k not in (SRC_KEY, DST_KEY)}
    extra = {_BUCKET: _TS} if bucketed else {}
    return pl.DataFrame(schema={_SRC_H: pl.UInt64(), _DST_H: pl.UInt64(), **schema, **extra})


def empty_cal(bucketed: bool = False) -> pl.DataFrame:
    extra = {_BUCKET: _TS} if bucketed else {}
    return pl.DataFrame(schema={**_EDGE_SCHEMA, **extra})


# Hubble request rows sorted at once at most (about 80 bytes each in the sort): above, the
# rows are split by 5-tuple hash and sorted partition by partition (``_state._map_sessions``).
PARTITION_ROWS = 500_000
# Partial sessions of a stored derivation state merged and finished at once (about 160 bytes
# each, a few copies in the merge): the ranges ``store.rollup.stage_incremental`` reads.
SESSION_PARTITION_ROWS = 100_000
# Endpoint rows of a derivation state merged and finished at once (label lists: a few hundred
# bytes each): the ranges of their key hash ``store.rollup`` reads and writes.
ENDPOINT_PARTITION_ROWS = 50_000
# Overrides PARTITION_ROWS, SESSION_PARTITION_ROWS and ENDPOINT_PARTITION_ROWS (tests force
# partitioning on small stores with it).
PARTITION_ENV = "ANALYZER_PARTITION_ROWS"


def partition_count(rows: int, limit: int = PARTITION_ROWS) -> int:
    """How many 5-tuple-hash partitions ``rows`` Hubble request rows (or ``limit``-sized
    batches of other rows) are split in."""
    limit = int(os.environ.get(PARTITION_ENV) or limit)
    return max(1, -(-rows // max(1, limit)))
