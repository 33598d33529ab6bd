"""Rules and model together: which edges of a store to keep out of the allow-list.

The combination is deliberately one-sided. A rule hit is a confident flag (the shapes in
`rules` are attacks, not merely unusual traffic), and so is every other edge of a source a rule
caught: a compromised pod's DNS lookups are not evidence of what it needs. The isolation
forest ranks every edge, but an edge the rules did not catch is flagged only when the forest
isolates it quickly (score above the calibrated threshold) *and* at least two independent
pieces of suspicious evidence agree: mostly denied, a port no other client of the server uses,
a source that first appeared late in the window. Being rare is not enough: an ingress
controller or a Prometheus with many peers is rare too, but its traffic is answered, steady and
shared, so it carries none of that evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from analyzer import schema as c
from analyzer.anomaly.defaults import DEFAULT_THRESHOLD
from analyzer.anomaly.escalate import Suspect, escalate, suspects
from analyzer.anomaly.explain import explain_edges
from analyzer.anomaly.features import (
    MODEL_FEATURES,
    SOURCE_MODEL_FEATURES,
    compute_features,
    compute_source_features,
)
from analyzer.anomaly.forest_helper import forest_scores
from analyzer.anomaly.forest_helper import stop as stop_forest_helper
from analyzer.anomaly.rules import (
    COMPROMISED_SOURCE,
    INFRASTRUCTURE_ENTITIES,
    RULES,
    RuleThresholds,
    rule_column,
)
from analyzer.errors import SchemaError, UsageError

__all__ = [
    "AnomalyResult",
    "AnomalySummary",
    "detect_anomalies",
    "exclude_anomalies",
    "restrict_anomalies",
    "MIN_EDGES_FOR_MODEL",
    "MIN_SOURCES_FOR_MODEL",
    "MIN_EVIDENCE",
]

# Fewer sources (edges) than this give a forest nothing to learn "normal" from; rules still apply.
MIN_SOURCES_FOR_MODEL = 8
MIN_EDGES_FOR_MODEL = 8
# Independent pieces of evidence a model-only flag needs (see the module docstring).
MIN_EVIDENCE = 2
# Rule hits rank above every model-only flag; the model score orders them among themselves.
RULE_SCORE_FLOOR = 0.9
SOURCE_SCORE_FLOOR = 0.8


@dataclass(frozen=True, slots=True)
class AnomalySummary:
    """Counts that tell a reader how much was looked at and why things were flagged."""

    connections: int
    edges: int
    flagged_edges: int
    flagged_connections: int
    by_rule: dict[str, int] = field(default_factory=dict)
    model_flagged: int = 0
    model_used: bool = False
    threshold: float = DEFAULT_THRESHOLD
    random_state: int = 0
    suspects: tuple[Suspect, ...] = ()
    kept_edges: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return {
            "connections": self.connections,
            "edges": self.edges,
            "flagged_edges": self.flagged_edges,
            "flagged_connections": self.flagged_connections,
            "by_rule": dict(self.by_rule),
            "model_flagged": self.model_flagged,
            "model_used": self.model_used,
            "threshold": self.threshold,
            "random_state": self.random_state,
            "kept_edges": self.kept_edges,
            "suspects": [s.to_dict() for s in self.suspects],
        }


@dataclass(frozen=True, slots=True)
class AnomalyResult:
    """What `detect_anomalies` found.

    Attributes
    ----------
    flagged
        The flagged connection rows (the input's columns) plus ``score`` (float, higher is more
        anomalous), ``reasons`` (list[str]) and ``rule`` (str or null), most anomalous first.
    edges
        Every edge (source group, destination group, protocol, port) with its features, its
        ``model_score`` (its source's), ``edge_model_score``, ``score``, ``rule``, ``evidence``
        count, ``flagged`` and ``reasons`` (null when not flagged).
    edges_scored
        Number of edges scored.
    summary
        Counts for people and for JSON output.
    """

    flagged: pl.DataFrame
    edges: pl.DataFrame
    edges_scored: int
    summary: AnomalySummary


def _evidence() -> pl.Expr:
    """Count of independent suspicious signs on an edge (each 0 or 1).

    Fan-out and rarity are deliberately not signs: Prometheus, an ingress controller and DNS
    have them by design. Failure, exclusivity and novelty are what they lack.
    """
    signs = [
        pl.col("denied_share") >= 0.5,
        pl.col("unshared_port") > 0,
        pl.col("src_first_seen_at") >= 0.5,
    ]
    return pl.sum_horizontal([s.fill_null(False).cast(pl.Int32) for s in signs]).alias("evidence")


def _check_columns(frame: pl.DataFrame) -> None:
    missing = [col for col in c.ANOMALY_INPUT_COLUMNS if col not in frame.columns]
    if missing:
        raise SchemaError(f"connections frame lacks columns: {', '.join(missing)}")
    for col in (c.FIRST_SEEN, c.LAST_SEEN):
        if not isinstance(frame.schema[col], pl.Datetime):
            raise SchemaError(f"connections column {col} is {frame.schema[col]}, not a datetime")


def _forest_scores(frame: pl.DataFrame, columns: Sequence[str], random_state: int) -> np.ndarray:
    matrix = frame.select(
        pl.col(list(columns)).cast(pl.Float64).fill_null(0.0).fill_nan(0.0)
    ).to_numpy()
    scores = forest_scores(matrix, random_state)  # the helper process, when the CLI started it
    if scores is not None:
        return scores
    # scikit-learn is imported here, not with this module: with the helper, never
    from analyzer.anomaly.detector import EdgeAnomalyDetector

    detector = EdgeAnomalyDetector(random_state=random_state).fit(matrix)
    return detector.anomaly_score(matrix)


def _with_model_scores(edges: pl.DataFrame, random_state: int) -> tuple[pl.DataFrame, bool]:
    """Add ``model_score`` (the source's isolation score) and ``edge_model_score``.

    With too few sources or edges to learn from, the scores are 0 and only rules flag.
    """
    sources = compute_source_features(edges)
    used = sources.height >= MIN_SOURCES_FOR_MODEL
    source_scores = (
        _forest_scores(sources, SOURCE_MODEL_FEATURES, random_state)
        if used
        else np.zeros(sources.height)
    )
    edge_scores = (
        _forest_scores(edges, MODEL_FEATURES, random_state)
        if edges.height >= MIN_EDGES_FOR_MODEL
        else np.zeros(edges.height)
    )
    # A command scores its edges once: the helper's ~230 MB go back now, not with the
    # command's exit (its own peak comes later, in the report's diff and render).
    stop_forest_helper()
    scored_sources = sources.select(
        c.SRC_GROUP, pl.Series("model_score", source_scores, dtype=pl.Float64)
    )
    edges = edges.with_columns(pl.Series("edge_model_score", edge_scores, dtype=pl.Float64)).join(
        scored_sources, on=c.SRC_GROUP, how="left", nulls_equal=True, maintain_order="left"
    )
    return edges, used


def detect_anomalies(
    connections: pl.DataFrame,
    *,
    random_state: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
    thresholds: RuleThresholds | None = None,
    namespaces: Sequence[str] | None = None,
) -> AnomalyResult:
    """Flag the edges of a store that should not be allowed without review.

    Parameters
    ----------
    connections
        ``Connections.frame`` of the whole store (the model learns "normal" from all of it).
    random_state
        Seed of the isolation forest; the same input and seed give the same result.
    threshold
        Model anomaly score above which an edge the rules did not catch may be flagged.
    thresholds
        Where the transparent rules fire (`RuleThresholds` defaults when None).
    namespaces
        Report only edges whose source or destination is in one of these namespaces.

    Returns
    -------
    AnomalyResult
    """
    _check_columns(connections)
    if not 0.0 < threshold < 1.0:
        raise UsageError(f"anomaly threshold must be between 0 and 1, got {threshold}")
    limits = thresholds or RuleThresholds()
    if connections.height == 0:
        edges = pl.DataFrame()
        return AnomalyResult(
            flagged=connections.with_columns(
                pl.lit(None, dtype=pl.Float64).alias(c.SCORE),
                pl.lit(None, dtype=pl.List(pl.String)).alias(c.REASONS),
                pl.lit(None, dtype=pl.String).alias(c.RULE),
            ),
            edges=edges,
            edges_scored=0,
            summary=AnomalySummary(0, 0, 0, 0, random_state=random_state, threshold=threshold),
        )

    edges, model_used = _scored_edges(connections, random_state, threshold, limits)
    if namespaces:
        edges = _in_namespaces(edges, namespaces)
    return _result(edges, connections, model_used, threshold, random_state)


def _in_namespaces(edges: pl.DataFrame, namespaces: Sequence[str]) -> pl.DataFrame:
    wanted = list(namespaces)
    return edges.filter(
        pl.col("src_namespace").is_in(wanted).fill_null(False)
        | pl.col("dst_namespace").is_in(wanted).fill_null(False)
    )


def restrict_anomalies(
    result: AnomalyResult, connections: pl.DataFrame, namespaces: Sequence[str]
) -> AnomalyResult:
    """``result`` (scored over every namespace) limited to edges from or to ``namespaces``.

    The scores stay those of the whole population; only what is reported changes, exactly as
    ``detect_anomalies(connections, namespaces=namespaces)`` with the same other arguments.
    """
    if not namespaces or result.edges.height == 0:
        return result
    edges = _in_namespaces(result.edges.drop(c.REASONS), namespaces)
    s = result.summary
    return _result(edges, connections, s.model_used, s.threshold, s.random_state)


def _scored_edges(
    connections: pl.DataFrame, random_state: int, threshold: float, limits: RuleThresholds
) -> tuple[pl.DataFrame, bool]:
    """Every edge with its features, model scores, rule, ``flagged`` and ``score``."""
    edges = compute_features(connections, steady_share=limits.steady_active_share)
    edges, model_used = _with_model_scores(edges, random_state)
    infrastructure = pl.col("src_entity").is_in(list(INFRASTRUCTURE_ENTITIES)).fill_null(False)
    edges = (
        edges.with_columns(_evidence())
        .with_columns(rule_column(limits))
        .pipe(escalate, connections, limits)
        .with_columns(
            (
                pl.col("rule").is_not_null()
                | (
                    (pl.col("model_score") >= threshold)
                    & (pl.col("evidence") >= MIN_EVIDENCE)
                    & ~infrastructure
                )
            ).alias("flagged")
        )
        .with_columns(
            pl.when(pl.col("rule") == COMPROMISED_SOURCE)
            .then(
                SOURCE_SCORE_FLOOR + (RULE_SCORE_FLOOR - SOURCE_SCORE_FLOOR) * pl.col("model_score")
            )
            .when(pl.col("rule").is_not_null())
            .then(RULE_SCORE_FLOOR + (1.0 - RULE_SCORE_FLOOR) * pl.col("model_score"))
            .otherwise(pl.col("model_score"))
            .alias(c.SCORE)
        )
    )
    return edges, model_used


def _result(
    edges: pl.DataFrame,
    connections: pl.DataFrame,
    model_used: bool,
    threshold: float,
    random_state: int,
) -> AnomalyResult:
    hits = edges.filter(pl.col("flagged"))
    hits = hits.with_columns(explain_edges(hits)).sort(
        [c.SCORE, "edge_model_score", *c.EDGE_KEYS],
        descending=[True, True, False, False, False, False],
        nulls_last=True,
    )
    edges = edges.join(
        hits.select(*c.EDGE_KEYS, c.REASONS),
        on=list(c.EDGE_KEYS),
        how="left",
        nulls_equal=True,
        maintain_order="left",
    )

    keyed = connections.with_columns(
        pl.col(c.SRC_GROUP).fill_null(pl.col(c.SRC_KEY)).alias("__src_group"),
        pl.col(c.DST_GROUP).fill_null(pl.col(c.DST_KEY)).alias("__dst_group"),
        pl.col(c.DST_PORT).cast(pl.Int32, strict=False).alias("__dst_port"),
    )
    flagged = (
        keyed.join(
            hits.select(
                pl.col(c.SRC_GROUP).alias("__src_group"),
                pl.col(c.DST_GROUP).alias("__dst_group"),
                c.PROTOCOL,
                pl.col(c.DST_PORT).alias("__dst_port"),
                c.SCORE,
                c.REASONS,
                c.RULE,
                pl.int_range(pl.len()).alias("__rank"),
            ),
            on=["__src_group", "__dst_group", c.PROTOCOL, "__dst_port"],
            how="inner",
            nulls_equal=True,
        )
        .sort(["__rank", c.SRC_KEY, c.DST_KEY, c.OUTCOME], nulls_last=True)
        .drop("__src_group", "__dst_group", "__dst_port", "__rank")
    )
    names = [*(rule.name for rule in RULES), COMPROMISED_SOURCE]
    by_rule = {name: int(hits.filter(pl.col("rule") == name).height) for name in names}
    summary = AnomalySummary(
        suspects=suspects(edges, connections),
        kept_edges=int(edges["kept"].fill_null(False).sum()),
        connections=int(connections.height),
        edges=int(edges.height),
        flagged_edges=int(hits.height),
        flagged_connections=int(flagged.height),
        by_rule={k: v for k, v in by_rule.items() if v},
        model_flagged=int(hits.filter(pl.col("rule").is_null()).height),
        model_used=model_used,
        threshold=threshold,
        random_state=random_state,
    )
    return AnomalyResult(
        flagged=flagged, edges=edges, edges_scored=int(edges.height), summary=summary
    )


def exclude_anomalies(connections: pl.DataFrame, result: AnomalyResult) -> pl.DataFrame:
    """The connection rows that were not flagged (what a recommender may allow).

    Parameters
    ----------
    connections
        The frame given to `detect_anomalies`.
    result
        Its result.
    """
    if result.flagged.height == 0:
        return connections
    keys = [c.SRC_KEY, c.DST_KEY, c.PROTOCOL, c.DST_PORT, c.OUTCOME]
    return connections.join(
        result.flagged.select(keys).unique(), on=keys, how="anti", nulls_equal=True
    )
