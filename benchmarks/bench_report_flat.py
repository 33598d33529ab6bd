"""``report`` flat in events (issue 11: the 10M-flow time at most 1.3x the 1M-flow time).

The report runs on each store (``--store LABEL=PATH``, smallest first) with the code of
``--baseline-ref`` (``git archive``: before) and with this tree (after), every round
alternating both codes *and* both stores, so that every measurement of a pair sees the same
load. Each run is its own process with its forest helper (as a user runs it; the helper's CPU is
counted: it is reaped by the command); wall, CPU (user + system) and peak RSS from ``wait4``
(``bench_rollup.run``). Per code and store: the medians; per code: 10M / 1M of the median wall
and of the median CPU. Outputs (the HTML without its "Generated" time, the ``-o json`` with the
run's own directory normalised) are compared byte for byte between the codes, per store.

``--phases``: also the report's phases in one process per store and code, in-process forest
(``ANALYZER_FOREST_IN_PROCESS=1``), CPU seconds of each, median of ``--rounds`` after a warm-up
(where a larger store costs more). ``--reads-only``: instead, what every reading command does
with the rollup before its own work (freshness check, connections read, the ``stats`` summary
and ``explain``'s endpoint table), CPU ms per call, per code and store, alternating
(results/rollup-reads.json). The stores are only read: give copies whose rollup is fresh for
both codes (``analyzer store rebuild``).

Usage::

    nice -n 10 python benchmarks/bench_report_flat.py --baseline-ref main \\
        --store 1M=/work/data/report10m/s1m --store 10M=/work/data/report10m/s10m \\
        --inventory /work/data/tenm/rollup/gen-1000000/inventory.json \\
        --policies /work/data/tenm/rollup/gen-1000000/existing-policies.yaml \\
        --work /work/data/report10m/bench --rounds 7 --phases
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "report-flat.json"
READS = HERE / "results" / "rollup-reads.json"
sys.path.insert(0, str(HERE))
from baseline_code import baseline_source  # noqa: E402
from bench_fixed_costs import command, output_of  # noqa: E402

# The report's phases, each timed on a fresh Analysis (every result of which is computed
# once, on first use): what a larger store could make cost more.
_PHASES = r"""
import json, os, statistics, sys, time
from pathlib import Path
os.environ["ANALYZER_FOREST_IN_PROCESS"] = "1"
src, store, inventory, policies, rounds = sys.argv[1:6]
sys.path.insert(0, src)
import analyzer
assert Path(analyzer.__file__).resolve().is_relative_to(Path(src).resolve())
from analyzer.analysis import Analysis, Scope, load_inventory_file, load_policy_files, open_store
from analyzer.report.build import build_report, report_recommendation
from analyzer.report.render import render_report
times = {}
for r in range(int(rounds) + 1):
    inv = load_inventory_file(Path(inventory))
    pol = load_policy_files([Path(policies)])
    def step(name, f):
        t = time.process_time(); value = f(); spent = time.process_time() - t
        if r:  # round 0 warms imports and caches up
            times.setdefault(name, []).append(spent)
        return value
    a = step("open store", lambda: Analysis(open_store(Path(store)), Scope(), policies=pol,
                                            inventory=inv))
    step("connections (rollup read)", lambda: a.connections)
    step("flow counts", lambda: a.flow_counts)
    step("ingest notes", lambda: a.ingest_notes)
    step("identity graph", lambda: a.scoped_graph)
    step("anomaly model", lambda: a.anomalies)
    step("verdicts", lambda: a.verdicts)
    step("recommendation", lambda: report_recommendation(a, []))
    step("audit", lambda: a.audit())
    model = step("rest of the model", lambda: build_report(a, report_dir=Path(store)))
    step("render", lambda: render_report(model))
print(json.dumps({k: round(statistics.median(v), 4) for k, v in times.items()}))
"""

# What every reading command does with the rollup before its own work, per call (CPU ms, the
# mean of 20 calls): the freshness check (``FlowStore.rollup``), the connections read, and the
# metadata tables ``stats`` and ``explain`` read.
_READS = r"""
import json, sys, time
from pathlib import Path
src, store = sys.argv[1:3]
sys.path.insert(0, src)
import analyzer
assert Path(analyzer.__file__).resolve().is_relative_to(Path(src).resolve())
from analyzer.store import FlowStore
from analyzer.store.flow_summary import read_endpoints, read_summary
opened = FlowStore.open(Path(store))
rollup = opened.rollup()
def per_call(f, n=20):
    f(); t = time.process_time()
    for _ in range(n): f()
    return round((time.process_time() - t) / n * 1000, 2)
print(json.dumps({
    "rollup check": per_call(opened.rollup),
    "connections read": per_call(rollup.connections),
    "stats summary": per_call(lambda: read_summary(rollup.path)),
    "endpoint table": per_call(lambda: read_endpoints(rollup.path)),
}))
"""


def reads(codes: dict[str, Path], stores: list[tuple[str, str]], rounds: int) -> dict[str, Any]:
    """``_READS`` per code and store, alternating, the median of ``rounds``."""
    got: dict[str, dict[str, list[dict[str, float]]]] = {side: {} for side in codes}
    for _ in range(rounds):
        for side, src in codes.items():
            for label, store in stores:
                done = subprocess.run([sys.executable, "-c", _READS, str(src), store],
                                      check=True, capture_output=True, text=True)
                got[side].setdefault(label, []).append(json.loads(done.stdout.splitlines()[-1]))
    return {
        side: {
            label: {k: statistics.median(m[k] for m in measured) for k in measured[0]}
            for label, measured in per.items()
        }
        for side, per in got.items()
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 2)


def phases(src: Path, store: str, args: argparse.Namespace) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _PHASES, str(src), store, str(args.inventory), str(args.policies),
         str(args.rounds)],
        check=True, capture_output=True, text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-ref", default="main")
    parser.add_argument("--store", action="append", required=True,
                        help="LABEL=PATH, smallest first (the ratios divide by the first)")
    parser.add_argument("--inventory", type=Path, required=True)
    parser.add_argument("--policies", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--phases", action="store_true")
    parser.add_argument("--reads-only", action="store_true",
                        help="only the rollup reads of every command (_READS), --rounds times")
    args = parser.parse_args()
    codes = {"before": baseline_source(args.baseline_ref, args.work), "after": ROOT}
    stores = [tuple(spec.split("=", 1)) for spec in args.store]
    if args.reads_only:
        measured = {"baseline": codes["before"].name, "rounds": args.rounds,
                    "cpu_ms_per_call": reads(codes, stores, args.rounds)}
        READS.write_text(json.dumps(measured, indent=2, sort_keys=True) + "\n")
        print(json.dumps(measured["cpu_ms_per_call"], indent=1))
        return
    argv = ["report", "--inventory", str(args.inventory), "--policies", str(args.policies),
            "--out", "{out}/report.html", "-o", "json"]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in codes}
    outputs: dict[str, dict[str, bytes]] = {s: {} for s in codes}
    for r in range(args.rounds):
        for side, src in codes.items():
            for label, store in stores:
                out = args.work / "runs" / label / side
                given = [a.replace("{out}", str(out)) for a in argv]
                run = command(src, [*given, "--store", store], out)
                runs[side].setdefault(label, []).append(run)
                outputs[side][label] = output_of(out, "report")
                print(f"round {r + 1} {side:<6} {label:<4} {run}", flush=True)
    first = stores[0][0]
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_at_end": os.getloadavg()},
        "baseline": codes["before"].name,
        "rounds": args.rounds,
        "stores": dict(stores),
    }
    for side in codes:
        per: dict[str, Any] = {}
        for label, _ in stores:
            measured = runs[side][label]
            per[label] = {
                "wall_s": _median(measured, "wall_s"), "cpu_s": _median(measured, "cpu_s"),
                "peak_rss_mb": _median(measured, "peak_rss_mb"),
                "tree_rss_mb": max(r["tree_rss_mb"] for r in measured),
                "wall_range": [min(r["wall_s"] for r in measured),
                               max(r["wall_s"] for r in measured)],
                "runs": measured,
            }
        for label, _ in stores[1:]:
            per[f"{label}/{first}"] = {
                "wall": round(per[label]["wall_s"] / per[first]["wall_s"], 3),
                "cpu": round(per[label]["cpu_s"] / per[first]["cpu_s"], 3),
            }
        result[side] = per
    result["outputs_identical"] = {
        label: outputs["before"][label] == outputs["after"][label] for label, _ in stores
    }
    if args.phases:
        result["phases_cpu_s"] = {
            side: {label: phases(src, store, args) for label, store in stores}
            for side, src in codes.items()
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    for side in codes:
        print(side, {k: v if "/" in k else {m: v[m] for m in ("wall_s", "cpu_s", "peak_rss_mb")}
                     for k, v in result[side].items()})
    print("outputs identical:", result["outputs_identical"])


if __name__ == "__main__":
    main()
