"""`recommend` is never wrong and never silent (issue 13 cases 2, 5 and 6, and its stderr).

The flows are written here as Hubble lines in the shape of hubble-otel's bookinfo capture
(`basic-sample-348-http-flows.json`): `productpage` calls a `reviews` pod that Cilium reported
as `reserved:world` (identity 2) while Hubble still named its namespace and pod, so the flows
carry no labels for it. Every recommendation is replayed against the same store by the engine
(`simulate`), the independent check that it breaks nothing that was observed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.k8s.inventory import load_inventory
from analyzer.policy.compile import compile_policies
from analyzer.policy.load import load_policies
from analyzer.policy.simulate import simulate
from analyzer.store import FlowStore

runner = CliRunner()

PRODUCTPAGE = {"pod": "productpage-v1-6b746f74dc-ffh56", "ip": "10.156.2.8",
               "labels": ["app=productpage", "version=v1"], "identity": 57816}
RATINGS = {"pod": "ratings-v1-b6994bb9-4dt5c", "ip": "10.156.1.7",
           "labels": ["app=ratings", "version=v1"], "identity": 23006}
REVIEWS_UNKNOWN = {"pod": "reviews-v1-545db77b95-6hbgc", "ip": "10.156.0.10",
                   "labels": None, "identity": 2}  # Cilium: reserved:world
DETAILS = {"pod": "details-v1-79f774bdb9-wxq2h", "ip": "10.156.1.9",
           "labels": ["app=details", "version=v1"], "identity": 31201}


def _endpoint(ns: str, ep: dict[str, Any]) -> dict[str, Any]:
    if ep["labels"] is None:
        labels = ["reserved:world"]
    else:
        labels = [f"k8s:{label}" for label in ep["labels"]] + [
            f"k8s:io.kubernetes.pod.namespace={ns}",
            "k8s:io.cilium.k8s.namespace.labels.istio-injection=enabled",
        ]
    return {"identity": ep["identity"], "namespace": ns, "pod_name": ep["pod"],
            "labels": sorted(labels)}


def _line(i: int, src: dict[str, Any], dst: dict[str, Any], port: int, *,
          proto: str = "TCP", hour: int = 14) -> str:
    at = datetime(2021, 10, 4, tzinfo=UTC) + timedelta(hours=hour, minutes=30 + i % 20,
                                                        seconds=i % 60, microseconds=i)
    t = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if proto == "TCP":
        l4 = {"TCP": {"source_port": 36000 + i, "destination_port": port,
                      "flags": {"SYN": True}}}
    else:  # an ICMP echo request: no port a NetworkPolicy can name
        l4 = {"ICMPv4": {"type": 8}}
    flow = {
        "time": t, "verdict": "FORWARDED",
        "IP": {"source": src["ip"], "destination": dst["ip"], "ipVersion": "IPv4"},
        "l4": l4, "source": _endpoint("bookinfo", src), "destination": _endpoint("bookinfo", dst),
        "Type": "L3_L4", "node_name": "gke-node-1", "event_type": {"type": 4},
        "traffic_direction": "EGRESS", "trace_observation_point": "TO_STACK",
        "is_reply": False,
    }
    return json.dumps({"flow": flow, "node_name": "gke-node-1", "time": t})


def _store(tmp_path: Path, lines: list[str], name: str = "store") -> Path:
    flows = tmp_path / f"{name}.jsonl"
    flows.write_text("\n".join(lines) + "\n")
    store = tmp_path / name
    result = runner.invoke(app, ["ingest", "--store", str(store), str(flows)])
    assert result.exit_code == 0, result.output
    return store


def _bookinfo(tmp_path: Path) -> Path:
    lines = [_line(i, RATINGS, PRODUCTPAGE, 9080) for i in range(5)]
    lines += [_line(10 + i, PRODUCTPAGE, REVIEWS_UNKNOWN, 9080) for i in range(3)]
    lines += [_line(20, PRODUCTPAGE, DETAILS, 9080)]
    return _store(tmp_path, lines)


def _denied_on_replay(
    store: Path, manifests: str, tmp_path: Path, inventory: Path | None = None
) -> list[str]:
    path = tmp_path / "recommended.yaml"
    path.write_text(manifests)
    compiled = compile_policies(load_policies(path).policies)
    flows = FlowStore.open(store).scan()
    inv = load_inventory(inventory) if inventory is not None else None
    frame = simulate(compiled, flows, inv).frame
    return [f"{r['src_key']} -> {r['dst_key']} {r['dst_port']}"
            for r in frame.filter(~frame["allowed"]).iter_rows(named=True)]


def test_a_pod_without_labels_is_not_cut_off(tmp_path: Path) -> None:
    store = _bookinfo(tmp_path)
    result = runner.invoke(app, ["recommend", "--store", str(store), "--namespace", "bookinfo"])
    assert result.exit_code == 0, result.stderr
    # the request to the unlabelled reviews pod survives the default-deny
    assert _denied_on_replay(store, result.stdout, tmp_path) == []
    docs = {d["metadata"]["name"]: d["spec"] for d in yaml.safe_load_all(result.stdout)}
    assert docs["allow-productpage-egress"]["egress"] == [
        {"to": [{"podSelector": {}}, {"podSelector": {"matchLabels": {"app": "details"}}}],
         "ports": [{"protocol": "TCP", "port": 9080}]},
    ]
    assert docs["allow-unlabelled-pods-ingress"] == {
        "podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "productpage"}}}],
                     "ports": [{"protocol": "TCP", "port": 9080}]}],
    }
    assert "1 pod(s) of bookinfo have no labels in the flows (reviews-v1-545db77b95-6hbgc)" \
        in result.stderr
    assert "podSelector {}" in result.stderr and "Exists/DoesNotExist" in result.stderr
    assert "verified: 3/3 observed request edges allowed" in result.stderr


def test_the_inventory_gives_a_pod_without_labels_its_labels(tmp_path: Path) -> None:
    store = _bookinfo(tmp_path)
    pods = [{"kind": "Pod", "metadata": {"name": ep["pod"], "namespace": "bookinfo",
                                         "labels": {"app": name, "version": "v1"}},
             "status": {"podIP": ep["ip"]}}
            for name, ep in (("productpage", PRODUCTPAGE), ("reviews", REVIEWS_UNKNOWN),
                             ("ratings", RATINGS), ("details", DETAILS))]
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"kind": "List", "items": pods}))
    result = runner.invoke(app, ["recommend", "--store", str(store), "--namespace", "bookinfo",
                                 "--inventory", str(inventory), "-v"])
    assert result.exit_code == 0, result.stderr
    docs = {d["metadata"]["name"]: d["spec"] for d in yaml.safe_load_all(result.stdout)}
    assert "allow-unlabelled-pods-ingress" not in docs
    assert all(spec["podSelector"] for spec in docs.values() if "ingress" in spec)
    assert any("reviews" in json.dumps(spec["podSelector"]) for spec in docs.values())
    assert "took their labels from the inventory (bookinfo/reviews-v1-545db77b95-6hbgc)" \
        in result.stderr
    assert _denied_on_replay(store, result.stdout, tmp_path, inventory) == []


def _with_ping(tmp_path: Path) -> Path:
    lines = [_line(i, RATINGS, PRODUCTPAGE, 9080) for i in range(5)]
    lines += [_line(30, RATINGS, PRODUCTPAGE, 0, proto="ICMP")]
    return _store(tmp_path, lines, "ping")


def test_a_recommendation_that_breaks_a_request_is_an_error(tmp_path: Path) -> None:
    store = _with_ping(tmp_path)
    result = runner.invoke(app, ["recommend", "--store", str(store), "--namespace", "bookinfo"])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "verified" not in result.stderr.replace("NOT verified", "")
    assert "would deny 1 observed legitimate connection edge(s): bookinfo/ratings-v1-b6994bb9" \
        "-4dt5c -> bookinfo/productpage-v1-6b746f74dc-ffh56 ICMPv4/-" in result.stderr
    assert "--allow-breaking" in result.stderr


def test_allow_breaking_writes_it_and_says_what_breaks(tmp_path: Path) -> None:
    store = _with_ping(tmp_path)
    args = ["recommend", "--store", str(store), "--namespace", "bookinfo", "--allow-breaking"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "default-deny" in result.stdout
    assert "would break: bookinfo/ratings-v1-b6994bb9-4dt5c -> bookinfo/productpage-v1-" \
        "6b746f74dc-ffh56 ICMPv4/- (1 connections): ICMPv4 has no port a policy can name" \
        in result.stderr
    summary = result.stderr.splitlines()[-1]
    assert "NOT verified: 1/2 observed request edges allowed, 1 would be denied" in summary
    data = json.loads(runner.invoke(app, [*args, "-o", "json"]).stdout)
    assert data["verification"]["verified"] is False
    assert data["verification"]["breaking"][0]["protocol"] == "ICMPv4"
    bundle = runner.invoke(app, [*args, "--out", str(tmp_path / "bundle")])
    assert bundle.exit_code == 0, bundle.output
    rollout = (tmp_path / "bundle" / "ROLLOUT.md").read_text()
    assert "NOT verified" in rollout and "Applying these policies denies" in rollout


@pytest.mark.parametrize(
    "command",
    [
        ["recommend"],
        ["graph"],
        ["anomalies"],
        ["audit", "--policies", "POLICY"],
        ["report", "--out", "OUT"],
    ],
    ids=lambda c: c[0],
)
def test_an_unknown_namespace_is_a_usage_error(tmp_path: Path, command: list[str]) -> None:
    store = _bookinfo(tmp_path)
    policy = tmp_path / "p.yaml"
    policy.write_text(yaml.safe_dump({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "x", "namespace": "bookinfo"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}))
    args = [{"POLICY": str(policy), "OUT": str(tmp_path / "r.html")}.get(a, a) for a in command]
    result = runner.invoke(app, [*args, "--store", str(store), "--namespace", "bookinf"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: unknown namespace 'bookinf': not in the flow")
    assert result.stderr.endswith("; did you mean bookinfo?\n")
    assert not (tmp_path / "r.html").exists()


def test_a_namespace_the_inventory_knows_is_accepted(tmp_path: Path) -> None:
    store = _bookinfo(tmp_path)
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"kind": "List", "items": [
        {"kind": "Namespace", "metadata": {"name": "payments"}}]}))
    result = runner.invoke(app, ["recommend", "--store", str(store), "--namespace", "payments",
                                 "--inventory", str(inventory)])
    assert result.exit_code == 0, result.output
    assert "no traffic observed in namespace payments" in result.stderr


def _dns_only(tmp_path: Path, hours: int) -> Path:
    coredns = {"pod": "coredns-5d78c9869d-abcde", "ip": "10.156.0.3",
               "labels": ["k8s-app=kube-dns"], "identity": 1200}
    client = {"pod": "metrics-server-6d94bc8694-xyz12", "ip": "10.156.0.4",
              "labels": ["k8s-app=metrics-server"], "identity": 1201}
    lines = []
    for i in range(4):
        line = json.loads(_line(i, client, coredns, 53, hour=10 + i * hours // 3))
        for side in ("source", "destination"):
            line["flow"][side]["namespace"] = "kube-system"
        lines.append(json.dumps(line))
    return _store(tmp_path, lines, f"dns-{hours}")


def test_system_namespaces_need_an_explicit_flag(tmp_path: Path) -> None:
    store = _dns_only(tmp_path, 1)
    args = ["recommend", "--store", str(store), "--namespace", "kube-system"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "kube-system is a system namespace" in result.stderr
    assert "--include-system-namespaces" in result.stderr
    # without --namespace, a store with only system namespaces has nothing to recommend
    result = runner.invoke(app, ["recommend", "--store", str(store)])
    assert result.exit_code == 2
    assert "no namespace with observed pods outside the system namespaces (kube-system)" \
        in result.stderr
    result = runner.invoke(app, [*args, "--include-system-namespaces"])
    assert result.exit_code == 0, result.output
    deny = next(d for d in yaml.safe_load_all(result.stdout)
                if d["metadata"]["name"] == "default-deny")
    notes = deny["metadata"]["annotations"]
    assert notes["analyzer.io/observed-window"] == "2021-10-04T10:30:00Z/2021-10-04T11:33:03Z"
    assert notes["analyzer.io/warning"].startswith("observed for only 1h 3m (less than a day)")
    assert "warning: observed for only 1h 3m (2021-10-04T10:30:00Z to 2021-10-04T11:33:03Z), " \
        "less than a day: periodic jobs" in result.stderr


def test_a_day_of_flows_gives_no_window_warning(tmp_path: Path) -> None:
    store = _dns_only(tmp_path, 36)
    result = runner.invoke(app, ["recommend", "--store", str(store), "--namespace",
                                 "kube-system", "--include-system-namespaces"])
    assert result.exit_code == 0, result.output
    deny = next(d for d in yaml.safe_load_all(result.stdout)
                if d["metadata"]["name"] == "default-deny")
    assert "analyzer.io/warning" not in deny["metadata"]["annotations"]
    assert "observed for" not in result.stderr  # said with -v only
    assert "policies for kube-system from 1d 12h of flows" in result.stderr


def test_stderr_is_warnings_and_one_summary_line(tmp_path: Path) -> None:
    store = _bookinfo(tmp_path)
    args = ["recommend", "--store", str(store), "--namespace", "bookinfo"]
    quiet = runner.invoke(app, args).stderr.splitlines()
    assert all(line.startswith("warning: ") for line in quiet[:-1]), quiet
    assert quiet[-1].startswith("6 policies for bookinfo from 12m 12s of flows; verified: ")
    assert not any(line.startswith("probe") for line in quiet)
    loud = runner.invoke(app, [*args, "-v"]).stderr.splitlines()
    assert any(line.startswith("probe (expect succeed): kubectl -n bookinfo exec") for line in loud)
    assert any(line.startswith("info: ") for line in loud)


def test_the_report_reviews_system_namespaces_and_names_breaking_requests(tmp_path: Path) -> None:
    store = _dns_only(tmp_path, 1)
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "--store", str(store), "--namespace", "kube-system",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "no policies recommended for system namespaces (kube-system)" in result.stderr
    assert out.exists()
    result = runner.invoke(app, ["report", "--store", str(_with_ping(tmp_path)),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "the recommendation failed verification: recommended policies would deny 1 " \
        "observed legitimate connection edge(s)" in result.stderr
