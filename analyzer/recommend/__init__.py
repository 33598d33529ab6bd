"""Recommend least-privilege policies: synthesis, merging, flavours, verification, probes.

::

    connections + identity groups + flagged anomalies
        -> synthesize.py (one policy per group and direction, observed peers and ports)
        -> merge.py (groups with identical rules folded)
        -> render.py (kubernetes | cilium | calico manifests, evidence annotations)
        -> verify.py (replay every observed request through the exact policy engine)
        -> probes.py (commands that try to break the rules)
    engine.py ties the steps into one ``Recommendation``; bundle.py writes it to a directory.
"""

from __future__ import annotations

from analyzer.recommend.engine import (
    SYSTEM_NAMESPACES,
    Recommendation,
    RecommendOptions,
    recommend,
)

__all__ = ["SYSTEM_NAMESPACES", "Recommendation", "RecommendOptions", "recommend"]
