"""The NDJSON parsers ingest could read Hubble envelopes with: CPU and peak RSS (issue 11).

Ingest parses a plain Hubble file with DuckDB's ``read_json`` (``ingest/_native.py``) and falls
back to pyarrow's JSON reader on blocks (``ingest/_format.py``, the chunked path). This measures
the parse alone -- envelope rows with ingest's schema, as polars frames, nothing after -- on the
first ``--lines`` lines of a file, each parser in its own process:

* ``duckdb-read-json``: ``read_json`` over the file, one thread, 8,192-row Arrow batches
  (what ingest does);
* ``duckdb-from-json-stream``: ``from_json`` over the file's lines, cut by this process into
  blocks of ``--block`` bytes and handed to one streaming DuckDB query as an Arrow reader;
* ``duckdb-from-json-per-block``: the same, one query per block;
* ``pyarrow-per-block``: ``pyarrow.json.read_json`` per block, one thread;
* ``polars-per-block``: ``polars.read_ndjson`` per block with the envelope schema.

Every parser's rows are checked against ``read_json``'s (a sum of row hashes after a cast to
ingest's envelope schema; the hashing is not in the CPU seconds). The peak RSS is the child's
``ru_maxrss``; "after imports" is its RSS once polars, pyarrow, DuckDB and the analyzer's
Hubble module are loaded, the floor that every parser shares.

Usage::

    python benchmarks/bench_parsers.py --input flows.jsonl [--lines 200000] \
        [--block 4194304] [--repeat 2] [--out benchmarks/results/parsers.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from harness import CAPTURE, run, tree_env  # noqa: E402

PARSERS = (
    "duckdb-read-json",
    "duckdb-from-json-stream",
    "duckdb-from-json-per-block",
    "pyarrow-per-block",
    "polars-per-block",
)

# argv: parser, NDJSON file, block bytes
_CHILD = r"""
import io, json, resource, sys, time
import duckdb, polars as pl, pyarrow as pa, pyarrow.compute as pc, pyarrow.json as pa_json
from analyzer.ingest._native import _columns_sql, duckdb_type
from analyzer.ingest.hubble import ENVELOPE_SCHEMA, _ENVELOPE_ARROW

parser, path, block_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
after_imports = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024

def blocks():
    with open(path, "rb") as fh:
        rest = b""
        while block := fh.read(block_bytes):
            block = rest + block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            yield block[:cut]
        if rest.strip():
            yield rest

def lines(block):
    split = pc.split_pattern(pa.array([block.rstrip(b"\n")], pa.large_binary()), b"\n")
    return split.flatten().cast(pa.large_string())

def structure(dtype):
    if isinstance(dtype, pl.Struct):
        return {f.name: structure(f.dtype) for f in dtype.fields}
    if isinstance(dtype, pl.List):
        return [structure(dtype.inner)]
    return duckdb_type(dtype)

def frames():
    con = duckdb.connect(config={"threads": 1})
    con.execute("SET enable_progress_bar = false")
    shape = json.dumps({k: structure(v) for k, v in ENVELOPE_SCHEMA.items()})
    literal = "'" + path.replace("'", "''") + "'"
    if parser == "duckdb-read-json":
        sql = (f"SELECT * FROM read_json({literal}, format='newline_delimited', "
               f"columns={_columns_sql(ENVELOPE_SCHEMA)})")
        for batch in con.sql(sql).to_arrow_reader(8192):
            yield pl.from_arrow(batch)
    elif parser == "duckdb-from-json-stream":
        schema = pa.schema([("line", pa.large_string())])
        source = pa.RecordBatchReader.from_batches(
            schema, (pa.record_batch([lines(b)], schema=schema) for b in blocks()))
        sql = f"SELECT unnest(from_json(line, '{shape}')) FROM source"
        for batch in con.sql(sql).to_arrow_reader(8192):
            yield pl.from_arrow(batch)
    elif parser == "duckdb-from-json-per-block":
        for block in blocks():
            block_lines = pa.table({"line": lines(block)})
            yield pl.from_arrow(
                con.sql(f"SELECT unnest(from_json(line, '{shape}')) FROM block_lines").arrow())
    elif parser == "pyarrow-per-block":
        options = pa_json.ParseOptions(explicit_schema=_ENVELOPE_ARROW,
                                       unexpected_field_behavior="ignore")
        reading = pa_json.ReadOptions(use_threads=False, block_size=block_bytes + 1)
        for block in blocks():
            yield pl.from_arrow(pa_json.read_json(pa.BufferReader(block),
                                                  read_options=reading, parse_options=options))
    elif parser == "polars-per-block":
        for block in blocks():
            yield pl.read_ndjson(io.BytesIO(block), schema=ENVELOPE_SCHEMA)
    else:
        raise SystemExit(f"unknown parser {parser}")

rows = 0
digest = 0
cpu = 0.0  # the parse's alone: the check's hashing is not counted
parsed = frames()
while True:
    start = time.process_time()
    frame = next(parsed, None)
    cpu += time.process_time() - start
    if frame is None:
        break
    rows += frame.height
    hashes = frame.select(list(ENVELOPE_SCHEMA)).cast(ENVELOPE_SCHEMA).hash_rows(seed=7)
    digest = (digest + int(hashes.sum())) % (1 << 64)
print(json.dumps({"rows": rows, "cpu_s": round(cpu, 3), "digest": digest,
                  "rss_after_imports_mb": after_imports,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def _head(source: Path, lines: int, into: Path) -> Path:
    """The first ``lines`` lines of ``source`` (a parse of a prefix, the same for every parser)."""
    with open(source, "rb") as src, open(into, "wb") as dst:
        for _, line in zip(range(lines), src, strict=False):
            dst.write(line)
    return into


def _run(parser: str, sample: Path, block: int) -> dict[str, Any]:
    # the child reports its own CPU and peak (the parse alone); the harness only runs it
    done = run([sys.executable, "-P", "-c", _CHILD, parser, str(sample), str(block)],
               env=tree_env(ROOT), stdout=CAPTURE).check(parser)
    return dict(json.loads(done.last_line()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, required=True, help="a Hubble NDJSON file")
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--block", type=int, default=1 << 22, help="bytes per block (4 MiB)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        sample = _head(args.input, args.lines, Path(scratch) / "sample.jsonl")
        runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PARSERS}
        for _ in range(args.repeat):
            for parser in PARSERS:  # alternating, so load changes hit every parser alike
                runs[parser].append(_run(parser, sample, args.block))
        size_mb = sample.stat().st_size / 1e6

    reference = runs["duckdb-read-json"][0]
    results = []
    for parser, measured in runs.items():
        cpu = statistics.median(m["cpu_s"] for m in measured)
        results.append({
            "parser": parser,
            "rows": measured[0]["rows"],
            "same_rows_as_read_json": all(
                (m["rows"], m["digest"]) == (reference["rows"], reference["digest"])
                for m in measured),
            "cpu_s_median": round(cpu, 2),
            "cpu_s_per_million_lines": round(cpu * 1e6 / max(1, measured[0]["rows"]), 2),
            "cpu_vs_read_json": round(cpu / statistics.median(
                m["cpu_s"] for m in runs["duckdb-read-json"]), 2),
            "peak_rss_mb": [m["peak_rss_mb"] for m in measured],
            "rss_after_imports_mb": [m["rss_after_imports_mb"] for m in measured],
        })
    report = {
        "input": str(args.input), "lines": args.lines, "sample_mb": round(size_mb, 1),
        "block_bytes": args.block, "repeat": args.repeat, "python": platform.python_version(),
        "load_average": os.getloadavg()[0], "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
