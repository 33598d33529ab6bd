"""Benchmark the incremental rollup (issue 11): the per-node exporter files of a generated
capture ingested one by one into a fresh store, with the code before (``--before-ref``: the
rollup re-derived over the whole store at every ingest) and with this tree (the stored
derivation state extended by each ingest's rows), against DuckDB ``read_json`` + GROUP BY of
the same files (``harness.DUCK_INGEST``, each file in its own process).

Every run is its own process (``bench_rollup.run``: wall, CPU user + system and peak RSS from
``wait4``). After the ingests, ``graph``, ``recommend`` and ``stats`` (``-o json``) of the
incremental store are compared byte for byte with the before-store's and with the raw
derivation (``ANALYZER_NO_ROLLUP=1``) of the same store.

Usage::

    nice -n 10 python benchmarks/bench_incremental.py --work /work/data/incremental \
        --series 1000000,4000000

Results: ``benchmarks/results/incremental.json`` (one entry per size; sizes not run keep their
previous entry); ``--markdown`` prints the tables of benchmarks/README.md and docs/rollup.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "incremental.json"
sys.path.insert(0, str(HERE))
from baseline_code import baseline_source  # noqa: E402
from bench_rollup import cli, duck, prepare  # noqa: E402
from harness import cell, totals  # noqa: E402

CHECKS: dict[str, list[str]] = {
    "graph": ["graph", "-o", "json"],
    "recommend": ["recommend", "-o", "json"],
    "stats": ["stats", "-o", "json"],
}


def ingest_each(src: Path, files: list[Path], store: Path, out: Path) -> dict[str, Any]:
    shutil.rmtree(store, ignore_errors=True)
    runs = [
        cli(src, ["ingest", "--store", str(store), str(f)], out / f"ingest-{i}")
        for i, f in enumerate(files)
    ]
    return {**totals(runs), "per_file": runs}


def _output(out: Path, store: Path, name: str) -> bytes:
    text = (out / "stdout").read_bytes()
    if name == "stats":  # the store's path differs between the stores compared
        data = json.loads(text)
        data.pop("store", None)
        return json.dumps(data, sort_keys=True).encode()
    return text


def one_size(args: argparse.Namespace, work: Path, flows: int) -> dict[str, Any]:
    case, files = prepare(args.events, flows)
    runs = work / "runs" / str(flows)
    shutil.rmtree(runs, ignore_errors=True)
    result: dict[str, Any] = {
        "flows": flows,
        "input_bytes": sum(f.stat().st_size for f in files),
        "node_files": [f.name for f in files],
    }
    # a directory holding an ``analyzer`` package, or a git ref of this repository
    before = Path(args.before_ref)
    before_src = before if (before / "analyzer").is_dir() else baseline_source(
        args.before_ref, work
    )
    stores = {"before": work / f"store-before-{flows}", "after": work / f"store-after-{flows}"}
    labels = [("after", ROOT), ("before", before_src)]
    if args.after_only:  # the before and DuckDB numbers of an earlier run of the same files
        old = args.previous.get("sizes", {}).get(str(flows), {})
        result.update({k: v for k, v in old.items() if k in ("ingest_before", "duckdb_read_json")})
        labels = labels[:1]
    for label, src in labels:
        print(f"[{flows}] ingest {len(files)} per-node files one by one: {label}", flush=True)
        result[f"ingest_{label}"] = ingest_each(src, files, stores[label], runs / label)
        print(f"[{flows}] {label} {json.dumps(result[f'ingest_{label}'])}", flush=True)
    if not args.after_only:
        ducks = [duck("ingest", f, runs / f"duck-{i}" / "n", runs / f"duck-{i}")
                 for i, f in enumerate(files)]
        result["duckdb_read_json"] = {**totals(ducks), "per_file": ducks}
    ducks = result["duckdb_read_json"]["per_file"]
    for label in ("before", "after"):
        result[f"{label}_vs_duckdb_cpu"] = round(
            result["duckdb_read_json"]["cpu_s"] / max(result[f"ingest_{label}"]["cpu_s"], 1e-9), 2
        )
        per = zip(result[f"ingest_{label}"]["per_file"], ducks, strict=True)
        result[f"{label}_vs_duckdb_cpu_per_file"] = [
            round(d["cpu_s"] / max(i["cpu_s"], 1e-9), 2) for i, d in per
        ]
    identical: dict[str, bool] = {}
    for name, argv in CHECKS.items():
        outs = {}
        checks = [("after", ROOT, False), ("raw", ROOT, True), ("before", before_src, False)]
        for label, src, raw in checks[:2] if args.after_only else checks:
            store = stores["before" if label == "before" else "after"]
            out = runs / "check" / f"{name}-{label}"
            cli(src, [*argv, "--store", str(store)], out, raw=raw)
            outs[label] = _output(out, store, name)
        identical[name] = outs["after"] == outs["raw"] == outs.get("before", outs["raw"])
    result["identical"] = identical
    print(f"[{flows}] identical {identical}", flush=True)
    for store in stores.values():
        shutil.rmtree(store, ignore_errors=True)
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| flows | ingest of the 6 node files, before (whole-store rollup): wall / CPU / max "
        "peak RSS | after (incremental) | DuckDB read_json + GROUP BY | CPU DuckDB / ingest, "
        "before -> after | outputs identical |",
        "|---|---|---|---|---|---|",
    ]
    for size, entry in sorted(result["sizes"].items(), key=lambda kv: int(kv[0])):
        lines.append(
            f"| {int(size):,} | {cell(entry['ingest_before'])} | {cell(entry['ingest_after'])} "
            f"| {cell(entry['duckdb_read_json'])} | {entry['before_vs_duckdb_cpu']}x -> "
            f"{entry['after_vs_duckdb_cpu']}x | "
            f"{'yes' if all(entry['identical'].values()) else 'NO'} |"
        )
    lines += ["", "| flows | file | before: CPU / peak RSS | after: CPU / peak RSS | DuckDB CPU |",
              "|---|---|---|---|---|"]
    for size, entry in sorted(result["sizes"].items(), key=lambda kv: int(kv[0])):
        rows = zip(entry["node_files"], entry["ingest_before"]["per_file"],
                   entry["ingest_after"]["per_file"], entry["duckdb_read_json"]["per_file"],
                   strict=True)
        for i, (name, b, a, d) in enumerate(rows):
            lines.append(
                f"| {int(size):,} | {i + 1}. {name} | {b['cpu_s']:.1f} s / "
                f"{b['peak_rss_mb']:,.0f} MB | {a['cpu_s']:.1f} s / {a['peak_rss_mb']:,.0f} MB "
                f"| {d['cpu_s']:.1f} s |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/work/data/incremental"))
    parser.add_argument("--events", type=Path, default=Path("/work/data/events"),
                        help="where the generated captures and their node files are")
    parser.add_argument("--series", default="1000000", help="flow counts, comma-separated")
    parser.add_argument("--before-ref", default="main", help="the code before this change")
    parser.add_argument("--markdown", action="store_true", help="print the tables and exit")
    parser.add_argument("--after-only", action="store_true",
                        help="ingest with this tree only; before and DuckDB from the results file "
                        "(outputs compared with the raw derivation)")
    args = parser.parse_args()
    previous: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    args.previous = previous
    if args.markdown:
        print(markdown(previous))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    sizes = dict(previous.get("sizes", {}))
    for flows in (int(s) for s in args.series.split(",")):
        sizes[str(flows)] = one_size(args, args.work, flows)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({
            "machine": f"{platform.machine()}, {platform.python_version()}",
            "before_ref": args.before_ref,
            "sizes": sizes,
        }, indent=2) + "\n")
    print(markdown(json.loads(RESULTS.read_text())))


if __name__ == "__main__":
    main()
