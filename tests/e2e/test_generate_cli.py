"""`analyzer generate` end to end."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from typer.testing import CliRunner

from analyzer.cli import app

runner = CliRunner()


def test_generate_writes_every_file(tmp_path: Path) -> None:
    out = tmp_path / "capture"
    result = runner.invoke(app, ["generate", "--out", str(out), "--flows", "12000", "--seed", "4"])
    assert result.exit_code == 0, result.output
    for name in (
        "flows.jsonl",
        "inventory.json",
        "truth.json",
        "existing-policies.yaml",
        "policies-truth.json",
    ):
        assert (out / name).is_file(), name
        assert str(out / name) in result.output
    assert len((out / "flows.jsonl").read_text().splitlines()) == 12000
    truth = json.loads((out / "truth.json").read_text())
    assert truth["seed"] == 4 and truth["attack_paths"]


def test_generate_gzip_json_output_and_no_attack(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "--flows", "5000", "--gzip",
                                 "--no-attack", "-o", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["attack_paths"] == 0 and summary["flows"] == 5000
    with gzip.open(tmp_path / "flows.jsonl.gz", "rt") as fh:
        assert sum(1 for _ in fh) == 5000


def test_generate_bad_input_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "--flows", "10"])
    assert result.exit_code == 2
    assert "too small" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "--attacks", "nope"])
    assert result.exit_code == 2 and "unknown attack" in result.output
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "--window", "soon"])
    assert result.exit_code == 2 and "--window" in result.output
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "--scan-ports", "22,x"])
    assert result.exit_code == 2 and "--scan-ports" in result.output
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "--scan-ports", "0"])
    assert result.exit_code == 2 and "between 1 and 65535" in result.output


def test_generate_attack_knobs_shape_the_truth(tmp_path: Path) -> None:
    args = ["generate", "--out", str(tmp_path), "--flows", "6000", "--attacks", "scan,exfil",
            "--scan-ports", "22,6379", "-o", "json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "truth.json").read_text())
    categories = {p["category"] for p in truth["attack_paths"]}
    assert categories == {"scan", "exfil"}
    assert {p["port"] for p in truth["attack_paths"] if p["category"] == "scan"} == {22, 6379}


def test_output_does_not_depend_on_hash_randomisation(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    digests = []
    for hash_seed in ("1", "2"):
        out = tmp_path / hash_seed
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [sys.executable, "-c", "from analyzer.cli import app; app()", "generate",
             "--out", str(out), "--flows", "3000", "--format", "calico", "--seed", "5",
             "--namespaces-extra", "2"],
            check=True, env=env, capture_output=True,
        )  # fmt: skip
        digests.append(
            [(out / n).read_bytes() for n in ("flows.jsonl", "truth.json", "policies-truth.json")]
        )
    assert digests[0] == digests[1]


def test_a_new_spelling_replaces_the_earlier_flow_file(tmp_path: Path) -> None:
    base = ["generate", "--out", str(tmp_path), "--format", "whisker", "--flows", "1500"]
    assert runner.invoke(app, [*base, "--gzip"]).exit_code == 0
    assert (tmp_path / "flows.jsonl.gz").is_file()
    result = runner.invoke(app, [*base, "--style", "items"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("flows*")) == ["flows.json"]
    assert len(json.loads((tmp_path / "flows.json").read_text())["items"]) == 1500
    result = runner.invoke(app, [*base, "--style", "camel"])
    assert result.exit_code == 2 and "does not apply to whisker" in result.output
    assert (tmp_path / "flows.json").is_file()  # a refused run leaves the directory alone
