"""One truth: the same store and scope give the same flagged edges and the same counts in
`recommend -o json` (its ``anomalies`` list and the note), `anomalies -o json` and the report.

Before the analysis layer these disagreed: recommend listed at most 50 flagged *connection
rows* and its note counted connection rows ("335 anomalous edge(s)") while `anomalies`
counted edges between identities ("179 of 355 edges"); the report scored with yet another
scope.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_analyzer

EDGE = ("src_group", "dst_group", "protocol", "dst_port")


def _json(*args: str) -> dict[str, Any]:
    done = run_analyzer(*args)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def _edges(records: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {tuple(r[k] for k in EDGE) for r in records}


@pytest.mark.parametrize("scope", [(), ("-n", "develop"), ("-n", "production")])
def test_recommend_anomalies_and_report_flag_the_same_edges(
    generated_store: dict[str, Path], tmp_path: Path, scope: tuple[str, ...]
) -> None:
    store = str(generated_store["store"])
    rec = _json("recommend", "--store", store, "-o", "json", *scope)
    anomalies = _json("anomalies", "--store", store, "-o", "json", *scope)
    report = _json(
        "report", "--store", store, "--out", str(tmp_path / "r.html"), "-o", "json", *scope
    )
    flagged = anomalies["summary"]["flagged_edges"]
    assert flagged > 0
    assert len(anomalies["anomalies"]) == flagged
    assert len(rec["anomalies"]) == flagged
    assert report["summary"]["anomalous_edges"] == flagged
    assert _edges(rec["anomalies"]) == _edges(anomalies["anomalies"])
    assert rec["anomalies"] == anomalies["anomalies"]  # the same records, in the same order
    # the note counts what it says it counts: edges between identities
    (note,) = [n["message"] for n in rec["notes"] if "anomalous edge" in n["message"]]
    assert re.match(rf"{flagged} anomalous edge\(s\) \(source identity -> destination", note)


def test_a_namespace_scope_filters_and_never_rescores(generated_store: dict[str, Path]) -> None:
    store = str(generated_store["store"])
    everything = _json("anomalies", "--store", store, "-o", "json")
    develop = _json("anomalies", "--store", store, "-o", "json", "-n", "develop")
    scores = {tuple(r[k] for k in EDGE): r["score"] for r in everything["anomalies"]}
    assert develop["anomalies"]
    for record in develop["anomalies"]:
        assert "develop" in (record["src_namespace"], record["dst_namespace"])
        assert scores[tuple(record[k] for k in EDGE)] == record["score"]
    in_develop = {
        k for k, r in zip(scores, everything["anomalies"], strict=True)
        if "develop" in (r["src_namespace"], r["dst_namespace"])
    }
    assert _edges(develop["anomalies"]) == in_develop


def test_graph_and_report_name_identities_alike(
    generated_store: dict[str, Path], tmp_path: Path
) -> None:
    store = str(generated_store["store"])
    graph = _json("graph", "--store", store, "-o", "json")
    out = tmp_path / "r.html"
    _json("report", "--store", store, "--out", str(out), "-o", "json")
    html = out.read_text("utf-8")
    names = {g["key"]: g["name"] for g in graph["groups"]}
    debug = next(k for k in names if k.startswith("pod:develop:") and "app=debug" in k)
    # the report draws a pod inside its namespace's box, under the rest of the same name
    assert names[debug] == "develop/app=debug"
    assert ">app=debug<" in html


def test_the_bundle_lists_the_same_flagged_edges(
    generated_store: dict[str, Path], tmp_path: Path
) -> None:
    store = str(generated_store["store"])
    anomalies = _json("anomalies", "--store", store, "-o", "json")
    done = run_analyzer("recommend", "--store", store, "--out", str(tmp_path / "bundle"))
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    rollout = (tmp_path / "bundle" / "ROLLOUT.md").read_text("utf-8")
    listed = rollout.split("## Anomalous edges (left out)")[1].strip().splitlines()
    assert len(listed) == anomalies["summary"]["flagged_edges"]
    first = anomalies["anomalies"][0]
    assert listed[0].startswith(f"- {first['src_name']} -> {first['dst_name']} ")
    assert "None" not in rollout
