"""Choose the detector's thresholds on a population of generated captures (calibration path).

Population: the project generator (`analyzer.generate`) over seeds, sizes, formats, DNS
visibility and window lengths, with and without the loud attacker, each with careful attacks and
legitimate newcomers planted by `stealth_inject.py`. The held-out family (`heldout/`) is not
used here. For each candidate setting of `RuleThresholds` (novelty p-value, novelty gap, shared
port clients) and of the model threshold it records edge-level precision and recall per attack
class and the false positives on legitimate edges and newcomers, and writes
``benchmarks/results/anomaly-calibration.json``.

Usage::

    python benchmarks/calibrate_anomaly.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stealth_inject import CLASSES, LEGIT, plant  # noqa: E402

from analyzer.anomaly import RuleThresholds, detect_anomalies  # noqa: E402
from analyzer.anomaly.evaluate import attack_rows  # noqa: E402
from analyzer.connections import derive_connections  # noqa: E402
from analyzer.generate import ScenarioConfig, build_scenario, write_flows  # noqa: E402
from analyzer.ingest import read_flow_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["src_group", "dst_group", "protocol", "dst_port"]
LOUD = frozenset({"scan", "sweep", "lateral"})
# (name, flows, generator settings)
POPULATION: tuple[tuple[str, int, dict[str, Any]], ...] = (
    ("small", 20_000, {}),
    ("medium", 60_000, {"extra_namespaces": 10}),
    ("no-dns", 30_000, {"dns_visibility": False, "policy_verdicts": False, "nodes": 5}),
    ("window-10min", 30_000, {"window_seconds": 600}),
    ("window-24h", 30_000, {"window_seconds": 86_400}),
    ("wide", 40_000, {"workloads_per_namespace": 8, "extra_namespaces": 6}),
)
SEEDS = (101, 102, 103)
GRID = {
    "novelty_p": (0.01, 0.02, 0.05, 0.1),
    "novelty_gap": (0.1, 0.2, 0.3),
    "shared_port_clients": (1, 2),
}


def population(tmp: Path, quick: bool) -> list[dict[str, Any]]:
    runs = []
    members = POPULATION[:2] if quick else POPULATION
    seeds = SEEDS[:2] if quick else SEEDS
    for (name, flows, settings), seed, loud, fmt in itertools.product(
        members, seeds, (False, True), ("hubble", "calico")
    ):
        if fmt == "calico" and name != "small":
            continue
        cfg = ScenarioConfig(seed=seed, attacks=LOUD if loud else frozenset(), **settings)
        scenario = build_scenario(cfg)
        path = write_flows(scenario, tmp / f"{name}-{seed}-{loud}.{fmt}", fmt, flows)
        conns = derive_connections(read_flow_file(path).frame).frame
        path.unlink()
        planted = plant(conns, seed)
        loud_edges = (
            planted.frame.with_columns(attack_rows(planted.frame, scenario.truth()["attack_paths"]))
            .filter(pl.col("attack"))
            .with_columns(
                pl.col("src_group").fill_null(pl.col("src_key")),
                pl.col("dst_group").fill_null(pl.col("dst_key")),
            )
            .select(KEYS)
            .unique()
            .with_columns(pl.lit("loud").alias("class"))
        )
        labels = pl.concat([planted.labels, loud_edges]).unique(subset=KEYS, keep="first")
        runs.append(
            {"name": f"{fmt}/{name}/{seed}/{'loud' if loud else 'quiet'}", "seed": seed,
             "frame": planted.frame, "labels": labels}
        )  # fmt: skip
        print(f"population: {runs[-1]['name']}: {conns.height} connections", file=sys.stderr)
    return runs


def score(runs: list[dict[str, Any]], limits: RuleThresholds) -> dict[str, Any]:
    classes = (*CLASSES, "loud")
    found = {k: [0, 0] for k in (*classes, *LEGIT)}
    fp_edges = 0
    legit_total = 0
    fp_examples: list[str] = []
    for run in runs:
        result = detect_anomalies(run["frame"], random_state=run["seed"], thresholds=limits)
        edges = result.edges.join(run["labels"], on=KEYS, how="left", nulls_equal=True)
        for row in (
            edges.filter(pl.col("class").is_not_null())
            .group_by("class")
            .agg(pl.col("flagged").sum(), pl.len())
            .iter_rows(named=True)
        ):
            found[row["class"]][0] += int(row["flagged"])
            found[row["class"]][1] += int(row["len"])
        legit = edges.filter(pl.col("class").is_null() | pl.col("class").is_in(LEGIT))
        legit_total += legit.height
        bad = legit.filter(pl.col("flagged"))
        fp_edges += bad.height
        for r in bad.head(3).iter_rows(named=True):
            fp_examples.append(f"{run['name']}: {r['src_name']} -> {r['dst_name']} "
                               f"{r['protocol']}/{r['dst_port']} ({r['rule']})")  # fmt: skip
    attack_tp = sum(found[k][0] for k in classes)
    attack_n = sum(found[k][1] for k in classes)
    return {
        "recall_by_class": {k: f"{found[k][0]}/{found[k][1]}" for k in classes},
        "legit_newcomers_flagged": {k: f"{found[k][0]}/{found[k][1]}" for k in LEGIT},
        "attack_edges": attack_n,
        "true_positives": attack_tp,
        "false_positives": fp_edges,
        "legit_edges": legit_total,
        "precision": round(attack_tp / (attack_tp + fp_edges), 4) if attack_tp + fp_edges else 1,
        "recall": round(attack_tp / attack_n, 4) if attack_n else 1.0,
        "fp_examples": fp_examples[:12],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/anomaly-calibration.json"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        runs = population(Path(tmp), args.quick)
    settings = []
    for values in itertools.product(*GRID.values()):
        params = dict(zip(GRID, values, strict=True))
        result = score(runs, RuleThresholds(**params))  # type: ignore[arg-type]
        print(f"{params}: P {result['precision']} R {result['recall']} "
              f"fp {result['false_positives']} {result['recall_by_class']}",
              file=sys.stderr)  # fmt: skip
        settings.append({"params": params, **result})
    default = score(runs, RuleThresholds())
    doc = {
        "benchmark": "anomaly-calibration",
        "population": [r["name"] for r in runs],
        "default": {"params": "RuleThresholds()", **default},
        "grid": settings,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc["default"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
