"""`analyzer simulate` and `analyzer explain` end to end: Hubble flow lines + inventory built
from truth-table cases (hand-written ones and a sample of the shared upstream ones)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from policy_hubble_lines import hubble_lines, inventory_json, load_truth_tables
from typer.testing import CliRunner

from analyzer.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "policies"
CASES = load_truth_tables(FIXTURES / "truth-tables.yaml")
ORACLE_SAMPLE = [
    "e2e-podselector-AND-namespaceselector",
    "e2e-named-port-ingress",
    "e2e-named-port-egress",
    "e2e-egress-ipblock-except",
    "e2e-endport-ingress",
    "e2e-sctp-allow-does-not-open-tcp",
    "e2e-egress-denied-on-client-side",
    "e2e-allow-from-all-namespaces",
]
runner = CliRunner()


def _simulate(
    tmp_path: Path, case: dict[str, Any], *extra: str, inventory: bool = True
) -> dict[tuple[Any, ...], Any]:
    probes = [p for p in case["probes"] if not p["src"].startswith("entity:")]
    case = {**case, "probes": probes}
    (tmp_path / "flows.json").write_text("\n".join(hubble_lines(case)) + "\n")
    (tmp_path / "inventory.json").write_text(inventory_json(case))
    (tmp_path / "policies.yaml").write_text("\n---\n".join(case["policies"]))
    mode = case.get("mode", "kubernetes")
    inv = ["--inventory", str(tmp_path / "inventory.json")] if inventory else []
    result = runner.invoke(
        app,
        [
            "simulate",
            "--policies",
            str(tmp_path / "policies.yaml"),
            *inv,
            "--ipblock-mode",
            mode,
            str(tmp_path / "flows.json"),
            "-o",
            "jsonl",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    by_key = {(r["src"], r["dst"], r["port"], r["protocol"]): r for r in records}
    assert len(by_key) == len(records), "one object per distinct connection"
    return by_key


def _check(case: dict[str, Any], got: dict[tuple[Any, ...], Any]) -> None:
    for p in case["probes"]:
        if p["src"].startswith("entity:"):
            continue
        record = got[(p["src"], p["dst"], p["port"], p["protocol"])]
        assert record["allowed"] == p["expected"], (p, record["reason"])
        if record["allowed"] and record["ingress_isolated"]:
            assert record["ingress_rules"], record
        if not record["allowed"]:
            assert not (record["ingress_rules"] and record["egress_rules"])


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_simulate_truth_tables(tmp_path: Path, case: dict[str, Any]) -> None:
    _check(case, _simulate(tmp_path, case))


@pytest.mark.parametrize("case_id", ORACLE_SAMPLE)
def test_simulate_oracle_sample(tmp_path: Path, shared_dir: Path, case_id: str) -> None:
    data = json.loads((shared_dir / "oracle" / "k8s-e2e-cases.json").read_text())
    case = next(c for c in data["cases"] if c["id"] == case_id)
    _check(case, _simulate(tmp_path, case))


def test_simulate_rule_references(tmp_path: Path) -> None:
    case = next(c for c in CASES if c["id"] == "both-sides")
    got = _simulate(tmp_path, case)
    record = got[("dev/debug", "prod/web", 8080, "TCP")]
    assert record["egress_rules"] == ["dev/debug-egress-prod#egress[0]"]
    assert record["ingress_rules"] == []
    record = got[("prod/api", "prod/db", 5432, "TCP")]
    assert record["ingress_rules"] == ["prod/db-from-api#ingress[0]"]


def test_simulate_table_output(tmp_path: Path) -> None:
    case = next(c for c in CASES if c["id"] == "and-peer")
    _simulate(tmp_path, case)
    result = runner.invoke(
        app,
        [
            "simulate",
            "--policies",
            str(tmp_path / "policies.yaml"),
            "--inventory",
            str(tmp_path / "inventory.json"),
            str(tmp_path / "flows.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("5 distinct connections: 2 allowed, 3 denied by 1 policies")
    # The generated flows are all forwarded: the 3 denied ones would break.
    assert lines[1] == (
        "3 connections that the flow logs show as allowed would be denied "
        "(applying these policies would break them)"
    )
    lines = lines[1:]
    assert lines[1].split() == ["SOURCE", "DESTINATION", "ALLOWED", "DENIED", "DENIED", "PORTS"]
    assert any("pod:dev:app=debug" in line and "TCP/5432" in line for line in lines)


def test_simulate_reports_policy_problems_and_still_runs(tmp_path: Path) -> None:
    case = next(c for c in CASES if c["id"] == "and-peer")
    _simulate(tmp_path, case)
    result = runner.invoke(
        app,
        [
            "simulate",
            "--policies",
            str(FIXTURES / "malformed.yaml"),
            str(tmp_path / "flows.json"),
            "-o",
            "jsonl",
        ],
    )
    assert result.exit_code == 0
    assert "malformed.yaml: shop/bad-cidr: spec.ingress[0].from[1].ipBlock.cidr: invalid CIDR" in (
        result.stderr
    )
    assert len(result.stdout.splitlines()) == 5


def test_unparsable_policy_file_is_one_line_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: NetworkPolicy\nmetadata: {name: x\n  spec: [")
    result = runner.invoke(
        app,
        ["explain", "--policies", str(bad), "--from", "1.2.3.4", "--to", "a:app=x", "--port", "80"],
    )
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "bad.yaml: not valid YAML/JSON" in result.stderr


def _explain(tmp_path: Path, *args: str) -> Any:
    pol = tmp_path / "p.yaml"
    pol.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: allow-backend-ingress, namespace: develop}\n"
        "spec:\n  podSelector: {matchLabels: {app: backend}}\n  ingress:\n  - from:\n"
        "    - podSelector:\n        matchExpressions:\n"
        "        - {key: app, operator: In, values: [frontend, frontend-primary]}\n"
        "    ports: [{port: 8080}]\n"
    )
    return runner.invoke(app, ["explain", "--policies", str(pol), *args])


def test_explain_denied_names_policy_rule_and_what_is_missing(tmp_path: Path) -> None:
    result = _explain(
        tmp_path, "--from", "develop:app=debug", "--to", "develop:app=backend", "--port", "8080"
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("DENIED: develop:{app=debug} -> develop:{app=backend} TCP 8080")
    assert (
        "policy develop/allow-backend-ingress selects the destination for ingress; its rule "
        "ingress[0] admits pods with app In (frontend, frontend-primary) in namespace develop "
        "on TCP 8080, but the source has app=debug"
    ) in out
    assert "no policy selects the source develop:{app=debug} for egress" in out


def test_explain_json_allowed(tmp_path: Path) -> None:
    result = _explain(
        tmp_path,
        "--from",
        "develop:app=frontend",
        "--to",
        "develop:app=backend",
        "--port",
        "8080",
        "-o",
        "json",
    )
    data = json.loads(result.stdout)
    assert data["allowed"] is True
    assert data["ingress"]["allowed_by"] == ["develop/allow-backend-ingress#ingress[0]"]
    assert data["ingress"]["selecting"] == ["develop/allow-backend-ingress"]


def test_explain_wrong_port_and_external_ip(tmp_path: Path) -> None:
    out = _explain(
        tmp_path, "--from", "develop:app=frontend", "--to", "develop:app=backend", "--port", "9090"
    ).stdout
    assert "but the connection is on TCP 9090" in out
    out = _explain(
        tmp_path, "--from", "203.0.113.9", "--to", "develop:app=backend", "--port", "8080"
    ).stdout
    assert "but the source 203.0.113.9 is not a pod" in out


def test_explain_pod_from_inventory_and_bad_peer(tmp_path: Path) -> None:
    case = next(c for c in CASES if c["id"] == "named-ports")
    (tmp_path / "inv.json").write_text(inventory_json(case))
    (tmp_path / "p.yaml").write_text(case["policies"][0])
    base = [
        "explain",
        "--policies",
        str(tmp_path / "p.yaml"),
        "--inventory",
        str(tmp_path / "inv.json"),
    ]
    result = runner.invoke(app, [*base, "--from", "dev/debug", "--to", "prod/db", "--port", "5432"])
    assert result.exit_code == 0, result.output
    assert "the destination has no container port named http" in result.stdout
    result = runner.invoke(app, [*base, "--from", "dev/nope", "--to", "prod/db", "--port", "1"])
    assert result.exit_code == 2
    assert "dev/nope is not in the inventory or the flow store" in result.stderr


def test_simulate_and_explain_from_the_store(tmp_path: Path) -> None:
    from analyzer.store import ingest

    case = next(c for c in CASES if c["id"] == "and-peer")
    by_flows = _simulate(tmp_path, case)
    store = tmp_path / "store"
    ingest(store, [str(tmp_path / "flows.json")])
    result = runner.invoke(
        app,
        [
            "simulate",
            "--policies",
            str(tmp_path / "policies.yaml"),
            "--store",
            str(store),
            "-o",
            "jsonl",
        ],
    )
    assert result.exit_code == 0, result.output
    from_store = {
        (r["src"], r["dst"], r["port"], r["protocol"]): r["allowed"]
        for r in map(json.loads, result.stdout.splitlines())
    }
    assert from_store == {k: v["allowed"] for k, v in by_flows.items()}
    # explain finds pods by name in the store when there is no inventory.
    result = runner.invoke(
        app,
        [
            "explain",
            "--policies",
            str(tmp_path / "policies.yaml"),
            "--store",
            str(store),
            "--from",
            "dev/debug",
            "--to",
            "prod/db",
            "--port",
            "5432",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("DENIED: dev/debug -> prod/db TCP 5432")
    assert "but the source's namespace dev has no purpose label" in result.stdout


def test_simulate_ignores_replies_and_counts_each_connection_once(tmp_path: Path) -> None:
    case = next(c for c in CASES if c["id"] == "or-peers")
    lines = hubble_lines(case)
    replies = []
    for line in lines:
        event = json.loads(line)
        flow = event["flow"]
        # The server's SYN-ACK: endpoints and ports swapped, is_reply true.
        flow["source"], flow["destination"] = flow["destination"], flow["source"]
        ip = flow["IP"]
        ip["source"], ip["destination"] = ip["destination"], ip["source"]
        ((proto, l4),) = flow["l4"].items()
        l4["source_port"], l4["destination_port"] = l4["destination_port"], l4["source_port"]
        if proto == "TCP":
            l4["flags"] = {"SYN": True, "ACK": True}
        flow["is_reply"] = True
        replies.append(json.dumps(event))
    # Every request twice (another observation point), and every reply.
    (tmp_path / "flows.json").write_text("\n".join(lines + lines + replies) + "\n")
    (tmp_path / "inventory.json").write_text(inventory_json(case))
    (tmp_path / "policies.yaml").write_text("\n---\n".join(case["policies"]))
    result = runner.invoke(
        app,
        [
            "simulate",
            "--policies",
            str(tmp_path / "policies.yaml"),
            "--inventory",
            str(tmp_path / "inventory.json"),
            str(tmp_path / "flows.json"),
            "-o",
            "jsonl",
        ],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(x) for x in result.stdout.splitlines()]
    assert len(records) == len(case["probes"])
    assert {(r["src"], r["dst"], r["port"]) for r in records} == {
        (p["src"], p["dst"], p["port"]) for p in case["probes"]
    }
    _check(case, {(r["src"], r["dst"], r["port"], r["protocol"]): r for r in records})


@pytest.mark.parametrize("case_id", ["and-peer", "notin-doesnotexist", "cilium-l3-l4"])
def test_simulate_namespace_labels_from_hubble_without_inventory(
    tmp_path: Path, case_id: str
) -> None:
    # Hubble carries namespace labels (k8s:io.cilium.k8s.namespace.labels.*): enough for
    # namespaceSelector without an inventory.
    case = next(c for c in CASES if c["id"] == case_id)
    _check(case, _simulate(tmp_path, case, inventory=False))
