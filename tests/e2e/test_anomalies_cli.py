"""``analyzer anomalies`` end to end: generate a capture with planted attacks, ingest it, list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("anomalies")
    gen = runner.invoke(
        app, ["generate", "--out", str(root / "gen"), "--flows", "20000", "--seed", "21"]
    )
    assert gen.exit_code == 0, gen.output
    res = runner.invoke(
        app, ["ingest", "--store", str(root / "store"), str(root / "gen" / "flows.jsonl")]
    )
    assert res.exit_code == 0, res.output
    return root / "store"


def test_table_lists_scan_sweep_and_lateral_move(store: Path) -> None:
    res = runner.invoke(app, ["anomalies", "--store", str(store)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["SCORE", "RULE", "SOURCE", "DESTINATION", "PORT", "CONNS", "REASON"]
    blank = lines.index("")
    body = lines[1:blank]
    assert body, res.stdout
    assert all(line.split()[2] == "develop/debug" for line in body)
    rules = {line.split()[1] for line in body}
    assert {"port_scan", "host_sweep", "database_lateral"} <= rules
    lateral = next(line for line in body if "database_lateral" in line)
    assert "production/postgres" in lateral and "TCP/5432" in lateral
    assert "which is not an established client" in lateral
    assert "edges flagged" in lines[blank + 1]
    # The scanner is named as a suspect: the workload itself needs looking at.
    assert lines[blank + 2].startswith("suspect: develop/debug looks compromised (")


def test_json_has_summary_and_every_flagged_edge_with_reasons(store: Path) -> None:
    res = runner.invoke(app, ["anomalies", "--store", str(store), "-o", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["summary"]["flagged_edges"] == len(doc["anomalies"]) > 100
    scores = [a["score"] for a in doc["anomalies"]]
    assert scores == sorted(scores, reverse=True)
    for a in doc["anomalies"]:
        assert a["src_name"] == "develop/debug"
        assert 0.0 <= a["score"] <= 1.0
        assert a["reasons"] and all(isinstance(r, str) and " " in r for r in a["reasons"])
        assert a["endpoints"]


def test_jsonl_and_namespace_filter(store: Path) -> None:
    res = runner.invoke(
        app, ["anomalies", "--store", str(store), "-o", "jsonl", "-n", "production"]
    )
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert records
    assert all("production" in (r["src_namespace"], r["dst_namespace"]) for r in records)
    assert any(r["rule"] == "database_lateral" for r in records)


def test_unknown_namespace_is_a_usage_error_with_a_suggestion(store: Path) -> None:
    # issue 13 case 5: a typo used to answer "no anomalies" (exit 0)
    res = runner.invoke(app, ["anomalies", "--store", str(store), "--namespace", "prodution"])
    assert res.exit_code == 2, res.output
    assert res.stderr == (
        "error: unknown namespace 'prodution': not in the flow store; did you mean production?\n"
    )


def test_missing_store_is_one_line_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["anomalies", "--store", str(tmp_path / "nope")])
    assert res.exit_code != 0
    assert res.stderr.startswith("error: ")
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output


def test_dot_output_is_a_usage_error(store: Path) -> None:
    res = runner.invoke(app, ["anomalies", "--store", str(store), "-o", "dot"])
    assert res.exit_code == 2
    assert "'dot'" in res.stderr


def test_help() -> None:
    res = runner.invoke(app, ["anomalies", "--help"])
    assert res.exit_code == 0
    assert "--namespace" in res.stdout and "--threshold" in res.stdout


def test_threshold_out_of_range_is_a_usage_error(store: Path) -> None:
    res = runner.invoke(app, ["anomalies", "--store", str(store), "--threshold", "1.5"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: anomaly threshold must be between 0 and 1")


def test_same_seed_same_output(store: Path) -> None:
    args = ["anomalies", "--store", str(store), "-o", "json", "--seed", "3"]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout
