"""Benchmark the connection rollup (issue 11): every command before (raw derivation) and after
(rollup), DuckDB computing the same edges from the raw Parquet, and ingest against DuckDB
``read_json`` + GROUP BY, in one run per store size of a series (``--series 1000000,4000000``).

Each store is built the way a cluster's exporters deliver flows: the generated capture (~500
workload identities) is split into one file per node (``node_name``) and each file is ingested
on its own, so the two ends of a connection arrive in different ingests.

* ingest: the per-node files into a fresh store (the rollup is rebuilt and written at each
  ingest); baseline: DuckDB ``read_json`` + GROUP BY over each node file, each in its own
  process (``--baseline-ingest`` adds the code of ``--baseline-ref``, before the rollup);
* commands: ``graph``, ``recommend -n production``, ``recommend`` (all), ``anomalies``,
  ``audit``, ``report``, ``stats`` and ``simulate`` on the same store, ``before`` =
  ``ANALYZER_NO_ROLLUP=1`` (derived from the raw flows, exactly what the code did before),
  ``after`` = the rollup. Their outputs are compared byte for byte (the report's HTML without
  its "Generated" time);
* DuckDB: the same edges computed in SQL from ``flows/*.parquet`` (``DUCK_EDGES``: the
  request/reply classification, the port rule, 5-tuple sessions split at the idle gap, the
  outcome); its edges, connections, events, first and last seen are the *independent
  derivation* the rollup's are compared with, edge by edge.

Each run is its own process; wall time, CPU seconds (user + system) and peak RSS from
``wait4``. Results: ``benchmarks/results/rollup.json`` (one entry per size; sizes not run keep
their previous entry).

Usage::

    nice -n 10 python benchmarks/bench_rollup.py --work /work/data/rollup --series 1000000,4000000
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
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "rollup.json"
sys.path.insert(0, str(HERE))
import harness  # noqa: E402
from baseline_code import baseline_source  # noqa: E402
from harness import cell, cli_argv, duckdb_group_by, totals, tree_env, without_time  # noqa: E402
from split_nodes import split_by_node  # noqa: E402

_DUCK_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); import bench_rollup as b; b.duck_main()"
# The comparison loads the store in its own process too: a parent grown by it would raise the
# peak RSS every later child reports (Linux carries the parent's high-water mark into a
# vfork+exec child's ru_maxrss).
_EXACT_CHILD = (
    "import sys, json; sys.path.insert(0, sys.argv[1]); import bench_rollup as b; "
    "from pathlib import Path; "
    "Path(sys.argv[4]).write_text(json.dumps(b.exactness(Path(sys.argv[2]), Path(sys.argv[3])), "
    "default=str))"
)


def run(argv: list[str], out: Path, env: dict[str, str]) -> dict[str, Any]:
    """One process in the directory ``out`` (its stdout and stderr there): wall, CPU (user +
    system, its reaped children included), peak RSS (the largest process) and ``tree_rss_mb``
    (the command and its forest helper together, sampled every 10 ms)."""
    out.mkdir(parents=True, exist_ok=True)
    return harness.run(argv, env=env, cwd=out, stdout=out / "stdout", stderr=out / "stderr",
                       sample_tree=True).check(" ".join(argv[4:7])).numbers(tree=True)


def cli(src: Path, args: list[str], out: Path, *, raw: bool = False) -> dict[str, Any]:
    env = tree_env(src, ANALYZER_NO_ROLLUP="1" if raw else None)
    return run(cli_argv(src, args), out, env)


# ~500 workload identities (502 workloads, 880 pods, 84 namespaces), 6 nodes
GENERATE = ["--nodes", "4", "--namespaces-extra", "82", "--workloads-per-namespace", "6"]


def prepare(work: Path, flows: int) -> tuple[Path, list[Path]]:
    """The generated capture (cached) and its per-node files."""
    case = work / f"gen-{flows}"
    if not (case / "done").is_file():
        shutil.rmtree(case, ignore_errors=True)
        subprocess.run(
            cli_argv(ROOT, ["generate", "--out", str(case), "--flows", str(flows), *GENERATE]),
            check=True, cwd=ROOT, env=tree_env(ROOT), stdout=subprocess.DEVNULL,
        )
        split_by_node(case / "flows.jsonl", case / "nodes")
        (case / "done").write_text("ok\n")
    return case, sorted((case / "nodes").glob("*.jsonl"))


def ingest_all(src: Path, files: list[Path], store: Path, out: Path) -> dict[str, Any]:
    shutil.rmtree(store, ignore_errors=True)
    runs = [
        cli(src, ["ingest", "--store", str(store), str(f)], out / f"ingest-{i}")
        for i, f in enumerate(files)
    ]
    return {"files": len(files), **totals(runs), "per_file": runs}


COMMANDS: dict[str, list[str]] = {
    "graph": ["graph", "-o", "json"],
    "recommend -n production": ["recommend", "-n", "production", "-o", "json"],
    "recommend (all)": ["recommend", "-o", "json"],
    "anomalies": ["anomalies", "-o", "json"],
    "audit": ["audit", "-o", "json", "--policies", "{policies}"],
    "report": ["report", "--policies", "{policies}", "--out", "{out}/report.html", "-o", "json"],
    "stats": ["stats", "-o", "json"],
    "simulate": ["simulate", "--policies", "{policies}", "-o", "jsonl"],
}


def output_of(out: Path, name: str) -> bytes:
    if name == "report":
        return without_time((out / "report.html").read_bytes())
    return (out / "stdout").read_bytes()


# --- DuckDB: the same edges from the raw Parquet ---------------------------------------------

# An independent derivation in SQL of what analyzer/connections derives, step by step (docs:
# DESIGN.md "Connections, not events"; docs/rollup.md "Checked against DuckDB"):
#  c0         request / reply / ignored from the row's own fields, first rule that applies
#             (non-policy drops and errors ignored; SOCK traces; Service-VIP rows; is_reply;
#             L7 type; policy-verdict events; trace reason; SYN/ACK; ICMP type; policy drops;
#             observation point + traffic direction);
#  listening  (protocol, port) pairs that are the destination of a known request;
#  req        still undecided rows: a request when the destination port serves (privileged or
#             listening), the source port is ephemeral (>= 32768) and does not serve;
#             endpoint keys ``namespace/pod``, else ``ip#identity`` for a pod identity without
#             a pod name (an L7 proxy leg), else the IP, else ``reserved:<entity>``;
#  sessions   per 5-tuple, a new connection at the first row and after an idle gap (60 s TCP,
#             30 s otherwise); a connection takes the pod key any of its rows named;
#  outcome    denied when a non-L7 policy drop hit it or nothing but drops was seen.
# Hubble rows only: Calico/Goldmane/Whisker aggregates (summed per reporter) are not part of
# this baseline, and neither is the collapse of L7-proxy legs (it needs identity groups);
# the generated series has neither (its stats say 0 of both).
DUCK_EDGES = """
WITH f AS (
  SELECT *,
    coalesce(verdict, 'unknown') AS v,
    list_contains(string_split(coalesce(tcp_flags, ''), ','), 'SYN') AS syn,
    list_contains(string_split(coalesce(tcp_flags, ''), ','), 'ACK') AS ack,
    coalesce(observation_point, '') AS pt,
    coalesce(direction, '') AS dir,
    coalesce(protocol, '') AS proto
  FROM read_parquet('{glob}')
), c0 AS (
  SELECT *, CASE
    WHEN (v = 'dropped' AND drop_reason IS NOT NULL AND drop_reason NOT IN ({policy_reasons}))
         OR v = 'error' THEN 'ignored'
    WHEN flow_type = 'SOCK' THEN 'sock'
    WHEN dst_service IS NOT NULL AND dst_pod IS NULL
         AND coalesce(dst_entity, 'unknown') <> 'pod' THEN 'vip'
    WHEN source_format IN ('calico', 'goldmane', 'whisker') THEN 'request'
    WHEN is_reply THEN 'reply'
    WHEN NOT is_reply THEN 'request'
    WHEN lower(l7_type) = 'response' THEN 'reply'
    WHEN lower(l7_type) = 'request' THEN 'request'
    WHEN event_type = 5 THEN 'request'
    WHEN upper(trace_reason) = 'REPLY' THEN 'reply'
    WHEN upper(trace_reason) = 'NEW' THEN 'request'
    WHEN syn AND NOT ack THEN 'request'
    WHEN syn AND ack THEN 'reply'
    WHEN (proto = 'ICMPv4' AND icmp_type = 8) OR (proto = 'ICMPv6' AND icmp_type = 128)
      THEN 'request'
    WHEN (proto = 'ICMPv4' AND icmp_type = 0) OR (proto = 'ICMPv6' AND icmp_type = 129)
      THEN 'reply'
    WHEN v = 'dropped' THEN 'request'
    WHEN (pt = 'TO_ENDPOINT' AND dir = 'ingress')
         OR (pt IN ('FROM_ENDPOINT', 'TO_STACK', 'TO_OVERLAY') AND dir = 'egress') THEN 'request'
    WHEN (pt = 'TO_ENDPOINT' AND dir = 'egress')
         OR (pt IN ('FROM_ENDPOINT', 'TO_STACK', 'TO_OVERLAY') AND dir = 'ingress') THEN 'reply'
    ELSE 'undecided' END AS cls0
  FROM f
), listening AS (
  SELECT DISTINCT protocol AS l_proto, dst_port AS l_port FROM c0
  WHERE cls0 = 'request' AND dst_port IS NOT NULL AND protocol IS NOT NULL
), c1 AS (
  SELECT c0.*,
    coalesce(c0.src_port < 1024, false) OR ls.l_port IS NOT NULL AS src_srv,
    coalesce(c0.dst_port < 1024, false) OR ld.l_port IS NOT NULL AS dst_srv
  FROM c0
  LEFT JOIN listening ls ON c0.cls0 = 'undecided' AND ls.l_proto = c0.protocol
                          AND ls.l_port = c0.src_port
  LEFT JOIN listening ld ON c0.cls0 = 'undecided' AND ld.l_proto = c0.protocol
                          AND ld.l_port = c0.dst_port
), req AS (
  SELECT *,
    CASE WHEN src_namespace <> '' AND src_pod <> '' THEN src_namespace || '/' || src_pod END
      AS spk,
    CASE WHEN dst_namespace <> '' AND dst_pod <> '' THEN dst_namespace || '/' || dst_pod END
      AS dpk,
    coalesce(
      CASE WHEN src_namespace <> '' AND src_pod <> '' THEN src_namespace || '/' || src_pod END,
      CASE WHEN src_ip <> '' AND src_namespace IS NOT NULL AND len(src_labels) > 0
                AND src_identity IS NOT NULL
           THEN src_ip || '#' || CAST(src_identity AS VARCHAR) END,
      CASE WHEN src_ip <> '' THEN src_ip END,
      'reserved:' || coalesce(src_entity, 'unknown')) AS sk,
    coalesce(
      CASE WHEN dst_namespace <> '' AND dst_pod <> '' THEN dst_namespace || '/' || dst_pod END,
      CASE WHEN dst_ip <> '' AND dst_namespace IS NOT NULL AND len(dst_labels) > 0
                AND dst_identity IS NOT NULL
           THEN dst_ip || '#' || CAST(dst_identity AS VARCHAR) END,
      CASE WHEN dst_ip <> '' THEN dst_ip END,
      'reserved:' || coalesce(dst_entity, 'unknown')) AS dk,
    coalesce(v = 'dropped', false) AS den,
    coalesce(flow_type = 'L7' OR event_type = 129, false) AS l7
  FROM c1
  WHERE CASE WHEN cls0 <> 'undecided' THEN cls0
             WHEN dst_srv AND coalesce(src_port >= 32768, false) AND NOT src_srv THEN 'request'
             ELSE cls0 END = 'request'
    AND coalesce(source_format NOT IN ('calico', 'goldmane', 'whisker'), true)
), gaps AS (
  SELECT *,
    CASE WHEN lag("time") OVER w IS NOT NULL
              AND "time" - lag("time") OVER w
                  <= CASE WHEN protocol = 'TCP' THEN INTERVAL 60 SECOND ELSE INTERVAL 30 SECOND END
         THEN 0 ELSE 1 END AS new
  FROM req
  WINDOW w AS (PARTITION BY coalesce(src_ip, sk), src_port, coalesce(dst_ip, dk), dst_port,
                            protocol ORDER BY "time" NULLS LAST)
), sessions AS (
  SELECT *, sum(new) OVER (PARTITION BY coalesce(src_ip, sk), src_port, coalesce(dst_ip, dk),
                                        dst_port, protocol
                           ORDER BY "time" NULLS LAST, new DESC
                           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS conn
  FROM gaps
), connections AS (
  SELECT
    coalesce(max(spk), max(sk)) AS src_key,
    coalesce(max(dpk), max(dk)) AS dst_key,
    protocol, dst_port,
    CASE WHEN bool_or(den AND NOT l7) OR bool_and(den) THEN 'denied' ELSE 'allowed' END
      AS outcome,
    count(*) AS events,
    max(greatest(coalesce(flow_count, 1), 1)) AS connections,
    min("time") AS first_seen,
    max(coalesce(end_time, "time")) AS last_seen
  FROM sessions
  GROUP BY coalesce(src_ip, sk), src_port, coalesce(dst_ip, dk), dst_port, protocol, conn
)
SELECT src_key, dst_key, protocol, dst_port, outcome, sum(connections) AS connections,
       sum(events) AS events, min(first_seen) AS first_seen, max(last_seen) AS last_seen
FROM connections GROUP BY ALL
"""


# the drop reasons DESIGN.md calls policy decisions (every other drop says nothing of policy)
POLICY_REASONS = "'AUTH_REQUIRED', 'POLICY_DENIED', 'POLICY_DENY'"


def duck_main() -> None:
    import duckdb

    mode, target, out = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    if mode == "ingest":
        out.write_text(f"{duckdb_group_by(target, threads=2)}\n")
        return
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    query = DUCK_EDGES.format(glob=f"{target}/flows/*.parquet", policy_reasons=POLICY_REASONS)
    con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet)")


def duck(mode: str, target: Path, out: Path, run_dir: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return run([sys.executable, "-c", _DUCK_CHILD, str(HERE), mode, str(target), str(out)],
               run_dir, env)


def exactness(store: Path, duck_edges: Path) -> dict[str, Any]:
    """Rollup vs raw derivation (the analyzer's own code) and vs DuckDB (independent): every
    edge (source, destination, protocol, port, outcome) with its connections, events, first
    and last seen."""
    import polars as pl

    sys.path.insert(0, str(ROOT))
    from analyzer.connections import derive_connections
    from analyzer.store import FlowStore

    opened = FlowStore.open(store)
    rollup = opened.rollup()
    assert rollup is not None, "no fresh rollup"
    rolled = rollup.connections()
    derived = None if os.environ.get("BENCH_ROLLUP_NO_RAW") else derive_connections(opened.scan())
    keys = ["src_key", "dst_key", "protocol", "dst_port", "outcome"]
    values = ["connections", "events", "first_seen", "last_seen"]

    def norm(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(
            *keys[:3], pl.col("dst_port").cast(pl.Int64), "outcome",
            pl.col("connections", "events").cast(pl.Int64),
            pl.col("first_seen", "last_seen").cast(pl.Datetime("us", "UTC")),
        ).sort(keys, nulls_last=True)

    mine, other = norm(rolled.frame), norm(pl.read_parquet(duck_edges))
    both = mine.join(other, on=keys, how="full", suffix="_duck", nulls_equal=True, coalesce=True)
    differ = both.filter(
        pl.any_horizontal([(pl.col(v) != pl.col(f"{v}_duck")).fill_null(True) for v in values])
    )
    return {
        "rollup_equals_raw_derivation": None if derived is None
        else rolled.frame.equals(derived.frame) and rollup.stats == derived.stats,
        "edges_rollup": mine.height,
        "edges_duckdb": other.height,
        "connections_rollup": int(mine["connections"].sum()),
        "connections_duckdb": int(other["connections"].sum()),
        "events_rollup": int(mine["events"].sum()),
        "events_duckdb": int(other["events"].sum()),
        "edges_differing": differ.height,
        "differing_examples": differ.head(5).to_dicts(),
        "compared": keys + values,
    }


def one_size(
    args: argparse.Namespace, work: Path, flows: int, previous: dict[str, Any]
) -> dict[str, Any]:
    case, files = prepare(work, flows)
    policies = case / "existing-policies.yaml"
    runs = work / "runs" / str(flows)
    shutil.rmtree(runs, ignore_errors=True)
    result: dict[str, Any] = {
        "flows": flows,
        "input_bytes": sum(f.stat().st_size for f in files),
        "node_files": [f.name for f in files],
    }
    store = work / f"store-{flows}"
    if args.commands_only:
        # the store as it is (built by an earlier ingest of this code, its rollup fresh):
        # no ingest, no rebuild
        if not (store / "manifest.json").is_file():
            raise SystemExit(f"--commands-only: no store at {store}")
        print(f"[{flows}] commands only, on {store} as it is", flush=True)
    elif args.reuse_stores and (store / "manifest.json").is_file() and str(flows) in previous:
        # the ingest numbers of the run that built the store; the rollup rebuilt for this code
        for key in ("ingest", "ingest_duckdb_read_json", "ingest_vs_duckdb_cpu", "ingest_before"):
            if key in previous[str(flows)]:
                result[key] = previous[str(flows)][key]
        result["rebuild"] = cli(ROOT, ["store", "rebuild", "--store", str(store)],
                                runs / "rebuild")
        print(f"[{flows}] reused the store; store rebuild {result['rebuild']}", flush=True)
    else:
        if args.single_ingest:
            # one `analyzer ingest` of the node directory: the rollup is derived once, over
            # the whole store (at 10M flows, ingesting file by file re-derives it six times)
            print(f"[{flows}] ingest {len(files)} per-node files in one ingest", flush=True)
            shutil.rmtree(store, ignore_errors=True)
            one = cli(ROOT, ["ingest", "--store", str(store), str(case / "nodes")],
                      runs / "ingest" / "all")
            result["ingest"] = {**one, "files": len(files), "single_ingest": True,
                                "per_file": [one]}
        else:
            print(f"[{flows}] ingest {len(files)} per-node files (rollup written at each)",
                  flush=True)
            result["ingest"] = ingest_all(ROOT, files, store, runs / "ingest")
        print(f"[{flows}] ingest {result['ingest']}", flush=True)
        ducks = [duck("ingest", f, runs / f"duck-ingest-{i}" / "n", runs / f"duck-ingest-{i}")
                 for i, f in enumerate(files)]
        result["ingest_duckdb_read_json"] = totals(ducks)
        result["ingest_vs_duckdb_cpu"] = round(
            result["ingest_duckdb_read_json"]["cpu_s"] / max(result["ingest"]["cpu_s"], 1e-9), 2
        )
        print(f"[{flows}] duckdb read_json {result['ingest_duckdb_read_json']}", flush=True)
        if args.baseline_ingest:
            old = baseline_source(args.baseline_ref, work)
            print(f"[{flows}] ingest with the code before the rollup ...", flush=True)
            result["ingest_before"] = ingest_all(old, files, work / "store-before", runs / "ib")
            shutil.rmtree(work / "store-before", ignore_errors=True)

    duck_out = runs / "duckdb" / "edges.parquet"
    duck_out.parent.mkdir(parents=True, exist_ok=True)
    result["duckdb_edges"] = duck("edges", store, duck_out, runs / "duckdb")
    print(f"[{flows}] duckdb edges {result['duckdb_edges']}", flush=True)
    commands: dict[str, Any] = {}
    for name, template in COMMANDS.items():
        row: dict[str, Any] = {}
        outputs = {}
        labels = (("after", False),) if args.skip_before else (("before", True), ("after", False))
        for label, raw in labels:
            out = runs / re.sub(r"\W+", "-", name) / label
            argv = [a.format(policies=policies, out=out) for a in template]
            row[label] = cli(ROOT, [*argv, "--store", str(store)], out, raw=raw)
            outputs[label] = output_of(out, name)
        if args.skip_before:
            row["outputs_identical"] = None  # not compared: the raw derivation was not run
            row["cpu_ratio"] = None
        else:
            row["outputs_identical"] = outputs["before"] == outputs["after"]
            row["cpu_ratio"] = round(
                row["before"]["cpu_s"] / max(row["after"]["cpu_s"], 1e-9), 2
            )
        row["after_vs_duckdb_wall"] = round(
            result["duckdb_edges"]["wall_s"] / max(row["after"]["wall_s"], 1e-9), 2
        )
        commands[name] = row
        print(f"[{flows}] {name:<24} before {row.get('before')}  after {row['after']}  "
              f"x{row['cpu_ratio']} identical={row['outputs_identical']}", flush=True)
    result["commands"] = commands
    result["graph_vs_duckdb_wall"] = commands["graph"]["after_vs_duckdb_wall"]
    exact = runs / "exactness"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.skip_before:
        env["BENCH_ROLLUP_NO_RAW"] = "1"  # the raw derivation is what --skip-before skips
    run([sys.executable, "-c", _EXACT_CHILD, str(HERE), str(store), str(duck_out),
         str(exact / "exactness.json")], exact, env)
    result["exactness"] = json.loads((exact / "exactness.json").read_text())
    print(json.dumps(result["exactness"], indent=2, default=str), flush=True)
    return result


def markdown(result: dict[str, Any]) -> str:
    """The tables of docs/rollup.md and benchmarks/README.md from a results file."""
    sizes = sorted(result["series"], key=int)
    lines = [
        "| flows | command | before (raw): wall / CPU / peak RSS | after (rollup): wall / CPU "
        "/ peak RSS | CPU before/after | DuckDB edges / after: wall, CPU | identical |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        entry = result["series"][size]
        duck_cpu = entry["duckdb_edges"]["cpu_s"]
        for name, row in entry["commands"].items():
            vs_cpu = duck_cpu / max(row["after"]["cpu_s"], 1e-9)
            lines.append(
                f"| {int(size):,} | `{name}` | {cell(row.get('before'))} | "
                f"{cell(row['after'])} | "
                + (f"{row['cpu_ratio']:.2f}x" if row["cpu_ratio"] is not None else "-")
                + f" | {row.get('after_vs_duckdb_wall', '-')}x, {vs_cpu:.2f}x | "
                + {True: "yes", False: "NO", None: "not compared"}[row["outputs_identical"]]
                + " |"
            )
    lines += [
        "",
        "| flows | DuckDB: the same edges from the Parquet (wall / CPU / RSS) | edges rollup / "
        "DuckDB | connections rollup / DuckDB | edges differing | rollup = raw derivation |",
        "|---|---|---|---|---|---|",
    ]
    for size in sizes:
        entry = result["series"][size]
        ex = entry["exactness"]
        lines.append(
            f"| {int(size):,} | {cell(entry['duckdb_edges'])} | {ex['edges_rollup']:,} / "
            f"{ex['edges_duckdb']:,} | {ex['connections_rollup']:,} / "
            f"{ex['connections_duckdb']:,} | {ex['edges_differing']} | "
            + {True: "yes", False: "NO", None: "not run"}[ex["rollup_equals_raw_derivation"]]
            + " |"
        )
    lines += [
        "",
        "| flows | per-node files (MB) | ingest, all files: wall / CPU / max peak RSS | last "
        "file (rollup over the whole store) | DuckDB read_json + GROUP BY: wall / CPU / RSS | "
        "CPU DuckDB / ingest |",
        "|---|---|---|---|---|---|",
    ]
    for size in sizes:
        entry = result["series"][size]
        if "ingest_duckdb_read_json" not in entry:
            continue  # --commands-only: the store's ingest was not timed in this run
        ing, dk = entry["ingest"], entry["ingest_duckdb_read_json"]
        last = ing.get("per_file", [ing.get("last_file")])[-1]
        lines.append(
            f"| {int(size):,} | {ing['files']} ({entry['input_bytes'] / 1e6:,.0f}) | "
            f"{cell(ing)} | {cell(last)} | {cell(dk)} | {entry['ingest_vs_duckdb_cpu']}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/work/data/events"))
    parser.add_argument("--series", default="1000000", help="flow counts, comma-separated")
    parser.add_argument("--baseline-ref", default="9bea3a8", help="code before the rollup")
    parser.add_argument("--baseline-ingest", action="store_true",
                        help="also ingest with the code of --baseline-ref (no rollup)")
    parser.add_argument("--reuse-stores", action="store_true",
                        help="keep stores built by an earlier run (and its ingest numbers); "
                        "rebuild their rollup for this code (timed) and time the commands")
    parser.add_argument("--single-ingest", action="store_true",
                        help="build the store with one ingest of all node files (the rollup "
                        "derived once) instead of one ingest per file")
    parser.add_argument("--skip-before", action="store_true",
                        help="time the commands with the rollup only (no raw derivation runs, "
                        "outputs not compared with it); the edges are still checked against "
                        "DuckDB's")
    parser.add_argument("--commands-only", action="store_true",
                        help="time the commands (and DuckDB's edges) on the store already in "
                        "--work, as it is: no ingest, no rebuild")
    parser.add_argument("--markdown", action="store_true",
                        help="print the tables of the last results and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(RESULTS.read_text())))
        return
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_at_start": os.getloadavg()},
        "generate": GENERATE,
        "series": previous.get("series", {}) if "series" in previous else {},
    }
    for flows in (int(n) for n in args.series.split(",")):
        result["series"][str(flows)] = one_size(args, work, flows, result["series"])
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"written {RESULTS}", flush=True)


if __name__ == "__main__":
    main()
