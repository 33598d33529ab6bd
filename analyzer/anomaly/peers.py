"""How unlike the established other clients of its server port each client is.

Split from `stealth` (which computes the columns this reads: ``steady``, ``src_kind``,
``src_env``, ``src_labels``): namespace, controller kind and labels of a client against the
clients that used the same server port steadily through the window.
"""

from __future__ import annotations

import polars as pl

from analyzer import schema as c

__all__ = ["DNS_PORT", "with_unlike"]

DNS_PORT = 53


def _label_overlap(edges: pl.DataFrame, port: list[str]) -> pl.DataFrame:
    """Whether each client shares a label with an established *other* client of its port."""
    exploded = (
        edges.select(*c.EDGE_KEYS, "src_labels", "steady")
        .explode("src_labels")
        .filter(pl.col("src_labels").is_not_null())
    )
    steady_counts = (
        exploded.filter(pl.col("steady"))
        .group_by([*port, "src_labels"])
        .agg(pl.col(c.SRC_GROUP).n_unique().alias("n"))
    )
    return (
        exploded.join(steady_counts, on=[*port, "src_labels"], how="left", nulls_equal=True)
        .with_columns((pl.col("n").fill_null(0) - pl.col("steady").cast(pl.Int64)).alias("n"))
        .group_by(list(c.EDGE_KEYS))
        .agg((pl.col("n") > 0).any().alias("shares_label"))
    )


def _others(count: pl.Expr) -> pl.Expr:
    """An established-client count over a partition, without the edge itself."""
    return count - pl.col("steady").cast(pl.UInt32)


def with_unlike(edges: pl.DataFrame, port: list[str]) -> pl.DataFrame:
    """How unlike the established other clients of its server port a client is (0-3).

    Only established clients (steady through the window and answered) are the yardstick: a
    second intruder on the same port must not make the first one look ordinary.
    """
    steady_src = pl.col(c.SRC_GROUP).filter(pl.col("steady"))
    kind = pl.col("src_kind")
    edges = edges.with_columns(
        _others(steady_src.n_unique().over(port)).alias("other_clients_on_port"),
        _others(steady_src.n_unique().over([*port, "src_namespace"])).alias(
            "namespace_steady_clients_on_port"
        ),
        _others(steady_src.n_unique().over([*port, pl.coalesce("src_env", "src_namespace")])).alias(
            "env_clients_on_port"
        ),
        _others(steady_src.n_unique().over([*port, "src_kind"])).alias("same_kind_clients"),
        pl.col(c.SRC_GROUP)
        .filter(pl.col("steady") & pl.col("src_kind").is_not_null())
        .n_unique()
        .over(port)
        .alias("known_kind_clients"),
    )
    edges = edges.join(_label_overlap(edges, port), on=list(c.EDGE_KEYS), how="left",
                       nulls_equal=True)  # fmt: skip
    has_labels = pl.col("src_labels").list.len().fill_null(0) > 0
    others = pl.col("other_clients_on_port") > 0
    known_other_kinds = pl.col("known_kind_clients") - (pl.col("steady") & kind.is_not_null()).cast(
        pl.UInt32
    )
    edges = edges.with_columns(
        (others & (pl.col("namespace_steady_clients_on_port") == 0))
        .cast(pl.Float64)
        .alias("unlike_namespace"),
        # Only when this client's kind and some established client's kind are known.
        (others & kind.is_not_null() & (pl.col("same_kind_clients") == 0) & (known_other_kinds > 0))
        .fill_null(False)
        .cast(pl.Float64)
        .alias("unlike_kind"),
        (others & has_labels & ~pl.col("shares_label").fill_null(False))
        .cast(pl.Float64)
        .alias("unlike_labels"),
    )
    not_dns = pl.col(c.DST_PORT).fill_null(-1) != DNS_PORT
    return edges.with_columns(
        pl.when(not_dns & (pl.col("src_entity") == "pod"))
        .then(pl.sum_horizontal("unlike_namespace", "unlike_kind", "unlike_labels"))
        .otherwise(0.0)
        .alias("unlike_score")
    ).drop("shares_label", "same_kind_clients", "known_kind_clients")
