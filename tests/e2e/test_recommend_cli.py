"""`analyzer recommend` end to end: generate -> ingest -> recommend, replayed by the engine.

The replay is the independent check of the issue: every legitimate path of the generated
scenario's truth.json is allowed by the output, attack paths and unobserved paths are denied,
and the seed's backend policy comes out at least as tight as allow-backend-ingress.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.policy.compile import compile_policies
from analyzer.policy.frame import evaluate_connections
from analyzer.policy.load import load_policies

runner = CliRunner()
TARGETS = ("develop", "production")
REPLAY_SCHEMA = {
    "src_namespace": pl.String, "dst_namespace": pl.String,
    "src_labels": pl.List(pl.String), "dst_labels": pl.List(pl.String),
    "src_entity": pl.String, "dst_entity": pl.String,
    "src_ip": pl.String, "dst_ip": pl.String,
    "src_pod": pl.String, "dst_pod": pl.String,
    "protocol": pl.String, "dst_port": pl.Int32, "id": pl.String,
}


def _invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("recommend")
    gen, store = root / "gen", root / "store"
    _invoke("generate", "--out", str(gen), "--flows", "20000", "--seed", "11")
    _invoke("ingest", "--store", str(store), str(gen / "flows.jsonl"))
    ns = [a for n in TARGETS for a in ("--namespace", n)]
    result = _invoke("recommend", "--store", str(store), *ns)
    out = root / "recommended.yaml"
    out.write_text(result.stdout)
    return {"root": root, "gen": gen, "store": store, "yaml": out, "result": result,
            "truth": json.loads((gen / "truth.json").read_text())}


def _end(spec: dict[str, Any]) -> list[dict[str, Any]]:
    if spec["kind"] == "pod":
        labels = sorted(f"{k}={v}" for k, v in spec["labels"].items())
        return [{"namespace": spec["namespace"], "labels": labels, "entity": "pod",
                 "ip": spec.get("ip"), "pod": spec.get("pod") or spec.get("workload")}]
    return [{"namespace": None, "labels": [], "entity": spec["kind"], "ip": ip, "pod": None}
            for ip in spec.get("ips") or [None]]


def _replay(docs_path: Path, paths: list[dict[str, Any]]) -> pl.DataFrame:
    rows = []
    for path in paths:
        for src in _end(path["source"]):
            for dst in _end(path["destination"]):
                rows.append({**{f"src_{k}": v for k, v in src.items()},
                             **{f"dst_{k}": v for k, v in dst.items()},
                             "protocol": path["protocol"], "dst_port": path["port"],
                             "id": path["id"]})
    frame = pl.DataFrame(rows, schema=REPLAY_SCHEMA)
    compiled = compile_policies(load_policies(docs_path).policies)
    return evaluate_connections(compiled, frame)


def _in_scope(path: dict[str, Any]) -> bool:
    return any(path[side].get("namespace") in TARGETS for side in ("source", "destination"))


def test_output_is_valid_multi_document_yaml(scenario: dict[str, Any]) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "recommend"))
    from recommend_fixtures import validate_manifest

    docs = list(yaml.safe_load_all(scenario["yaml"].read_text()))
    assert {d["metadata"]["namespace"] for d in docs} == set(TARGETS)
    for doc in docs:
        validate_manifest(doc)
    assert "verified:" in scenario["result"].stderr


def test_every_legitimate_path_is_allowed(scenario: dict[str, Any]) -> None:
    from analyzer.store import FlowStore

    # "every legitimate *observed* path": an external address the capture never saw (the truth
    # lists every address a name resolves to) is rightly not allowed.
    flows = FlowStore.open(scenario["store"]).scan().select("src_ip", "dst_ip").collect()
    seen = set(flows["src_ip"].drop_nulls()) | set(flows["dst_ip"].drop_nulls())
    legit = []
    for p in scenario["truth"]["legit_paths"]:
        if not _in_scope(p) or p["source"]["kind"] == "host":
            continue
        p = json.loads(json.dumps(p))
        for side in ("source", "destination"):
            if p[side].get("ips"):
                p[side]["ips"] = [ip for ip in p[side]["ips"] if ip in seen]
        if all(p[side].get("ips", [1]) for side in ("source", "destination")):
            legit.append(p)
    assert len(legit) > 10
    out = _replay(scenario["yaml"], legit)
    denied = out.filter(~pl.col("allowed"))["id"].unique().to_list()
    assert denied == []


def test_attack_paths_are_denied(scenario: dict[str, Any]) -> None:
    attacks = [p for p in scenario["truth"]["attack_paths"] if _in_scope(p)
               # the debug pod's DNS lookups stay open: that is the DNS guardrail
               and not (p["port"] == 53 and p["destination"].get("namespace") == "kube-system")]
    assert attacks
    out = _replay(scenario["yaml"], attacks)
    allowed = out.filter(pl.col("allowed"))["id"].unique().to_list()
    assert allowed == []


def test_unobserved_paths_between_legitimate_workloads_are_denied(
    scenario: dict[str, Any],
) -> None:
    legit = [p for p in scenario["truth"]["legit_paths"] if p["source"]["kind"] == "pod"
             and p["destination"]["kind"] == "pod"]
    observed = {(p["source"]["workload"], p["destination"]["workload"], p["port"]) for p in legit}
    ends = {p[s]["workload"]: p[s] for p in legit for s in ("source", "destination")}
    ports = sorted({p["port"] for p in legit if p["protocol"] == "TCP"})
    probes = []
    for src_name, src in ends.items():
        for dst_name, dst in ends.items():
            if src["namespace"] not in TARGETS and dst["namespace"] not in TARGETS:
                continue
            for port in ports:
                if (src_name, dst_name, port) not in observed and src_name != dst_name:
                    probes.append({"id": f"{src_name}->{dst_name}:{port}", "source": src,
                                   "destination": dst, "protocol": "TCP", "port": port})
    out = _replay(scenario["yaml"], probes)
    allowed = out.filter(pl.col("allowed"))["id"].unique().to_list()
    assert allowed == []


def test_backend_policy_is_at_least_as_tight_as_the_seed(scenario: dict[str, Any]) -> None:
    docs = list(yaml.safe_load_all(scenario["yaml"].read_text()))
    selecting = [d for d in docs if d["metadata"]["namespace"] == "develop"
                 and "Ingress" in d["spec"]["policyTypes"] and d["spec"].get("ingress")
                 and "backend" in json.dumps(d["spec"]["podSelector"])]
    assert len(selecting) == 1  # one policy for backend and backend-primary
    spec = selecting[0]["spec"]
    (expr,) = spec["podSelector"]["matchExpressions"]
    assert expr["operator"] == "In" and expr["values"] == ["backend", "backend-primary"]
    assert expr["key"] == "app"  # the seed selects on app, and so does the identity module
    web = [r for r in spec["ingress"] if r["ports"] == [{"protocol": "TCP", "port": 8080}]]
    assert len(web) == 1
    peers = web[0]["from"]
    frontends = [p for p in peers if "namespaceSelector" not in p]
    assert [p["podSelector"]["matchExpressions"][0]["values"] for p in frontends] == [
        ["frontend", "frontend-primary"]]
    traefik = [p for p in peers if "namespaceSelector" in p]
    assert traefik == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
    }]
    others = [r for r in spec["ingress"] if r is not web[0]]
    # only what else was observed: the Prometheus scrape from monitoring, nothing from the host
    assert all(p.get("namespaceSelector", {}).get("matchLabels", {}).get(
        "kubernetes.io/metadata.name") == "monitoring" for r in others for p in r["from"])


def test_bundle_and_json_output(scenario: dict[str, Any]) -> None:
    out = scenario["root"] / "bundle"
    _invoke("recommend", "--store", str(scenario["store"]), "--namespace", "develop",
            "--flavor", "calico", "--out", str(out))
    assert {"kustomization.yaml", "ROLLOUT.md", "rollback.sh", "probes.sh"} <= {
        p.name for p in out.iterdir()}
    result = _invoke("recommend", "--store", str(scenario["store"]), "--namespace", "develop",
                     "--flavor", "cilium", "-o", "json")
    data = json.loads(result.stdout)
    assert data["flavor"] == "cilium" and data["verification"]["checked"] > 0
    assert any(p["expect"] == "time out" for p in data["probes"])
    assert {m["kind"] for m in data["manifests"]} == {"CiliumNetworkPolicy"}


def test_bad_input_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["recommend", "--store", str(tmp_path / "none")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith("error:")


def test_starwars_sample_gives_a_deathstar_ingress_policy(
    shared_dir: Path, tmp_path: Path
) -> None:
    sample = shared_dir / "samples/hubble/cnpgen__testdata1-exporter-kind-starwars.json"
    _invoke("ingest", "--store", str(tmp_path / "s"), str(sample))
    result = _invoke("recommend", "--store", str(tmp_path / "s"), "--namespace", "default")
    docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.stdout)}
    spec = docs["allow-deathstar-ingress"]["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "deathstar"}}
    assert spec["ingress"] == [{
        "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "tiefighter"}}}],
        "ports": [{"protocol": "TCP", "port": 80}],
    }]
    assert "default-deny" in docs and "allow-dns-egress" in docs


HOSTILE = "x\\n- kind: ClusterRoleBinding"


def test_hostile_labels_from_flows_never_reach_yaml(shared_dir: Path, tmp_path: Path) -> None:
    sample = shared_dir / "samples/hubble/cnpgen__testdata1-exporter-kind-starwars.json"
    text = sample.read_text().replace("k8s:class=tiefighter", "k8s:evil=" + HOSTILE).replace(
        "k8s:app.kubernetes.io/name=tiefighter", 'k8s:app.kubernetes.io/name=\\"; rm -rf /')
    hostile = tmp_path / "hostile.json"
    hostile.write_text(text)
    _invoke("ingest", "--store", str(tmp_path / "h"), str(hostile))
    result = runner.invoke(app, ["recommend", "--store", str(tmp_path / "h"),
                                 "--namespace", "default"])
    assert result.exit_code == 0, result.stderr
    assert "ClusterRoleBinding" not in result.stdout and "rm -rf" not in result.stdout
    for doc in yaml.safe_load_all(result.stdout):
        assert doc["kind"] == "NetworkPolicy"


def test_help_lists_every_option() -> None:
    result = runner.invoke(app, ["recommend", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--store", "--namespace", "--flavor", "--out", "--policies", "--inventory",
                   "--include-anomalies", "--ipblock-prefix", "--output"):
        assert option in result.stdout


def test_given_policies_that_break_observed_traffic_fail_loudly(
    scenario: dict[str, Any], tmp_path: Path
) -> None:
    lockdown = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "lockdown", "namespace": "monitoring"},
                "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}
    path = tmp_path / "given.yaml"
    path.write_text(yaml.safe_dump(lockdown))
    result = runner.invoke(app, ["recommend", "--store", str(scenario["store"]),
                                 "--namespace", "develop", "--policies", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "would deny" in result.stderr and "prometheus" in result.stderr


def test_inventory_names_pods_without_any_observed_traffic(
    scenario: dict[str, Any], tmp_path: Path
) -> None:
    inventory = json.loads((scenario["gen"] / "inventory.json").read_text())
    pod = next(i for i in inventory["items"] if i.get("kind") == "Pod")
    silent = json.loads(json.dumps(pod))
    silent["metadata"].update(name="nightly-report-1", namespace="develop",
                              labels={"app": "nightly-report"})
    inventory["items"].append(silent)
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(inventory))
    result = _invoke("recommend", "--store", str(scenario["store"]), "--namespace", "develop",
                     "--inventory", str(path))
    lines = [line for line in result.stderr.splitlines() if "no observed traffic at all" in line]
    assert lines == [
        "warning: develop: 1 pod(s) in the inventory had no observed traffic at all "
        "(nightly-report-1): the default-deny isolates them completely"
    ]
