"""Suspicious traffic to keep out of the allow-list: transparent rules plus an isolation forest.

>>> from analyzer.anomaly import detect_anomalies            # doctest: +SKIP
>>> result = detect_anomalies(connections.frame, random_state=0)  # doctest: +SKIP
>>> result.flagged.select("src_key", "dst_key", "score", "rule", "reasons")  # doctest: +SKIP

See docs/anomalies.md for the features, the rules and how to read scores.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from analyzer.anomaly.defaults import DEFAULT_THRESHOLD

if TYPE_CHECKING:
    from analyzer.anomaly._detect import (
        AnomalyResult,
        AnomalySummary,
        detect_anomalies,
        exclude_anomalies,
        restrict_anomalies,
    )
    from analyzer.anomaly.detector import EdgeAnomalyDetector
    from analyzer.anomaly.evaluate import EdgeMetrics, evaluate_against_truth
    from analyzer.anomaly.features import DATABASE_PORTS, MODEL_FEATURES, compute_features
    from analyzer.anomaly.records import flagged_edge_records
    from analyzer.anomaly.rules import RULES, DetectionRule, RuleThresholds

# scikit-learn takes about a second to import; load the heavy modules on first use so that
# commands which never detect anomalies (and `--help`) do not pay for it.
_LAZY = {
    "AnomalyResult": "_detect",
    "AnomalySummary": "_detect",
    "detect_anomalies": "_detect",
    "exclude_anomalies": "_detect",
    "restrict_anomalies": "_detect",
    "EdgeAnomalyDetector": "detector",
    "EdgeMetrics": "evaluate",
    "evaluate_against_truth": "evaluate",
    "DATABASE_PORTS": "features",
    "MODEL_FEATURES": "features",
    "compute_features": "features",
    "flagged_edge_records": "records",
    "RULES": "rules",
    "DetectionRule": "rules",
    "RuleThresholds": "rules",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


__all__ = [
    "AnomalyResult",
    "AnomalySummary",
    "DATABASE_PORTS",
    "DEFAULT_THRESHOLD",
    "EdgeAnomalyDetector",
    "EdgeMetrics",
    "MODEL_FEATURES",
    "RULES",
    "DetectionRule",
    "RuleThresholds",
    "compute_features",
    "detect_anomalies",
    "flagged_edge_records",
    "evaluate_against_truth",
    "exclude_anomalies",
    "restrict_anomalies",
]
