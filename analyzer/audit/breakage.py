"""would-break and intended-deny: observed requests the audited policies deny.

A request that went through when observed but that the policies deny is what rolling them out
would break (``would-break``, ``high``). A request that was already dropped and that the
policies still deny is broken today if it is legitimate (``would-break``, ``low``). A denied
request the anomaly detector flags is the policies stopping an attack (``intended-deny``,
``info``): reported so a person can confirm it is not legitimate, never as a breakage. One
finding per isolated workload, direction and kind, naming the policies that isolate it and
every denied edge as evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from analyzer.audit.findings import Finding
from analyzer.policy.compile import CompiledPolicies, CompiledPolicy
from analyzer.policy.evaluate import Endpoint, selecting_policies
from analyzer.policy.model import EGRESS, INGRESS

__all__ = ["INTENDED_DENY", "breakage_findings"]

# Denied requests the anomaly detector flags (a scan, a sweep, lateral movement): the policies
# stop what looks like an attack. That is the policies working, not a breakage.
INTENDED_DENY = "intended-deny"

_EDGES_SHOWN = 4
_EDGES_KEPT = 50


def breakage_findings(
    compiled: CompiledPolicies,
    evaluated: pl.DataFrame,
    namespaces: Sequence[str] | None,
    flagged: pl.DataFrame | None = None,
) -> list[Finding]:
    """``would-break`` findings from a frame ``evaluate_connections`` has judged.

    Parameters
    ----------
    compiled
        The compiled policies the frame was evaluated against.
    evaluated
        Connections with ``allowed``, ``ingress_rules``, ``egress_rules``,
        ``ingress_isolated``, ``egress_isolated`` and ``reason``.
    namespaces
        Only subjects (the isolated pod) in these namespaces (None: all).
    flagged
        Connections the anomaly detector flags (``src_key``, ``dst_key``, ``protocol``,
        ``dst_port``): denying those is intended, so they are reported apart as
        ``intended-deny`` (``info``).
    """
    if evaluated.height == 0:
        return []
    denied = evaluated.filter(pl.col("allowed").not_())
    if denied.height == 0:
        return []
    keys = ["src_key", "dst_key", "protocol", "dst_port"]
    if flagged is not None and flagged.height:
        marks = flagged.select(keys).unique().with_columns(pl.lit(True).alias("_suspicious"))
        denied = denied.join(marks, on=keys, how="left", nulls_equal=True).with_columns(
            pl.col("_suspicious").fill_null(False)
        )
    else:
        denied = denied.with_columns(pl.lit(False).alias("_suspicious"))
    findings: list[Finding] = []
    for direction, own, peer in (("egress", "src", "dst"), ("ingress", "dst", "src")):
        side = denied.filter(
            pl.col(f"{direction}_isolated")
            & (pl.col(f"{direction}_rules").list.len() == 0)
            & (pl.col(f"{own}_entity") == "pod")
        )
        if namespaces is not None:
            side = side.filter(pl.col(f"{own}_namespace").is_in(list(namespaces)))
        if side.height == 0:
            continue
        subject_name = pl.concat_str(
            [pl.col(f"{own}_namespace"), pl.coalesce(f"{own}_workload", f"{own}_pod")],
            separator="/",
        )
        peer_name = pl.coalesce(
            pl.concat_str(
                [pl.col(f"{peer}_namespace"), pl.coalesce(f"{peer}_workload", f"{peer}_pod")],
                separator="/",
            ),
            pl.col(f"{peer}_ip"),
            pl.lit("reserved:") + pl.col(f"{peer}_entity"),
        )
        edges = (
            side.with_columns(
                subject_name.alias("_subject"),
                peer_name.alias("_peer"),
                (pl.col("outcome") == "allowed").alias("_was_allowed"),
            )
            .group_by("_subject", "_was_allowed", "_suspicious", "_peer", "protocol", "dst_port")
            .agg(
                pl.col("connections").sum(),
                pl.col("first_seen").min(),
                pl.col("last_seen").max(),
                pl.col(f"{own}_namespace").first().alias("_ns"),
                pl.col(f"{own}_labels").first().alias("_labels"),
                pl.col(f"{own}_namespace_labels").first().alias("_nslabels"),
                pl.col(f"{peer}_entity").first().alias("_p_entity"),
                pl.col(f"{peer}_namespace").first().alias("_p_ns"),
                pl.col(f"{peer}_labels").first().alias("_p_labels"),
                pl.col(f"{peer}_namespace_labels").first().alias("_p_nslabels"),
                pl.col(f"{peer}_ip").first().alias("_p_ip"),
                pl.col("reason").first(),
            )
            # Ties in connections are ordered by peer and port: `-o json` is byte-identical
            # across runs.
            .sort(
                ["_subject", "_suspicious", "_was_allowed", "connections", "_peer", "protocol",
                 "dst_port"],
                descending=[False, False, True, True, False, False, False],
                nulls_last=True,
            )
        )
        for (subject, suspicious, was_allowed), group in edges.group_by(
            ["_subject", "_suspicious", "_was_allowed"], maintain_order=True
        ):
            findings.append(
                _finding(
                    compiled, direction, str(subject), bool(was_allowed), bool(suspicious), group
                )
            )
    return findings


def _finding(
    compiled: CompiledPolicies, direction: str, subject: str, was_allowed: bool,
    suspicious: bool, group: pl.DataFrame,
) -> Finding:
    first = group.row(0, named=True)
    pod = Endpoint(
        kind="pod",
        namespace=first["_ns"],
        labels=_labels(first["_labels"]),
        namespace_labels=_labels(first["_nslabels"]),
    )
    selecting = selecting_policies(compiled, pod, EGRESS if direction == "egress" else INGRESS)
    policy = _blame(selecting, direction, _peer(first), compiled.ipblock_mode)
    edges = [
        {
            "peer": r["_peer"],
            "protocol": r["protocol"],
            "port": r["dst_port"],
            "connections": r["connections"],
            "first_seen": r["first_seen"],
            "last_seen": r["last_seen"],
        }
        for r in group.head(_EDGES_KEPT).iter_rows(named=True)
    ]
    arrow = "->" if direction == "egress" else "<-"
    shown = "; ".join(
        f"{subject} {arrow} {e['peer']} {e['protocol']}"
        + (f" {e['port']}" if e["port"] is not None else "")
        + f" ({e['connections']} conn.)"
        for e in edges[:_EDGES_SHOWN]
    )
    more = f" and {group.height - _EDGES_SHOWN} more" if group.height > _EDGES_SHOWN else ""
    total = int(group["connections"].sum())
    who = ", ".join(cp.key for cp in selecting) or "(none)"
    if suspicious:
        text = (
            f"{total} connection(s) the anomaly detector flags are denied, as intended "
            f"({subject} isolated for {direction} by {who}): {shown}{more}; this is the "
            "policies stopping suspicious traffic, not a breakage: confirm it is not legitimate"
        )
    elif was_allowed:
        text = (
            f"{total} observed connection(s) that went through would be denied: {subject} is "
            f"isolated for {direction} by {who} and no {direction} rule admits {shown}{more}"
        )
    else:
        text = (
            f"{total} connection(s) were already dropped and these policies deny them too "
            f"({subject} isolated for {direction} by {who}): {shown}{more}; if this traffic is "
            "legitimate it is broken today"
        )
    return Finding(
        severity="info" if suspicious else "high" if was_allowed else "low",
        category=INTENDED_DENY if suspicious else "would-break",
        policy=policy,
        rule=None,
        namespace=first["_ns"],
        direction=direction,
        explanation=text,
        hits=total,
        first_hit=group["first_seen"].min(),  # type: ignore[arg-type]
        last_hit=group["last_seen"].max(),  # type: ignore[arg-type]
        evidence={
            "subject": subject,
            "observed": "allowed" if was_allowed else "dropped",
            "flagged_by_anomaly_detector": suspicious,
            "isolated_by": [cp.key for cp in selecting],
            "edges": edges,
            "reason": first["reason"],
        },
    )


def _blame(
    selecting: Sequence[CompiledPolicy], direction: str, peer: Endpoint, mode: str
) -> str | None:
    """The policy to name. First one with a rule for this very peer (it forgot the port: the
    likely culprit), then a pure deny (no rules in that direction), then the widest."""

    def rank(cp: CompiledPolicy) -> tuple[int, int, int, str]:
        rules = (cp.egress if direction == "egress" else cp.ingress) or ()
        near = any(r.peer_matches(peer, mode) for r in rules)
        return (0 if near else 1, 1 if rules else 0, 0 if cp.subject.is_empty else 1, cp.key)

    return min(selecting, key=rank).key if selecting else None


def _peer(row: dict[str, Any]) -> Endpoint:
    if row["_p_entity"] == "pod" and row["_p_ns"]:
        return Endpoint(
            kind="pod",
            namespace=row["_p_ns"],
            labels=_labels(row["_p_labels"]),
            namespace_labels=_labels(row["_p_nslabels"]),
            ip=row["_p_ip"],
        )
    return Endpoint(kind="ip", ip=row["_p_ip"], entity=row["_p_entity"] or "world")


def _labels(items: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        k, _, v = str(item).partition("=")
        out[k] = v
    return out
