"""Where the parse phase of ``analyzer ingest`` spends CPU and memory (issue 11), stage by stage.

Each stage runs in its own subprocess, single-threaded pipeline (no overlap), on one Hubble
NDJSON file, and adds one step to the previous stage; the subprocess reports its CPU seconds
(``time.process_time``) and peak RSS (``VmHWM``). Differences between consecutive stages are
the cost of the step:

* ``imports``: the interpreter and the modules ingest imports;
* ``duckdb-groupby``: DuckDB ``read_json`` + GROUP BY of the peer baseline (bench_ingest.py);
* ``duckdb-envelope``: DuckDB ``read_json`` of the full envelope schema, Arrow batches dropped;
* ``from-arrow``: + each batch turned into a polars frame;
* ``classify``: + ``hubble.classify_envelopes``;
* ``screen``: + normalisation and screening (``_screen.screen``): canonical rows;
* ``parquet``: + Parquet parts written as ingest writes them (``staging.part_writer``);
* ``ingest``: the whole ``analyzer ingest`` into a fresh store (rollup map included).

Usage::

    python benchmarks/profile_ingest_phases.py --input flows.jsonl [--out results/x.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from harness import CAPTURE, cli_argv, duckdb_group_by, run, tree_env  # noqa: E402

STAGES = (
    "imports",
    "duckdb-groupby",
    "duckdb-envelope",
    "from-arrow",
    "classify",
    "screen",
    "parquet",
    "ingest",
)


def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _stage(name: str, path: Path, batch_rows: int) -> None:
    """Runs in the subprocess: one stage, then prints ``{"cpu_s", "peak_rss_mb", "rows"}``."""
    import polars as pl

    from analyzer.ingest import _native, hubble
    from analyzer.ingest._lines import _line_numbers
    from analyzer.ingest._screen import screen
    from analyzer.store import staging  # noqa: F401 - what ingest imports

    rows = 0
    if name == "duckdb-groupby":
        rows = duckdb_group_by(str(path))
    elif name != "imports":
        import duckdb

        con = duckdb.connect(config={"threads": 1})
        con.execute("SET enable_progress_bar = false")
        for setting in _native._MEMORY_SETTINGS:
            con.execute(setting)
        literal = "'" + str(path).replace("'", "''") + "'"
        rel = con.sql(
            f"SELECT * FROM read_json({literal}, format='newline_delimited', "
            f"columns={_native._columns_sql(hubble.ENVELOPE_SCHEMA)}, "
            f"maximum_object_size={16 << 20})"
        )
        reader = rel.to_arrow_reader(batch_rows)
        out = Path(tempfile.mkdtemp(prefix="profile-parts-")) / "part.parquet"
        writer = staging.part_writer(out) if name == "parquet" else None
        spec = hubble.SPEC
        for batch in reader:
            rows += batch.num_rows
            if name == "duckdb-envelope":
                continue
            env = pl.from_arrow(batch)
            assert isinstance(env, pl.DataFrame)
            if name == "from-arrow":
                continue
            result = hubble.classify_envelopes(env)
            if name == "classify":
                continue
            frame, _ = screen(
                result.raw, _line_numbers(rows, env.height), spec.normalize, spec.raw_problems
            )
            if writer is not None:
                table = frame.with_columns(pl.lit("x" * 64).alias("ingest_id")).to_arrow()
                writer.write_table(table.cast(staging.FLOW_SCHEMA))
        if writer is not None:
            writer.close()
        shutil.rmtree(out.parent, ignore_errors=True)
    print(json.dumps({"cpu_s": round(time.process_time(), 2), "peak_rss_mb": round(_hwm_mb(), 1),
                      "rows": rows}))


def _run(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    measured = run(cmd, env=env, stdout=CAPTURE).check(" ".join(cmd))
    out = measured.stdout.decode()
    result = json.loads(measured.last_line()) if out.strip().startswith("{") else {}
    result.update(measured.numbers())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--tree", default=str(ROOT), help="analyzer checkout to profile")
    parser.add_argument("--stage", choices=STAGES, action="append")
    parser.add_argument("--batch-rows", type=int, default=8192)
    parser.add_argument("--out")
    parser.add_argument("--store-dir", default=None, help="where the fresh store goes")
    parser.add_argument("--run-stage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = Path(args.input)
    if args.run_stage:
        _stage(args.run_stage, path, args.batch_rows)
        return
    env = tree_env(args.tree)
    results: dict[str, Any] = {}
    for stage in args.stage or STAGES:
        if stage == "ingest":
            store = Path(tempfile.mkdtemp(prefix="profile-store-", dir=args.store_dir))
            try:
                cmd = cli_argv(Path(args.tree), ["ingest", str(path), "--store", str(store / "s")])
                results[stage] = _run(cmd, env)
            finally:
                shutil.rmtree(store, ignore_errors=True)
        else:
            cmd = [sys.executable, __file__, "--input", str(path), "--run-stage", stage,
                   "--batch-rows", str(args.batch_rows)]
            results[stage] = _run(cmd, env)
        r = results[stage]
        print(f"{stage:<16} cpu {r['cpu_s']:>7.2f} s  wall {r['wall_s']:>7.2f} s  "
              f"peak {r['peak_rss_mb']:>7.1f} MB", flush=True)
    if args.out:
        doc = {"input": str(path), "tree": args.tree, "batch_rows": args.batch_rows,
               "load_avg_1m": round(os.getloadavg()[0], 2), "stages": results}
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
