"""Faults around the store (issue 16, items 7-8): kill -9 at every rename of a commit, a
read-only store, a full disk (also while spooling stdin), and what a killed ingest leaves.

The invariant: readers of the dataset directory (DuckDB, pyarrow) never see rows the store
does not count, a failed ingest leaves the store byte-for-byte as it was, every failure is one
line on stderr, and leftovers are cleaned by the next command that opens the store.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.errors import StoreError
from analyzer.store import FlowStore, ingest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faults import namespace_problem, run_in_namespace  # noqa: E402
from kill_script import KILL_AT_RENAME, killed_ingests

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"
runner = CliRunner()


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _distinct_lines(n: int, tag: str) -> bytes:
    """``n`` Hubble lines whose label values do not compress (so parts take real space)."""
    base = json.loads((FIX / "hubble_envelope.jsonl").read_bytes().splitlines()[0])
    out = []
    for i in range(n):
        rec = json.loads(json.dumps(base))
        rec["flow"]["time"] = rec["time"] = f"2024-03-22T15:49:{i % 60:02d}.{i:06d}Z"
        noise = hashlib.sha512(f"{tag}{i}".encode()).hexdigest()
        rec["flow"]["source"]["labels"].append(f"k8s:noise={noise}")
        out.append(json.dumps(rec).encode() + b"\n")
    return b"".join(out)


def _ingest_more(store: Path) -> object:
    return runner.invoke(app, ["ingest", str(FIX / "hubble_envelope.jsonl"), "--store", str(store)])


def _outside_view(store: Path) -> dict[str, int]:
    """Rows per ingest_id as DuckDB and a pyarrow dataset see the part files (no manifest)."""
    glob = str(store / "flows" / "*.parquet")
    if not list((store / "flows").glob("*.parquet")):
        return {}
    rows = (
        duckdb.connect()
        .sql(f"SELECT ingest_id, count(*) FROM read_parquet('{glob}') GROUP BY 1")
        .fetchall()
    )
    seen = {str(k): int(v) for k, v in rows}
    table = ds.dataset(store / "flows", format="parquet").to_table(columns=["ingest_id"])
    assert table.num_rows == sum(seen.values())
    return seen


def _store_view(store: Path) -> dict[str, int]:
    return {e.ingest_id: e.rows for e in FlowStore(store).manifest()}


# --- kill -9 during the commit --------------------------------------------------------------



def test_kill_at_every_rename_of_a_commit_never_shows_uncommitted_rows(tmp_path: Path) -> None:
    pristine = tmp_path / "pristine"
    first = tmp_path / "first.jsonl"
    first.write_bytes(_distinct_lines(20, "a"))
    ingest(pristine, [str(first)])
    before = _store_view(pristine)
    inputs = []
    for name in ("b", "c", "d"):  # three inputs: three parts, so renames between them too
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(_distinct_lines(30, name))
        inputs.append(str(path))

    crashed: list[tuple[Path, dict[str, int]]] = []
    for target, store in killed_ingests(pristine, inputs, tmp_path, limit=20):
        outside, committed = _outside_view(store), _store_view(store)
        # never a row that the store does not count
        assert set(outside) <= set(committed), (target, outside, committed)
        assert all(outside[k] == committed[k] for k in outside), target
        new = {k: v for k, v in committed.items() if k not in before}
        assert {k: committed[k] for k in before} == before
        assert new == {} or sorted(new.values()) == [30, 30, 30], (target, new)
        crashed.append((store, committed))
    assert len(crashed) >= 4  # at the manifest and at each of the three parts
    for store, committed in crashed:
        # the next command that opens the store finishes the commit or removes its remains
        opened = FlowStore.open(store)
        assert _outside_view(store) == _store_view(store) == committed
        assert opened.scan().collect().height == sum(committed.values())
        assert not list(store.glob(".tmp-*"))


def test_committed_parts_still_in_staging_are_read_when_the_store_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    ingest(store, [str(FIX / "calico_flows.log")])
    second = tmp_path / "more.jsonl"
    second.write_bytes(_distinct_lines(10, "x"))
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT_RENAME, "2", str(store), str(second)],
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL
    assert _outside_view(store) == {e.ingest_id: 7 for e in FlowStore(store).manifest()[:1]}

    def read_only(self: FlowStore, timeout: float = 0) -> None:
        raise StoreError("cannot write to the flow store: read-only file system")

    monkeypatch.setattr(FlowStore, "lock", read_only)
    assert FlowStore.open(store).scan().collect().height == 17  # committed rows, all of them


# --- leftovers of a killed stdin ingest ------------------------------------------------------


def test_spool_of_a_killed_stdin_ingest_is_removed_by_the_next_command(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest(store, [str(FIX / "calico_flows.log")])
    proc = subprocess.Popen(
        [sys.executable, "-c", "from analyzer.cli import app; app()", "ingest", "-", "--store",
         str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(_distinct_lines(2000, "spool"))
    proc.stdin.flush()
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size > 0 for p in store.glob(".tmp-*/spool-*")):
        assert time.monotonic() < deadline, "the spool file never appeared"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # stdin still open: the ingest is mid-spool
    proc.wait(30)
    proc.stdin.close()
    assert list(store.glob(".tmp-*/spool-*"))

    result = runner.invoke(app, ["stats", "--store", str(store), "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 7
    assert not list(store.glob(".tmp-*"))


# --- one-line errors, store unchanged (injected faults) ----------------------------------------


def _assert_one_line(result: object, *phrases: str) -> None:
    stderr = getattr(result, "stderr", "")
    assert getattr(result, "exit_code", None) == 1, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("error: ")
    for phrase in phrases:
        assert phrase in stderr, stderr


def test_disk_full_while_writing_a_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    ingest(store, [str(FIX / "calico_flows.log")])
    before = _tree_hash(store)

    def full(self: pq.ParquetWriter, table: object, *args: object, **kwargs: object) -> None:
        # pyarrow's own spelling: the errno only in the text
        raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    result = _ingest_more(store)
    _assert_one_line(result, "no space left on device", str(store), "unchanged")
    assert _tree_hash(store) == before


def test_disk_full_while_writing_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import analyzer.store.flowstore as store_module

    store = tmp_path / "store"
    ingest(store, [str(FIX / "calico_flows.log")])
    before = _tree_hash(store)

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(store_module, "atomic_write", full)
    result = _ingest_more(store)
    _assert_one_line(result, "no space left on device")
    assert _tree_hash(store) == before


def test_read_only_lock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    ingest(store, [str(FIX / "calico_flows.log")])
    before = _tree_hash(store)
    real_open = os.open

    def read_only(path: object, flags: int, *args: object) -> int:
        if str(path).endswith(".lock") and flags & os.O_RDWR:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", read_only)
    result = _ingest_more(store)
    _assert_one_line(result, "read-only file system")
    assert runner.invoke(app, ["stats", "--store", str(store)]).exit_code == 0
    assert _tree_hash(store) == before


# --- real faults: a tmpfs too small, a read-only remount ------------------------------------


@pytest.fixture(scope="module")
def mount_namespace(tmp_path_factory: pytest.TempPathFactory) -> None:
    problem = namespace_problem(tmp_path_factory.mktemp("probe"))
    if problem is not None:
        pytest.skip(f"real file-system faults need a private mount namespace: {problem}")


def test_real_read_only_store(tmp_path: Path, mount_namespace: None) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    store = str(mnt / "store")
    more = str(FIX / "hubble_envelope.jsonl")
    steps = [
        ["mount", str(mnt), "4m"],
        ["cli", ["ingest", str(FIX / "calico_flows.log"), "--store", store], None],
        ["tree", store],
        ["readonly", str(mnt)],
        ["cli", ["ingest", more, "--store", store], None],
        ["cli", ["ingest", "-", "--store", store], more],
        ["tree", store],
        ["cli", ["stats", "--store", store, "-o", "json"], None],
    ]
    _, first, before, _, ingest_file, ingest_stdin, after, stats = run_in_namespace(steps)
    assert first[0] == 0, first
    for rc, _out, err in (ingest_file, ingest_stdin):
        assert rc == 1 and len(err.strip().splitlines()) == 1, err
        assert "read-only file system" in err and "Traceback" not in err
    assert after == before
    assert stats[0] == 0 and json.loads(stats[1])["rows"] == 7


def test_real_disk_full_for_parts_and_for_stdin(tmp_path: Path, mount_namespace: None) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    store = str(mnt / "store")
    big = tmp_path / "big.jsonl"
    big.write_bytes(_distinct_lines(6000, "big"))  # ~10 MB of JSON, ~1 MB of Parquet
    steps = [
        ["mount", str(mnt), "16m"],
        ["cli", ["ingest", str(FIX / "calico_flows.log"), "--store", store], None],
        ["fill", str(mnt / "filler"), 64 << 10],
        ["tree", store],
        ["cli", ["ingest", str(big), "--store", store], None],
        ["tree", store],
        ["cli", ["ingest", "-", "--store", store], str(big)],
        ["tree", store],
        ["cli", ["stats", "--store", store, "-o", "json"], None],
    ]
    results = run_in_namespace(steps)
    first, before, parts, after_parts, stdin, after_stdin, stats = (
        results[1], results[3], results[4], results[5], results[6], results[7], results[8]
    )  # fmt: skip
    assert first[0] == 0, first
    for rc, _out, err in (parts, stdin):
        assert rc == 1 and len(err.strip().splitlines()) == 1, err
        assert "no space left on device" in err and "Traceback" not in err, err
    assert "standard input" in stdin[2]
    assert after_parts == before and after_stdin == before
    assert stats[0] == 0 and json.loads(stats[1])["rows"] == 7
