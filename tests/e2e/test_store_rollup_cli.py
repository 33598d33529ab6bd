"""The connection rollup from the command line (issue 11): per-node exporter files ingested one
by one give the edges of the whole capture; every reading command prints byte-identical JSON
with the rollup and with ``ANALYZER_NO_ROLLUP=1`` (raw derivation); ``analyzer store rebuild``
restores a rollup that is missing or stale."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import analyzer_command
from cli_helpers import run_store_command as _run
from cli_helpers import store_command_ok as _ok

from benchmarks.split_nodes import split_by_node

COMMANDS: list[tuple[str, ...]] = [
    ("graph", "-o", "json"),
    ("recommend", "-o", "json"),
    ("recommend", "-o", "json", "-n", "production"),
    ("anomalies", "-o", "json"),
    ("audit", "-o", "json"),
    # windows sum the rollup's time buckets; the raw fallback applies the same definition
    ("graph", "-o", "json", "--since", "2026-11-02T09:20:00Z", "--until", "2026-11-02T09:40:00Z"),
    ("recommend", "-o", "json", "--since", "2026-11-02T09:20:30Z"),
    ("anomalies", "-o", "json", "--until", "2026-11-02T09:31:00Z"),
    ("audit", "-o", "json", "--since", "2026-11-02T09:45:00Z"),
]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("rollup-cli")
    _ok("generate", "--out", str(base / "capture"), "--flows", "12000", "--seed", "3")
    capture = base / "capture" / "flows.jsonl"
    files = split_by_node(capture, base / "nodes")
    assert len(files) >= 3
    split = base / "split"
    for path in reversed(files):  # one ingest per exporter file
        _ok("ingest", str(path), "--store", str(split))
    whole = base / "whole"
    _ok("ingest", str(capture), "--store", str(whole))
    return {"split": split, "whole": whole, "capture": base / "capture"}


def _edges(graph: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows = graph["edges"]
    keys = [k for k in rows[0] if k not in ("nodes", "src_node", "dst_node")]
    return sorted(tuple(json.dumps(r[k], sort_keys=True) for k in keys) for r in rows)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_prints_the_same_with_and_without_the_rollup(
    stores: dict[str, Path], command: tuple[str, ...]
) -> None:
    store = str(stores["split"])
    assert list((stores["split"] / "rollup").glob("connections-*.parquet"))
    extra: tuple[str, ...] = ()
    if command[0] == "audit":
        extra = ("--policies", str(stores["capture"] / "existing-policies.yaml"))
    with_rollup = _ok(*command, *extra, "--store", store)
    assert with_rollup == _ok(*command, *extra, "--store", store, raw=True)


def test_per_node_files_ingested_apart_give_the_edges_of_one_file(
    stores: dict[str, Path],
) -> None:
    split = json.loads(_ok("graph", "-o", "json", "--store", str(stores["split"])))
    whole = json.loads(_ok("graph", "-o", "json", "--store", str(stores["whole"])))
    assert split["edges"]
    assert _edges(split) == _edges(whole)


def test_windows_and_rebuild(stores: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(stores["split"], store)
    window = ("--since", "2026-11-02T09:20:00Z", "--until", "2026-11-02T09:40:00Z")
    windowed = _ok("graph", "-o", "json", "--store", str(store), *window)
    assert windowed == _ok("graph", "-o", "json", "--store", str(store), *window, raw=True)
    assert windowed != _ok("graph", "-o", "json", "--store", str(store))
    before = _ok("recommend", "-o", "json", "--store", str(store))
    shutil.rmtree(store / "rollup")  # lost: commands derive from the flows, same answer
    assert _ok("recommend", "-o", "json", "--store", str(store)) == before
    done = json.loads(_ok("store", "rebuild", "--store", str(store), "-o", "json"))
    assert done["flow_records"] == 12000
    assert done["connections"] > 0
    assert Path(done["rollup"]).is_file()
    assert _ok("recommend", "-o", "json", "--store", str(store)) == before
    text = _ok("store", "rebuild", "--store", str(store)).decode()
    assert "rollup of 12,000 flow records" in text
    # compaction: the whole-store answers stay, windows are rounded out to the hour
    window = ("--since", "2026-11-02T09:20:00Z", "--until", "2026-11-02T09:40:00Z")
    minutes = json.loads(_ok("graph", "-o", "json", "--store", str(store), *window))
    assert not any("rounded out" in w for w in minutes["stats"]["warnings"])
    done = json.loads(
        _ok("store", "compact", "--store", str(store), "--now", "2026-11-04T00:00:00Z",
            "--days-after", "off", "-o", "json")
    )
    assert done["schedule"]["hours_before"] == "2026-11-03T00:00:00Z"
    assert done["bucket_rows_after"] < done["bucket_rows_before"]
    assert _ok("recommend", "-o", "json", "--store", str(store)) == before
    hours = _ok("graph", "-o", "json", "--store", str(store), *window)
    assert hours == _ok("graph", "-o", "json", "--store", str(store), *window, raw=True)
    said = json.loads(hours)["stats"]["warnings"][-1]
    assert "2026-11-02T09:00:00Z to 2026-11-02T10:00:00Z" in said
    assert json.loads(hours)["stats"]["rows_in"] == 12000  # the whole generated hour
    again = _ok("store", "compact", "--store", str(store), "--now", "2026-11-04T00:00:00Z",
                "--days-after", "off").decode()
    assert again.startswith("nothing to coarsen")
    bad = _run("store", "compact", "--store", str(store), "--hours-after", "soon")
    assert bad.returncode == 2 and b"'soon' is not a duration" in bad.stderr
    gone = _run("store", "compact", "--store", str(tmp_path / "nothing"))
    assert gone.returncode != 0 and b"no flow store" in gone.stderr
    assert len(gone.stderr.decode().strip().splitlines()) == 1
    missing = _run("store", "rebuild", "--store", str(tmp_path / "nothing"))
    assert missing.returncode != 0
    assert b"no flow store" in missing.stderr
    assert len(missing.stderr.decode().strip().splitlines()) == 1


def test_a_stale_rollup_is_noted_once_and_changes_no_output(
    stores: dict[str, Path], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(stores["split"], store)
    fresh = _run("graph", "-o", "json", "--store", str(store))
    assert fresh.returncode == 0 and b"note:" not in fresh.stderr
    # a live ingest commits parts without rebuilding the rollup: it is stale
    lines = (stores["capture"] / "flows.jsonl").read_bytes().splitlines(keepends=True)[:300]
    later = b"".join(lines).replace(b"2026-11-02T09:", b"2026-11-02T11:")
    live = subprocess.run(
        [*analyzer_command(), "ingest", "--follow", "-", "--store", str(store)],
        input=later, capture_output=True, timeout=600, check=False,
    )
    assert live.returncode == 0, live.stderr.decode()[-2000:]
    for command in (("graph", "-o", "json"), ("stats",)):
        stale = _run(*command, "--store", str(store))
        raw = _run(*command, "--store", str(store), raw=True)
        assert stale.returncode == 0 and stale.stdout == raw.stdout
        notes = [n for n in stale.stderr.decode().splitlines() if n.startswith("note:")]
        assert len(notes) == 1, stale.stderr.decode()  # once, though read twice
        assert "connection rollup is stale (1 flow part(s) committed since it was built" in notes[0]
        assert f"run 'analyzer store rebuild --store {store}'" in notes[0]
        assert b"note:" not in raw.stderr  # ANALYZER_NO_ROLLUP=1: asked for, no hint
    _ok("store", "rebuild", "--store", str(store))
    assert b"note:" not in _run("graph", "-o", "json", "--store", str(store)).stderr
    shutil.rmtree(store / "rollup")  # a store without a rollup: nothing stale to rebuild
    assert b"note:" not in _run("graph", "-o", "json", "--store", str(store)).stderr


def _explain_peers(capture: Path) -> list[tuple[str, str]]:
    """Pairs of peers of the generated capture, in every naming form."""
    inventory = json.loads((capture / "inventory.json").read_bytes())
    pods = [
        i for i in inventory["items"] if i["kind"] == "Pod" and "app" in i["metadata"]["labels"]
    ]
    a, b = pods[0], pods[len(pods) // 2]

    def forms(pod: dict[str, Any]) -> list[str]:
        meta = pod["metadata"]
        return [
            f"{meta['namespace']}/{meta['name']}",
            str(pod["status"]["podIP"]),
            f"{meta['namespace']}:app={meta['labels']['app']}",
        ]

    pairs = list(zip(forms(a), forms(b), strict=True))
    return [*pairs, (forms(a)[0], "203.0.113.7"), ("entity:world", forms(b)[0])]


def test_explain_answers_from_the_rollup(stores: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(stores["split"], store)
    policies = str(stores["capture"] / "existing-policies.yaml")
    runs = []
    for src, dst in _explain_peers(stores["capture"]):
        for output in ("table", "json"):
            args = ("explain", "--policies", policies, "--from", src, "--to", dst,
                    "--port", "8080", "-o", output, "--store", str(store))
            fast, raw = _run(*args), _run(*args, raw=True)
            assert fast.returncode == 0, fast.stderr.decode()
            # same verdict, same sentences, same "resolved ..." notes on stderr
            assert (fast.stdout, fast.stderr) == (raw.stdout, raw.stderr)
            assert b"resolved" in fast.stderr
            runs.append((args, fast))
    # the rollup alone answers: without the raw parts, explain prints the same
    for part in (store / "flows").glob("*.parquet"):
        part.unlink()
    for args, fast in runs:
        again = _run(*args)
        assert (again.returncode, again.stdout, again.stderr) == (0, fast.stdout, fast.stderr)
