"""The incremental rollup from the command line (issue 11): per-node exporter files ingested one
by one (each ingest extends the stored derivation state with its own rows) print byte-identical
``-o json`` for graph, recommend and stats to one ingest of the same files and to the raw
derivation (``ANALYZER_NO_ROLLUP=1``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import store_command_ok as _ok

from benchmarks.split_nodes import split_by_node

COMMANDS: list[tuple[str, ...]] = [
    ("graph", "-o", "json"),
    ("recommend", "-o", "json"),
    ("stats", "-o", "json"),
]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("incremental-cli")
    _ok("generate", "--out", str(base / "capture"), "--flows", "12000", "--seed", "4")
    files = split_by_node(base / "capture" / "flows.jsonl", base / "nodes")
    assert len(files) >= 3
    for path in files:
        _ok("ingest", str(path), "--store", str(base / "each"))
        assert list((base / "each" / "rollup").glob("state-*-sessions.parquet"))
    _ok("ingest", *(str(p) for p in files), "--store", str(base / "once"))
    return {"each": base / "each", "once": base / "once"}


def _normal(command: tuple[str, ...], out: bytes) -> bytes:
    if command[0] == "stats":  # names the store's directory
        data = json.loads(out)
        data.pop("store", None)
        return json.dumps(data, sort_keys=True).encode()
    return out


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_ingest_one_by_one_equals_one_ingest_and_the_raw_derivation(
    stores: dict[str, Path], command: tuple[str, ...]
) -> None:
    each = _ok(*command, "--store", str(stores["each"]))
    once = _ok(*command, "--store", str(stores["once"]))
    raw = _ok(*command, "--store", str(stores["each"]), raw=True)
    assert _normal(command, each) == _normal(command, once) == _normal(command, raw)
    assert len(each) > 100
