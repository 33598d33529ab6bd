"""The report's grouped computations give what the per-namespace scans they replace gave.

Each test keeps the old code path (a filter or scan per namespace, which grew with namespaces
x policies or x connections) as the reference and compares on seeded random inputs.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import pytest

from analyzer.recommend.probes import _negative
from analyzer.report.existing import _decided_by_namespace, manifests_yaml
from analyzer.report.render import unified_diff

NAMESPACES = ["a", "b", "c", "d", None]


def _old_decided(judged: pl.DataFrame, ns: str) -> tuple[int, int]:
    touching = judged.filter(
        (pl.col("src_namespace") == ns).fill_null(False)
        | (pl.col("dst_namespace") == ns).fill_null(False)
    )
    allowed = int(touching.filter(pl.col("allowed"))["connections"].sum() or 0)
    denied = int(touching.filter(~pl.col("allowed"))["connections"].sum() or 0)
    return allowed, denied


@pytest.mark.parametrize("seed", range(8))
def test_coverage_totals_equal_the_per_namespace_filters(seed: int) -> None:
    rnd = random.Random(seed)
    n = rnd.randint(0, 300)
    judged = pl.DataFrame(
        {
            "src_namespace": [rnd.choice(NAMESPACES) for _ in range(n)],
            "dst_namespace": [rnd.choice(NAMESPACES) for _ in range(n)],
            "allowed": [rnd.choice([True, False, None]) for _ in range(n)],
            "connections": [rnd.randint(0, 50) for _ in range(n)],
        },
        schema={"src_namespace": pl.String, "dst_namespace": pl.String,
                "allowed": pl.Boolean, "connections": pl.Int64},
    )
    totals = _decided_by_namespace(judged)
    for ns in ["a", "b", "c", "d", "zz"]:
        assert totals.get(ns, (0, 0)) == _old_decided(judged, ns), ns


def _targets(rnd: random.Random) -> list[dict[str, object]]:
    targets = [
        {"dst_namespace": rnd.choice(["a", "b", "c"]),
         "dst_workload": rnd.choice(["w1", "w2", "db"]),
         "dst_port": rnd.choice([80, 5432, 8080]), "dst_entity": "pod"}
        for _ in range(rnd.randint(0, 40))
    ]
    return targets


@pytest.mark.parametrize("seed", range(20))
def test_negative_probes_from_the_namespace_targets_equal_the_full_scan(seed: int) -> None:
    rnd = random.Random(seed)
    targets = _targets(rnd)
    by_ns: dict[object, list[dict[str, object]]] = {}
    for t in targets:
        by_ns.setdefault(t["dst_namespace"], []).append(t)
    observed = {
        (f"deploy/{rnd.choice(['w1', 'w2'])}", t["dst_namespace"], t["dst_workload"], t["dst_port"])
        for t in rnd.sample(targets, k=len(targets) // 2)
    }
    for ns in ("a", "b", "c", "x"):
        for workload in ("deploy/w1", "deploy/w2", "pod/p"):
            old = _negative(ns, workload, targets, observed, False)
            new = _negative(ns, workload, by_ns.get(ns, []), observed, False)
            assert old == new


def _old_recommended(manifests: Mapping[tuple[str, str], Any], ns: str) -> list[Any]:
    return [m for (mns, _), m in sorted(manifests.items()) if mns == ns]


def test_namespace_diffs_equal_the_per_namespace_scan() -> None:
    from analyzer.recommend import Recommendation
    from analyzer.report.sections import sections_from_recommendation

    rnd = random.Random(3)
    manifests = []
    for i in range(60):
        ns = rnd.choice(["a", "b", "c"])
        manifests.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"p{rnd.randint(0, 999):03d}-{i}", "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"app": f"w{i % 4}"}},
                     "policyTypes": ["Ingress"]},
        })
    rec = Recommendation(
        flavor="kubernetes", namespaces=("a", "b", "c", "d"), policies=(),
        manifests=tuple(manifests), notes=(), verification=None,
        probes=(), denied=(), anomalies=(),
    )
    existing: dict[str, Sequence[Any]] = {"a": [manifests[0]], "d": [manifests[1]]}
    by_key = {(m["metadata"]["namespace"], m["metadata"]["name"]): m for m in manifests}
    sections = {s.namespace: s for s in sections_from_recommendation(rec, existing)}
    assert set(sections) == {"a", "b", "c", "d"}
    for ns, section in sections.items():
        recommended = _old_recommended(by_key, ns)
        assert section.existing == len(existing.get(ns, ()))
        if not existing.get(ns):
            # no diff: every line would repeat the recommended YAML the section shows
            assert section.diff is None
            continue
        expected = unified_diff(
            manifests_yaml(existing[ns]), manifests_yaml(recommended) if recommended else "",
            before_name=f"existing/{ns}", after_name=f"recommended/{ns}",
        ) or None
        assert section.diff == expected
    assert sections["d"].diff is not None and "-  name: " in sections["d"].diff
