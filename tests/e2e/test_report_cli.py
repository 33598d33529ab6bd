"""``analyzer report`` on a store: the file, its default place, and one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.store import ingest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "report"))
from report_samples import hostile_capture  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("report-cli")
    files = hostile_capture(base / "cluster", flows=10_000, seed=5)
    ingest(base / "store", [str(files["flows"])], progress=False)
    return {**files, "store": base / "store"}


def test_report_with_policies_and_inventory(tmp_path: Path, capture: dict[str, Path]) -> None:
    out = tmp_path / "deep" / "review.html"
    result = runner.invoke(
        app,
        [
            "report", "--store", str(capture["store"]), "--policies", str(capture["policies"]),
            "--inventory", str(capture["inventory"]), "--out", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"report: {out.resolve()}"
    # What limits the conclusions is said on stderr too, not only in the page.
    assert "warning: ingest: " in result.stderr and "events were lost" in result.stderr
    html = out.read_text("utf-8")
    assert 'id="findings-table"' in html and 'id="coverage"' in html
    assert "Diff against the existing policies" in html


def test_report_default_output_and_namespace(
    tmp_path: Path, capture: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, ["report", "--store", str(capture["store"]), "--namespace", "production"]
    )
    assert result.exit_code == 0, result.output
    html = (tmp_path / "reports" / "report.html").read_text("utf-8")
    assert 'class="ns-section" data-ns="production"' in html
    assert 'class="ns-section" data-ns="develop"' not in html
    assert "No existing policies were given" in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "{tmp}/no-store"], "error: "),
        (["--policies", "{tmp}/missing.yaml"], "error: "),
        (["--out", "{tmp}"], "is a directory"),
        (["--inventory", "{tmp}/missing.json"], "error: "),
    ],
)
def test_report_errors_are_one_line(
    tmp_path: Path, capture: dict[str, Path], args: list[str], message: str
) -> None:
    argv = ["report", "--store", str(capture["store"])]
    argv += [a.format(tmp=tmp_path) for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_report_of_an_empty_store(tmp_path: Path) -> None:
    from analyzer.store import FlowStore

    FlowStore.open_or_create(tmp_path / "store")
    out = tmp_path / "empty.html"
    result = runner.invoke(app, ["report", "--store", str(tmp_path / "store"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text("utf-8")
    assert "no flows" in html and "No policies were recommended" in html


def test_report_json_output(tmp_path: Path, capture: dict[str, Path]) -> None:
    import json

    out = tmp_path / "r.html"
    argv = ["report", "--store", str(capture["store"]), "--out", str(out), "-o", "json"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["report"] == str(out.resolve()) and out.is_file()
    assert data["summary"]["flows"] == 10_000 and data["findings"] == 0
    assert any("events were lost" in w for w in data["warnings"])
    assert result.stderr == ""
