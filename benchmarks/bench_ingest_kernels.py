"""CPU of ingest's pure per-row kernels (issue 11), old code against new, on fixed inputs.

Two kernels, each timed in its own process (``time.process_time`` around the kernel alone,
after imports and input reading; peak RSS and whole-process CPU from ``os.wait4``):

* ``normalize``: Hubble envelope rows (the first ``--rows`` lines of a file, read once by
  DuckDB with ingest's envelope schema and cached as Parquet) cut in ingest's 8,192-row
  batches, each through ``hubble.classify_envelopes`` and ``_screen.screen`` with the Hubble
  normalizer (what the native parse path does per batch);
* ``derive``: the whole-store derivation of a staged store (``rollup.stage_rollup``: the map
  ``derive_state``, then ``hubble_edges``/``finish_endpoints`` per range and the finish), as a
  store's first ingest or ``store rebuild`` does it.

The trees (``--before``: a directory holding main's ``analyzer/``; this checkout) run
alternately, ``--repeat`` times each. ``--check`` also compares their outputs: the canonical
rows, and every file of the staged rollup (frames equal, column by column).

Usage::

    python benchmarks/bench_ingest_kernels.py --input flows.jsonl --work /data/kern \
        --before /tmp/main-code [--rows 400000] [--repeat 3] [--check] [--out results/x.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BATCH_ROWS = 8192
sys.path.insert(0, str(HERE))
import harness  # noqa: E402
from harness import CAPTURE, middle, tree_env  # noqa: E402

# argv: kernel, input (envelope Parquet or store), scratch dir, output ("" = none)
_CHILD = """
import json, sys, time
from pathlib import Path
import polars as pl
kernel, source, scratch, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
if kernel == "normalize":
    from analyzer.ingest import hubble
    from analyzer.ingest._lines import _line_numbers
    from analyzer.ingest._screen import screen
    env = pl.read_parquet(source)
    batches = [env.slice(i, BATCH) for i in range(0, env.height, BATCH)]
    frames = []
    start = time.process_time()
    for i, batch in enumerate(batches):
        result = hubble.classify_envelopes(batch)
        frame, _ = screen(result.raw, _line_numbers(i * BATCH, batch.height),
                          hubble.SPEC.normalize, hubble.SPEC.raw_problems)
        if out:
            frames.append(frame)
    cpu = time.process_time() - start
    if out:
        pl.concat(frames).write_parquet(out)
else:
    from analyzer.store import FlowStore
    from analyzer.store.flowstore import scan_parts
    from analyzer.store.rollup import read_schedule, rollup_key, stage_rollup
    store = FlowStore.open(source)
    names, paths, schedule = store.part_names(), store.part_paths(), read_schedule(store.root)
    staging = Path(out) if out else scratch / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    start = time.process_time()
    stage_rollup(staging, rollup_key(names, schedule), scan_parts(paths, store.root), schedule,
                 names)
    cpu = time.process_time() - start
import analyzer
# this process's own peak (wait4's ru_maxrss starts from the parent's peak at fork)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"kernel_cpu_s": round(cpu, 3), "peak_rss_mb": round(hwm / 1024, 1),
                  "code": str(Path(analyzer.__file__).parent.parent)}))
""".replace("BATCH", str(BATCH_ROWS))


def prepare_envelopes(flows: Path, rows: int, work: Path, code: Path) -> Path:
    """The first ``rows`` lines of ``flows`` as envelope rows (DuckDB, ingest's schema),
    cached as Parquet in ``work``."""
    target = work / f"envelopes-{rows}.parquet"
    if target.exists():
        return target
    script = (
        "import sys, duckdb\n"
        "from analyzer.ingest import _native, hubble\n"
        "src, n, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
        "lit = \"'\" + src.replace(\"'\", \"''\") + \"'\"\n"
        "con = duckdb.connect(config={'threads': 1})\n"
        "con.execute(f\"COPY (SELECT * FROM read_json({lit}, format='newline_delimited', "
        "columns={_native._columns_sql(hubble.ENVELOPE_SCHEMA)}, "
        "maximum_object_size={16 << 20}) LIMIT {n}) TO '{dst}' (FORMAT parquet)\")\n"
    )
    tmp = target.with_suffix(".tmp")
    subprocess.run([sys.executable, "-c", script, str(flows), str(rows), str(tmp)], check=True,
                   env=tree_env(code))
    tmp.rename(target)
    return target


def prepare_store(flows: Path, work: Path) -> Path:
    """``flows`` ingested once into ``work/store`` (this checkout's code)."""
    store = work / "store"
    if not (store / "manifest.json").exists():
        subprocess.run([str(ROOT / ".venv" / "bin" / "analyzer"), "ingest", str(flows),
                        "--store", str(store)], check=True, stdout=subprocess.DEVNULL)
    return store


def run(tree: Path, kernel: str, source: Path, out: str = "", threads: int = 0
        ) -> dict[str, Any]:
    env = tree_env(tree, POLARS_MAX_THREADS=str(threads) if threads else None)
    with tempfile.TemporaryDirectory(prefix="kern-") as scratch:
        # cwd not the checkout: ``-c`` puts the working directory first on sys.path, before
        # PYTHONPATH's tree
        measured = harness.run([sys.executable, "-c", _CHILD, kernel, str(source), scratch, out],
                               env=env, cwd=Path(scratch), stdout=CAPTURE)
    numbers = measured.check(f"{kernel} with {tree}").numbers()
    return {
        **json.loads(measured.last_line()),
        "process_cpu_s": numbers["cpu_s"],
        "wall_s": numbers["wall_s"],
    }


def same_output(kernel: str, a: Path, b: Path) -> bool:
    """The two trees' outputs equal: the canonical rows, or every file of the rollup."""
    import polars as pl

    if kernel == "normalize":
        return pl.read_parquet(a).equals(pl.read_parquet(b))
    def keyless(text: str) -> str:
        return re.sub(r"[0-9a-f]{32}", "KEY", text)

    def files(root: Path) -> dict[str, Path]:
        # the names carry keys made of the code's fingerprint: compare by what they hold
        return {keyless(p.name): p for p in root.iterdir()}

    def same(name: str, x: pl.DataFrame, y: pl.DataFrame) -> bool:
        if x.equals(y):
            return True
        # the derivation state's frames are written in the order their group-bys produce
        # (any order is the same state): compare them as sets of rows
        return (name.startswith("state-") and x.schema == y.schema and x.height == y.height
                and x.hash_rows().sort().equals(y.hash_rows().sort()))

    def same_file(name: str) -> bool:
        if not name.endswith(".parquet"):  # rollup.json: it names the files by their key
            return keyless(fa[name].read_text()) == keyless(fb[name].read_text())
        return same(name, pl.read_parquet(fa[name]), pl.read_parquet(fb[name]))

    fa, fb = files(a), files(b)
    return sorted(fa) == sorted(fb) and all(same_file(n) for n in fa)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, required=True, help="a Hubble NDJSON file")
    ap.add_argument("--work", type=Path, required=True, help="cached inputs go here")
    ap.add_argument("--before", type=Path, required=True, help="a directory holding analyzer/")
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kernels", default="normalize,derive")
    ap.add_argument("--check", action="store_true", help="compare the trees' outputs too")
    ap.add_argument("--threads", type=int, default=0,
                    help="POLARS_MAX_THREADS for the kernels (0: polars' default); one thread "
                    "measures the work without the scheduling noise of a shared machine")
    ap.add_argument("--store", type=Path, help="derive this store (default: --input ingested "
                    "once into WORK/store)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sources = {"normalize": lambda: prepare_envelopes(args.input, args.rows, args.work, ROOT),
               "derive": lambda: args.store or prepare_store(args.input, args.work)}
    trees = {"before": args.before.resolve(), "after": ROOT}
    report: dict[str, Any] = {
        "input": str(args.input), "store": str(args.store or args.work / "store"),
        "rows_normalized": args.rows, "polars_threads": args.threads, "repeat": args.repeat,
        "machine": platform.node(), "kernels": {},
    }
    for kernel in args.kernels.split(","):
        source = sources[kernel]()
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for i in range(args.repeat):
            # alternate which tree goes first, so a change in load hits both alike
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for name in order:
                runs[name].append(run(trees[name], kernel, source, threads=args.threads))
                print(kernel, name, runs[name][-1], "load", os.getloadavg()[0], flush=True)
        entry: dict[str, Any] = {"runs": runs}
        for name, rs in runs.items():
            entry[f"{name}_kernel_cpu_s_median"] = middle(r["kernel_cpu_s"] for r in rs)
            entry[f"{name}_peak_rss_mb_median"] = middle(r["peak_rss_mb"] for r in rs)
        if args.check:
            with tempfile.TemporaryDirectory(dir=args.work, prefix="check-") as tmp:
                outs = {}
                for name, tree in trees.items():
                    target = Path(tmp) / (f"{name}.parquet" if kernel == "normalize" else name)
                    run(tree, kernel, source, str(target))
                    outs[name] = target
                entry["identical"] = same_output(kernel, outs["before"], outs["after"])
                print(kernel, "identical:", entry["identical"], flush=True)
        report["kernels"][kernel] = entry
        report["load_after"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    shutil.rmtree(args.work / "tmp", ignore_errors=True)


if __name__ == "__main__":
    main()
