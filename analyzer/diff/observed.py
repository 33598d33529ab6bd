"""Observed connections judged by both sets, exactly as ``analyzer simulate`` judges them.

Each distinct connection (``policy.simulate.distinct_connections``) goes through
``evaluate_connections`` once per set; its verdict columns come back prefixed ``old_`` and
``new_``. Each row is also placed in the probe universe (``i``, ``j``: its endpoints; ``c``:
its port class) so that its evidence can be attached to the probe change that contains it.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

import numpy as np
import polars as pl

from analyzer.diff.universe import Universe, endpoint_hash
from analyzer.k8s.inventory import Inventory
from analyzer.policy.compile import CompiledPolicies
from analyzer.policy.frame import RESULT_COLUMNS, evaluate_connections

__all__ = ["judge_observed", "signature"]

def judge_observed(
    edges: pl.DataFrame,
    old: CompiledPolicies,
    new: CompiledPolicies,
    inventory: Inventory | None,
    universe: Universe,
    namespaces: Sequence[str] | None,
    old_judged: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``edges`` (distinct connections) with ``old_*``/``new_*`` verdicts, ``working``
    (the flow logs show it allowed), the signatures ``old_sig``/``new_sig`` and the probe
    coordinates ``i``, ``j``, ``c`` (null where the universe has no class for it).

    ``old_judged``: ``edges`` row for row with ``old``'s verdict columns already added
    (``evaluate_connections``), when the caller has them (the report: ``Analysis.verdicts``);
    the old set is then not evaluated a second time."""
    if namespaces is not None:
        ns = list(namespaces)
        within = pl.col("src_namespace").is_in(ns) | pl.col("dst_namespace").is_in(ns)
        edges = edges.filter(within)
        if old_judged is not None:
            old_judged = old_judged.filter(within)
    judged = edges
    for prefix, compiled in (("old_", old), ("new_", new)):
        if prefix == "old_" and old_judged is not None:
            # evaluate_connections returns the frame untouched plus RESULT_COLUMNS: the same
            judged = pl.concat([judged, old_judged.select(RESULT_COLUMNS)], how="horizontal")
        else:
            judged = evaluate_connections(compiled, judged, inventory)
        judged = judged.rename({c: prefix + c for c in RESULT_COLUMNS})
    judged = judged.with_columns(
        pl.col("observed").list.contains("allowed").alias("working"),
        *(_signature(prefix).alias(f"{prefix}sig") for prefix in ("old_", "new_")),
    )
    for side, name in (("src", "i"), ("dst", "j")):
        lookup = universe.observed.rename({"_eid": "_k", "_ep": name})
        judged = (
            judged.with_columns(endpoint_hash(side).alias("_k"))
            .join(lookup, on="_k", how="left", maintain_order="left")
            .drop("_k")
        )
    return judged.with_columns(_port_class(judged, universe))


def _signature(prefix: str) -> pl.Expr:
    """The decision fields as one string, comparable with a probe's (``assemble``)."""
    return pl.concat_str(
        [
            pl.col(f"{prefix}allowed").cast(pl.String),
            pl.col(f"{prefix}egress_rules").list.join(","),
            pl.col(f"{prefix}ingress_rules").list.join(","),
            pl.col(f"{prefix}egress_isolated").cast(pl.String),
            pl.col(f"{prefix}ingress_isolated").cast(pl.String),
        ],
        separator="|",
    )


def signature(
    allowed: bool,
    egress_rules: Sequence[str],
    ingress_rules: Sequence[str],
    egress_isolated: bool,
    ingress_isolated: bool,
) -> str:
    """Python twin of :func:`_signature` (polars writes booleans as ``true``/``false``)."""
    parts = [
        allowed,
        ",".join(egress_rules),
        ",".join(ingress_rules),
        egress_isolated,
        ingress_isolated,
    ]
    return "|".join(str(p).lower() if isinstance(p, bool) else str(p) for p in parts)


def _port_class(frame: pl.DataFrame, universe: Universe) -> pl.Series:
    """Index of each row's port class; null for a protocol a policy cannot name, or no port."""
    protocols = frame["protocol"].str.to_uppercase().to_numpy()
    ports = frame["dst_port"].fill_null(0).to_numpy()
    out = np.full(frame.height, -1, dtype=np.int64)
    offset = 0
    for protocol, members in groupby(universe.ports, key=lambda p: p.protocol):
        lows = np.array([p.low for p in members])
        rows = (protocols == protocol) & (ports >= 1)
        out[rows] = offset + np.searchsorted(lows, ports[rows], side="right") - 1
        offset += len(lows)
    series = pl.Series("c", out)
    return series.set(series < 0, None).cast(pl.Int32)
