"""Bad and hostile input: one-line errors or counted skips, never a crash; data kept verbatim."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from analyzer.errors import IngestError, UnknownFormatError, UsageError
from analyzer.ingest import FlowReader, read_flow_file
from analyzer.ingest._decompress import zstd

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"
ENVELOPE = (FIX / "hubble_envelope.jsonl").read_bytes()
GOOD = ENVELOPE.splitlines()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_malformed_lines_are_counted_and_good_lines_load(tmp_path: Path) -> None:
    lines = [
        GOOD[0],
        b"{not json",
        GOOD[1],
        b'{"flow": {"verdict": ',
        b"",
        GOOD[2],
        b"\xff\xfe garbage",
    ]
    result = read_flow_file(_write(tmp_path, "mixed.jsonl", b"\n".join(lines) + b"\n"))
    assert result.records == 3
    assert {(s.reason, s.count, s.first_lines) for s in result.skipped} == {
        ("malformed JSON lines", 2, (2, 4)),
        ("lines that are not JSON", 1, (7,)),
    }


def test_binary_file_is_one_line_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "blob.bin", bytes(range(256)) * 64)
    with pytest.raises(IngestError, match="binary data"):
        read_flow_file(path)


@pytest.mark.parametrize("data", [b"", b"\n\n  \n"])
def test_empty_file_is_one_line_error(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(IngestError, match="empty"):
        read_flow_file(_write(tmp_path, "empty.jsonl", data))


def test_json_that_is_no_flow_format_is_unknown(tmp_path: Path) -> None:
    path = _write(tmp_path, "other.jsonl", b'{"name": "x", "value": 1}\n{"name": "y"}\n')
    with pytest.raises(UnknownFormatError, match="no reader recognises"):
        read_flow_file(path)


def test_text_file_is_unknown(tmp_path: Path) -> None:
    with pytest.raises(UnknownFormatError):
        read_flow_file(_write(tmp_path, "README.md", b"# hello\nsome text\n"))


def test_wrong_explicit_format_has_no_usable_record(tmp_path: Path) -> None:
    path = _write(tmp_path, "hubble.jsonl", ENVELOPE)
    with pytest.raises(IngestError, match=r"no usable calico flow record: 7 records that are not"):
        read_flow_file(path, "calico")


def test_unknown_format_name_is_usage_error() -> None:
    with pytest.raises(UsageError):
        read_flow_file(FIX / "hubble_envelope.jsonl", "netflow")


def test_gzip_and_zstd_by_magic_bytes_not_extension(tmp_path: Path) -> None:
    gz = _write(tmp_path, "events.log", gzip.compress(ENVELOPE))
    zst = _write(tmp_path, "flows.bin", zstd.compress(ENVELOPE))
    plain = read_flow_file(FIX / "hubble_envelope.jsonl").frame
    assert read_flow_file(gz).frame.equals(plain)
    assert read_flow_file(zst).frame.equals(plain)


def test_concatenated_gzip_members(tmp_path: Path) -> None:
    path = _write(tmp_path, "rotated.gz", gzip.compress(ENVELOPE) + gzip.compress(ENVELOPE))
    assert read_flow_file(path).records == 14


def test_truncated_gzip_keeps_good_records_and_warns(tmp_path: Path) -> None:
    data = gzip.compress(ENVELOPE * 50)
    path = _write(tmp_path, "cut.jsonl.gz", data[: len(data) * 2 // 3])
    result = read_flow_file(path)
    assert 0 < result.records < 350
    assert any("truncated" in w for w in result.warnings)


def test_truncated_gzip_with_nothing_usable_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "cut.gz", gzip.compress(ENVELOPE)[:12])
    with pytest.raises(IngestError):
        read_flow_file(path)


def test_overlong_line_is_skipped_with_bounded_buffer(tmp_path: Path) -> None:
    long_line = b'{"flow": {"verdict": "' + b"A" * 5000 + b'"}}'
    data = b"\n".join([GOOD[0], long_line, GOOD[1], long_line, GOOD[2]]) + b"\n"
    path = _write(tmp_path, "long.jsonl", data)
    with FlowReader(path, "hubble", max_line_bytes=4096) as reader:
        rows = sum(f.height for f in reader.batches())
        reasons = reader.report.reasons()
    assert rows == 3
    assert [(r.count, r.first_lines) for r in reasons] == [(2, (2, 4))]
    assert "longer than" in reasons[0].reason


def test_overlong_final_line_without_newline(tmp_path: Path) -> None:
    data = GOOD[0] + b"\n" + b'{"flow":{"verdict":"' + b"B" * 10000
    with FlowReader(_write(tmp_path, "tail.jsonl", data), "hubble", max_line_bytes=4096) as reader:
        assert sum(f.height for f in reader.batches()) == 1
        assert reader.report.reasons()[0].first_lines == (2,)


def test_megabyte_line_under_the_cap_loads(tmp_path: Path) -> None:
    flow = json.loads(GOOD[0])
    flow["flow"]["source"]["labels"].append("k8s:blob=" + "x" * (3 << 20))
    path = _write(tmp_path, "big.jsonl", json.dumps(flow).encode() + b"\n" + GOOD[1] + b"\n")
    frame = read_flow_file(path).frame
    assert frame.height == 2
    assert len(max(frame["src_labels"][0], key=len)) == len("blob=") + (3 << 20)


def test_deeply_nested_json_is_a_skip_not_a_crash(tmp_path: Path) -> None:
    data = GOOD[0] + b"\n" + b"[" * 100_000 + b"]" * 100_000 + b"\n" + GOOD[1] + b"\n"
    result = read_flow_file(_write(tmp_path, "deep.jsonl", data), "hubble")
    assert result.records == 2 and result.skipped[0].first_lines == (2,)


HOSTILE = [
    "<script>alert(1)</script>",
    "a=b=c",
    'quote"and\\backslash',
    "ünïcödé ✓ 🚀",
    "line\nbreak",
    "-",
    "",
    "${jndi:ldap://x}",
]


def test_hostile_label_values_are_stored_verbatim(tmp_path: Path) -> None:
    lines = []
    for i, value in enumerate(HOSTILE):
        flow = json.loads(GOOD[0])
        flow["flow"]["source"]["labels"] = [
            f"k8s:app={value}",
            "k8s:io.kubernetes.pod.namespace=shop",
        ]
        flow["flow"]["source"]["pod_name"] = value
        flow["flow"]["time"] = f"2024-03-22T15:49:{i:02d}Z"
        lines.append(json.dumps(flow).encode())
    frame = read_flow_file(_write(tmp_path, "hostile.jsonl", b"\n".join(lines) + b"\n")).frame
    assert frame["src_labels"].to_list() == [[f"app={v}"] for v in HOSTILE]
    assert frame["src_pod"].to_list() == [v or None for v in HOSTILE]


def test_array_with_a_broken_element_keeps_the_rest(tmp_path: Path) -> None:
    items = [json.loads(line) for line in GOOD[:3]]
    text = "[\n" + json.dumps(items[0]) + ",\n{broken,\n" + json.dumps(items[1]) + ",\n"
    text += json.dumps(items[2]) + "\n]\n"
    result = read_flow_file(_write(tmp_path, "array.json", text.encode()))
    assert result.records == 3 or result.records == 2
    assert result.skipped and result.skipped[0].reason == "malformed JSON values"


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no such file"):
        read_flow_file(tmp_path / "nope.jsonl")
