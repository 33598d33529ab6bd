"""The lone replica: one pod of a replicated workload doing what its siblings never do.

Replicas of a Deployment (or StatefulSet, DaemonSet) run the same code with the same
configuration, so over a window they make the same kinds of contact; a routine edge of the
workload is spread over its pods. A compromised pod among replicas is the exception: the
attacker's shell lives in *one* pod, so its new contact (the API server with a stolen token,
an address to exfiltrate to) comes from that pod alone while its sibling replicas, alive at the
same time, never make it.

An edge is a *lone-replica* edge when every one of its connections came from one pod and at
least one other pod of the same identity and the same owner (the exporter's workload, else the
pod name without its controller suffix) was present when the edge started. Unknown is never
evidence: a connection without a pod name (or with an aggregated name such as Calico's
``name-*``) makes the edge not lone, a bare pod has no siblings, a workload with one pod has
none either.

With one connection, "only one pod did it" is no evidence on its own, so the rules read this
signal only beside a new edge of the source that also came late (`RuleThresholds.lone_replica_p`).
"""

from __future__ import annotations

import polars as pl

from analyzer import schema as c
from analyzer.anomaly.stealth import workload_from_pod

__all__ = ["REPLICA_COLUMNS", "with_lone_replica"]

# Columns this module adds to the edge frame.
REPLICA_COLUMNS: tuple[str, ...] = ("lone_replica", "src_replicas", "lone_pod")


def _owner(side: str, frame: pl.DataFrame) -> pl.Expr:
    """The pod's owner: the exporter's workload name when given, else the pod-name stem."""
    pod = pl.col(f"{side}_pod")
    stem = workload_from_pod(pod)
    if f"{side}_workload" not in frame.columns:
        return stem
    workload = pl.col(f"{side}_workload")
    given = workload.is_not_null() & (workload != "") & (workload != pod)
    return pl.when(given).then(workload).otherwise(stem)


def _known_pod(side: str) -> pl.Expr:
    pod = pl.col(f"{side}_pod")
    return (
        (pl.col(f"{side}_entity") == "pod")
        & pod.is_not_null()
        & (pod != "")
        & ~pod.str.ends_with("*")  # an aggregated name stands for several pods
    ).fill_null(False)


def _pod_spans(frame: pl.DataFrame) -> pl.DataFrame:
    """Every known pod with its identity group, owner and when it was seen (either side)."""
    parts = [
        frame.filter(_known_pod(side)).select(
            pl.col(f"{side}_group").alias("group"),
            _owner(side, frame).alias("owner"),
            pl.col(f"{side}_pod").alias("pod"),
            pl.col(c.FIRST_SEEN).alias("from"),
            pl.col(c.LAST_SEEN).fill_null(pl.col(c.FIRST_SEEN)).alias("to"),
        )
        for side in ("src", "dst")
    ]
    return (
        pl.concat(parts)
        .group_by("group", "owner", "pod")
        .agg(pl.col("from").min(), pl.col("to").max())
    )


def with_lone_replica(connections: pl.DataFrame, edges: pl.DataFrame) -> pl.DataFrame:
    """Add ``lone_replica`` (0/1), ``src_replicas`` and ``lone_pod`` to the edge frame.

    Parameters
    ----------
    connections
        The connection frame the edges were built from (groups filled in, times in UTC).
    edges
        One row per edge (`c.EDGE_KEYS`).

    Returns
    -------
    pl.DataFrame
        `edges` with ``src_replicas`` (pods of the source's identity and owner present when
        the edge started, the edge's own pod included; 0 when unknown), ``lone_pod`` (the one
        pod that made every connection while a sibling was present, else null) and
        ``lone_replica`` (1.0 then, else 0.0).
    """
    keys = list(c.EDGE_KEYS)
    if "src_pod" not in connections.columns or "dst_pod" not in connections.columns:
        return edges.with_columns(
            pl.lit(0.0).alias("lone_replica"),
            pl.lit(0, dtype=pl.UInt32).alias("src_replicas"),
            pl.lit(None, dtype=pl.String).alias("lone_pod"),
        )
    frame = connections.with_columns(pl.col(c.DST_PORT).cast(pl.Int32, strict=False))
    per_edge = (
        frame.with_columns(
            _known_pod("src").alias("_known"), _owner("src", frame).alias("_owner")
        )
        .group_by(keys)
        .agg(
            pl.col("_known").all().alias("_all_known"),
            pl.col("src_pod").filter(pl.col("_known")).n_unique().alias("_pods"),
            pl.col("src_pod").filter(pl.col("_known")).first().alias("_pod"),
            pl.col("_owner").filter(pl.col("_known")).first().alias("_owner"),
            pl.col(c.FIRST_SEEN).min().alias("_start"),
        )
        .filter(pl.col("_all_known") & (pl.col("_pods") == 1))
        .select(*keys, "_pod", "_owner", "_start")
    )
    spans = _pod_spans(frame)
    # Pods of the same identity and owner alive when the edge started (its own pod included).
    alive = (
        per_edge.join(
            spans,
            left_on=[c.SRC_GROUP, "_owner"],
            right_on=["group", "owner"],
            how="inner",
        )
        .filter((pl.col("from") <= pl.col("_start")) & (pl.col("to") >= pl.col("_start")))
        .group_by(keys)
        .agg(
            pl.col("pod").n_unique().alias("src_replicas"),
            (pl.col("pod") != pl.col("_pod")).any().alias("_siblings"),
            pl.col("_pod").first().alias("lone_pod"),
        )
    )
    out = edges.join(alive, on=keys, how="left", nulls_equal=True, maintain_order="left")
    return out.with_columns(
        pl.col("_siblings").fill_null(False).cast(pl.Float64).alias("lone_replica"),
        pl.col("src_replicas").fill_null(0).cast(pl.UInt32),
        pl.when(pl.col("_siblings").fill_null(False)).then(pl.col("lone_pod")).alias("lone_pod"),
    ).drop("_siblings")
