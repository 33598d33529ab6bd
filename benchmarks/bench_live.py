"""Benchmark the live sources: ``ingest --follow`` and ``ingest --relay``, with baselines.

Parts (each contender in its own process; peak RSS from ``os.wait4``):

* ``follow``: a generated capture piped at full speed into ``analyzer ingest --follow -``,
  against ``analyzer ingest FILE`` (the batch path) and a plain-Python ``json.loads`` loop
  over the same lines (the floor of any per-line Python reader);
* ``latency``: the capture piped by a slow writer at a fixed rate; for marker lines, the time
  from writing a line to the commit that holds it (polling the manifest);
* ``soak``: a long slow stream with a commit every second; RSS sampled while it runs
  (memory must stay flat however many commits);
* ``relay``: a GetFlows server (tests/unit/live/relay_server.py) in another process streaming
  the capture; ``analyzer ingest --relay`` against a raw gRPC client that only receives;
* ``growth``: store size per million flows by records per commit (1k, 10k, 60k, 300k: a
  cadence times a flow rate), manifest bytes per commit, ``analyzer stats`` time.

Results go to ``benchmarks/results/live.json`` and a table on stdout.

Usage::

    python benchmarks/bench_live.py                       # every part, default sizes
    python benchmarks/bench_live.py --parts follow,relay --flows 200000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "live.json"
DATA = Path(tempfile.gettempdir()) / "analyzer-bench-live"
sys.path.insert(0, str(HERE))
from harness import CAPTURE, DEVNULL, Measured, measure, rss_kb, run  # noqa: E402

ANALYZER = [sys.executable, "-c", "from analyzer.cli import app; app()"]


def _capture(flows: int) -> Path:
    out = DATA / f"gen-{flows}"
    path = out / "flows.jsonl"
    if not path.is_file():
        subprocess.run(
            [*ANALYZER, "generate", "--out", str(out), "--flows", str(flows), "--seed", "11"],
            check=True,
            capture_output=True,
        )
    return path


def _store_mb(store: Path) -> float:
    return sum(p.stat().st_size for p in (store / "flows").glob("*.parquet")) / 1e6


def _committed(store: Path) -> tuple[int, int]:
    try:
        doc = json.loads((store / "manifest.json").read_text())
    except (OSError, ValueError):
        return 0, 0
    lines = sum(int(e.get("stream", {}).get("lines", 0)) for e in doc["inputs"])
    return lines, len(doc["inputs"])


def _rate(measured: Measured, flows: int) -> dict[str, Any]:
    """Wall, flows per second and peak RSS (whole MB) of a run over ``flows`` flows."""
    return {"wall_s": round(measured.wall_s, 2), "flows_per_s": round(flows / measured.wall_s),
            "peak_rss_mb": round(measured.peak_rss_mb)}


# --- follow at full speed, with the two baselines ------------------------------------------


def part_follow(capture: Path, flows: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    store = DATA / "follow-store"
    shutil.rmtree(store, ignore_errors=True)
    with open(capture, "rb") as fh:
        follow = run(
            [*ANALYZER, "ingest", "--follow", "-", "--commit-every", "5s", "--store", str(store),
             "-o", "json"],
            stdin=fh, stdout=CAPTURE, stderr=DEVNULL,
        )
    summary = json.loads(follow.stdout)
    assert follow.exit_code == 0 and summary["rows_committed"] == flows, summary
    out["follow_stdin"] = {
        **_rate(follow, flows), "commits": summary["commits"],
        "store_mb": round(_store_mb(store), 1),
    }
    batch = DATA / "batch-store"
    shutil.rmtree(batch, ignore_errors=True)
    ingest = run([*ANALYZER, "ingest", str(capture), "--store", str(batch)], stderr=DEVNULL)
    out["ingest_file"] = {**_rate(ingest, flows), "store_mb": round(_store_mb(batch), 1)}
    loop = "import json,sys\nn=0\nfor line in open(sys.argv[1],'rb'):\n json.loads(line); n+=1\n"
    looped = run([sys.executable, "-c", loop, str(capture)], stdout=None, stderr=None)
    out["python_json_loop"] = _rate(looped, flows)
    return out


# --- a slow writer: commit latency ----------------------------------------------------------


def _slow_writer(capture: Path, rate: float, seconds: float, sink: Any,
                 marks: dict[int, float], every: int) -> int:
    n = 0
    t0 = time.perf_counter()
    with open(capture, "rb") as fh:
        for line in fh:
            sink.write(line)
            n += 1
            if n % every == 0:
                sink.flush()
                marks[n] = time.perf_counter()
            if n % 200 == 0:
                sink.flush()
                delay = t0 + n / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            if time.perf_counter() - t0 >= seconds:
                break
    sink.flush()
    return n


def part_latency(capture: Path, rate: float, seconds: float, cadence: str) -> dict[str, Any]:
    store = DATA / f"latency-store-{cadence}"
    shutil.rmtree(store, ignore_errors=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*ANALYZER, "ingest", "--follow", "-", "--commit-every", cadence, "--store", str(store)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    marks: dict[int, float] = {}
    committed_at: dict[int, float] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            lines, _ = _committed(store)
            now = time.perf_counter()
            for mark in list(marks):
                if mark not in committed_at and lines >= mark:
                    committed_at[mark] = now
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert proc.stdin is not None
    written = _slow_writer(capture, rate, seconds, proc.stdin, marks, every=max(1, int(rate)))
    proc.stdin.close()
    rss = measure(proc, started).peak_rss_mb
    time.sleep(0.2)
    stop.set()
    watcher.join()
    assert proc.stderr is not None
    commit_secs = [
        float(line.split(" in ")[1].split(" s ")[0])
        for line in proc.stderr.read().decode().splitlines()
        if " committed " in line
    ]
    latencies = sorted(committed_at[m] - marks[m] for m in marks if m in committed_at)
    lines, commits = _committed(store)
    return {
        "rate_flows_per_s": rate, "commit_every": cadence, "flows": written,
        "committed_lines": lines, "commits": commits, "peak_rss_mb": round(rss),
        "write_to_commit_s": {
            "median": round(latencies[len(latencies) // 2], 2) if latencies else None,
            "max": round(latencies[-1], 2) if latencies else None,
        },
        "commit_duration_s": {
            "median": round(sorted(commit_secs)[len(commit_secs) // 2], 3) if commit_secs else None,
            "max": round(max(commit_secs), 3) if commit_secs else None,
        },
        "store_mb": round(_store_mb(store), 1),
    }


def part_soak(capture: Path, rate: float, seconds: float) -> dict[str, Any]:
    store = DATA / "soak-store"
    shutil.rmtree(store, ignore_errors=True)
    proc = subprocess.Popen(
        [*ANALYZER, "ingest", "--follow", "-", "--commit-every", "1s", "--store", str(store)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    samples: list[tuple[float, float, int]] = []
    stop = threading.Event()
    t0 = time.perf_counter()

    def sample() -> None:
        while not stop.is_set():
            rss = rss_kb(proc.pid)
            if rss is not None:
                samples.append((round(time.perf_counter() - t0, 1), round(rss / 1024, 1),
                                _committed(store)[1]))
            time.sleep(5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stdin is not None
    written = _slow_writer(capture, rate, seconds, proc.stdin, {}, every=10**9)
    proc.stdin.close()
    peak = measure(proc, t0).peak_rss_mb
    stop.set()
    sampler.join()
    lines, commits = _committed(store)
    tenth = samples[max(0, len(samples) // 10)] if samples else None
    return {
        "rate_flows_per_s": rate, "seconds": seconds, "flows": written, "commits": commits,
        "peak_rss_mb": round(peak),
        "rss_mb_at_10pct": tenth[1] if tenth else None,
        "rss_mb_at_end": samples[-1][1] if samples else None,
        "rss_samples": samples,
        "store_mb": round(_store_mb(store), 1),
    }


# --- store growth by commit size -----------------------------------------------------------


def part_growth(capture: Path, flows: int) -> dict[str, Any]:
    """Store size per million flows when each commit holds N records (N = flows per second
    times the commit interval), and the manifest bytes per commit."""
    out: dict[str, Any] = {}
    for per_commit in (1_000, 10_000, 60_000, 300_000):
        store = DATA / f"growth-{per_commit}"
        shutil.rmtree(store, ignore_errors=True)
        with open(capture, "rb") as fh:
            run([*ANALYZER, "ingest", "--follow", "-", "--commit-every", str(per_commit),
                 "--store", str(store)], stdin=fh, stderr=DEVNULL)
        _, commits = _committed(store)
        started = time.perf_counter()
        subprocess.run([*ANALYZER, "stats", "--store", str(store)], check=True,
                       capture_output=True)
        stats_s = time.perf_counter() - started
        out[str(per_commit)] = {
            "commits": commits,
            "store_mb": round(_store_mb(store), 1),
            "mb_per_million_flows": round(_store_mb(store) / flows * 1e6, 1),
            "manifest_bytes_per_commit": round((store / "manifest.json").stat().st_size
                                               / max(1, commits)),
            "stats_s": round(stats_s, 2),
        }
        shutil.rmtree(store, ignore_errors=True)
    return out


# --- relay -----------------------------------------------------------------------------------

_SERVER = """
import sys, time
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from relay_server import FakeRelay, load_responses
relay = FakeRelay(load_responses(Path(sys.argv[1])))
print(relay.start(), flush=True)
time.sleep(float(sys.argv[2]))
"""

_RAW_CLIENT = """
import sys, grpc
from analyzer.live.proto import hubble_observer_pb2 as pb
from analyzer.live.relay import GET_FLOWS
req = pb.GetFlowsRequest(); req.since.FromSeconds(0)
call = grpc.insecure_channel(sys.argv[1]).unary_stream(
    GET_FLOWS, request_serializer=pb.GetFlowsRequest.SerializeToString,
    response_deserializer=pb.GetFlowsResponse.FromString)(req)
print(sum(1 for _ in call))
"""


def part_relay(capture: Path, flows: int) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(capture), "3600", str(ROOT / "tests/unit/live")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        assert server.stdout is not None
        address = server.stdout.readline().decode().strip()
        out: dict[str, Any] = {}
        raw = run([sys.executable, "-c", _RAW_CLIENT, address], stdout=CAPTURE, stderr=None)
        out["raw_grpc_receive"] = _rate(raw, flows)
        store = DATA / "relay-store"
        shutil.rmtree(store, ignore_errors=True)
        relay = run(
            [*ANALYZER, "ingest", "--relay", address, "--since", "2000-01-01T00:00:00Z",
             "--commit-every", "5s", "--store", str(store), "-o", "json"],
            stdout=CAPTURE, stderr=DEVNULL,
        )
        summary = json.loads(relay.stdout)
        assert summary["rows_committed"] == flows, summary
        out["ingest_relay"] = {**_rate(relay, flows), "store_mb": round(_store_mb(store), 1)}
        return out
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="follow,latency,soak,relay,growth")
    parser.add_argument("--flows", type=int, default=500_000)
    parser.add_argument("--relay-flows", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--latency-seconds", type=float, default=40.0)
    parser.add_argument("--soak-rate", type=float, default=3000.0)
    parser.add_argument("--soak-seconds", type=float, default=300.0)
    args = parser.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    results: dict[str, Any] = {}
    if RESULTS.is_file():
        results = json.loads(RESULTS.read_text())
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_avg_at_start": os.getloadavg()[0]}
    capture = _capture(args.flows)
    if "follow" in parts:
        results["follow"] = {"flows": args.flows, **part_follow(capture, args.flows)}
    if "latency" in parts:
        results["latency"] = [
            part_latency(capture, args.rate, args.latency_seconds, cadence)
            for cadence in ("1s", "5s")
        ]
    if "soak" in parts:
        soak_capture = _capture(max(args.flows, int(args.soak_rate * args.soak_seconds) + 1000))
        results["soak"] = part_soak(soak_capture, args.soak_rate, args.soak_seconds)
    if "growth" in parts:
        results["growth_by_commit_size"] = {"flows": args.flows,
                                            "records_per_commit": part_growth(capture, args.flows)}
    if "relay" in parts:
        relay_capture = DATA / f"relay-{args.relay_flows}.jsonl"
        if not relay_capture.is_file():
            with open(capture, "rb") as src, open(relay_capture, "wb") as dst:
                for i, line in enumerate(src):
                    if i >= args.relay_flows:
                        break
                    dst.write(line)
        results["relay"] = {"flows": args.relay_flows,
                            **part_relay(relay_capture, args.relay_flows)}
    growth = {}
    for name, store_mb, flows in _growth_rows(results):
        growth[name] = {"store_mb": store_mb, "flows": flows,
                        "mb_per_million_flows": round(store_mb / flows * 1e6, 1)}
    results["growth"] = growth
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "soak"}, indent=2))
    if "soak" in results:
        s = results["soak"]
        print(f"soak: {s['commits']} commits, {s['flows']} flows, RSS {s['rss_mb_at_10pct']} MB "
              f"at 10% -> {s['rss_mb_at_end']} MB at the end (peak {s['peak_rss_mb']} MB)")


def _growth_rows(results: dict[str, Any]) -> list[tuple[str, float, int]]:
    rows = []
    if "follow" in results:
        f = results["follow"]
        rows.append(("ingest FILE (one commit)", f["ingest_file"]["store_mb"], f["flows"]))
        rows.append(("--follow, commit every 5 s at full speed", f["follow_stdin"]["store_mb"],
                     f["flows"]))
    for lat in results.get("latency", []):
        rows.append((f"--follow, {lat['rate_flows_per_s']:.0f} flows/s, commit every "
                     f"{lat['commit_every']}", lat["store_mb"], lat["flows"]))
    if "soak" in results:
        s = results["soak"]
        rows.append((f"--follow, {s['rate_flows_per_s']:.0f} flows/s, commit every 1s (soak)",
                     s["store_mb"], s["flows"]))
    if "relay" in results:
        r = results["relay"]
        rows.append(("--relay, commit every 5 s", r["ingest_relay"]["store_mb"], r["flows"]))
    return rows


if __name__ == "__main__":
    main()
