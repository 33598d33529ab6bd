"""Per-command fixed costs on a store with a fresh rollup (issue 11: "graph, recommend -n X,
recommend (all), audit, anomalies and report each within 5 s and 500 MB").

Each command runs in its own process on the same store, once with the code of ``--baseline-ref``
(``git archive``, the code before) and once with this tree (after); wall time, CPU seconds (user +
system) and peak RSS come from ``wait4``. Outputs (``-o json``; the report's HTML without its
"Generated" time) are compared byte for byte. The stores are only read: give a store whose
rollup is fresh for both codes (``analyzer store rebuild`` on a copy).

Usage::

    nice -n 10 python benchmarks/bench_fixed_costs.py --baseline-ref main \\
        --store 1000000=/work/data/fixedcost/store-1000000 \\
        --store 4000000=/work/data/fixedcost/store-4000000 \\
        --policies /work/data/events/gen-4000000/existing-policies.yaml \\
        --work /work/data/fixedcost \\
        [--explain develop/frontend-xgvv7pwl8x-2p8t9 extra-038:app=svc-1]

A store can hold the fresh rollups of both codes side by side (each reads only the files of its
own key): rebuild a copy with the baseline code and copy its ``rollup/*-<key>.parquet`` in.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "fixed-costs.json"
sys.path.insert(0, str(HERE))
from baseline_code import baseline_source  # noqa: E402
from bench_rollup import COMMANDS as ROLLUP_COMMANDS  # noqa: E402
from bench_rollup import cli  # noqa: E402
from harness import middle, without_time  # noqa: E402

# the commands of the rollup series whose fixed costs matter (stats and simulate are small)
COMMANDS: dict[str, list[str]] = {
    name: argv for name, argv in ROLLUP_COMMANDS.items() if name not in ("stats", "simulate")
}


def output_of(out: Path, name: str) -> bytes:
    if name == "report":
        html = without_time((out / "report.html").read_bytes())
        # the JSON names the report's path, which is the run's own directory
        return html + (out / "stdout").read_bytes().replace(str(out).encode(), b"{out}")
    return (out / "stdout").read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-ref", default="main")
    parser.add_argument("--store", action="append", required=True, help="LABEL=PATH")
    parser.add_argument("--policies", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--only", default="", help="comma-separated command names")
    parser.add_argument("--explain", nargs=2, metavar=("FROM", "TO"), default=None,
                        help="also time `explain --from FROM --to TO --port 8080` (peers of the "
                        "store's capture; it resolves them from the rollup's endpoint table)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per side, alternating before/after; the median CPU run is kept")
    args = parser.parse_args()
    before_src = baseline_source(args.baseline_ref, args.work)
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    results["baseline"] = before_src.name
    if args.explain:
        COMMANDS["explain"] = ["explain", "--policies", "{policies}", "--from", args.explain[0],
                               "--to", args.explain[1], "--port", "8080", "-o", "json"]
    names = [n for n in COMMANDS if not args.only or n in args.only.split(",")]
    for spec in args.store:
        label, store = spec.split("=", 1)
        entry: dict[str, Any] = results.setdefault("stores", {}).setdefault(label, {})
        for name in names:
            row: dict[str, Any] = {}
            outputs = {}
            runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
            for _ in range(args.repeat):  # alternating: both sides see the same load
                for side, src in (("before", before_src), ("after", ROOT)):
                    out = args.work / "runs" / label / re.sub(r"\W+", "-", name) / side
                    argv = [a.format(policies=args.policies, out=out) for a in COMMANDS[name]]
                    runs[side].append(cli(src, [*argv, "--store", store], out))
                    outputs[side] = output_of(out, name)
            for side, measured in runs.items():
                row[side] = middle(measured, key=lambda r: r["cpu_s"])
                row[side]["runs"] = len(measured)
            row["outputs_identical"] = outputs["before"] == outputs["after"]
            row["cpu_ratio"] = round(row["before"]["cpu_s"] / max(row["after"]["cpu_s"], 1e-9), 2)
            entry[name] = row
            print(f"[{label}] {name:<24} before {row['before']}  after {row['after']}  "
                  f"x{row['cpu_ratio']} identical={row['outputs_identical']}", flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
