"""Every command's script output is byte-identical across runs on the same inputs.

Each command runs twice, each time in its own process (so with another hash seed: set
iteration order, dict order built from sets, thread timing would show), and the two outputs
are compared byte for byte. The HTML report may differ only in its generation timestamp.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import run_analyzer


def _commands(s: dict[str, Path]) -> dict[str, list[str]]:
    store, policies, inventory = str(s["store"]), str(s["policies"]), str(s["inventory"])
    return {
        "graph": ["graph", "--store", store, "-o", "json"],
        "graph-dot": ["graph", "--store", store, "-o", "dot"],
        "anomalies": ["anomalies", "--store", store, "-o", "json"],
        "recommend": ["recommend", "--store", store, "-o", "json", "--policies", policies,
                      "--inventory", inventory],
        "recommend-yaml": ["recommend", "--store", store, "--flavor", "cilium"],
        "audit": ["audit", "--store", store, "--policies", policies, "--inventory", inventory,
                  "-o", "json"],
        "audit-files": ["audit", str(s["flows"]), "--policies", policies, "-o", "json"],
        "simulate": ["simulate", "--store", store, "--policies", policies, "-o", "jsonl"],
        "explain": ["explain", "--store", store, "--policies", policies, "--from",
                    "develop:app=debug", "--to", "production:app=postgres", "--port", "5432",
                    "-o", "json"],
        "diff": ["diff", policies, policies, "--store", store, "-o", "json"],
        "stats": ["stats", "--store", store, "-o", "json"],
    }


@pytest.mark.parametrize(
    "name",
    ["graph", "graph-dot", "anomalies", "recommend", "recommend-yaml", "audit", "audit-files",
     "simulate", "explain", "diff", "stats"],
)
def test_json_output_is_byte_identical_across_processes(
    generated_store: dict[str, Path], name: str
) -> None:
    args = _commands(generated_store)[name]
    first, second = run_analyzer(*args), run_analyzer(*args)
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    assert first.stdout, "no output to compare"
    assert first.stdout == second.stdout
    assert first.stderr == second.stderr


def test_report_is_identical_but_for_its_timestamp(
    generated_store: dict[str, Path], tmp_path: Path
) -> None:
    s = generated_store
    pages, printed = [], []
    for run in ("a", "b"):
        out = tmp_path / run / "report.html"
        done = run_analyzer(
            "report", "--store", str(s["store"]), "--policies", str(s["policies"]),
            "--inventory", str(s["inventory"]), "--out", str(out), "-o", "json",
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        printed.append(done.stdout.decode().replace(str(out), "OUT"))
        pages.append(out.read_text("utf-8"))
    assert printed[0] == printed[1]
    stamp = re.compile(r"Generated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
    assert all(len(stamp.findall(page)) == 1 for page in pages)
    assert stamp.sub("Generated", pages[0]) == stamp.sub("Generated", pages[1])
