"""The held-out scenario family: written apart from `analyzer.generate`, never calibrated on.

`build(seed)` gives a `Heldout` scenario (canonical flow rows plus the attack, newcomer and
established paths to check). See docs/anomalies.md, "Held-out evaluation".
"""

from __future__ import annotations

from .scenario import ATTACK_CLASSES, VARIANTS, Heldout, build

__all__ = ["ATTACK_CLASSES", "VARIANTS", "Heldout", "build"]
