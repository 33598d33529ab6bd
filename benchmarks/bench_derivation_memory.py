"""Peak memory and CPU of the rollup's derivation alone (issue 11: ingest bounded in memory),
without the parse phase: the code before (``--before``, a checkout holding ``analyzer/``) and
this tree, side by side in one run, on an existing store of per-node parts (e.g. the six 4M
node files ingested one by one).

Two measurements per tree, each in its own process (peak RSS and CPU from ``os.wait4``; the
interpreter with polars, pyarrow and the analyzer imported is part of the peak, as in an
ingest):

* ``incremental``: the last part's rows merged into the stored derivation state of the parts
  before it (``rollup.stage_incremental``: what the last per-node ingest does after parsing).
  The state of the parts before is derived first, in a process of its own (not measured).
* ``fresh``: the whole store derived at once (``rollup.stage_rollup``: a store's first ingest,
  ``store rebuild``).

Usage::

    python benchmarks/bench_derivation_memory.py --store STORE --before /path/to/main \
        [--work DIR] [--repeat 2] [--out benchmarks/results/derivation-memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "derivation-memory.json"
sys.path.insert(0, str(HERE))
from harness import run, tree_env  # noqa: E402

# argv: mode (prep | incremental | fresh), store, scratch directory
_CHILD = """
import shutil, sys, tempfile
from pathlib import Path
from analyzer.store import FlowStore
from analyzer.store.flowstore import scan_parts
from analyzer.store.rollup import read_schedule, rollup_key, stage_incremental, stage_rollup

mode, store, scratch = sys.argv[1], FlowStore.open(Path(sys.argv[2])), Path(sys.argv[3])
names, paths, schedule = store.part_names(), store.part_paths(), read_schedule(store.root)
root, staging = scratch / "root", Path(tempfile.mkdtemp(dir=scratch))
if mode == "prep":
    (root / "rollup").mkdir(parents=True, exist_ok=True)
    before = names[:-1]
    stage_rollup(staging, rollup_key(before, schedule), scan_parts(paths[:-1], store.root),
                 schedule, before)
    for state in staging.glob("state-*"):
        shutil.move(state, root / "rollup" / state.name)
elif mode == "incremental":
    staged = stage_incremental(staging, root, names[:-1], scan_parts(paths[-1:], store.root),
                               names[-1:], schedule)
    assert staged is not None, "no derivation state of the parts before"
else:
    stage_rollup(staging, rollup_key(names, schedule), scan_parts(paths, store.root), schedule,
                 names)
shutil.rmtree(staging)
"""


def _run(tree: Path, mode: str, store: Path, scratch: Path) -> dict[str, Any]:
    # -P: ``-c`` would put the working directory (this checkout) ahead of PYTHONPATH's tree
    measured = run([sys.executable, "-P", "-c", _CHILD, mode, str(store), str(scratch)],
                   env=tree_env(tree))
    return measured.check(f"{mode} with {tree}").numbers()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="a store of several parts")
    parser.add_argument("--before", type=Path, required=True, help="the code before")
    parser.add_argument("--work", type=Path, default=None, help="where scratch states go")
    parser.add_argument("--repeat", type=int, default=2, help="runs per tree, alternating")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": ROOT}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        label: {"incremental": [], "fresh": []} for label in trees
    }
    with tempfile.TemporaryDirectory(dir=args.work, prefix="bench-derivation-") as work:
        scratch = {label: Path(work) / label for label in trees}
        for label, tree in trees.items():
            scratch[label].mkdir()
            _run(tree, "prep", args.store, scratch[label])
        for _ in range(args.repeat):  # alternating: both trees see the same machine load
            for mode in ("incremental", "fresh"):
                for label, tree in trees.items():
                    result = _run(tree, mode, args.store, scratch[label])
                    runs[label][mode].append(result)
                    print(f"{label:7} {mode:12} {result}", flush=True)
    parts = len(list((args.store / "flows").glob("*.parquet")))
    entry = {
        "parts": parts,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_1m_end": round(os.getloadavg()[0], 2)},
        "before": str(args.before),
        "runs": runs,
    }
    # one entry per store; the other stores' entries of earlier runs are kept
    doc: dict[str, Any] = {"benchmark": "derivation-memory", "stores": {}}
    if args.out.is_file():
        doc = json.loads(args.out.read_text())
    doc["stores"][str(args.store)] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
