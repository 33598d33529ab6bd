"""Defaults of the anomaly detector, importable without loading scikit-learn (the CLI needs them
to build its options, and every command pays for what the CLI imports)."""

from __future__ import annotations

__all__ = ["DEFAULT_THRESHOLD"]

# Calibrated on generated scenarios (benchmarks/bench_anomaly.py, docs/anomalies.md): just below
# the lowest source score of a planted attacker (0.63, a lateral move alone), where the model
# path's recall is flat. Legitimate many-peer sources score up to 0.80; `detect_anomalies` keeps
# them out with its evidence gate, not with this threshold.
DEFAULT_THRESHOLD = 0.62
