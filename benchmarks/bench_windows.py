"""Time windows over the rollup's buckets, and compaction (issue 11).

A seeded 1M-flow Hubble capture (``analyzer generate --flows 1000000``, one hour,
2026-11-02 09:00-10:00) is ingested once by this code (rollup with minute buckets). Then, each
command in its own process (wall, CPU = user + system from ``wait4``, peak RSS):

* ``graph -o json`` and ``recommend -o json`` over a 20-minute window (09:20-09:40), three ways:
  - ``before``: the code of ``--baseline-ref`` (a window derives from the window's raw flows),
    on a copy of the store;
  - ``raw``: this code with ``ANALYZER_NO_ROLLUP=1`` (the window's definition applied to the
    raw flows: one bucketed derivation of the whole store);
  - ``rollup``: this code reading the rollup's buckets.
  ``raw`` and ``rollup`` must print byte-identical JSON (checked: the numbers are only
  comparable because the answers are the same; ``before`` answers the older definition).
* ``store compact`` (every bucket older than 2026-11-03 to hours), the rollup's bucket rows and
  bytes before and after, the same window again (rounded out to the hour) with and without the
  rollup, and the whole-store ``recommend`` before and after compaction (byte-identical).

Results: ``benchmarks/results/windows.json``. Inputs go under ``--work`` (default
``benchmarks/out/windows``; 1.6 GB of flows).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from baseline_code import baseline_source  # sibling module: benchmarks run as scripts
from harness import CAPTURE, cli_argv, run, tree_env

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "windows.json"
WINDOW = ("--since", "2026-11-02T09:20:00Z", "--until", "2026-11-02T09:40:00Z")


def _measured(src: Path, args: list[str], *, raw: bool = False) -> tuple[dict[str, Any], bytes]:
    """One command in its own process: wall, CPU (user + system) and peak RSS via wait4."""
    env = tree_env(src, ANALYZER_NO_ROLLUP="1" if raw else None)
    measured = run(cli_argv(src, args), env=env, stdout=CAPTURE).check(" ".join(args))
    return measured.numbers(), measured.stdout


def _rollup_size(store: Path) -> dict[str, int]:
    files = sorted((store / "rollup").glob("*.parquet"))
    rows = {p.name.split("-")[0]: pq.ParquetFile(p).metadata.num_rows for p in files}
    size = sum(p.stat().st_size for p in files)
    return {"bytes": size, **{f"{k}_rows": v for k, v in rows.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "windows")
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--baseline-ref", default="main")
    args = parser.parse_args()
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    here = ROOT
    capture = work / "gen" / "flows.jsonl"
    if not capture.is_file():
        _measured(here, ["generate", "--out", str(work / "gen"), "--flows", str(args.flows),
                         "--seed", "11"])
    store = work / "store"
    ingest: dict[str, Any] = {}
    if not (store / "manifest.json").is_file():
        ingest, _ = _measured(here, ["ingest", str(capture), "--store", str(store)])
    shutil.rmtree(work / "store-compacted", ignore_errors=True)
    shutil.rmtree(work / "store-before", ignore_errors=True)
    # the old code may tidy away rollup files it does not know: it reads a copy
    shutil.copytree(store, work / "store-before")
    old = baseline_source(args.baseline_ref, work)
    results: dict[str, Any] = {
        "flows": args.flows, "window": list(WINDOW[1::2]), "ingest": ingest,
        "baseline_ref": args.baseline_ref, "runs": {},
    }
    # the rollup with buckets costs at ingest: the same file ingested by the old code
    shutil.rmtree(work / "store-old-ingest", ignore_errors=True)
    results["ingest_before"], _ = _measured(
        old, ["ingest", str(capture), "--store", str(work / "store-old-ingest")]
    )
    shutil.rmtree(work / "store-old-ingest", ignore_errors=True)
    if not ingest:
        shutil.rmtree(work / "store-new-ingest", ignore_errors=True)
        results["ingest"], _ = _measured(
            here, ["ingest", str(capture), "--store", str(work / "store-new-ingest")]
        )
        shutil.rmtree(work / "store-new-ingest", ignore_errors=True)
    print("ingest", results["ingest_before"], results["ingest"], flush=True)
    hashes: dict[str, str] = {}
    for command in (["graph", "-o", "json"], ["recommend", "-o", "json"]):
        name = command[0]
        cells: dict[str, Any] = {}
        cells["before"], _ = _measured(old, [*command, "--store", str(work / "store-before"),
                                             *WINDOW])
        cells["raw"], raw_out = _measured(here, [*command, "--store", str(store), *WINDOW],
                                          raw=True)
        cells["rollup"], out = _measured(here, [*command, "--store", str(store), *WINDOW])
        cells["whole_store_rollup"], _ = _measured(here, [*command, "--store", str(store)])
        cells["identical_raw_rollup"] = raw_out == out
        hashes[name] = hashlib.sha256(out).hexdigest()
        results["runs"][name] = cells
        print(name, json.dumps(cells), flush=True)
    compacted = work / "store-compacted"
    shutil.copytree(store, compacted)
    _, rec_before = _measured(here, ["recommend", "-o", "json", "--store", str(compacted)])
    size_before = _rollup_size(compacted)
    compact, doc = _measured(here, ["store", "compact", "--store", str(compacted), "--now",
                                    "2026-11-04T00:00:00Z", "--days-after", "off", "-o", "json"])
    size_after = _rollup_size(compacted)
    _, rec_after = _measured(here, ["recommend", "-o", "json", "--store", str(compacted)])
    window_rollup, hour_out = _measured(here, ["graph", "-o", "json", "--store", str(compacted),
                                               *WINDOW])
    window_raw, hour_raw = _measured(here, ["graph", "-o", "json", "--store", str(compacted),
                                            *WINDOW], raw=True)
    results["compaction"] = {
        "compact": compact,
        "result": json.loads(doc),
        "rollup_before": size_before,
        "rollup_after": size_after,
        "recommend_whole_store_identical": rec_before == rec_after,
        "graph_window_rollup": window_rollup,
        "graph_window_raw": window_raw,
        "graph_window_identical_raw_rollup": hour_out == hour_raw,
        "graph_window_used": json.loads(hour_out)["stats"]["warnings"][-1],
    }
    print("compaction", json.dumps(results["compaction"]), flush=True)
    assert all(c["identical_raw_rollup"] for c in results["runs"].values())
    assert results["compaction"]["recommend_whole_store_identical"]
    assert results["compaction"]["graph_window_identical_raw_rollup"]
    results["output_sha256"] = hashes
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
