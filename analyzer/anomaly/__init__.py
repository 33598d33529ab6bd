"""Suspicious traffic to keep out of the allow-list: transparent rules plus an isolation forest.

>>> from analyzer.anomaly import detect_anomalies            # doctest: +SKIP
>>> result = detect_anomalies(connections.frame, random_state=0)  # doctest: +SKIP
>>> result.flagged.select("src_key", "dst_key", "score", "rule", "reasons")  # doctest: +SKIP

See docs/anomalies.md for the features, the rules and how to read scores.
"""

from __future__ import annotations

from analyzer.anomaly._detect import (
    AnomalyResult,
    AnomalySummary,
    detect_anomalies,
    exclude_anomalies,
)
from analyzer.anomaly.detector import DEFAULT_THRESHOLD, EdgeAnomalyDetector
from analyzer.anomaly.evaluate import EdgeMetrics, evaluate_against_truth
from analyzer.anomaly.features import DATABASE_PORTS, MODEL_FEATURES, compute_features
from analyzer.anomaly.output import detect_store_anomalies
from analyzer.anomaly.rules import RULES, Rule, RuleThresholds

__all__ = [
    "AnomalyResult",
    "AnomalySummary",
    "DATABASE_PORTS",
    "DEFAULT_THRESHOLD",
    "EdgeAnomalyDetector",
    "EdgeMetrics",
    "MODEL_FEATURES",
    "RULES",
    "Rule",
    "RuleThresholds",
    "compute_features",
    "detect_anomalies",
    "detect_store_anomalies",
    "evaluate_against_truth",
    "exclude_anomalies",
]
