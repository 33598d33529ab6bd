"""The isolation forest fitted in the helper process (anomaly.forest_helper): the same scores
as in-process, a fallback when the helper fails, and which commands start it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from anomaly_toy import Generated

from analyzer.anomaly import detect_anomalies, forest_helper
from analyzer.anomaly.detector import EdgeAnomalyDetector
from analyzer.cli import SCORING_COMMANDS, _start_helper_for


@pytest.fixture(autouse=True)
def _no_helper_left(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(forest_helper.IN_PROCESS_ENV, raising=False)
    forest_helper.stop()
    yield
    forest_helper.stop()


def _matrix(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(size=(300, 6)), rng.normal(8.0, 1.0, size=(4, 6))])


def test_helper_scores_are_the_in_process_scores() -> None:
    matrix = _matrix()
    forest_helper.start()
    first = forest_helper.forest_scores(matrix, 7)
    second = forest_helper.forest_scores(matrix[:100], 0)  # it serves more than one fit
    assert first is not None and second is not None
    expected = EdgeAnomalyDetector(random_state=7).fit(matrix).anomaly_score(matrix)
    assert first.dtype == np.float64 and np.array_equal(first, expected)
    assert np.array_equal(
        second, EdgeAnomalyDetector(random_state=0).fit(matrix[:100]).anomaly_score(matrix[:100])
    )


def test_detection_with_the_helper_equals_detection_without(attacked: Generated) -> None:
    without = detect_anomalies(attacked.connections, random_state=0)
    forest_helper.start()
    helper = forest_helper._helper
    assert helper is not None
    with_helper = detect_anomalies(attacked.connections, random_state=0)
    # the helper fitted both forests, then was ended: a command scores its edges once
    assert forest_helper._helper is None and helper.poll() is not None
    assert with_helper.flagged.height > 0
    assert with_helper.flagged.equals(without.flagged)
    assert with_helper.edges.equals(without.edges)


def test_no_helper_without_start_or_when_told_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert forest_helper.forest_scores(_matrix(), 0) is None
    monkeypatch.setenv(forest_helper.IN_PROCESS_ENV, "1")
    forest_helper.start()
    assert forest_helper._helper is None


@pytest.mark.parametrize(
    "child",
    [
        "import sys; sys.exit(3)",  # died before answering
        # answers with something that is not a pickle
        "import sys; sys.stdout.buffer.write(b'not a pickle'); sys.stdout.buffer.flush(); "
        "sys.stdin.buffer.read()",
    ],
)
def test_a_failed_helper_leaves_the_fit_in_process(
    monkeypatch: pytest.MonkeyPatch, child: str
) -> None:
    monkeypatch.setattr(forest_helper, "_CHILD", child)
    forest_helper.start()
    helper = forest_helper._helper
    assert helper is not None
    assert forest_helper.forest_scores(_matrix(), 0) is None
    assert forest_helper._helper is None and helper.poll() is not None


def test_bad_data_is_refused_by_the_helper_and_raised_in_process() -> None:
    forest_helper.start()
    assert forest_helper.forest_scores(np.zeros((1, 3)), 0) is None  # one row: cannot fit
    assert forest_helper._helper is None
    with pytest.raises(ValueError):
        EdgeAnomalyDetector(random_state=0).fit(np.zeros((1, 3)))


@pytest.mark.parametrize(
    ("argv", "starts"),
    [
        (["analyzer", "report", "--store", "s"], True),
        (["analyzer", "recommend", "-n", "shop"], True),
        (["analyzer", "anomalies"], True),
        (["analyzer", "audit", "--policies", "p.yaml"], True),
        (["analyzer", "graph"], False),
        (["analyzer", "ingest", "f.jsonl"], False),
        (["analyzer", "report", "--help"], False),
        (["analyzer", "audit", "--policies", "p.yaml", "--no-anomalies"], False),
        (["analyzer"], False),
        (["analyzer", "--version"], False),
    ],
)
def test_which_commands_start_the_helper(argv: list[str], starts: bool) -> None:
    assert ("report" in SCORING_COMMANDS) and ("graph" not in SCORING_COMMANDS)
    _start_helper_for(argv)
    assert (forest_helper._helper is not None) is starts


def test_the_cli_scores_without_importing_scikit_learn(tmp_path: Path) -> None:
    """``analyzer anomalies`` in its own process: scikit-learn is imported by the helper,
    never by the command, and the output equals the in-process fit's."""
    from analyzer.generate import ScenarioConfig, build_scenario, write_flows
    from analyzer.store import ingest

    flows = tmp_path / "flows.jsonl"
    write_flows(build_scenario(ScenarioConfig(seed=5)), flows, "hubble", 10_000)
    ingest(tmp_path / "store", [str(flows)], progress=False)
    probe = (
        "import atexit, sys; "
        "atexit.register(lambda: print('sklearn' in sys.modules, file=sys.stderr)); "
        "sys.argv = ['analyzer', *sys.argv[1:]]; "
        "from analyzer.cli import app; app()"
    )
    outputs = {}
    for mode in ("helper", "in-process"):
        env = {k: v for k, v in os.environ.items() if k != forest_helper.IN_PROCESS_ENV}
        if mode == "in-process":
            env[forest_helper.IN_PROCESS_ENV] = "1"
        done = subprocess.run(
            [sys.executable, "-c", probe, "anomalies", "--store", str(tmp_path / "store"),
             "-o", "json"],
            capture_output=True, env=env, check=True,
        )
        imported = done.stderr.decode().strip().splitlines()[-1]
        assert imported == ("False" if mode == "helper" else "True"), done.stderr
        outputs[mode] = done.stdout
    assert outputs["helper"] == outputs["in-process"]
    assert json.loads(outputs["helper"])
