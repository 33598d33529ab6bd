"""What else of a caught workload to hold back, and which workloads look compromised.

When a rule catches an edge, its source may be an attacker's pod (a ``kubectl run`` debug pod)
or a legitimate workload that has been taken over, or that made one odd connection. Holding
back *everything* such a source does breaks the application it serves: the policy written
without its steady traffic cuts it off. So escalation is split:

* the source's other **new** edges (not steady through the window, or mostly refused) are held
  for review (`rules.COMPROMISED_SOURCE`): a compromised pod's fresh traffic is not evidence of
  what it needs;
* edges it used **steadily** through the window, edges it already used well before the first
  caught edge (by `RuleThresholds.novelty_gap` of the window: part of what it did before the
  incident, however sparse), and edges that its other replicas (pods of the same identity that
  no rule caught) use, stay allowed. The workload is named as a *suspect*
  instead: the notes, the report and `analyzer anomalies` say that it looks compromised and
  should be investigated itself; a NetworkPolicy cannot fix a compromised workload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from analyzer import schema as c
from analyzer.anomaly.rules import COMPROMISED_SOURCE, RuleThresholds

__all__ = ["Suspect", "escalate", "suspects"]

MAX_PODS = 5


@dataclass(frozen=True, slots=True)
class Suspect:
    """A workload (identity) with flagged edges: it may be compromised itself."""

    group: str
    name: str
    namespace: str | None
    rules: tuple[str, ...]
    pods: tuple[str, ...]  # the pods behind the edges a rule (or the model) caught
    flagged_edges: int  # caught by a rule or the model
    held_edges: int  # other new edges held back for review (compromised_source)
    kept_edges: int  # steady or replica-shared edges that stay allowed

    def message(self) -> str:
        """One sentence for notes and reports."""
        rules = ", ".join(r.replace("_", " ") for r in self.rules) or "model"
        text = f"{self.name} looks compromised ({rules} on {_edges(self.flagged_edges)})"
        if self.held_edges:
            text += f"; its {_edges(self.held_edges, 'other new edge')} are held for review"
        if self.kept_edges:
            text += (
                f"; its {_edges(self.kept_edges, 'established edge')} stay allowed so that "
                "the workload keeps working"
            )
        return text + ": investigate the workload itself"

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "name": self.name,
            "namespace": self.namespace,
            "rules": list(self.rules),
            "pods": list(self.pods),
            "flagged_edges": self.flagged_edges,
            "held_edges": self.held_edges,
            "kept_edges": self.kept_edges,
            "message": self.message(),
        }


def _edges(n: int, word: str = "edge") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _keyed(connections: pl.DataFrame) -> pl.DataFrame:
    return connections.with_columns(
        pl.col(c.SRC_GROUP).fill_null(pl.col(c.SRC_KEY)),
        pl.col(c.DST_GROUP).fill_null(pl.col(c.DST_KEY)),
        pl.col(c.DST_PORT).cast(pl.Int32, strict=False),
    )


def _replica_edges(connections: pl.DataFrame, caught: pl.DataFrame) -> pl.DataFrame:
    """Edges of caught sources that pods other than the caught ones use."""
    keyed = _keyed(connections)
    pods = keyed.join(caught, on=list(c.EDGE_KEYS), how="semi", nulls_equal=True).select(
        c.SRC_GROUP, c.SRC_KEY
    )
    others = keyed.join(
        pods.select(c.SRC_GROUP).unique(), on=c.SRC_GROUP, how="semi", nulls_equal=True
    ).join(pods.unique(), on=[c.SRC_GROUP, c.SRC_KEY], how="anti", nulls_equal=True)
    return others.select(list(c.EDGE_KEYS)).unique().with_columns(pl.lit(True).alias("replicas"))


def escalate(
    edges: pl.DataFrame, connections: pl.DataFrame, thresholds: RuleThresholds
) -> pl.DataFrame:
    """Name the new edges of a source a rule caught `COMPROMISED_SOURCE`; keep steady ones.

    Adds ``source_rule_hits`` (edges of the source a rule caught), ``source_rules`` (their
    names) and ``kept`` (an edge of a caught source that stays allowed: steady through the
    window and answered, answered and in use well before the source's first caught edge, or
    used by a replica no rule caught).
    """
    hit = pl.col("rule").is_not_null()
    edges = edges.with_columns(
        hit.sum().over(c.SRC_GROUP).alias("source_rule_hits"),
        pl.col("rule")
        .drop_nulls()
        .unique()
        .sort()
        .implode()
        .over(c.SRC_GROUP)
        .alias("source_rules"),
    )
    caught = edges.filter(hit).select(c.EDGE_KEYS)
    replicas = _replica_edges(connections, caught)
    edges = edges.join(replicas, on=list(c.EDGE_KEYS), how="left", nulls_equal=True)
    answered = pl.col("denied_share") < thresholds.failed_share
    steady = (pl.col("inactive_share") <= 1.0 - thresholds.steady_active_share) & answered
    incident = pl.col("first_seen_at").filter(hit).min().over(c.SRC_GROUP)
    before = answered & (pl.col("used_since") <= incident - thresholds.novelty_gap)
    kept = (
        ~hit
        & (pl.col("source_rule_hits") > 0)
        & (steady | before.fill_null(False) | pl.col("replicas").fill_null(False))
    )
    return (
        edges.with_columns(kept.alias("kept"))
        .with_columns(
            pl.when(~hit & (pl.col("source_rule_hits") > 0) & ~pl.col("kept"))
            .then(pl.lit(COMPROMISED_SOURCE))
            .otherwise(pl.col("rule"))
            .alias("rule")
        )
        .drop("replicas")
    )


def suspects(edges: pl.DataFrame, connections: pl.DataFrame) -> tuple[Suspect, ...]:
    """The sources with flagged edges, most flagged first (`edges` after flagging)."""
    if edges.height == 0 or not edges["flagged"].any():
        return ()
    own = pl.col("flagged") & (pl.col("rule").is_null() | (pl.col("rule") != COMPROMISED_SOURCE))
    caught = edges.filter(own).select(c.EDGE_KEYS)
    pods = (
        _keyed(connections)
        .join(caught, on=list(c.EDGE_KEYS), how="semi", nulls_equal=True)
        .group_by(c.SRC_GROUP)
        .agg(pl.col(c.SRC_KEY).unique().sort().head(MAX_PODS).alias("pods"))
    )
    per_source = (
        edges.group_by(c.SRC_GROUP)
        .agg(
            pl.col("src_name").min(),
            pl.col("src_namespace").first(),
            pl.col("rule").filter(own).fill_null("model").unique().sort().alias("rules"),
            own.sum().alias("flagged_edges"),
            (pl.col("rule") == COMPROMISED_SOURCE).fill_null(False).sum().alias("held"),
            pl.col("kept").fill_null(False).sum().alias("kept_edges"),
        )
        .filter(pl.col("flagged_edges") > 0)
        .join(pods, on=c.SRC_GROUP, how="left")
        .sort(["flagged_edges", c.SRC_GROUP], descending=[True, False])
    )
    return tuple(
        Suspect(
            group=str(r[c.SRC_GROUP]),
            name=str(r["src_name"]),
            namespace=r["src_namespace"],
            rules=tuple(r["rules"]),
            pods=tuple(r["pods"] or ()),
            flagged_edges=int(r["flagged_edges"]),
            held_edges=int(r["held"]),
            kept_edges=int(r["kept_edges"]),
        )
        for r in per_source.iter_rows(named=True)
    )
