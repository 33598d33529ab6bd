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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from analyzer.diff.directions import OTHER_TOKEN, PORT_TOKEN, Verdicts
from analyzer.diff.model import Change, Decision, ObservedEvidence
from analyzer.diff.observed import signature
from analyzer.diff.universe import ADDRESS_TOKEN, ADDRESSES, Universe, range_text
from analyzer.policy.evaluate import DirectionVerdict

__all__ = ["probe_changes", "observed_only_changes", "decision_signatures"]

_IDS = ["old_eg", "old_in", "new_eg", "new_in"]
_EXAMPLES = 3
_LISTED_RANGES = 3


@dataclass(frozen=True, slots=True)
class _Sets:
    old: Verdicts
    new: Verdicts


def decision_signatures(cells: pl.DataFrame, old: Verdicts, new: Verdicts) -> pl.DataFrame:
    """``cells`` with ``old_sig``/``new_sig`` (as ``observed.signature``) and ``kind``."""
    combos = cells.select(_IDS).unique()
    rows = []
    for oe, oi, ne, ni in combos.iter_rows():
        rows.append(
            (oe, oi, ne, ni, _sig(old.items[oe], old.items[oi]), _sig(new.items[ne], new.items[ni]))
        )
    table = pl.DataFrame(
        rows,
        schema={**{k: pl.Int32 for k in _IDS}, "old_sig": pl.String, "new_sig": pl.String},
        orient="row",
    )
    return cells.join(table, on=_IDS, how="left", maintain_order="left")


def _sig(eg: DirectionVerdict, ing: DirectionVerdict) -> str:
    return signature(
        eg.allowed and ing.allowed,
        [str(r) for r in eg.allowed_by],
        [str(r) for r in ing.allowed_by],
        eg.isolated,
        ing.isolated,
    )


def probe_changes(
    cells: pl.DataFrame, evidence: pl.DataFrame, universe: Universe, old: Verdicts, new: Verdicts
) -> list[Change]:
    """One change per (source group, destination group, decisions, ports).

    ``cells`` are changed probes with their verdict ids; ``evidence`` the observed edges
    per cell (``i``, ``j``, ``c``, ``old_sig``, ``new_sig`` and the evidence columns).
    """
    if cells.height == 0:
        return []
    ports = universe.ports
    proto_id = np.array([("TCP", "UDP", "SCTP").index(p.protocol) for p in ports])
    cells = cells.join(
        evidence, on=["i", "j", "c", "old_sig", "new_sig"], how="left", maintain_order="left"
    ).sort([*["i", "j"], *_IDS, "c"])
    keys = ["i", "j", *_IDS]
    new_group = pl.any_horizontal([pl.col(k) != pl.col(k).shift(1) for k in keys]).fill_null(True)
    gap = (pl.col("c") != pl.col("c").shift(1) + 1) | (pl.col("_p") != pl.col("_p").shift(1))
    runs = (
        cells.with_columns(pl.Series("_p", proto_id[cells["c"].to_numpy()]))
        .with_columns((new_group | gap.fill_null(True)).cum_sum().alias("_run"))
        .group_by([*keys, "_run"])
        .agg(pl.col("c").min().alias("_lo"), pl.col("c").max().alias("_hi"), *_evidence_aggs(True))
    )
    lows = np.array([p.low for p in ports])
    highs = np.array([p.high for p in ports])
    protos = np.array([p.protocol for p in ports])
    lo, hi = lows[runs["_lo"].to_numpy()], highs[runs["_hi"].to_numpy()]
    text = [
        f"{p} {a}" if a == b else f"{p} {a}-{b}"
        for p, a, b in zip(protos[runs["_lo"].to_numpy()], lo, hi, strict=True)
    ]
    pairs = (
        runs.with_columns(pl.Series("_text", text, dtype=pl.String))
        .sort([*keys, "_lo"])
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
        .group_by(["src_group", "dst_group", *_IDS, "_pk"], maintain_order=True)
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
    sets = _Sets(old, new)
    return [_change(row, universe, sets) for row in grouped.iter_rows(named=True)]


def _evidence_aggs(first: bool = False) -> list[pl.Expr]:
    """Evidence summed over cells (``first``: straight from the cells) or over merged rows."""
    return [
        pl.len().alias("_probes") if first else pl.col("_probes").sum(),
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


def _change(row: dict[str, Any], universe: Universe, sets: _Sets) -> Change:
    src_ad = _merge_ranges(row["_src_ad"], universe)
    dst_ad = _merge_ranges(row["_dst_ad"], universe)
    src_text = _listing(src_ad) if src_ad else row["src_display"]
    dst_text = _listing(dst_ad) if dst_ad else row["dst_display"]
    ports = tuple(row["_ports"])
    port_text = ", ".join(ports)
    old = _decision(sets.old, row["old_eg"], row["old_in"], src_text, dst_text, port_text)
    new = _decision(sets.new, row["new_eg"], row["new_in"], src_text, dst_text, port_text)
    return Change(
        kind="newly_denied" if old.allowed else "newly_allowed",
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
        old=old,
        new=new,
        observed=_evidence(row),
    )


def _decision(
    verdicts: Verdicts, eg_id: int, in_id: int, src: str, dst: str, ports: str
) -> Decision:
    eg, ing = verdicts.items[eg_id], verdicts.items[in_id]
    texts = [
        eg.reason.replace(ADDRESS_TOKEN, src).replace(OTHER_TOKEN, dst),
        ing.reason.replace(ADDRESS_TOKEN, dst).replace(OTHER_TOKEN, src),
    ]
    failing = [t for t, v in zip(texts, (eg, ing), strict=True) if not v.allowed]
    reason = "; ".join(failing or texts).replace(PORT_TOKEN, ports)
    return Decision(
        allowed=eg.allowed and ing.allowed,
        egress_rules=tuple(str(r) for r in eg.allowed_by),
        ingress_rules=tuple(str(r) for r in ing.allowed_by),
        egress_isolated=eg.isolated,
        ingress_isolated=ing.isolated,
        reason=reason,
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
        reason=str(row[f"{prefix}reason"]),
    )


def _group_display(group: str | None) -> str:
    """``pod:ns:a=b,c=d`` -> ``ns:{a=b,c=d}``; other keys as they are."""
    if group and group.startswith("pod:"):
        namespace, _, labels = group[4:].partition(":")
        return f"{namespace}:{{{labels}}}"
    return group or "?"
