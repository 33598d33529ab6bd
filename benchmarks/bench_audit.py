"""`audit` as the number of policies grows: wall time and peak RSS, old code path beside new.

For each size N of the series (default 500, 1000, 2000, 10000 policies) a seeded cluster is
generated with ``analyzer generate``'s scenario builder (``extra-NNN`` namespaces of 8 chained
workloads, scaled so that the policies below number N), its flows are ingested into a store,
and the policy set is written as one ``kind: List`` YAML file, the way
``kubectl get networkpolicy -A -o yaml`` prints it. Per namespace the policies are what a
careful team writes: a default-deny for both directions, DNS egress, Prometheus scraping, one
ingress and one egress allow per workload naming its observed peers. Inputs are built once
under ``benchmarks/out/audit/`` and reused.

Each measurement is its own subprocess running what ``analyzer audit -o json`` runs
(``Analysis(...).audit()`` + ``render_json``, with the inventory and the anomaly detector), so
its peak
RSS is its own:

- ``new``: this checkout's ``analyzer``;
- ``old``: the same call on the code of ``--baseline-ref`` (default: the commit before the
  audit scaling work), extracted with ``git archive`` into ``benchmarks/out/``; it gets
  ``--baseline-timeout`` seconds and is not run at sizes above ``--baseline-max``.

First, a ~50 MB policy file (``--load-mb``) is loaded with PyYAML's C loader and, as the
baseline, with the pure-Python one; and the same policies as JSON.

Usage::

    python benchmarks/bench_audit.py [--series 500,1000,2000,10000] [--seed 5] [--load-mb 50]
        [--baseline-ref ac4dfa3] [--baseline-timeout 300] [--baseline-max 10000]
        [--out benchmarks/results/audit.json]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from baseline_code import baseline_source  # sibling module: benchmarks run as scripts

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS_PER_NAMESPACE = 8
# default-deny, allow-dns, allow-metrics-scrape, then one ingress and one egress allow per
# workload (the last workload's egress goes to the next namespace, the first's ingress comes
# from traefik).
POLICIES_PER_NAMESPACE = 3 + 2 * WORKLOADS_PER_NAMESPACE
DENSE_NAMESPACES = 100
DENSE_WORKLOADS = 20
DEFAULT_BASELINE_REF = "ac4dfa3"


def _rss_mb() -> float:
    """Peak RSS of this process since it started. Linux keeps ``ru_maxrss`` across fork and
    exec, so a child of a large parent would report the parent's size: VmHWM is reset by exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- inputs -------------------------------------------------------------------------------------


def _policy(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def _app(name: str) -> dict[str, Any]:
    return {"matchLabels": {"app.kubernetes.io/name": name}}


def _peer(ns: str, workload: str, own: str) -> dict[str, Any]:
    if ns == own:
        return {"podSelector": _app(workload)}
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
        "podSelector": _app(workload),
    }


def namespace_policies(scenario: Any, ns: str) -> list[dict[str, Any]]:
    """The policy set of one ``extra-NNN`` namespace, from the scenario's traffic plan."""
    deny = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [{
            "to": [{"namespaceSelector": {"matchLabels":
                                          {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }],
    }
    metrics = {
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [_peer("monitoring", "prometheus", ns)],
                     "ports": [{"protocol": "TCP", "port": 9090}]}],
    }
    out = [_policy(ns, "default-deny", deny), _policy(ns, "allow-dns", dns),
           _policy(ns, "allow-metrics-scrape", metrics)]
    ingress: dict[str, set[tuple[str, str, int]]] = {}
    egress: dict[str, set[tuple[str, str, int]]] = {}
    for path in scenario.legit_paths:
        src, dst = path.src.workload, path.dst.workload
        if src is None or dst is None or path.port in (53, 9090):
            continue
        if dst.namespace == ns and src.namespace != "monitoring":
            ingress.setdefault(dst.name, set()).add((src.namespace, src.name, path.port))
        if src.namespace == ns:
            egress.setdefault(src.name, set()).add((dst.namespace, dst.name, path.port))
    for direction, table, key in (("Ingress", ingress, "from"), ("Egress", egress, "to")):
        for workload, peers in sorted(table.items()):
            spec = {
                "podSelector": _app(workload),
                "policyTypes": [direction],
                direction.lower(): [
                    {key: [_peer(pns, pname, ns)], "ports": [{"protocol": "TCP", "port": port}]}
                    for pns, pname, port in sorted(peers)
                ],
            }
            out.append(_policy(ns, f"allow-{workload}-{direction.lower()}", spec))
    return out


_TIERS = ("web", "api", "worker", "cache")


def dense_policy(ns: str, k: int, namespaces: int, workloads: int) -> dict[str, Any]:
    """Policy ``k`` of a namespace holding many overlapping policies (a generated set).

    Subjects, peers and ports cycle through every shape the audit reasons about: one workload,
    a tier, the whole namespace; same-namespace pods, other namespaces by label or name, every
    namespace, address ranges with exceptions, ``Exists``; single ports, ranges, named ports.
    """
    w = k % workloads
    other = f"extra-{(k * 7) % namespaces + 1:03d}"
    subject = (
        {} if k % 11 == 0
        else {"matchLabels": {"tier": _TIERS[w % 4]}} if k % 5 == 0
        else _app(f"svc-{w}")
    )
    peers = [
        {"podSelector": _app(f"svc-{(w + workloads - 1) % workloads}")},
        {"namespaceSelector": {"matchLabels": {"team": f"team-{other[-3:]}"}},
         "podSelector": {"matchExpressions": [
             {"key": "tier", "operator": "In", "values": [_TIERS[k % 4], _TIERS[(k + 1) % 4]]}]}},
        {"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [ns, other]}]}},
        {"ipBlock": {"cidr": "10.244.0.0/16", "except": [f"10.244.{k % 8}.0/24"]}},
        {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}},
        {"namespaceSelector": {}},
        _peer("monitoring", "prometheus", ns),
    ]
    port: dict[str, Any] = (
        {"protocol": "TCP", "port": "http"} if k % 4 == 0
        else {"protocol": "TCP", "port": 8000, "endPort": 8100} if k % 9 == 0
        else {"protocol": "TCP", "port": 9090 if k % 7 == 6 else 8080}
    )
    spec: dict[str, Any] = {
        "podSelector": subject,
        "ingress": [{"from": [peers[k % 7]], "ports": [port]}],
    }
    if k % 3 == 0:
        spec["ingress"].append({"from": [peers[(k + 3) % 7]], "ports": [port]})
    if k % 5 == 0:
        spec["egress"] = [
            {"to": [_peer("kube-system", "coredns", ns)],
             "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
             "ports": [{"protocol": "TCP", "port": 443}]},
        ]
    return _policy(ns, f"p{k}", spec)


def build_case(policies: int, seed: int, work: Path, shape: str) -> dict[str, Any]:
    """Generate (once) the store, inventory and policy file for ``policies`` policies.

    ``spread``: namespaces grow with the policies (19 per namespace, each set tight);
    ``dense``: 100 namespaces of 20 workloads whatever the size, each namespace holding many
    overlapping policies (10,000 policies: 100 per namespace).
    """
    import yaml

    from analyzer.errors import UsageError
    from analyzer.generate import build_scenario, write_flows
    from analyzer.generate.model import ScenarioConfig
    from analyzer.store import ingest

    namespaces = (
        math.ceil(policies / POLICIES_PER_NAMESPACE) if shape == "spread" else DENSE_NAMESPACES
    )
    case = work / f"{shape}-p{policies}-s{seed}" if shape == "spread" else (
        work / f"{shape}{DENSE_NAMESPACES}x{DENSE_WORKLOADS}-p{policies}-s{seed}"
    )
    info: dict[str, Any] = {"dir": str(case), "extra_namespaces": namespaces}
    if (case / "done.json").is_file():
        return {**info, **json.loads((case / "done.json").read_text()), "reused": True}
    case.mkdir(parents=True, exist_ok=True)
    workloads = WORKLOADS_PER_NAMESPACE if shape == "spread" else DENSE_WORKLOADS
    config = ScenarioConfig(
        seed=seed, extra_namespaces=namespaces, workloads_per_namespace=workloads,
        attacks=frozenset({"scan", "lateral"}),
    )
    scenario = build_scenario(config)
    t = time.perf_counter()
    flows_file = case / "flows.jsonl"
    flows = 50_000
    while True:
        try:
            write_flows(scenario, flows_file, "hubble", flows)
            break
        except UsageError as exc:  # the generator says how many records the plan needs
            found = re.search(r"at least (\d+)", str(exc))
            if not found or flows >= int(found.group(1)):
                raise
            flows = int(found.group(1)) + 1000
    generate_seconds = time.perf_counter() - t
    t = time.perf_counter()
    ingest(case / "store", [str(flows_file)])
    ingest_seconds = time.perf_counter() - t
    flows_file.unlink()
    (case / "inventory.json").write_text(json.dumps(scenario.inventory()))
    docs: list[dict[str, Any]] = []
    if shape == "spread":
        for k in range(namespaces):
            docs.extend(namespace_policies(scenario, f"extra-{k + 1:03d}"))
    else:
        for k in range(policies):
            docs.append(dense_policy(f"extra-{k % namespaces + 1:03d}", k // namespaces,
                                     namespaces, workloads))
    docs = docs[:policies]
    (case / "policies.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": docs}, sort_keys=False)
    )
    done = {
        "flows": flows, "policies": len(docs), "workloads": len(scenario.workloads),
        "pods": sum(len(w.pods) for w in scenario.workloads),
        "policy_file_mb": round((case / "policies.yaml").stat().st_size / 1e6, 2),
        "generate_seconds": round(generate_seconds, 1), "ingest_seconds": round(ingest_seconds, 1),
    }
    (case / "done.json").write_text(json.dumps(done))
    return {**info, **done}


# --- child --------------------------------------------------------------------------------------


def child(src: Path, case: Path) -> dict[str, Any]:
    sys.path.insert(0, str(src))
    import analyzer

    assert Path(analyzer.__file__).resolve().is_relative_to(src.resolve()), analyzer.__file__
    from analyzer.audit.render import render_json

    t, c0 = time.perf_counter(), _cpu()
    try:
        from analyzer.analysis import (
            Analysis,
            load_inventory_file,
            load_policy_files,
            open_store,
        )
    except ImportError:  # a baseline from before the analysis layer
        from analyzer.audit.run import run_audit  # type: ignore[import-not-found]

        result = run_audit(
            [case / "policies.yaml"], store=case / "store", inventory_path=case / "inventory.json",
        )
    else:
        result = Analysis(
            open_store(case / "store"),
            policies=load_policy_files([case / "policies.yaml"]),
            inventory=load_inventory_file(case / "inventory.json"),
        ).audit()
    document = render_json(result)
    seconds = time.perf_counter() - t
    summary = result.summary()
    return {
        "seconds": round(seconds, 2), "cpu_seconds": round(_cpu() - c0, 2),
        "peak_rss_mb": round(_rss_mb(), 1), "policies": result.policies,
        "findings": summary["findings"], "by_category": summary["by_category"],
        "json_bytes": len(document),
    }


def child_load(path: Path, pure: bool) -> dict[str, Any]:
    """``load_policies`` of one big file, with the C YAML loader or (``pure``) without it."""
    import yaml

    import analyzer.k8s.yaml_io as yaml_io
    from analyzer.policy.load import load_policies

    if pure:
        yaml_io.SafeLoader = yaml.SafeLoader
    t, c0 = time.perf_counter(), _cpu()
    loaded = load_policies(path)
    return {"seconds": round(time.perf_counter() - t, 2), "cpu_seconds": round(_cpu() - c0, 2),
            "peak_rss_mb": round(_rss_mb(), 1), "policies": len(loaded.policies),
            "loader": "json" if path.suffix == ".json" else
            "pure" if pure else yaml_io.SafeLoader.__name__}


def yaml_loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_series(work: Path, megabytes: int, namespaces: int) -> dict[str, Any]:
    """A ``kind: List`` of about ``megabytes`` MB (dense policies), loaded both ways."""
    import yaml

    path = work / f"load-{megabytes}mb.yaml"
    if not path.is_file():
        docs, size, k = [], 0, 0
        while size < megabytes * 1_000_000:
            doc = dense_policy(f"extra-{k % namespaces + 1:03d}", k // namespaces, namespaces,
                               DENSE_WORKLOADS)
            docs.append(doc)
            size += len(yaml.safe_dump(doc))
            k += 1
        path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": docs},
                                       sort_keys=False))
    twin = path.with_suffix(".json")  # the same policies as `kubectl get ... -o json` prints
    if not twin.is_file():
        twin.write_text(json.dumps(yaml.load(path.read_text(), Loader=yaml_loader())))
    out: dict[str, Any] = {"file_mb": round(path.stat().st_size / 1e6, 1)}
    for name, target, pure in (("c_loader", path, False), ("pure_loader", path, True),
                               ("json", twin, False)):
        cmd = [sys.executable, __file__, "--child-load", str(target)] + (
            ["--pure"] if pure else []
        )
        res = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
        out[name] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def run_child(src: Path, case: Path, timeout: float | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--src", str(src), "--case", str(case)]
    started = time.perf_counter()
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout,
                             cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"finished": False, "seconds": round(time.perf_counter() - started, 1),
                "note": f"did not finish in {timeout:.0f} s (killed)"}
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or "").strip().splitlines()[-1:] or ["?"]
        return {"finished": False, "note": f"failed: {tail[0]}"}
    return {"finished": True, **json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default="500,1000,2000,10000")
    parser.add_argument("--shapes", default="spread,dense")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--baseline-ref", default=DEFAULT_BASELINE_REF)
    parser.add_argument("--baseline-timeout", type=float, default=300.0)
    parser.add_argument("--baseline-max", type=int, default=10_000)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "out" / "audit"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "audit.json"))
    parser.add_argument("--load-mb", type=int, default=50,
                        help="also time loading a policy file of this size (0: skip)")
    parser.add_argument("--child-load")
    parser.add_argument("--pure", action="store_true")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--src")
    parser.add_argument("--case")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.src), Path(args.case))))
        return
    if args.child_load:
        print(json.dumps(child_load(Path(args.child_load), args.pure)))
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    loading = load_series(work, args.load_mb, DENSE_NAMESPACES) if args.load_mb else None
    if loading:
        print(json.dumps({"load": loading}), flush=True)
    old_src = None if args.no_baseline else baseline_source(args.baseline_ref, work)
    runs = []
    sizes = [int(s) for s in args.series.split(",")]
    for shape, size in ((sh, n) for sh in args.shapes.split(",") for n in sizes):
        info = build_case(size, args.seed, work, shape)
        case = Path(info["dir"])
        new = run_child(ROOT, case, None)
        old = (
            run_child(old_src, case, args.baseline_timeout)
            if old_src is not None and size <= args.baseline_max
            else {"finished": False, "note": "not run"}
        )
        row = {"shape": shape, "policies": size, "input": info, "new": new, "old": old}
        if new.get("finished") and old.get("finished"):
            row["speedup"] = round(old["seconds"] / max(new["seconds"], 1e-9), 2)
        runs.append(row)
        print(json.dumps({"shape": shape, "policies": size, "new": new.get("seconds"),
                          "new_rss_mb": new.get("peak_rss_mb"), "old": old.get("seconds"),
                          "old_rss_mb": old.get("peak_rss_mb"), "old_note": old.get("note")}),
              flush=True)
    report = {
        "benchmark": "audit",
        "baseline": f"the same run_audit call on {args.baseline_ref} (git archive)",
        "runs": runs,
        "policy_file_load": loading,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": __import__("os").cpu_count()},
        "note": "wall-clock on a shared 2-core machine; each measurement in its own subprocess "
        "(peak RSS is that process's); inputs under benchmarks/out/audit",
        "command": " ".join(["python", *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
