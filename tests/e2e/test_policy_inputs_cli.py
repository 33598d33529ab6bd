"""Every command that takes ``--policies`` refuses an input from which no policy loads, and
hostile policy files end in one line and exit 1 (issue 13 item 7, issue 16 item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from analyzer.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "audit"
runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inputs") / "store"
    res = runner.invoke(app, ["ingest", "--store", str(root), str(FIXTURES / "shop-flows.jsonl")])
    assert res.exit_code == 0, res.output
    return root


def _commands(policies: Path, store: Path, out: Path) -> dict[str, list[str]]:
    p = ["--policies", str(policies), "--store", str(store)]
    return {
        "audit": ["audit", *p],
        "simulate": ["simulate", *p],
        "explain": ["explain", *p, "--from", "shop:app=frontend", "--to", "shop:app=backend",
                    "--port", "8080"],
        "report": ["report", *p, "--out", str(out / "r.html")],
        "recommend": ["recommend", *p, "--namespace", "shop"],
    }


def _deployment(tmp_path: Path) -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment",
                                    "metadata": {"name": "web", "namespace": "shop"},
                                    "spec": {"replicas": 1}}))
    return path


@pytest.mark.parametrize("command", ["audit", "simulate", "explain", "report", "recommend"])
def test_no_policy_loaded_is_an_error(tmp_path: Path, store: Path, command: str) -> None:
    res = runner.invoke(app, _commands(_deployment(tmp_path), store, tmp_path)[command])
    assert res.exit_code == 1, (command, res.output)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "no policy loaded from" in errors[0], res.stderr
    assert "Deployment" in errors[0]
    assert "Traceback" not in res.output


@pytest.mark.parametrize("command", ["audit", "simulate", "explain"])
def test_no_doubled_warning_prefix(tmp_path: Path, store: Path, command: str) -> None:
    mixed = tmp_path / "mixed.yaml"
    policies = yaml.safe_load_all((FIXTURES / "shop-policies.yaml").read_text())
    mixed.write_text(yaml.safe_dump_all([*policies, {"apiVersion": "apps/v1", "kind":
                                                     "Deployment", "metadata": {"name": "w"}}]))
    res = runner.invoke(app, _commands(mixed, store, tmp_path)[command])
    assert res.exit_code == 0, res.output
    assert "Deployment ignored" in res.stderr
    assert "warning: policy warning" not in res.stderr
    assert all(line.startswith("warning: ") for line in res.stderr.splitlines()
               if "Deployment" in line)


@pytest.mark.parametrize("command", ["audit", "simulate", "explain", "report"])
def test_deeply_nested_policy_file_is_one_line(tmp_path: Path, store: Path, command: str) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    res = runner.invoke(app, _commands(deep, store, tmp_path)[command])
    assert res.exit_code == 1, res.output
    assert res.stderr.count("\n") == 1 and "nested more than" in res.stderr
    assert "Traceback" not in res.output


def test_empty_kubectl_list_audits_coverage(tmp_path: Path, store: Path) -> None:
    empty = tmp_path / "none.yaml"
    empty.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": []}))
    res = runner.invoke(app, ["audit", "--policies", str(empty), "--store", str(store)])
    assert res.exit_code == 0, res.output
    assert "[no-default-deny]" in res.stdout
    assert "cluster without policies" in res.stderr


def test_report_survives_odd_documents_beside_a_policy(tmp_path: Path, store: Path) -> None:
    odd = tmp_path / "odd.yaml"
    policies = [d for d in yaml.safe_load_all((FIXTURES / "shop-policies.yaml").read_text()) if d]
    policies = [i for d in policies for i in (d["items"] if d.get("kind") == "List" else [d])]
    odd.write_text(yaml.safe_dump_all([
        policies[0], {"kind": 5, "metadata": "x"}, [policies[1]], "just a string",
        {"kind": "List", "items": "not a list"},
    ]))
    res = runner.invoke(app, ["report", "--policies", str(odd), "--store", str(store),
                              "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
