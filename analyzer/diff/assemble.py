"""Changed probes and observed connections -> :class:`Change` rows, one per identity pair and
decision pair.

Probe cells (source endpoint, destination endpoint, port class) with the same verdicts merge:
consecutive port classes become ranges (``TCP 1-79``), address classes with the same change
become a list of address ranges, pod identities of one group merge. Observed connections that
changed verdict attach to the probe change containing them (same endpoints, port class and
decisions); the few a probe cannot stand for (a protocol a policy cannot name, a peer without
an address) become changes of their own, so no observed change is ever dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from analyzer.diff.directions import OTHER_TOKEN, PORT_TOKEN, Verdicts
from analyzer.diff.model import (
    DST_TOKEN,
    PORTS_TOKEN,
    SRC_TOKEN,
    Change,
    Decision,
    ObservedEvidence,
)
from analyzer.diff.observed import signature
from analyzer.diff.universe import ADDRESS_TOKEN, ADDRESSES, Universe, range_text
from analyzer.policy.evaluate import DirectionVerdict

__all__ = ["probe_changes", "observed_only_changes", "decision_combos", "combo_table"]

_IDS = ["old_eg", "old_in", "new_eg", "new_in"]
_EXAMPLES = 3
_LISTED_RANGES = 3


def decision_combos(
    runs: pl.DataFrame, old: Verdicts, new: Verdicts
) -> tuple[pl.DataFrame, dict[int, _Combo]]:
    """Replace each run's four verdict ids by one ``combo`` id.

    Returns the runs with ``combo`` (ids dropped), and per combo its two decisions (with
    reason templates), signatures (``observed.signature``) and whether it newly denies.
    """
    table = runs.select(_IDS).unique().sort(_IDS).with_row_index("combo")
    combos = {}
    for combo, oe, oi, ne, ni in table.iter_rows():
        before = _template(old.items[oe], old.items[oi])
        after = _template(new.items[ne], new.items[ni])
        combos[combo] = _Combo(before, after, _sig(before), _sig(after))
    runs = runs.join(table.with_columns(pl.col("combo").cast(pl.Int32)), on=_IDS, how="left").drop(
        _IDS
    )
    return runs, combos


@dataclass(frozen=True, slots=True)
class _Combo:
    old: Decision
    new: Decision
    old_sig: str
    new_sig: str


def combo_table(combos: dict[int, _Combo]) -> pl.DataFrame:
    """``combo``, ``old_sig``, ``new_sig``, ``newly_denied`` (for joins and counts)."""
    keys = sorted(combos)
    return pl.DataFrame(
        {
            "combo": keys,
            "old_sig": [combos[k].old_sig for k in keys],
            "new_sig": [combos[k].new_sig for k in keys],
            "newly_denied": [combos[k].old.allowed for k in keys],
        },
        schema={
            "combo": pl.Int32,
            "old_sig": pl.String,
            "new_sig": pl.String,
            "newly_denied": pl.Boolean,
        },
    )


def _template(eg: DirectionVerdict, ing: DirectionVerdict) -> Decision:
    """A decision whose reason names the ends and ports by tokens (filled per change)."""
    texts = [
        eg.reason.replace(ADDRESS_TOKEN, SRC_TOKEN).replace(OTHER_TOKEN, DST_TOKEN),
        ing.reason.replace(ADDRESS_TOKEN, DST_TOKEN).replace(OTHER_TOKEN, SRC_TOKEN),
    ]
    failing = [t for t, v in zip(texts, (eg, ing), strict=True) if not v.allowed]
    return Decision(
        allowed=eg.allowed and ing.allowed,
        egress_rules=tuple(str(r) for r in eg.allowed_by),
        ingress_rules=tuple(str(r) for r in ing.allowed_by),
        egress_isolated=eg.isolated,
        ingress_isolated=ing.isolated,
        egress_isolated_by=eg.selecting if eg.isolated else (),
        ingress_isolated_by=ing.selecting if ing.isolated else (),
        reason_template="; ".join(failing or texts).replace(PORT_TOKEN, PORTS_TOKEN),
    )


def _sig(d: Decision) -> str:
    return signature(
        d.allowed, d.egress_rules, d.ingress_rules, d.egress_isolated, d.ingress_isolated
    )


def probe_changes(
    runs: pl.DataFrame, combos: dict[int, _Combo], evidence: pl.DataFrame, universe: Universe
) -> list[Change]:
    """One change per (source group, destination group, decisions, ports).

    ``runs`` are changed probes folded into port-class runs (``i``, ``j``, ``combo``, ``lo``,
    ``hi``, ``probes``); ``evidence`` the observed edges per probe (``i``, ``j``, ``c``,
    ``combo`` and the evidence columns).
    """
    if runs.height == 0:
        return []
    ports = universe.ports
    keys = ["i", "j", "combo"]
    runs = runs.rename({"probes": "_probes"}).with_row_index("_run")
    located = evidence.join(runs.select(*keys, "lo", "hi", "_run"), on=keys).filter(
        pl.col("c").is_between(pl.col("lo"), pl.col("hi"))
    )
    runs = runs.join(
        located.group_by("_run").agg(*_evidence_aggs(probes=False)), on="_run", how="left"
    )
    lows = np.array([p.low for p in ports])
    highs = np.array([p.high for p in ports])
    protos = np.array([p.protocol for p in ports])
    lo, hi = runs["lo"].to_numpy(), runs["hi"].to_numpy()
    text = [
        f"{p} {a}" if a == b else f"{p} {a}-{b}"
        for p, a, b in zip(protos[lo], lows[lo], highs[hi], strict=True)
    ]
    pairs = (
        runs.with_columns(pl.Series("_text", text, dtype=pl.String))
        .sort([*keys, "lo"])
        .group_by(keys, maintain_order=True)
        .agg(pl.col("_text").alias("_ports"), *_evidence_aggs())
    )
    attrs = _endpoint_attrs(universe)
    for side, col in (("src", "i"), ("dst", "j")):
        pairs = pairs.join(
            attrs.rename({k: f"{side}{k}" for k in attrs.columns if k != "_idx"}),  # src_kind
            left_on=col,
            right_on="_idx",
            how="left",
            maintain_order="left",
        )
    grouped = (
        pairs.with_columns(pl.col("_ports").list.join("\x1f").alias("_pk"))
        .group_by(["src_group", "dst_group", "combo", "_pk"], maintain_order=True)
        .agg(
            pl.col("src_ns").first(),
            pl.col("dst_ns").first(),
            pl.col("src_display").first(),
            pl.col("dst_display").first(),
            pl.col("_ports").first(),
            pl.col("i").filter(pl.col("src_kind") == ADDRESSES).unique().sort().alias("_src_ad"),
            pl.col("j").filter(pl.col("dst_kind") == ADDRESSES).unique().sort().alias("_dst_ad"),
            *_evidence_aggs(),
        )
    )
    return [_change(row, combos[row["combo"]], universe) for row in grouped.iter_rows(named=True)]


def _evidence_aggs(probes: bool = True) -> list[pl.Expr]:
    """Evidence columns summed when rows merge (and the probe count, unless ``probes`` is
    False: evidence rows are observed edges, not probes)."""
    return [
        *([pl.col("_probes").sum()] if probes else []),
        pl.col("_edges").sum(),
        pl.col("_conns").sum(),
        pl.col("_working").sum(),
        pl.col("_first").min(),
        pl.col("_last").max(),
        *(
            pl.col(c).list.explode(keep_nulls=False, empty_as_null=False).drop_nulls().alias(c)
            for c in ("_oports", "_examples")
        ),
    ]


def _endpoint_attrs(universe: Universe) -> pl.DataFrame:
    eps = universe.endpoints
    return pl.DataFrame(
        {
            "_idx": [e.index for e in eps],
            "_kind": [e.kind for e in eps],
            "_group": [e.group for e in eps],
            "_display": [e.display if e.kind != ADDRESSES else ADDRESSES for e in eps],
            "_ns": [e.namespace for e in eps],
        },
        schema={
            "_idx": pl.Int32,
            "_kind": pl.String,
            "_group": pl.String,
            "_display": pl.String,
            "_ns": pl.String,
        },
    )


def _change(row: dict[str, Any], combo: _Combo, universe: Universe) -> Change:
    src_ad = _merge_ranges(row["_src_ad"], universe)
    dst_ad = _merge_ranges(row["_dst_ad"], universe)
    src_text = _listing(src_ad) if src_ad else row["src_display"]
    dst_text = _listing(dst_ad) if dst_ad else row["dst_display"]
    ports = tuple(row["_ports"])
    values = (src_text, dst_text, ", ".join(ports))
    return Change(
        kind="newly_denied" if combo.old.allowed else "newly_allowed",
        src_namespace=row["src_ns"],
        dst_namespace=row["dst_ns"],
        src=row["src_group"],
        dst=row["dst_group"],
        src_display=src_text,
        dst_display=dst_text,
        src_addresses=src_ad,
        dst_addresses=dst_ad,
        ports=ports,
        probes=int(row["_probes"]),
        old=replace(combo.old, reason_values=values),
        new=replace(combo.new, reason_values=values),
        observed=_evidence(row),
    )


def _merge_ranges(indices: Sequence[int] | None, universe: Universe) -> tuple[str, ...]:
    """Address classes (endpoint indices, sorted) as merged ranges of adjacent classes."""
    out: list[tuple[int, int, int]] = []
    for idx in indices or ():
        span = universe.endpoints[idx].span
        assert span is not None
        if out and out[-1][0] == span[0] and out[-1][2] + 1 == span[1]:
            out[-1] = (span[0], out[-1][1], span[2])
        else:
            out.append(span)
    return tuple(range_text(*s) for s in out)


def _listing(ranges: tuple[str, ...]) -> str:
    if len(ranges) <= _LISTED_RANGES:
        return ", ".join(ranges)
    shown = ", ".join(ranges[:_LISTED_RANGES])
    return f"{shown} and {len(ranges) - _LISTED_RANGES} more address ranges"


def _evidence(row: dict[str, Any]) -> ObservedEvidence | None:
    if not row["_edges"]:
        return None
    first: datetime | None = row["_first"]
    last: datetime | None = row["_last"]
    return ObservedEvidence(
        edges=int(row["_edges"]),
        connections=int(row["_conns"]),
        working_edges=int(row["_working"]),
        ports=_sorted_ports(row["_oports"]),
        first_seen=first,
        last_seen=last,
        examples=tuple(sorted(row["_examples"])[:_EXAMPLES]),
    )


def _sorted_ports(items: Sequence[str] | None) -> tuple[str, ...]:
    def key(text: str) -> tuple[str, int]:
        proto, _, number = text.partition(" ")
        return proto, int(number) if number.isdigit() else -1

    return tuple(sorted(set(items or ()), key=key))


def observed_only_changes(unmatched: pl.DataFrame) -> list[Change]:
    """Changed observed edges no probe change contains: one change per identity pair and
    decisions, with the engine's decision and reason for the busiest edge.

    ``unmatched`` holds judged edges (``observed.judge_observed``) plus ``_text`` (``TCP
    8080``), ``_example``, ``_src_ns`` and ``_dst_ns``.
    """
    if unmatched.height == 0:
        return []
    rows = (
        unmatched.sort(
            ["connections", "src_key", "dst_key", "_text"], descending=[True, False, False, False]
        )
        .group_by(["src_group", "dst_group", "old_sig", "new_sig"], maintain_order=True)
        .agg(
            pl.all().exclude("_text", "_example").first(),
            pl.col("_text").alias("_texts"),
            pl.col("_example").alias("_examples"),
            pl.len().alias("_n"),
            pl.col("connections").sum().alias("_conns"),
            pl.col("working").sum().alias("_working"),
            pl.col("first_seen").min().alias("_first"),
            pl.col("last_seen").max().alias("_last"),
        )
    )
    out = []
    for r in rows.iter_rows(named=True):
        old, new = (_observed_decision(r, p) for p in ("old_", "new_"))
        ports = _sorted_ports(r["_texts"])
        out.append(
            Change(
                kind="newly_denied" if old.allowed else "newly_allowed",
                src_namespace=r["_src_ns"],
                dst_namespace=r["_dst_ns"],
                src=r["src_group"],
                dst=r["dst_group"],
                src_display=_group_display(r["src_group"]),
                dst_display=_group_display(r["dst_group"]),
                src_addresses=(),
                dst_addresses=(),
                ports=ports,
                probes=0,
                old=old,
                new=new,
                observed=ObservedEvidence(
                    edges=int(r["_n"]),
                    connections=int(r["_conns"]),
                    working_edges=int(r["_working"]),
                    ports=ports,
                    first_seen=r["_first"],
                    last_seen=r["_last"],
                    examples=tuple(sorted(r["_examples"])[:_EXAMPLES]),
                ),
            )
        )
    return out


def _observed_decision(row: dict[str, Any], prefix: str) -> Decision:
    return Decision(
        allowed=bool(row[f"{prefix}allowed"]),
        egress_rules=tuple(row[f"{prefix}egress_rules"] or ()),
        ingress_rules=tuple(row[f"{prefix}ingress_rules"] or ()),
        egress_isolated=bool(row[f"{prefix}egress_isolated"]),
        ingress_isolated=bool(row[f"{prefix}ingress_isolated"]),
        reason_template=str(row[f"{prefix}reason"]),
    )


def _group_display(group: str | None) -> str:
    """``pod:ns:a=b,c=d`` -> ``ns:{a=b,c=d}``; other keys as they are."""
    if group and group.startswith("pod:"):
        namespace, _, labels = group[4:].partition(":")
        return f"{namespace}:{{{labels}}}"
    return group or "?"
