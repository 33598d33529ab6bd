"""The isolation forest's helper process (issue 11, docs/anomalies.md "Where it runs"): each
command that scores anomalies run with the helper and with ``ANALYZER_FOREST_IN_PROCESS=1``,
alternating, on the same store.

Each run is its own process (this tree's code). Reported per run: wall time; the command's own
CPU seconds and its children's (the helper: reaped by the command, so counted in its wait4
total), read by the command itself at exit (``RUSAGE_SELF`` / ``RUSAGE_CHILDREN``); peak RSS of
the largest process (wait4) and the summed RSS of the command and its helper sampled every 10
ms; whether the command imported scikit-learn. Outputs are compared byte for byte (the report
without its "Generated" time). On an idle 2-core machine the command's wall time approaches
its own CPU plus the time it waits for the helper; on a loaded one the helper's CPU competes
with everything else, so the CPU split is the comparison.

Usage::

    nice -n 10 python benchmarks/bench_forest_helper.py --store 4000000=STORE \\
        --policies .../gen-4000000/existing-policies.yaml --work DIR [--repeat 3]

Results: ``benchmarks/results/forest-helper.json`` (one entry per store label).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "forest-helper.json"
sys.path.insert(0, str(HERE))
from harness import middle, run, tree_env, without_time  # noqa: E402

# The CLI as its entry point runs it; at exit (after the helper was reaped) the command's own
# and its children's CPU, and whether it imported scikit-learn, as the last line of stderr.
_CHILD = (
    "import atexit, resource, sys, json; "
    "atexit.register(lambda: print(json.dumps({'self': (lambda u: u.ru_utime + u.ru_stime)("
    "resource.getrusage(resource.RUSAGE_SELF)), 'children': (lambda u: u.ru_utime + "
    "u.ru_stime)(resource.getrusage(resource.RUSAGE_CHILDREN)), "
    "'sklearn': 'sklearn' in sys.modules}), file=sys.stderr)); "
    "sys.argv = ['analyzer', *sys.argv[1:]]; "
    "from analyzer.cli import app; app()"
)
COMMANDS: dict[str, list[str]] = {
    "recommend -n production": ["recommend", "-n", "production", "-o", "json"],
    "recommend (all)": ["recommend", "-o", "json"],
    "anomalies": ["anomalies", "-o", "json"],
    "audit": ["audit", "-o", "json", "--policies", "{policies}"],
    "report": ["report", "--policies", "{policies}", "--out", "{out}/report.html", "-o", "json"],
}


def one(argv: list[str], out: Path, in_process: bool) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    env = tree_env(ROOT, ANALYZER_FOREST_IN_PROCESS="1" if in_process else None)
    measured = run([sys.executable, "-c", _CHILD, *argv], env=env, cwd=out,
                   stdout=out / "stdout", stderr=out / "stderr", sample_tree=True)
    measured.check(" ".join(argv[:3]))
    own = json.loads(measured.stderr.decode().strip().splitlines()[-1])
    numbers = measured.numbers(tree=True)
    return {
        "wall_s": numbers["wall_s"],
        "cpu_s": numbers["cpu_s"],
        "command_cpu_s": round(own["self"], 2),
        "helper_cpu_s": round(own["children"], 2),
        "peak_rss_mb": numbers["peak_rss_mb"],
        "tree_rss_mb": numbers["tree_rss_mb"],
        "imported_sklearn": own["sklearn"],
    }


def output(out: Path, name: str) -> bytes:
    if name == "report":
        return without_time((out / "report.html").read_bytes())
    return (out / "stdout").read_bytes()


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time, with every run's numbers kept."""
    return {**middle(runs, key=lambda r: r["wall_s"]), "runs": len(runs),
            "wall_s_all": [r["wall_s"] for r in runs],
            "median_command_cpu_s": round(statistics.median(r["command_cpu_s"] for r in runs), 2),
            "median_cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", action="append", required=True, help="LABEL=PATH")
    parser.add_argument("--policies", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_at_start": os.getloadavg()}
    stores = results.setdefault("stores", {})
    for spec in args.store:
        label, _, path = spec.partition("=")
        entry: dict[str, Any] = {"store": path, "commands": {}}
        for name, template in COMMANDS.items():
            runs: dict[str, list[dict[str, Any]]] = {"helper": [], "in_process": []}
            outputs: dict[str, bytes] = {}
            for i in range(args.repeat):
                for mode in ("helper", "in_process"):
                    out = args.work / label / re.sub(r"\W+", "-", name) / f"{mode}-{i}"
                    argv = [a.format(policies=args.policies, out=out) for a in template]
                    runs[mode].append(one([*argv, "--store", path], out, mode == "in_process"))
                    outputs[mode] = output(out, name)
            row = {mode: median_run(r) for mode, r in runs.items()}
            row["outputs_identical"] = outputs["helper"] == outputs["in_process"]
            entry["commands"][name] = row
            print(f"[{label}] {name:<24} helper {row['helper']}\n{'':>30}in-process "
                  f"{row['in_process']}  identical={row['outputs_identical']}", flush=True)
        stores[label] = entry
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written {RESULTS}", flush=True)


if __name__ == "__main__":
    main()
