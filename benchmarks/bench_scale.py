"""Identities scale (issue 11): recommend, simulate, audit and report as workloads grow.

For each size of the series (``--series 50,500,2500,10000`` workloads; the flows grow with
them, 200 per workload, 2M at 10,000) a seeded capture is generated (``analyzer generate
--namespaces-extra K --workloads-per-namespace 6``) and ingested once. Then every command runs
as a user runs it, ``python -m analyzer.cli ...`` in its own process, twice side by side:

* this checkout's code;
* the baseline: the ``analyzer`` package of ``--baseline-ref`` (default: the commit before the
  scaling work), extracted with ``git archive``; it gets ``--baseline-timeout`` seconds
  (default 300) and counts as "did not finish" past that.

Each run reports wall time, CPU seconds (user + system, from ``wait4``) and peak RSS. The
outputs of both runs are compared byte for byte (recommend: every file of the bundle; simulate:
the JSONL; audit: the JSON; report: the HTML without its "Generated <time>" line): the numbers
are only comparable because the answers are the same. Results go to
``benchmarks/results/scale.json``. Inputs are large (3 GB of flows at 10,000 workloads): put
them outside the repository with ``--work``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import harness
from baseline_code import baseline_source  # sibling module: benchmarks run as scripts
from harness import cli_argv, tree_env, without_time

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
WORKLOADS_PER_NAMESPACE = 6
FLOWS_PER_WORKLOAD = 200
COMMANDS = ("recommend", "simulate", "audit", "report")


def prepare(work: Path, workloads: int) -> Path:
    """Generate and ingest the capture of one size (kept between runs)."""
    case = work / f"w{workloads}"
    if (case / "store").is_dir() and (case / "done").is_file():
        return case
    extra = max(1, round((workloads - 10) / WORKLOADS_PER_NAMESPACE))
    flows = max(20_000, workloads * FLOWS_PER_WORKLOAD)
    env = tree_env(ROOT)
    subprocess.run(
        cli_argv(ROOT, ["generate", "--out", str(case), "--flows", str(flows),
                        "--namespaces-extra", str(extra),
                        "--workloads-per-namespace", str(WORKLOADS_PER_NAMESPACE)]),
        check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        cli_argv(ROOT, ["ingest", "--store", str(case / "store"), str(case / "flows.jsonl")]),
        check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )
    (case / "flows.jsonl").unlink()  # the store holds them; 3 GB at 10,000 workloads
    (case / "done").write_text("ok\n")
    return case


def command_line(command: str, case: Path, out: Path) -> tuple[list[str], Path]:
    """The arguments of ``command`` on ``case`` and the path its output is written to."""
    common = ["--store", str(case / "store"), "--inventory", str(case / "inventory.json")]
    policies = ["--policies", str(case / "existing-policies.yaml")]
    if command == "recommend":
        return ["recommend", *common, "--out", str(out / "bundle")], out / "bundle"
    if command == "simulate":
        return ["simulate", *common, *policies, "-o", "jsonl"], out / "stdout"
    if command == "audit":
        return ["audit", *common, *policies, "-o", "json"], out / "stdout"
    return ["report", *common, *policies, "--out", str(out / "report.html")], out / "report.html"


def run(src: Path, args: list[str], out: Path, timeout: float | None) -> dict[str, Any]:
    """One command in its own process: wall, CPU (user + system) and peak RSS via wait4."""
    out.mkdir(parents=True, exist_ok=True)
    measured = harness.run(cli_argv(src, args), env=tree_env(src), cwd=out,
                           stdout=out / "stdout", stderr=out / "stderr", timeout=timeout)
    if not measured.finished:
        return {"finished": False, "timeout_s": timeout}
    return {"finished": True, "exit": measured.exit_code, **measured.numbers()}


def digest(path: Path) -> str:
    """A hash of what a command wrote (a file, or every file of a directory)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        data = p.read_bytes()
        if p.suffix == ".html":
            data = without_time(data)
        h.update(p.name.encode() + b"\0" + data + b"\0")
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default="50,500,2500,10000")
    parser.add_argument("--commands", default=",".join(COMMANDS))
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "scale")
    parser.add_argument("--baseline-ref", default="6f8cb17")
    parser.add_argument("--baseline-timeout", type=float, default=300.0)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    baseline = None if args.no_baseline else baseline_source(args.baseline_ref, args.work)
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    rows = results.setdefault("runs", {})
    for workloads in (int(w) for w in args.series.split(",")):
        case = prepare(args.work, workloads)
        for command in args.commands.split(","):
            entry: dict[str, Any] = {}
            sides = [("analyzer", ROOT, None)]
            if baseline is not None:
                sides.append(("baseline", baseline, args.baseline_timeout))
            for name, src, timeout in sides:
                # The same output path for both: a bundle and a report name where they are.
                out = args.work / "runs" / f"w{workloads}-{command}"
                shutil.rmtree(out, ignore_errors=True)
                cmd, written = command_line(command, case, out)
                entry[name] = run(src, cmd, out, timeout)
                if entry[name].get("finished") and entry[name]["exit"] in (0, 3):
                    entry[name]["output_sha256"] = digest(written)
            mine, base = entry["analyzer"], entry.get("baseline")
            if base and base.get("finished"):
                entry["same_output"] = mine.get("output_sha256") == base.get("output_sha256")
                entry["speedup_wall"] = round(base["wall_s"] / mine["wall_s"], 2)
                entry["speedup_cpu"] = round(base["cpu_s"] / mine["cpu_s"], 2)
            rows[f"{workloads}/{command}"] = entry
            print(f"{workloads:>6} {command:<10} {json.dumps(entry)}", flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            results["note"] = (
                "wall-clock on a shared 2-core machine (other work ran alongside: CPU seconds "
                "are the steadier comparison); each run its own process; baseline = "
                f"{args.baseline_ref} via git archive"
            )
            RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
