"""Benchmark ``analyzer ingest --engine spark`` against the local ingest, in one run.

Contenders, each a fresh ``analyzer ingest`` subprocess into a fresh store, on the same input:

* ``local``: the local ingest (this process);
* ``spark local[1]`` and ``spark local[2]``: the same per-file work on Spark executors
  (``spark_ingest``, what ``--engine spark --master local[N]`` calls), in a subprocess that
  starts the session, then ingests: wall time includes the JVM start, ``session_start_s``
  and ``job_s`` split it.

The input is N generated Hubble flows, once as one file and once split into per-node files
(Spark runs one task per file: the split is what a fleet of node exporters ships). Wall time
from ``time.monotonic``; peak memory is the peak of the SUM of the resident set sizes of the
whole process tree (the CLI, the Spark JVM, its Python workers), sampled every 100 ms from
/proc. Every Spark-built store is compared with the local one (manifest without the ingest
time, row count): a contender that differs fails the benchmark.

Usage::

    nice -n 10 python benchmarks/bench_spark.py                 # 1,000,000 flows, 4 files
    nice -n 10 python benchmarks/bench_spark.py --flows 200000 --files 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "spark.json"
DATA = Path(os.environ.get("ANALYZER_BENCH_DATA", "/work/bench-data-spark"))


_TICK = os.sysconf("SC_CLK_TCK")


def _tree_rss(pid: int, cpu: dict[int, float] | None = None) -> int:
    """Resident bytes of ``pid`` and all its descendants (Linux /proc); ``cpu`` collects each
    descendant's CPU seconds (user + system) as last seen."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid, pages = int(fields[1]), int(fields[21])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
        ticks[int(entry)] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        if cpu is not None and p in ticks:
            cpu[p] = max(cpu.get(p, 0.0), ticks[p] / _TICK)
        todo.extend(children.get(p, []))
    return total


def _run(cmd: list[str]) -> dict[str, Any]:
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    cpu: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid, cpu))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.monotonic() - start
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err.decode(errors='replace')[-2000:]}")
    # CPU: the process tree as last sampled (up to 100 ms of each process's end unseen)
    return {"wall_s": round(wall, 2), "cpu_s": round(sum(cpu.values()), 1),
            "peak_rss_mib": round(peak / 2**20, 1),
            "summary": json.loads(out)}


def _inputs(flows: int, files: int) -> tuple[Path, list[Path]]:
    """One file of ``flows`` Hubble flows and the same lines split into ``files`` files."""
    DATA.mkdir(parents=True, exist_ok=True)
    whole = DATA / f"flows-{flows}.jsonl"
    if not whole.is_file():
        sys.path.insert(0, str(ROOT))
        from analyzer.generate import ScenarioConfig, build_scenario, write_flows

        write_flows(build_scenario(ScenarioConfig(seed=1)), whole, "hubble", flows)
    split_dir = DATA / f"flows-{flows}-split{files}"
    parts = [split_dir / f"node-{i + 1}.jsonl" for i in range(files)]
    if not all(p.is_file() for p in parts):
        split_dir.mkdir(exist_ok=True)
        with open(whole, "rb") as fh:
            lines = fh.readlines()
        step = -(-len(lines) // files)
        for i, p in enumerate(parts):
            p.write_bytes(b"".join(lines[i * step : (i + 1) * step]))
    return whole, parts


def _store_view(store: Path) -> dict[str, Any]:
    manifest = json.loads((store / "manifest.json").read_text())
    entries = manifest["inputs"]
    for e in entries:
        e.pop("ingested_at", None)
    return {"entries": entries}


def child(master: str, store: str, paths: list[str]) -> None:
    """One Spark contender: start the session, then ingest (timed apart: the JVM start is a
    fixed cost a long-running cluster does not pay per ingest)."""
    sys.path.insert(0, str(ROOT))
    from analyzer.spark import spark_ingest
    from analyzer.spark.session import build_session

    start = time.monotonic()
    session = build_session(master, [])
    started = time.monotonic()
    summary = spark_ingest(Path(store), paths, session=session)
    done = time.monotonic()
    session.stop()
    print(json.dumps({"rows_loaded": summary.rows_loaded,
                      "session_start_s": round(started - start, 2),
                      "job_s": round(done - started, 2)}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    whole, parts = _inputs(args.flows, args.files)
    cli = [sys.executable, "-c", "from analyzer.cli import app; app()", "ingest", "-o", "json"]
    work = DATA / "stores"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    results: list[dict[str, Any]] = []
    for layout, paths in (("1 file", [whole]), (f"{args.files} files", parts)):
        reference: dict[str, Any] | None = None
        for name in ("local", "spark local[1]", "spark local[2]"):
            store = work / f"{layout.replace(' ', '')}-{name.replace(' ', '_')}"
            if name == "local":
                cmd = [*cli, "--store", str(store), *map(str, paths)]
            else:
                master = name.split()[1]
                cmd = [sys.executable, __file__, "--child", master, str(store), *map(str, paths)]
            measured = _run(cmd)
            view = _store_view(store)
            if reference is None:
                reference = view
            elif view != reference:
                raise SystemExit(f"{name} on {layout}: the store differs from the local one")
            summary = measured.pop("summary")
            rows = summary.pop("rows_loaded")
            split = {k: v for k, v in summary.items() if k in ("session_start_s", "job_s")}
            results.append({"input": layout, "contender": name, "rows": rows, **measured, **split})
            print(f"{layout:>8}  {name:<15} {rows:>9,} rows  {measured['wall_s']:>7.1f} s  "
                  f"{measured['cpu_s']:>7.1f} cpu s  "
                  f"{measured['peak_rss_mib']:>7.0f} MiB  {split}", flush=True)
            shutil.rmtree(store)
    for r in results:
        base = next(b for b in results if b["input"] == r["input"] and b["contender"] == "local")
        r["wall_vs_local"] = round(r["wall_s"] / base["wall_s"], 2)
        r["rss_vs_local"] = round(r["peak_rss_mib"] / base["peak_rss_mib"], 2)
    doc = {
        "benchmark": "ingest: local vs --engine spark (local[1], local[2])",
        "flows": args.flows,
        "files": args.files,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "note": "2 cores shared with other work; run under nice -n 10"},
        "identical_stores": True,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
