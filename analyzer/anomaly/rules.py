"""Transparent rules over the edge features: shapes of attack a person can check by hand.

Each rule is a boolean polars expression over the frame of `features.compute_features`. A rule
hit is a confident flag; the model only ranks what the rules did not catch.

* ``port_scan``: one source reached one destination on many ports, and those attempts were
  mostly denied or went to ports no other client of that destination uses.
* ``host_sweep``: one source reached many destinations on the same port, and the attempts were
  mostly denied, or went to ports the targets' other clients do not use *and* were not steady
  over the window. A Prometheus scraping every pod is sweep-shaped too; it is steady and
  repeated, so this rule leaves it alone.
* ``database_lateral``: a connection to a database port of another namespace from a source
  that is not an established client of it (not steady over the window, or mostly denied) and
  is the only source crossing between those two namespaces, or was mostly denied.

Sources that are the node itself (kubelet probes), other nodes or the health checker are
infrastructure that NetworkPolicy cannot select; no rule fires for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

__all__ = ["RuleThresholds", "Rule", "RULES", "INFRASTRUCTURE_ENTITIES", "rule_column"]

INFRASTRUCTURE_ENTITIES: tuple[str, ...] = ("host", "remote-node", "health", "kube-apiserver")


@dataclass(frozen=True, slots=True)
class RuleThresholds:
    """Where each rule starts to fire.

    Parameters
    ----------
    scan_min_ports
        Distinct ports one source must reach on one destination group.
    sweep_min_targets
        Distinct destination endpoints one source must reach on one port.
    failed_share
        Share of denied attempts that counts as "mostly failed".
    unshared_share
        Share of ports (scan) or targets (sweep) with no other client that counts as "mostly".
    steady_active_share
        Share of the window an edge must span to count as steady.
    steady_min_connections
        Connections per target an edge must repeat to count as steady (periodic scraping).
    """

    scan_min_ports: int = 8
    sweep_min_targets: int = 8
    failed_share: float = 0.5
    unshared_share: float = 0.5
    steady_active_share: float = 0.5
    steady_min_connections: float = 2.0


@dataclass(frozen=True, slots=True)
class Rule:
    """A named rule: its condition over the edge frame and a one-line description."""

    name: str
    description: str
    condition: Callable[[RuleThresholds], pl.Expr]


def _infrastructure() -> pl.Expr:
    return pl.col("src_entity").is_in(list(INFRASTRUCTURE_ENTITIES)).fill_null(False)


def _port_scan(t: RuleThresholds) -> pl.Expr:
    return (
        (pl.col("pair_ports") >= t.scan_min_ports)
        & (
            (pl.col("pair_denied_share") >= t.failed_share)
            | (pl.col("pair_unshared_share") >= t.unshared_share)
        )
        & ~_infrastructure()
    )


def _host_sweep(t: RuleThresholds) -> pl.Expr:
    steady = (pl.col("sweep_inactive_share") <= 1.0 - t.steady_active_share) & (
        pl.col("sweep_connections_per_target") >= t.steady_min_connections
    )
    return (
        (pl.col("sweep_targets") >= t.sweep_min_targets)
        & (
            (pl.col("sweep_denied_share") >= t.failed_share)
            | ((pl.col("sweep_unshared_share") >= t.unshared_share) & ~steady)
        )
        & ~_infrastructure()
    )


def _database_lateral(t: RuleThresholds) -> pl.Expr:
    established = (pl.col("inactive_share") <= 1.0 - t.steady_active_share) & (
        pl.col("denied_share") < t.failed_share
    )
    return (
        (pl.col("cross_namespace") > 0)
        & (pl.col("database_port") > 0)
        & ~established
        & ((pl.col("ns_pair_sources") <= 1) | (pl.col("denied_share") >= t.failed_share))
        & ~_infrastructure()
    )


# Explicit registry, in priority order: the first rule that fires names the edge.
RULES: tuple[Rule, ...] = (
    Rule(
        "port_scan",
        "one source reached one destination on many ports, mostly denied or unused by others",
        _port_scan,
    ),
    Rule(
        "host_sweep",
        "one source reached many destinations on one port, mostly denied or not steady",
        _host_sweep,
    ),
    Rule(
        "database_lateral",
        "cross-namespace access to a database port from a source that is not an established client",
        _database_lateral,
    ),
)


def rule_column(thresholds: RuleThresholds, rules: tuple[Rule, ...] = RULES) -> pl.Expr:
    """The name of the first rule that fires for each edge, or null; aliased ``rule``."""
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for rule in reversed(rules):
        expr = (
            pl.when(rule.condition(thresholds).fill_null(False))
            .then(pl.lit(rule.name))
            .otherwise(expr)
        )
    return expr.alias("rule")
