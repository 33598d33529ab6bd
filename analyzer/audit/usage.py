"""Per-rule usage: which observed connections each rule admitted, and how that compares with
everything the rule admits over the known universe.

Hits come from ``evaluate_connections``: a connection counts for every rule that admits it in
that rule's direction (a pod-to-pod request counts for the ingress rule that admits it even when
the source's egress denies it, since the rule did its part). Only connections that were
*allowed* when observed count as hits; requests observed *dropped* that a rule would admit are
reported separately (``admits_dropped``), because the rule would open what is closed today.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from analyzer.audit.findings import RuleStat, rule_path
from analyzer.audit.universe import Universe
from analyzer.policy.compile import (
    AllPeers,
    CompiledPolicies,
    CompiledRule,
    EntityPeers,
    IPPeers,
    PeerMatcher,
)

__all__ = [
    "Breadth",
    "RuleUsage",
    "breadth",
    "describe_breadth",
    "rule_key",
    "rule_usage",
]

_PEER = {"ingress": "src", "egress": "dst"}
_WORLD_ENTITIES = frozenset({"world", "all", "world-ipv4", "world-ipv6"})


def rule_key(policy: str, direction: str, index: int) -> str:
    """The evaluator's rule reference, ``ns/name#ingress[0]``."""
    return f"{policy}#{direction.lower()}[{index}]"


@dataclass(frozen=True, slots=True)
class RuleUsage:
    """What observed traffic did with one rule."""

    stat: RuleStat
    peer_workloads: tuple[str, ...]
    ports: tuple[str, ...]
    dropped: int
    dropped_examples: tuple[str, ...]


def rule_usage(
    compiled: CompiledPolicies, evaluated: pl.DataFrame, namespaces: Sequence[str] | None
) -> dict[str, RuleUsage]:
    """Usage of every rule of every in-scope policy, keyed by :func:`rule_key`.

    Parameters
    ----------
    compiled
        The compiled policies.
    evaluated
        A connections frame with the columns ``evaluate_connections`` adds.
    namespaces
        Restrict to policies of these namespaces (None: all).
    """
    per_rule: dict[str, pl.DataFrame] = {}
    for direction in ("ingress", "egress"):
        peer = _PEER[direction]
        col = f"{direction}_rules"
        if evaluated.height == 0 or col not in evaluated.columns:
            continue
        exploded = (
            evaluated.select(
                pl.col(col).alias("rule"),
                "connections",
                "first_seen",
                "last_seen",
                "outcome",
                "protocol",
                "dst_port",
                _peer_name(peer).alias("peer"),
                _example().alias("example"),
            )
            .explode("rule")
            .drop_nulls("rule")
        )
        agg = exploded.group_by("rule").agg(
            pl.col("connections").filter(pl.col("outcome") == "allowed").sum().alias("hits"),
            (pl.col("outcome") == "allowed").sum().alias("requests"),
            pl.col("first_seen").filter(pl.col("outcome") == "allowed").min(),
            pl.col("last_seen").filter(pl.col("outcome") == "allowed").max(),
            pl.col("peer").filter(pl.col("outcome") == "allowed").unique().sort().alias("peers"),
            pl.concat_str(
                [pl.col("protocol"), pl.col("dst_port").cast(pl.String).fill_null("-")],
                separator=" ",
            )
            .filter(pl.col("outcome") == "allowed")
            .unique()
            .sort()
            .alias("ports"),
            pl.col("connections").filter(pl.col("outcome") != "allowed").sum().alias("dropped"),
            pl.col("example").filter(pl.col("outcome") != "allowed").unique().sort().head(3)
            .alias("dropped_examples"),
        )
        per_rule[direction] = agg
    rows: dict[str, dict[str, Any]] = {}
    for frame in per_rule.values():
        for agg_row in frame.iter_rows(named=True):
            rows[agg_row["rule"]] = agg_row
    out: dict[str, RuleUsage] = {}
    for cp in compiled.policies:
        if namespaces is not None and cp.namespace not in namespaces:
            continue
        for direction, rules in (("ingress", cp.ingress), ("egress", cp.egress)):
            for rule in rules or ():
                key = rule_key(cp.key, direction, rule.index)
                row = rows.get(key, {})
                hits = int(row.get("hits") or 0)
                peers = tuple(row.get("peers") or ())
                ports = tuple(row.get("ports") or ())
                stat = RuleStat(
                    policy=cp.key,
                    rule=rule_path(direction, rule.index),
                    direction=direction,
                    hits=hits,
                    requests=int(row.get("requests") or 0),
                    first_hit=_dt(row.get("first_seen")),
                    last_hit=_dt(row.get("last_seen")),
                    peers_used=peers,
                    ports_used=ports,
                )
                out[key] = RuleUsage(
                    stat=stat,
                    peer_workloads=peers,
                    ports=ports,
                    dropped=int(row.get("dropped") or 0),
                    dropped_examples=tuple(row.get("dropped_examples") or ()),
                )
    return out


@dataclass(frozen=True, slots=True)
class Breadth:
    """What a rule admits over the known universe."""

    workloads: tuple[str, ...]
    namespaces: tuple[str, ...]
    all_namespaces: bool
    any_address: bool
    addresses: bool
    known_namespaces: int


def breadth(rule: CompiledRule, universe: Universe, mode: str) -> Breadth:
    """The known workloads (and whether any outside address) ``rule`` admits as a peer."""
    return _breadth(rule.peers, universe, mode)


def _breadth(peers: tuple[PeerMatcher, ...], universe: Universe, mode: str) -> Breadth:
    # Generated policy sets repeat the same peers in many rules: judge each peer set once.
    cache: dict[object, Breadth] = universe.memo.setdefault("breadth", {})
    key = (peers, mode)
    found = cache.get(key)
    if found is not None:
        return found
    index = universe.index
    ids = frozenset().union(*(index.admitted(m) for m in peers))
    pods = index.pods(ids)
    for m in peers:
        if isinstance(m, IPPeers):
            # ipBlocks may match pods by address, which identities do not group by.
            pods.extend(index.pods_in_block(m, mode))
    workloads = tuple(sorted({p.workload_key for p in pods}))
    namespaces = tuple(sorted({p.namespace for p in pods}))
    any_address = any(
        isinstance(m, AllPeers)
        or (isinstance(m, EntityPeers) and bool(m.entities & _WORLD_ENTITIES))
        or (isinstance(m, IPPeers) and any(lo == 0 and hi == _top(v) for v, lo, hi in m.ranges))
        for m in peers
    )
    addresses = any_address or any(isinstance(m, IPPeers) for m in peers)
    known = len(universe.namespaces)
    found = Breadth(
        workloads=workloads,
        namespaces=namespaces,
        all_namespaces=known > 1 and len(namespaces) == known,
        any_address=any_address,
        addresses=addresses,
        known_namespaces=known,
    )
    cache[key] = found
    return found


def describe_breadth(b: Breadth, ports: str, usage: RuleUsage | None) -> str:
    """``admits every pod of 6 namespaces on all ports; 1 workload used TCP 9090``."""
    parts = []
    if b.all_namespaces:
        parts.append(f"every pod of {b.known_namespaces} namespaces ({len(b.workloads)} workloads)")
    elif b.workloads:
        parts.append(f"{len(b.workloads)} workload(s) in {len(b.namespaces)} namespace(s)")
    if b.any_address:
        parts.append("any IP address")
    elif b.addresses:
        parts.append("an address range")
    admitted = " and ".join(parts) or "no known workload"
    text = f"admits {admitted} on {ports}"
    if usage is None or usage.stat.hits == 0:
        return text + "; nothing used it in the window"
    peers = usage.peer_workloads
    shown = ", ".join(peers[:4]) + (f" and {len(peers) - 4} more" if len(peers) > 4 else "")
    return (
        f"{text}; {len(peers)} peer(s) used it ({shown}) on {', '.join(usage.ports[:6])}"
        + (" ..." if len(usage.ports) > 6 else "")
    )


def _top(version: int) -> int:
    return (1 << (32 if version == 4 else 128)) - 1


def _peer_name(side: str) -> pl.Expr:
    workload = pl.concat_str(
        [
            pl.col(f"{side}_namespace"),
            pl.coalesce(pl.col(f"{side}_workload"), pl.col(f"{side}_pod")),
        ],
        separator="/",
    )
    return pl.coalesce(
        workload, pl.col(f"{side}_ip"), pl.lit("reserved:") + pl.col(f"{side}_entity")
    )


def _example() -> pl.Expr:
    return pl.format(
        "{} -> {} {} {}",
        pl.coalesce(pl.col("src_key"), _peer_name("src")),
        pl.coalesce(pl.col("dst_key"), _peer_name("dst")),
        pl.col("protocol"),
        pl.col("dst_port").cast(pl.String).fill_null("-"),
    )


def _dt(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None
