"""--since/--until on the commands that read flows: the window selects flow records before
anything is derived, and every command sees the same window."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from cli_helpers import run_analyzer

# The generator's capture spans 2026-11-02T09:00:00Z to 10:00:00Z.
HALF = "2026-11-02T09:30:00Z"


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _json(*args: str) -> Any:
    done = run_analyzer(*args)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


def test_windows_split_the_requests(generated_store: dict[str, Path]) -> None:
    store = str(generated_store["store"])
    whole = _json("graph", "--store", store, "-o", "json")["stats"]
    first = _json("graph", "--store", store, "-o", "json", "--until", HALF)["stats"]
    second = _json("graph", "--store", store, "-o", "json", "--since", HALF)["stats"]
    assert 0 < first["rows_in"] < whole["rows_in"] and 0 < second["rows_in"] < whole["rows_in"]
    assert first["rows_in"] + second["rows_in"] == whole["rows_in"]
    assert _t(first["window"][1]) < _t(HALF) <= _t(second["window"][0])


def test_every_command_reads_the_same_window(
    generated_store: dict[str, Path], tmp_path: Path
) -> None:
    s = generated_store
    store, window = str(s["store"]), ("--since", HALF)
    anomalies = _json("anomalies", "--store", store, "-o", "json", *window)
    rec = _json("recommend", "--store", store, "-o", "json", *window)
    report = _json("report", "--store", store, "--out", str(tmp_path / "r.html"), "-o", "json",
                   *window)
    audit = _json("audit", "--store", store, "--policies", str(s["policies"]), "-o", "json",
                  *window)
    assert len(rec["anomalies"]) == anomalies["summary"]["flagged_edges"]
    assert report["summary"]["anomalous_edges"] == anomalies["summary"]["flagged_edges"]
    assert _t(rec["window"][0]) >= _t(HALF)
    assert _t(report["summary"]["window_start"]) >= _t(HALF)
    assert _t(audit["window"]["first"]) >= _t(HALF)


def test_a_window_after_every_flow_is_empty_and_a_bad_one_is_a_usage_error(
    generated_store: dict[str, Path],
) -> None:
    store = str(generated_store["store"])
    empty = _json("graph", "--store", store, "-o", "json", "--since", "2030-01-01T00:00:00Z")
    assert empty["edges"] == [] and empty["stats"]["rows_in"] == 0
    done = run_analyzer("anomalies", "--store", store, "--since", "2h", "--until", "3h")
    assert done.returncode == 2
    assert done.stderr.decode().startswith("error: --since 2h is not before --until 3h")
    done = run_analyzer("recommend", "--store", store, "--until", "tomorrow")
    assert done.returncode == 2 and "--until 'tomorrow' is not an RFC 3339 time" in (
        done.stderr.decode()
    )
