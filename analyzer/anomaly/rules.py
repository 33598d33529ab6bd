"""Transparent rules over the edge features: shapes of attack a person can check by hand.

Each rule is a boolean polars expression over the frame of `features.compute_features`. A rule
hit is a confident flag; the model only ranks what the rules did not catch.

* ``port_scan``: one source reached one destination on many ports, and those attempts were
  mostly denied, or went to ports no other client of that destination uses in one burst.
* ``host_sweep``: one source reached many destinations on the same port, and the attempts were
  mostly denied, or went to ports the targets' other clients do not use *and* came in one
  burst rather than over the window. A Prometheus scraping every pod or an ingress controller
  routing to every backend is sweep-shaped too; it is answered and keeps coming back over the
  window, so this rule leaves it alone.
* ``database_lateral``: a connection to a database port of another namespace from a source
  that is not an established client of it (not steady over the window, or mostly denied), and
  that is either the only workload of its namespace using that database port or was refused.

The careful attacker's rules read the signals of `stealth` (see docs/anomalies.md). Each needs
a new, unsteady edge of a pod *and* either a source without a controller or a surprising
novelty (the edge appeared so long after both of its ends that a routine edge with that many
connections would almost surely have shown earlier):

* ``environment_crossing``: the first time this source crosses from its environment into
  another (dev -> prod), alone among the clients of its environment on that server port;
* ``new_api_access``: a pod starting to talk to the kube-apiserver;
* ``new_external``: an external name or address no other workload contacts, first contacted
  late by a workload that was already talking to others;

  both also fire at the looser ``lone_replica_p`` when one replica alone made the edge while
  its sibling replicas, present at the time, did not (`replicas`: a compromised pod among
  replicas);
* ``unlike_client``: a client on a server's shared port unlike every established client there
  in at least two ways (namespace, controller kind, labels) when it has no controller, in all
  three when it is only new.

* ``compromised_source``: once a source is caught by one of the rules above, its other *new*
  edges (its DNS lookups included) are held back for review too; edges it used steadily through
  the window, or that its other replicas use, stay allowed (`escalate`).

Sources that are the node itself (kubelet probes), other nodes or the health checker are
infrastructure that NetworkPolicy cannot select; no rule fires for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

__all__ = [
    "COMPROMISED_SOURCE",
    "INFRASTRUCTURE_ENTITIES",
    "RULES",
    "DetectionRule",
    "RuleThresholds",
    "rule_column",
]

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
        Share of the window between first and last contact that counts as steady: a scan or
        a sweep is one burst, a scraper or an ingress controller keeps coming back.
    novelty_p
        Largest chance that a routine edge shows none of its connections between the moment
        both of its ends were present and its first connection, for the edge to count as new
        behaviour (`stealth` ``novelty_p``).
    novelty_gap
        Share of the window between both ends being present and the edge's first connection
        that makes a one-off edge new where one connection is already telling (a first
        environment crossing, an unnamed address from a workload that uses named ones).
    shared_port_clients
        Other clients a server port needs before a client can be unlike them.
    unlike_min
        Ways (namespace, controller kind, labels) in which a client must differ from every
        other client of that port.
    lone_replica_p
        The looser ``novelty_p`` at which a new API-server or external edge counts as new
        behaviour when one pod of a replicated workload made it and its sibling replicas,
        present at the time, did not (`replicas`).
    """

    scan_min_ports: int = 5
    sweep_min_targets: int = 5
    failed_share: float = 0.5
    unshared_share: float = 0.5
    steady_active_share: float = 0.5
    novelty_p: float = 0.01
    novelty_gap: float = 0.2
    shared_port_clients: int = 2
    unlike_min: int = 2
    lone_replica_p: float = 0.2


@dataclass(frozen=True, slots=True)
class DetectionRule:
    """A named rule: its condition over the edge frame and a one-line description."""

    name: str
    description: str
    condition: Callable[[RuleThresholds], pl.Expr]


def _infrastructure() -> pl.Expr:
    return pl.col("src_entity").is_in(list(INFRASTRUCTURE_ENTITIES)).fill_null(False)


def _port_scan(t: RuleThresholds) -> pl.Expr:
    steady = pl.col("pair_span") >= t.steady_active_share
    return (
        (pl.col("pair_ports") >= t.scan_min_ports)
        & (
            (pl.col("pair_denied_share") >= t.failed_share)
            | ((pl.col("pair_unshared_share") >= t.unshared_share) & ~steady)
        )
        & ~_infrastructure()
    )


def _host_sweep(t: RuleThresholds) -> pl.Expr:
    steady = pl.col("sweep_span") >= t.steady_active_share
    return (
        (pl.col("sweep_targets") >= t.sweep_min_targets)
        & (
            (pl.col("sweep_denied_share") >= t.failed_share)
            | ((pl.col("sweep_unshared_share") >= t.unshared_share) & ~steady)
        )
        & ~_infrastructure()
    )


def _database_lateral(t: RuleThresholds) -> pl.Expr:
    # An established client talks to the database steadily over the window and is answered;
    # a newcomer from another namespace that no other workload of its namespace accompanies
    # (or that is refused) is what a compromised pod moving towards production data looks like.
    established = (pl.col("inactive_share") <= 1.0 - t.steady_active_share) & (
        pl.col("denied_share") < t.failed_share
    )
    return (
        (pl.col("cross_namespace") > 0)
        & (pl.col("database_port") > 0)
        & ~established
        & (
            (pl.col("namespace_steady_clients_on_port") == 0)
            | (pl.col("denied_share") >= t.failed_share)
        )
        & ~_infrastructure()
    )


def _new_pod_edge(t: RuleThresholds) -> pl.Expr:
    """A pod's edge that is not steady through the window (or is mostly refused)."""
    steady = (pl.col("inactive_share") <= 1.0 - t.steady_active_share) & (
        pl.col("denied_share") < t.failed_share
    )
    return (pl.col("src_entity") == "pod").fill_null(False) & ~steady


def _surprising(t: RuleThresholds) -> pl.Expr:
    return pl.col("novelty_p") <= t.novelty_p


def _bare() -> pl.Expr:
    return pl.col("src_bare") > 0


def _lone_and_late(t: RuleThresholds) -> pl.Expr:
    """One replica alone made this new edge, and it came later than routine would."""
    return (pl.col("lone_replica") > 0) & (pl.col("novelty_p") <= t.lone_replica_p)


def _environment_crossing(t: RuleThresholds) -> pl.Expr:
    return (
        (pl.col("first_env_crossing") > 0)
        & (pl.col("env_clients_on_port") == 0)
        & _new_pod_edge(t)
        & (_bare() | _surprising(t) | (pl.col("novelty") >= t.novelty_gap))
    )


def _new_api_access(t: RuleThresholds) -> pl.Expr:
    return (
        (pl.col("to_apiserver") > 0)
        & _new_pod_edge(t)
        & (_bare() | _surprising(t) | _lone_and_late(t))
    )


def _new_external(t: RuleThresholds) -> pl.Expr:
    unnamed_among_named = (
        ~pl.col("named_external").fill_null(False)
        & (pl.col("src_names_external") > 0)
        & (pl.col("novelty") >= t.novelty_gap)
    )
    return (
        (pl.col("new_external") > 0)
        & _new_pod_edge(t)
        & (_surprising(t) | unnamed_among_named | _lone_and_late(t))
    )


def _unlike_client(t: RuleThresholds) -> pl.Expr:
    return (
        (pl.col("other_clients_on_port") >= t.shared_port_clients)
        & _new_pod_edge(t)
        # Another namespace and other labels alone are what any cross-namespace caller has:
        # without a controller two differences suffice, with one all three must differ.
        & (
            (_bare() & (pl.col("unlike_score") >= t.unlike_min))
            | (_surprising(t) & (pl.col("unlike_score") >= 3))
        )
    )


# Explicit registry, in priority order: the first rule that fires names the edge. A scan that
# also touched a database port is named a scan; a database lateral move beats the sweep shape
# that a many-port scan of several neighbours also has.
RULES: tuple[DetectionRule, ...] = (
    DetectionRule(
        "port_scan",
        "one source reached one destination on many ports, mostly denied or unused by others",
        _port_scan,
    ),
    DetectionRule(
        "database_lateral",
        "cross-namespace access to a database port from a source that is not an established client",
        _database_lateral,
    ),
    DetectionRule(
        "host_sweep",
        "one source reached many destinations on one port, mostly denied or not steady",
        _host_sweep,
    ),
    DetectionRule(
        "environment_crossing",
        "the first crossing of this source into another environment, new and unlike its peers",
        _environment_crossing,
    ),
    DetectionRule(
        "new_api_access",
        "a pod starting to talk to the kube-apiserver late, or a pod without a controller, "
        "or one replica alone",
        _new_api_access,
    ),
    DetectionRule(
        "new_external",
        "an external destination nobody else contacts, first contacted late (or by one "
        "replica alone)",
        _new_external,
    ),
    DetectionRule(
        "unlike_client",
        "a new client of a shared server port unlike every other client there",
        _unlike_client,
    ),
)

# Not a rule over features but over rule hits: every other edge of a source that a rule caught.
COMPROMISED_SOURCE = "compromised_source"
COMPROMISED_SOURCE_DESCRIPTION = (
    "another new edge of a source that a rule caught; its steady edges stay allowed"
)


def rule_column(thresholds: RuleThresholds, rules: tuple[DetectionRule, ...] = RULES) -> pl.Expr:
    """The name of the first rule that fires for each edge, or null; aliased ``rule``."""
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for rule in reversed(rules):
        expr = (
            pl.when(rule.condition(thresholds).fill_null(False))
            .then(pl.lit(rule.name))
            .otherwise(expr)
        )
    return expr.alias("rule")
