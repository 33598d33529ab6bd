"""Labels of pods the flows show without any, taken from the inventory (the API server's
truth): flows exported with a field mask often drop labels, and every unlabelled pod of a
namespace would otherwise share one identity."""

from __future__ import annotations

import polars as pl

from analyzer.connections import Connections
from analyzer.identity import group_key_expr, stable_labels
from analyzer.k8s.inventory import Inventory

__all__ = ["label_from_inventory"]


def label_from_inventory(
    connections: Connections, inventory: Inventory
) -> tuple[Connections, tuple[str, ...]]:
    """``connections`` with the inventory's labels on pods that had none (their groups
    re-keyed), and the endpoint keys (``ns/pod``) that took them, sorted."""
    pods = [p for p in inventory.pods.values() if p.labels]
    known = pl.DataFrame(
        {
            "_ns": [p.namespace for p in pods],
            "_pod": [p.name for p in pods],
            "_inv": [stable_labels(f"{k}={v}" for k, v in p.labels.items()) for p in pods],
        },
        schema={"_ns": pl.String, "_pod": pl.String, "_inv": pl.List(pl.String)},
    )
    frame = connections.frame
    filled: set[str] = set()
    for side in ("src", "dst"):
        ns, pod, labels = f"{side}_namespace", f"{side}_pod", f"{side}_labels"
        frame = frame.join(known, left_on=[ns, pod], right_on=["_ns", "_pod"], how="left",
                           maintain_order="left")
        use = ((pl.col(f"{side}_entity") == "pod") & (pl.col(labels).list.len() == 0)
               & pl.col("_inv").is_not_null()).fill_null(False)
        filled.update(frame.filter(use)[f"{side}_key"].to_list())
        frame = frame.with_columns(
            pl.when(use).then(pl.col("_inv")).otherwise(pl.col(labels)).alias(labels),
            pl.col(f"{side}_group").alias("_old_group"), use.alias("_use"),
        )
        group = group_key_expr(ns, labels, f"{side}_entity", f"{side}_ip")
        frame = frame.with_columns(
            pl.when(pl.col("_use")).then(group).otherwise(pl.col("_old_group"))
            .alias(f"{side}_group")
        ).drop("_inv", "_old_group", "_use")
    if not filled:
        return connections, ()
    return Connections(frame=frame, stats=connections.stats), tuple(sorted(filled))
