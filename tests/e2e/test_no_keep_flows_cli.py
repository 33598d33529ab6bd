"""``ingest --no-keep-flows`` and ``store compact`` merging parts from the command line (issue
11): per-node files ingested one by one without their raw flows print byte-identical ``-o json``
for graph, recommend and stats to a store that kept them; what needs raw flows refuses in one
line; compaction merges the kept store's parts and changes no answer, and the next ingest still
extends the state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
    stores: dict[str, Path], files: list[Path], tmp_path: Path
) -> None:
    store = str(stores["dropped"])
    said = _refused("graph", "-o", "json", "--store", store, raw=True)
    assert "ANALYZER_NO_ROLLUP=1" in said and "--no-keep-flows" in said
    stateless = tmp_path / "stateless"  # rebuild finishes the state; without one it refuses
    shutil.copytree(stores["dropped"], stateless)
    for path in (stateless / "rollup").glob("state-*"):
        path.unlink()
    assert "cannot derive the rollup again" in _refused(
        "store", "rebuild", "--store", str(stateless)
    )
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


# --- upgrades (docs/rollup.md, "Versions") ------------------------------------------------------


def _upgraded(base: Path, edit: dict[str, tuple[str, str]] | None = None) -> Path:
    """A copy of the installed ``analyzer`` package with a comment added to every module the
    connections are derived by (what changes at every release) and, with ``edit``, some
    module's text replaced (``{relative path: (old, new)}``): "another version" of it."""
    import analyzer

    root = base / "site"
    target = root / "analyzer"
    shutil.copytree(Path(analyzer.__file__).parent, target,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path in [*(target / "connections").glob("*.py"), *(target / "identity").glob("*.py"),
                 target / "store" / "rollup.py", target / "schema.py"]:
        path.write_text(path.read_text() + "\n# a later release\n")
    for name, (old, new) in (edit or {}).items():
        text = (target / name).read_text()
        assert old in text, (name, old)
        (target / name).write_text(text.replace(old, new))
    return root


def _run_in(site: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """One command of the analyzer in ``site`` (before the installed one on the path)."""
    env = {k: v for k, v in os.environ.items() if k != "ANALYZER_NO_ROLLUP"}
    env["PYTHONPATH"] = str(site)
    code = "import sys, analyzer; assert analyzer.__file__.startswith(sys.argv.pop(1)); " \
        "from analyzer.cli import app; sys.argv[0] = 'analyzer'; app()"
    return subprocess.run([sys.executable, "-c", code, str(site), *args], cwd=site,
                          capture_output=True, timeout=600, check=False, env=env)


def _ok_in(site: Path, *args: str) -> tuple[bytes, bytes]:
    done = _run_in(site, *args)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stdout, done.stderr


def _without_flows(tmp_path: Path, files: list[Path]) -> Path:
    """A store of ``files``, each ingested with ``--no-keep-flows`` by the installed code."""
    store = tmp_path / "store"
    for path in files:
        _ok("ingest", str(path), "--store", str(store), "--no-keep-flows")
    return store


def _answers_as(site: Path, store: Path, reference: Path) -> None:
    """Every command of the upgraded code (``site``) on ``store`` answers as the installed
    code does on ``reference``, without a note."""
    for command in COMMANDS:
        out, err = _ok_in(site, *command, "--store", str(store))
        assert b"note:" not in err, err.decode()
        assert _normal(command, out) == _normal(command, _ok(*command, "--store", str(reference)))


def test_an_upgrade_that_keeps_the_derivation_keeps_a_store_without_raw_flows(
    stores: dict[str, Path], files: list[Path], tmp_path: Path
) -> None:
    store = _without_flows(tmp_path, files[:-1])
    site = _upgraded(tmp_path)
    for command in COMMANDS:  # reads as its own: the same stdout and stderr (no note)
        installed = _run(*command, "--store", str(store))
        assert _ok_in(site, *command, "--store", str(store)) == (
            installed.stdout, installed.stderr
        )
        assert b"note:" not in installed.stderr
    _ok_in(site, "ingest", str(files[-1]), "--store", str(store))  # extends the state
    _answers_as(site, store, stores["kept"])
    assert not list((store / "flows").iterdir())


def test_a_rollup_version_bump_refuses_reads_in_one_line_until_rebuilt_from_the_state(
    stores: dict[str, Path], files: list[Path], tmp_path: Path
) -> None:
    store = _without_flows(tmp_path, files[:-1])
    site = _upgraded(tmp_path, {"store/rollup.py": ("\nROLLUP_VERSION = 2\n",
                                                     "\nROLLUP_VERSION = 99\n")})
    for command in (*COMMANDS, ("anomalies", "-o", "json")):
        done = _run_in(site, *command, "--store", str(store))
        assert done.returncode == 1 and b"Traceback" not in done.stderr, done.stderr.decode()
        (line,) = done.stderr.decode().strip().splitlines()
        assert line.startswith("error: ") and "built in rollup format 2" in line, line
        assert "reads format 99" in line and "--no-keep-flows" in line, line
        assert "run 'analyzer store rebuild" in line, line
    # the derivation state is still this version's: `store rebuild` finishes it again ...
    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(store, rebuilt)
    _ok_in(site, "store", "rebuild", "--store", str(rebuilt))
    for command in COMMANDS:
        out, _ = _ok_in(site, *command, "--store", str(rebuilt))
        assert _normal(command, out) == _normal(command, _ok(*command, "--store", str(store)))
    # ... and so does the next ingest
    _ok_in(site, "ingest", str(files[-1]), "--store", str(store))
    _answers_as(site, store, stores["kept"])


def test_a_state_version_bump_refuses_ingests_and_keeps_answering(
    stores: dict[str, Path], files: list[Path], tmp_path: Path
) -> None:
    store = _without_flows(tmp_path, files[:-1])
    site = _upgraded(tmp_path, {"connections/_state.py": ("\nSTATE_VERSION = 3\n",
                                                          "\nSTATE_VERSION = 99\n")})
    before = _ok("graph", "-o", "json", "--store", str(store))
    out, err = _ok_in(site, "graph", "-o", "json", "--store", str(store))
    assert out == before and b"note:" not in err
    manifest = (store / "manifest.json").read_bytes()
    done = _run_in(site, "ingest", str(files[-1]), "--store", str(store))
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    (line,) = done.stderr.decode().strip().splitlines()
    assert "derivation state is missing or of another version" in line
    assert (store / "manifest.json").read_bytes() == manifest
