"""One connection however often it was seen: Hubble sessions, Calico reporters, endpoints."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path

import polars as pl

from analyzer import schema as S
from analyzer.connections._derive_columns import (
    _AUD,
    _BUCKET,
    _DEN,
    _DK,
    _DN,
    _DPK,
    _DST_H,
    _EDGE_SCHEMA,
    _L7,
    _LAST,
    _LISTS,
    _ROW,
    _SK,
    _SN,
    _SPK,
    _SRC_H,
    CALICO_FORMATS,
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


Bucketer = Callable[[pl.Expr], pl.Expr] | None
_TS = pl.Datetime("us", "UTC")


def hubble_rows(req: pl.LazyFrame) -> pl.LazyFrame:
    """The compact per-event projection ``hubble_sessions`` works on (Hubble requests only):
    the 5-tuple hash ``_h``, times, nodes and hashed endpoint keys."""
    # the 5-tuple as one 64-bit hash: sorting by it keeps each tuple's rows together at a
    # fraction of the cost (and memory) of a multi-column string sort
    five_tuple = pl.struct(
        pl.coalesce(S.SRC_IP, _SK), S.SRC_PORT, pl.coalesce(S.DST_IP, _DK), S.DST_PORT, S.PROTOCOL
    ).hash()
    node = pl.col(S.NODE).cast(pl.Categorical())
    return req.filter(~pl.col(S.SOURCE_FORMAT).is_in(CALICO_FORMATS).fill_null(False)).select(
        five_tuple.alias("_h"),
        S.DST_PORT,
        pl.col(S.PROTOCOL).cast(pl.Categorical()),
        S.TIME,
        _LAST,
        node.alias(S.NODE),
        # endpoint keys travel as 64-bit hashes too (string min/max per connection is slow);
        # they are mapped back through the endpoint table, whose keys are hashed the same way
        *(
            pl.when(pl.col(c).is_not_null()).then(pl.col(c).hash()).alias(c)
            for c in (_SPK, _DPK, _SK, _DK)
        ),
        # 1 for a Hubble event; more for a row of Hubble's exporter aggregation
        pl.col(S.FLOW_COUNT).fill_null(1).clip(lower_bound=1).cast(pl.Int64),
        _DEN,
        _L7,
        _AUD,
        pl.col(_SN).cast(pl.Categorical()),
        pl.col(_DN).cast(pl.Categorical()),
    )


def hubble_edges(
    req: pl.LazyFrame, tcp_idle: timedelta, other_idle: timedelta, bucket: Bucketer = None
) -> pl.LazyFrame:
    """Per-event rows: sessions of one 5-tuple (several observation points, both nodes,
    retransmits) become one connection; a new one starts after an idle gap. With ``bucket``,
    one row per edge and time bucket of the connection's first event."""
    return hubble_sessions(hubble_rows(req), tcp_idle, other_idle, bucket)


def hubble_sessions(
    rows: pl.LazyFrame, tcp_idle: timedelta, other_idle: timedelta, bucket: Bucketer = None
) -> pl.LazyFrame:
    """``hubble_edges`` of rows projected by ``hubble_rows``. Every session lives inside one
    5-tuple, and the edge aggregates re-aggregate exactly (sums, min, max, unions, any), so
    the edges of a partition of the rows by ``_h`` concatenated and grouped again by edge
    equal the edges of all rows: that bounds the sort's memory on big stores."""
    same = pl.col("_h") == pl.col("_h").shift(1)
    idle = pl.when(pl.col(S.PROTOCOL) == "TCP").then(pl.lit(tcp_idle)).otherwise(pl.lit(other_idle))
    gap = pl.col(S.TIME) - pl.col(S.TIME).shift(1)
    new = (~same | (gap > idle)).fill_null(True)
    sessions = (
        rows.sort(["_h", S.TIME], nulls_last=True)
        .with_columns(new.cum_sum().alias("_conn"))
        .group_by("_conn")
        .agg(
            # max() skips nulls: the pod key when any event of the connection named the pod
            pl.coalesce(pl.col(_SPK).max(), pl.col(_SK).max()).alias(_SRC_H),
            pl.coalesce(pl.col(_DPK).max(), pl.col(_DK).max()).alias(_DST_H),
            pl.col(S.PROTOCOL).first(),
            pl.col(S.DST_PORT).first(),
            # denied when a L3/L4 policy drop hit it, or when nothing but denials was seen (an
            # L7 denial of one request does not deny the TCP connection that carried it)
            pl.when((pl.col(_DEN) & ~pl.col(_L7)).any() | pl.col(_DEN).all())
            .then(pl.lit(DENIED))
            .otherwise(pl.lit(ALLOWED))
            .alias(OUTCOME),
            pl.len().cast(pl.Int64).alias(EVENTS),
            pl.col(S.TIME).min().alias(FIRST_SEEN),
            pl.col(_LAST).max().alias(LAST_SEEN),
            # usually seen by two nodes at most (source's and destination's)
            pl.col(S.NODE).first().alias("_n1"),
            pl.col(S.NODE).last().alias("_n2"),
            pl.col(_SN).drop_nulls().first().alias(SRC_NODE),
            pl.col(_DN).drop_nulls().first().alias(DST_NODE),
            pl.col(_AUD).any().alias(AUDIT),
            pl.col(S.FLOW_COUNT).max().alias(CONNECTIONS),
        )
        .with_columns(pl.col("_n1", "_n2", SRC_NODE, DST_NODE, S.PROTOCOL).cast(pl.String()))
        .with_columns(pl.concat_list("_n1", "_n2", SRC_NODE, DST_NODE).alias(NODES))
        .drop("_n1", "_n2")
    )
    keys = [_SRC_H, _DST_H, S.PROTOCOL, S.DST_PORT, OUTCOME]
    if bucket is not None:
        sessions = sessions.with_columns(bucket(pl.col(FIRST_SEEN)).alias(_BUCKET))
        keys.append(_BUCKET)
    return sessions.group_by(keys).agg(edge_aggs())


def calico_edges(req: pl.LazyFrame, bucket: Bucketer = None) -> pl.LazyFrame:
    """Calico aggregates: ``flow_count`` connections each, reported by the source side and the
    destination side. A connection the source allowed can still be denied at the destination,
    so allowed = destination's count when it reports, else the source's; denied = both sides'
    denials (a connection denied at the source never reaches the destination).

    With ``bucket``, one row per edge and time bucket of the aggregate's start; which sides
    report is still decided over all the rows of the edge (so the buckets sum to the edge)."""
    rows = req.filter(pl.col(S.SOURCE_FORMAT).is_in(CALICO_FORMATS).fill_null(False))
    keys = [SRC_KEY, DST_KEY, S.PROTOCOL, S.DST_PORT]
    groups = [pl.col(_SK).alias(SRC_KEY), pl.col(_DK).alias(DST_KEY), S.PROTOCOL, S.DST_PORT]
    if bucket is not None:
        groups.append(bucket(pl.col(S.TIME)).alias(_BUCKET))
    fc = pl.col(S.FLOW_COUNT).fill_null(1).clip(lower_bound=1)
    rep = pl.col(S.REPORTER).fill_null("").str.to_lowercase()
    den = pl.col(_DEN)
    is_src, is_dst = rep == "src", rep == "dst"
    other = ~is_src & ~is_dst

    def side(outcome: str, keep: pl.Expr) -> list[pl.Expr]:
        return [
            keep.sum().cast(pl.Int64).alias(f"{outcome}_events"),
            pl.col(S.TIME).filter(keep).min().alias(f"{outcome}_first"),
            pl.col(_LAST).filter(keep).max().alias(f"{outcome}_last"),
            pl.col(S.NODE).filter(keep).drop_nulls().unique().alias(f"{outcome}_nodes"),
        ]

    agg = rows.group_by(groups).agg(
        fc.filter(is_src & ~den).sum().alias("a_src"),
        fc.filter(is_dst & ~den).sum().alias("a_dst"),
        fc.filter(other & ~den).sum().alias("a_oth"),
        fc.filter(is_src & den).sum().alias("d_src"),
        fc.filter(is_dst & den).sum().alias("d_dst"),
        fc.filter(other & den).sum().alias("d_oth"),
        is_src.any().alias("has_src"),
        is_dst.any().alias("has_dst"),
        pl.col(S.NODE).filter(is_src).drop_nulls().min().alias(SRC_NODE),
        pl.col(S.NODE).filter(is_dst).drop_nulls().min().alias(DST_NODE),
        *side(ALLOWED, ~den),
        *side(DENIED, den),
    )
    if bucket is None:
        return calico_select(agg.with_columns(pl.lit(None, _TS).alias(_BUCKET)), keys).drop(
            _BUCKET
        )
    return calico_select(agg, keys)


def calico_select(agg: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """Allowed and denied edge rows (per bucket) from the per-(edge, bucket) pre-aggregates of
    ``calico_edges``: which sides report is decided over all the buckets of the edge (so the
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


def endpoint_scalars(req: pl.LazyFrame) -> pl.LazyFrame:
    """One row per endpoint key: namespace, pod, workload, ip, entity, and for each label list
    the row (``2 * row index + side``) of its latest non-empty value. Label lists themselves are
    fetched later for those rows only, so the big pass never holds millions of lists."""

    def side(name: str, bit: int) -> pl.LazyFrame:
        def row_of(column: str) -> pl.Expr:
            return pl.when(pl.col(column).list.len() > 0).then(
                pl.col(_ROW).cast(pl.Int64) * 2 + bit
            )

        return req.select(
            pl.col(f"_{name}_k").alias("key"),
            pl.col(f"{name}_namespace").alias("namespace"),
            pl.col(f"{name}_pod").alias("pod"),
            pl.col(f"{name}_workload").alias("workload"),
            pl.col(f"{name}_ip").alias("ip"),
            (pl.col(f"_{name}_pk").is_not_null() | (pl.col(f"{name}_entity") == "pod")).alias(
                "_is_pod"
            ),
            pl.col(f"{name}_entity").alias("entity"),
            row_of(f"{name}_labels").alias("_labels_row"),
            row_of(f"{name}_namespace_labels").alias("_ns_labels_row"),
        )

    return (
        pl.concat([side("src", 0), side("dst", 1)])
        .group_by("key")
        .agg(
            # one key has one namespace/pod/workload; max() skips nulls and streams
            *(pl.col(c).max() for c in ("namespace", "pod", "workload", "ip", "entity")),
            pl.col("_is_pod").any(),
            pl.col("_labels_row").max(),  # row order is ingest order: the latest set
            pl.col("_ns_labels_row").max(),
        )
        .with_columns(
            pl.when(pl.col("_is_pod"))
            .then(pl.lit("pod"))
            .otherwise(pl.col("entity"))
            .alias("entity")
        )
        .drop("_is_pod")
    )


def endpoint_names(req: pl.LazyFrame) -> pl.LazyFrame:
    """DNS names per endpoint key (only rows that carry names are exploded)."""
    return (
        pl.concat(
            [
                req.select(pl.col(_SK).alias("key"), pl.col(S.SRC_NAMES).alias("names")),
                req.select(pl.col(_DK).alias("key"), pl.col(S.DST_NAMES).alias("names")),
            ]
        )
        .filter(pl.col("names").list.len() > 0)
        .explode("names")
        .unique()
        .group_by("key")
        .agg(pl.col("names").sort())
    )


def read_endpoints(lf: pl.LazyFrame, scalars: pl.DataFrame, names: pl.DataFrame) -> pl.DataFrame:
    """Endpoint attributes with their label lists, read back for the chosen rows only."""
    wanted = pl.concat([scalars["_labels_row"], scalars["_ns_labels_row"]]).drop_nulls() // 2
    ids = wanted.unique().sort()
    lists = (
        lf.filter(pl.col(_ROW).cast(pl.Int64).is_in(ids.implode()))
        .select(_ROW, *_LISTS)
        .collect(engine="streaming")
    )
    by_side = pl.concat(
        [
            lists.select(
                (pl.col(_ROW).cast(pl.Int64) * 2 + bit).alias("_at"),
                pl.col(f"{side}_labels").alias("labels"),
                pl.col(f"{side}_namespace_labels").alias("namespace_labels"),
            )
            for side, bit in (("src", 0), ("dst", 1))
        ]
    )
    return (
        scalars.join(
            by_side.select("_at", "labels"), left_on="_labels_row", right_on="_at", how="left"
        )
        .join(
            by_side.select("_at", "namespace_labels"),
            left_on="_ns_labels_row",
            right_on="_at",
            how="left",
        )
        .drop("_labels_row", "_ns_labels_row")
        .join(names, on="key", how="left")
    )



def empty_hub(bucketed: bool = False) -> pl.DataFrame:
    schema = {k: v for k, v in _EDGE_SCHEMA.items() if k not in (SRC_KEY, DST_KEY)}
    extra = {_BUCKET: _TS} if bucketed else {}
    return pl.DataFrame(schema={_SRC_H: pl.UInt64(), _DST_H: pl.UInt64(), **schema, **extra})


def empty_cal(bucketed: bool = False) -> pl.DataFrame:
    extra = {_BUCKET: _TS} if bucketed else {}
    return pl.DataFrame(schema={**_EDGE_SCHEMA, **extra})


# Hubble request rows sorted at once at most (about 80 bytes each in the sort): above, the
# rows are split by 5-tuple hash and sorted partition by partition (``partitioned_hubble``).
PARTITION_ROWS = 500_000
# Overrides PARTITION_ROWS (tests force partitioning on small stores with it).
PARTITION_ENV = "ANALYZER_PARTITION_ROWS"


def partition_count(rows: int) -> int:
    """How many 5-tuple-hash partitions ``rows`` Hubble request rows are sorted in."""
    limit = int(os.environ.get(PARTITION_ENV) or PARTITION_ROWS)
    return max(1, -(-rows // max(1, limit)))


def partitioned_hubble(
    req: pl.LazyFrame,
    rows: int,
    tcp_idle: timedelta,
    other_idle: timedelta,
    bucket: Bucketer,
    *,
    spill: Path | None,
    collect: Callable[[pl.LazyFrame], pl.DataFrame],
) -> pl.DataFrame:
    """``hubble_edges(req, ...)`` collected with bounded memory: with more than
    ``PARTITION_ROWS`` request rows (``rows``: an upper bound), the compact projection is
    written once to a temporary Parquet file in ``spill`` (or, without one, recomputed per
    partition) and each partition of it by 5-tuple hash is sessionized on its own. Exact:
    sessions never span 5-tuples, and the caller groups the edges again (``edge_aggs``)."""
    k = partition_count(rows)
    if k == 1:
        return collect(hubble_edges(req, tcp_idle, other_idle, bucket))
    with tempfile.TemporaryDirectory(dir=spill, prefix=".hubble-") if spill else nullcontext(
        None
    ) as tmp:
        source = hubble_rows(req)
        if tmp is not None:
            path = Path(tmp) / "rows.parquet"
            source.sink_parquet(path, compression="lz4", engine="streaming")
            source = pl.scan_parquet(path)
        return pl.concat(
            [
                collect(
                    hubble_sessions(
                        source.filter(pl.col("_h") % k == part), tcp_idle, other_idle, bucket
                    )
                )
                for part in range(k)
            ],
            how="vertical_relaxed",
        )
