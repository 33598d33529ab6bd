"""Compressed input read completely, in bounded memory, and identified by its content
(issue 16 items 5-6, issue 13 item 4). The compressed files are built here."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from analyzer.ingest import read_flow_file
from analyzer.ingest._decompress import zstd
from analyzer.ingest._io import digest_file, open_input
from analyzer.store import FlowStore, ingest
from analyzer.store.stats import store_stats

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"
BASE = json.loads((FIX / "hubble_envelope.jsonl").read_bytes().splitlines()[0])


def _lines(n: int, start: int = 0) -> bytes:
    """``n`` distinct Hubble envelope lines."""
    out = []
    for i in range(start, start + n):
        rec = json.loads(json.dumps(BASE))
        rec["flow"]["time"] = rec["time"] = f"2024-03-22T15:49:{i % 60:02d}.{i:06d}Z"
        rec["flow"]["l4"]["TCP"]["source_port"] = 20000 + i
        out.append(json.dumps(rec).encode() + b"\n")
    return b"".join(out)


def _skippable(payload: bytes) -> bytes:
    return struct.pack("<II", 0x184D2A50, len(payload)) + payload


# --- zstd frames (item 5) --------------------------------------------------------------------


def test_every_zstd_frame_is_read(tmp_path: Path) -> None:
    path = tmp_path / "flows.log.zst"
    # two frames, as `zstd` writes when appending and log shippers produce
    path.write_bytes(zstd.compress(_lines(100)) + zstd.compress(_lines(100, 100)))
    result = read_flow_file(path)
    assert result.records == 200 and not result.warnings
    assert result.frame["src_port"].to_list() == list(range(20000, 20200))
    (loaded,) = ingest(tmp_path / "store", [str(path)]).inputs
    assert loaded.rows == 200


def test_zstd_skippable_frames_and_many_small_frames(tmp_path: Path) -> None:
    data = _skippable(b"index") + b"".join(zstd.compress(_lines(3, i * 3)) for i in range(50))
    path = tmp_path / "seekable.zst"
    path.write_bytes(data + _skippable(b"\x00" * 32))
    result = read_flow_file(path)
    assert result.records == 150 and not result.warnings


def test_zstd_cut_inside_the_second_frame_keeps_the_rest_and_warns(tmp_path: Path) -> None:
    second = zstd.compress(_lines(100, 100))
    path = tmp_path / "cut.zst"
    path.write_bytes(zstd.compress(_lines(100)) + second[: len(second) // 2])
    result = read_flow_file(path)
    assert 100 <= result.records < 200
    assert any("truncated" in w for w in result.warnings)


def test_gzip_members_and_trailing_zeros(tmp_path: Path) -> None:
    path = tmp_path / "rotated.gz"
    path.write_bytes(gzip.compress(_lines(70)) + gzip.compress(_lines(30, 70)) + bytes(100))
    result = read_flow_file(path)
    assert result.records == 100 and not result.warnings


# --- bounded memory (item 6) -------------------------------------------------------------


def _gzip_bomb(path: Path, head: bytes, zero_mib: int) -> Path:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    with open(path, "wb") as fh:
        fh.write(packer.compress(head))
        for _ in range(zero_mib):
            fh.write(packer.compress(block))
        fh.write(packer.flush())
    return path


def _zstd_bomb(path: Path, head: bytes, zero_mib: int) -> Path:
    packer = zstd.ZstdCompressor()
    block = bytes(1 << 20)
    with open(path, "wb") as fh:
        fh.write(packer.compress(head))
        for _ in range(zero_mib):
            fh.write(packer.compress(block))
        fh.write(packer.flush())
    return path


BOMBS = {"gzip": _gzip_bomb, "zstd": _zstd_bomb}


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_decompressed_blocks_are_never_larger_than_asked(tmp_path: Path, kind: str) -> None:
    path = BOMBS[kind](tmp_path / f"bomb.{kind}", _lines(10), 64)
    assert path.stat().st_size < 1 << 20  # 64 MiB of zeros in well under 1 MiB
    stream = open_input(path)
    total = 0
    try:
        while block := stream.read(1 << 20):
            assert len(block) <= 1 << 20
            total += len(block)
    finally:
        stream.close()
    assert total == len(_lines(10)) + (64 << 20) and stream.damage is None


_PEAK = (
    "import resource, sys\n"
    "from analyzer.cli import app\n"
    "try:\n"
    "    app(sys.argv[1:], standalone_mode=False)\n"
    "finally:\n"
    "    print('peak_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


def _ingest_peak_mib(path: Path, store: Path) -> tuple[float, str]:
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, "ingest", str(path), "--store", str(store), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    peak = next(ln for ln in proc.stderr.splitlines() if ln.startswith("peak_kib"))
    return int(peak.split()[1]) / 1024, proc.stdout


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_compressed_bomb_ingests_in_bounded_memory(tmp_path: Path, kind: str) -> None:
    """100 good lines, then 512 MiB of zero bytes (one "line"), compressed: the 16 MiB line
    cap applies before the line is held, so peak memory does not grow with it."""
    head = _lines(100)
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(head)
    baseline, _ = _ingest_peak_mib(plain, tmp_path / "s0")
    bomb = BOMBS[kind](tmp_path / f"bomb.jsonl.{kind}", head, 512)
    peak, out = _ingest_peak_mib(bomb, tmp_path / "s1")
    (loaded,) = json.loads(out)["inputs"]
    assert loaded["rows"] == 100
    assert loaded["skipped"] == [
        {"reason": "lines longer than 16 MiB", "count": 1, "first_lines": [101]}
    ]
    # before: the whole decompressed block was held, several times over (>1 GiB here)
    assert peak < baseline + 200, (peak, baseline)


# --- content identity (issue 13, item 4) ---------------------------------------------------


def test_same_flows_plain_gzip_or_zstd_are_ingested_once(tmp_path: Path) -> None:
    data = _lines(40)
    plain = tmp_path / "flows.jsonl"
    plain.write_bytes(data)
    gz = tmp_path / "flows.jsonl.gz"
    gz.write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:]))  # two members
    zst = tmp_path / "flows.jsonl.zst"
    zst.write_bytes(zstd.compress(data))
    store = tmp_path / "store"
    assert ingest(store, [str(plain)]).rows_loaded == 40
    summary = ingest(store, [str(gz), str(zst), str(plain)])
    assert [i.status for i in summary.inputs] == ["duplicate"] * 3
    assert all("flows.jsonl" in (i.message or "") for i in summary.inputs)
    stats = store_stats(FlowStore.open(store))
    assert stats.rows == 40 and stats.inputs == 1


def test_compressed_first_then_plain_in_one_command(tmp_path: Path) -> None:
    data = _lines(25)
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    plain = tmp_path / "b.jsonl"
    plain.write_bytes(data)
    summary = ingest(tmp_path / "store", [str(gz), str(plain)])
    assert [i.status for i in summary.inputs] == ["loaded", "duplicate"]
    (entry,) = FlowStore.open(tmp_path / "store").manifest()
    assert entry.ingest_id == hashlib.sha256(data).hexdigest()
    assert entry.file_sha256 == hashlib.sha256(gz.read_bytes()).hexdigest()
    assert entry.compression == "gzip"
    stored = FlowStore.open(tmp_path / "store").scan().collect()
    assert stored["ingest_id"].unique().to_list() == [entry.ingest_id]


def test_digest_is_of_the_decompressed_content(tmp_path: Path) -> None:
    data = _lines(5)
    for name, blob in [("p", data), ("g", gzip.compress(data)), ("z", zstd.compress(data))]:
        (tmp_path / name).write_bytes(blob)
        digest = digest_file(tmp_path / name)
        assert digest.content == hashlib.sha256(data).hexdigest()
        assert digest.file == hashlib.sha256(blob).hexdigest()


def test_stores_written_before_content_hashing_still_work(tmp_path: Path) -> None:
    """A version-1 manifest (ingest_id = hash of the file bytes, no file_sha256) stays
    readable, and re-ingesting the same compressed file is still a no-op."""
    data = _lines(30)
    gz = tmp_path / "old.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    store = tmp_path / "store"
    ingest(store, [str(gz)])
    manifest = json.loads((store / "manifest.json").read_text())
    old_id = hashlib.sha256(gz.read_bytes()).hexdigest()
    for entry in manifest["inputs"]:
        del entry["file_sha256"], entry["compression"]
        entry["ingest_id"] = old_id
    manifest["version"] = 1
    (store / "manifest.json").write_text(json.dumps(manifest))

    opened = FlowStore.open(store)
    (entry,) = opened.manifest()
    assert entry.ingest_id == entry.file_sha256 == old_id
    assert store_stats(opened).rows == 30
    (again,) = ingest(store, [str(gz)]).inputs
    assert again.status == "duplicate"
    assert json.loads((store / "manifest.json").read_text())["version"] == 1  # untouched


def test_manifest_from_a_newer_analyzer_is_refused(tmp_path: Path) -> None:
    from analyzer.errors import StoreError

    path = tmp_path / "flows.jsonl"
    path.write_bytes(_lines(3))
    ingest(tmp_path / "store", [str(path)])
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    manifest["version"] = 99
    (tmp_path / "store" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="newer analyzer"):
        FlowStore.open(tmp_path / "store")
