"""``ingest --no-keep-flows`` and ``store compact`` merging parts from the command line (issue
11): per-node files ingested one by one without their raw flows print byte-identical ``-o json``
for graph, recommend and stats to a store that kept them; what needs raw flows refuses in one
line; compaction merges the kept store's parts and changes no answer, and the next ingest still
extends the state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import run_store_command as _run
from cli_helpers import store_command_ok as _ok

from benchmarks.split_nodes import split_by_node

COMMANDS: list[tuple[str, ...]] = [
    ("graph", "-o", "json"),
    ("recommend", "-o", "json"),
    ("stats", "-o", "json"),
]


def _refused(*args: str, raw: bool = False) -> str:
    done = _run(*args, raw=raw)
    assert done.returncode == 1, done.stderr.decode()[-2000:]
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert b"Traceback" not in done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("nokeep-cli")
    _ok("generate", "--out", str(base / "capture"), "--flows", "12000", "--seed", "6")
    files = split_by_node(base / "capture" / "flows.jsonl", base / "nodes")
    assert len(files) >= 3
    return files


@pytest.fixture(scope="module")
def stores(files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("nokeep-stores")
    for path in files:
        _ok("ingest", str(path), "--store", str(base / "kept"))
    _ok("ingest", str(files[0]), "--store", str(base / "dropped"), "--no-keep-flows")
    for path in files[1:]:  # sticky: the store remembers --no-keep-flows
        _ok("ingest", str(path), "--store", str(base / "dropped"))
    return {"kept": base / "kept", "dropped": base / "dropped"}


def _normal(command: tuple[str, ...], out: bytes) -> bytes:
    if command[0] == "stats":  # names the store's directory and what it keeps (checked apart)
        data = json.loads(out)
        for key in ("store", "inputs_without_raw_flows", "keeps_raw_flows"):
            data.pop(key, None)
        return json.dumps(data, sort_keys=True).encode()
    return out


def test_stats_says_which_raw_flows_were_not_kept(stores: dict[str, Path]) -> None:
    dropped = json.loads(_ok("stats", "-o", "json", "--store", str(stores["dropped"])))
    kept = json.loads(_ok("stats", "-o", "json", "--store", str(stores["kept"])))
    assert dropped["inputs_without_raw_flows"] == dropped["inputs"] >= 3
    assert dropped["keeps_raw_flows"] is False
    assert (kept["inputs_without_raw_flows"], kept["keeps_raw_flows"]) == (0, True)
    text = _ok("stats", "--store", str(stores["dropped"])).decode()
    assert f"not kept for {dropped['inputs']} of {dropped['inputs']} inputs" in text
    assert "raw flows" not in _ok("stats", "--store", str(stores["kept"])).decode()


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_a_store_without_raw_flows_answers_as_one_with_them(
    stores: dict[str, Path], command: tuple[str, ...]
) -> None:
    dropped = _ok(*command, "--store", str(stores["dropped"]))
    kept = _ok(*command, "--store", str(stores["kept"]))
    assert _normal(command, dropped) == _normal(command, kept)
    assert len(dropped) > 100
    assert not list((stores["dropped"] / "flows").iterdir())


def test_what_needs_raw_flows_refuses_in_one_line(
    stores: dict[str, Path], files: list[Path]
) -> None:
    store = str(stores["dropped"])
    said = _refused("graph", "-o", "json", "--store", store, raw=True)
    assert "ANALYZER_NO_ROLLUP=1" in said and "--no-keep-flows" in said
    assert "cannot rebuild the rollup" in _refused("store", "rebuild", "--store", store)
    assert "cannot ingest live" in _refused(
        "ingest", "--follow", str(files[0]), "--store", store
    )
    usage = _run("ingest", "--follow", str(files[0]), "--no-keep-flows", "--store", store)
    assert usage.returncode == 2 and b"file ingests" in usage.stderr
    again = json.loads(_ok("ingest", str(files[1]), "--store", store, "-o", "json"))
    assert [i["status"] for i in again["inputs"]] == ["duplicate"]


def test_compaction_merges_parts_and_changes_no_answer(
    stores: dict[str, Path], files: list[Path], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    for path in files[:-1]:
        _ok("ingest", str(path), "--store", str(store))
    before = _ok("recommend", "-o", "json", "--store", str(store))
    done = json.loads(
        _ok("store", "compact", "--store", str(store), "--hours-after", "off",
            "--days-after", "off", "-o", "json")
    )
    assert (done["parts_before"], done["parts_after"]) == (len(files) - 1, 1)
    assert len(list((store / "flows").iterdir())) == 1
    assert _ok("recommend", "-o", "json", "--store", str(store)) == before
    assert _ok("recommend", "-o", "json", "--store", str(store), raw=True) == before
    # the next ingest extends the re-keyed state; the result is that of the kept store
    _ok("ingest", str(files[-1]), "--store", str(store))
    for command in COMMANDS:
        assert _normal(command, _ok(*command, "--store", str(store))) == _normal(
            command, _ok(*command, "--store", str(stores["kept"]))
        )
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    text = _ok("store", "compact", "--store", str(copy), "--hours-after", "off",
               "--days-after", "off").decode()
    assert text.startswith("flow parts merged: 2 -> 1 files")
