"""``analyzer audit`` end to end: ingest into a store, audit from the store, --fail-on exit codes,
JSON schema, and H2's generated cluster with its planted problems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analyzer.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "audit"
POLICIES = FIXTURES / "shop-policies.yaml"
FLOWS = FIXTURES / "shop-flows.jsonl"

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("audit-store") / "store"
    res = runner.invoke(app, ["ingest", "--store", str(root), str(FLOWS)])
    assert res.exit_code == 0, res.output
    return root


def _audit(*args: str) -> Any:
    return runner.invoke(app, ["audit", *args])


def test_table_from_store_groups_by_severity_and_states_window(store: Path) -> None:
    res = _audit("--policies", str(POLICIES), "--store", str(store))
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "window 2026-11-20 10:00:00Z to 2026-11-20" in out
    assert out.index("HIGH (") < out.index("MEDIUM (") < out.index("LOW (") < out.index("INFO (")
    assert "[would-break] shop/default-deny-all" in out
    assert "[unused-rule] shop/allow-backend-ingress spec.ingress[1]" in out
    assert "Rules (hits" in out


def test_json_schema(store: Path) -> None:
    res = _audit("-p", str(POLICIES), "--store", str(store), "-o", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc) >= {"findings", "rules", "window", "summary"}
    assert doc["window"]["first"].startswith("2026-11-20T10:00")
    for f in doc["findings"]:
        assert f["severity"] in ("info", "low", "medium", "high")
        assert set(f) >= {"severity", "category", "policy", "rule", "explanation", "hits",
                          "first_hit", "last_hit", "replacement", "evidence"}
        if f["category"] in ("broad-rule", "unused-rule"):
            assert f["replacement"] is not None
            assert f["replacement"]["action"] in ("replace", "remove-rule")
    rules = {(r["policy"], r["rule"]): r for r in doc["rules"]}
    seed = rules[("shop/allow-backend-ingress", "spec.ingress[0]")]
    assert seed["hits"] == 65 and seed["first_hit"] and seed["last_hit"]
    assert rules[("shop/allow-backend-ingress", "spec.ingress[1]")]["hits"] == 0
    assert doc["summary"]["findings"] == len(doc["findings"])


@pytest.mark.parametrize(
    ("threshold", "code"),
    [("info", 3), ("low", 3), ("medium", 3), ("high", 3)],
)
def test_fail_on_exits_3_when_reached(store: Path, threshold: str, code: int) -> None:
    res = _audit("-p", str(POLICIES), "--store", str(store), "--fail-on", threshold)
    assert res.exit_code == code, res.output


def test_fail_on_passes_when_nothing_reaches_it(tmp_path: Path) -> None:
    # The seed's tight policies, a default-deny and the DNS guardrail, against shop's internal
    # traffic only (frontend -> backend -> db, DNS): nothing but the unused traefik rule (low).
    names = ("default-deny-all", "allow-dns-egress", "allow-backend-ingress",
             "allow-frontend-egress", "allow-backend-to-db", "allow-db-ingress")
    items = [d for d in _list_items(POLICIES) if d["metadata"]["name"] in names]
    tight = tmp_path / "tight.yaml"
    tight.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    shop_ips = {"10.0.1.10", "10.0.1.11", "10.0.1.20", "10.0.1.30", "10.0.0.10"}
    lines = [
        line for line in FLOWS.read_text().splitlines()
        if {json.loads(line)["flow"]["IP"]["source"],
            json.loads(line)["flow"]["IP"]["destination"]} <= shop_ips
    ]
    flows = tmp_path / "internal.jsonl"
    flows.write_text("\n".join(lines) + "\n")
    base = ("-p", str(tight), str(flows), "-n", "shop")
    res = _audit(*base, "-o", "json", "--fail-on", "medium")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [(f["category"], f["policy"], f["rule"]) for f in doc["findings"]] == [
        ("unused-rule", "shop/allow-backend-ingress", "spec.ingress[1]")
    ]
    assert _audit(*base, "--fail-on", "high").exit_code == 0
    assert _audit(*base, "--fail-on", "low").exit_code == 3
    assert _audit(*base, "--fail-on", "info").exit_code == 3


def test_namespace_filter(store: Path) -> None:
    res = _audit("-p", str(POLICIES), "--store", str(store), "-n", "payments", "-o", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["findings"]
    for f in doc["findings"]:
        assert (f["policy"] or f["namespace"] + "/").startswith("payments/"), f
    assert all(r["policy"].startswith("payments/") for r in doc["rules"])


def test_bad_inputs_are_one_line_errors(tmp_path: Path, store: Path) -> None:
    res = _audit("-p", str(tmp_path / "missing.yaml"), "--store", str(store))
    assert res.exit_code == 1
    assert res.stderr.startswith("error: ") and "Traceback" not in res.output
    res = _audit("-p", str(POLICIES), "--store", str(tmp_path / "nostore"))
    assert res.exit_code == 1 and res.stderr.startswith("error: ")
    res = _audit("-p", str(POLICIES), "--store", str(store), "--fail-on", "urgent")
    assert res.exit_code == 2
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("kind: [unclosed\n")
    res = _audit("-p", str(garbage), "--store", str(store))
    assert res.exit_code == 1 and "Traceback" not in res.output


def test_help() -> None:
    res = runner.invoke(app, ["audit", "--help"])
    assert res.exit_code == 0
    assert "--fail-on" in res.stdout and "--policies" in res.stdout


def _list_items(path: Path) -> list[dict[str, Any]]:
    import yaml

    doc = yaml.safe_load(path.read_text())
    items: list[dict[str, Any]] = doc["items"]
    return items


# --- H2's generated cluster: independent planted problems -----------------------------------

_CATEGORY = {"broad": "broad-rule", "redundant": "redundant-rule"}
_RULE_CATEGORIES = ("unused-rule", "broad-rule", "redundant-rule")


@pytest.fixture(scope="module")
def generated_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit-gen")
    res = runner.invoke(app, ["generate", "--out", str(out), "--flows", "10000", "--seed", "7"])
    assert res.exit_code == 0, res.output
    return out


def _audit_generated(out: Path, policies: Path) -> dict[str, Any]:
    res = _audit(
        "-p", str(policies), "--inventory", str(out / "inventory.json"),
        str(out / "flows.jsonl"), "-o", "json",
    )
    assert res.exit_code == 0, res.output
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


@pytest.fixture(scope="module")
def generated(generated_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    doc = _audit_generated(generated_dir, generated_dir / "existing-policies.yaml")
    return doc, json.loads((generated_dir / "policies-truth.json").read_text())


def test_generated_planted_problems_are_reported(
    generated: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    doc, truth = generated
    missing = []
    for p in truth["problems"]:
        category = _CATEGORY.get(p["category"], p["category"])
        rule = f"spec.{p['rule']}" if p.get("rule") else None
        found = [
            f for f in doc["findings"]
            if f["category"] == category
            and (p.get("policy") is None or f["policy"] == p["policy"])
            and (rule is None or f["rule"] == rule)
            and (p.get("namespace") is None or f["namespace"] == p["namespace"])
            and (p.get("direction") is None or f["direction"] == p["direction"])
        ]
        if not found:
            missing.append(p)
    assert not missing


def test_generated_clean_rules_have_no_findings(
    generated: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    doc, truth = generated
    for entry in truth["clean"]:
        for rule in entry["rules"]:
            bad = [
                f for f in doc["findings"]
                if f["policy"] == entry["policy"] and f["rule"] == f"spec.{rule}"
                and f["category"] in _RULE_CATEGORIES
            ]
            assert not bad, (entry, rule, bad)


def test_kubectl_list_output_with_server_metadata(store: Path) -> None:
    res = _audit("-p", str(FIXTURES / "kubectl-networkpolicies.yaml"), "--store", str(store),
                 "-n", "shop", "-o", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert {r["policy"] for r in doc["rules"]} == {
        "shop/allow-backend-ingress", "shop/allow-dns-egress"
    }
    seed = [f for f in doc["findings"]
            if f["policy"] == "shop/allow-backend-ingress" and f["rule"] is not None]
    assert [(f["category"], f["rule"]) for f in seed] == [("unused-rule", "spec.ingress[1]")]
    # allow-dns-egress isolates egress of every shop pod: what it breaks is reported
    assert any(f["category"] == "would-break" and f["policy"] == "shop/allow-dns-egress"
               for f in doc["findings"])


def test_generated_fixes_break_nothing_new(
    generated_dir: Path, generated: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    import yaml

    doc, _ = generated
    items = _list_items(generated_dir / "existing-policies.yaml")
    drop: dict[str, set[tuple[str, int]]] = {}
    added: list[dict[str, Any]] = []
    for f in doc["findings"]:
        r = f["replacement"]
        if f["rule"] is None or r is None or r["action"] not in ("replace", "remove-rule"):
            continue
        direction, index = f["rule"].removeprefix("spec.").rstrip("]").split("[")
        drop.setdefault(f["policy"], set()).add((direction, int(index)))
        if r["manifest"] is not None:
            added.extend(r["manifest"].get("items", [r["manifest"]]))
    assert drop and added
    for item in items:
        key = f"{item['metadata']['namespace']}/{item['metadata']['name']}"
        for direction in ("ingress", "egress"):
            rules = item["spec"].get(direction)
            if rules:
                item["spec"][direction] = [
                    r for i, r in enumerate(rules) if (direction, i) not in drop.get(key, set())
                ]
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items + added}))
    after = _audit_generated(generated_dir, fixed)

    def broken(d: dict[str, Any]) -> set[tuple[Any, ...]]:
        return {
            (f["evidence"]["subject"], e["peer"], e["protocol"], e["port"])
            for f in d["findings"]
            if f["category"] == "would-break" and f["evidence"]["observed"] == "allowed"
            and not f["evidence"]["flagged_by_anomaly_detector"]
            for e in f["evidence"]["edges"]
        }

    assert broken(after) <= broken(doc)
    left = {(f["category"], f["policy"]) for f in after["findings"]}
    assert ("broad-rule", "production/allow-api-egress") not in left
    assert ("unused-rule", "production/allow-db-ingress") not in left


def test_denied_attacks_are_intended_deny_not_would_break(
    generated_dir: Path, generated: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    doc, _ = generated
    truth = json.loads((generated_dir / "truth.json").read_text())
    attackers = {
        f"{p['source']['namespace']}/{p['source']['workload']}"
        for p in truth["attack_paths"] if p["source"].get("kind") == "pod"
    }
    assert attackers == {"develop/debug"}
    intended = [f for f in doc["findings"] if f["category"] == "intended-deny"]
    assert intended and {f["severity"] for f in intended} == {"info"}
    assert {e["peer"] for f in intended for e in f["evidence"]["edges"]} == attackers
    assert all("not a breakage" in f["explanation"] for f in intended)
    for f in doc["findings"]:
        if f["category"] == "would-break":
            assert not f["evidence"]["flagged_by_anomaly_detector"], f
            assert not {e["peer"] for e in f["evidence"]["edges"]} & attackers, f


def test_json_is_byte_identical_across_runs_and_ties_are_ordered(
    generated_dir: Path, generated: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    doc, _ = generated
    for f in doc["findings"]:
        if f["category"] in ("would-break", "intended-deny"):
            edges = f["evidence"]["edges"]
            keys = [(-e["connections"], e["peer"], e["protocol"], e["port"] or 0) for e in edges]
            assert keys == sorted(keys), f["explanation"]
    args = ["-p", str(generated_dir / "existing-policies.yaml"), "--inventory",
            str(generated_dir / "inventory.json"), str(generated_dir / "flows.jsonl"), "-o", "json"]
    outputs = {_audit(*args).stdout for _ in range(3)}
    assert len(outputs) == 1
