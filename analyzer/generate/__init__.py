"""Synthetic, realistic flow captures of a seeded cluster, for tests, demos and benchmarks.

>>> from analyzer.generate import ScenarioConfig, build_scenario
>>> scenario = build_scenario(ScenarioConfig(seed=7))
>>> sorted({w.namespace for w in scenario.workloads})[:3]
['develop', 'kube-system', 'monitoring']
"""

from __future__ import annotations

from analyzer.generate.model import (
    ATTACKS,
    DEFAULT_ATTACKS,
    ContainerPort,
    Endpoint,
    Namespace,
    Node,
    Pod,
    ScenarioConfig,
    TrafficPath,
    Workload,
)
from analyzer.generate.output import FORMATS, GenerateResult, generate, write_flows
from analyzer.generate.scenario import Scenario, build_scenario
from analyzer.generate.spellings import STYLES

__all__ = [
    "ATTACKS",
    "DEFAULT_ATTACKS",
    "FORMATS",
    "STYLES",
    "ContainerPort",
    "Endpoint",
    "GenerateResult",
    "Namespace",
    "Node",
    "Pod",
    "Scenario",
    "ScenarioConfig",
    "TrafficPath",
    "Workload",
    "build_scenario",
    "generate",
    "write_flows",
]
