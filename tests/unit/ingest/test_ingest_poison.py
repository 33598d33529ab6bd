"""One bad record must never poison the store (issue 16, items 1-4).

Records with text that is not UTF-8, ports outside 0..65535 or not integral, and times outside
0001..9999 are skipped and reported by line on every parse path (DuckDB whole-file, chunked
pyarrow, per-line, JSON arrays), in every format; what is stored reads back with independent
Parquet readers. The hostile records are built here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from analyzer.ingest import _native
from analyzer.ingest._screen import INVALID_PORT, INVALID_UTF8, TIME_OUT_OF_RANGE
from analyzer.ingest.reader import FlowReader
from analyzer.store import FlowStore, ingest

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"
BASE = json.loads((FIX / "hubble_envelope.jsonl").read_bytes().splitlines()[0])
Edit = Callable[[dict[str, Any]], None]


def _flow(i: int, edit: Edit | None = None) -> bytes:
    """A distinct good envelope line (its own time and source port), optionally edited."""
    rec = json.loads(json.dumps(BASE))
    stamp = f"2024-03-22T15:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}Z"
    rec["flow"]["time"] = rec["time"] = stamp
    rec["flow"]["l4"]["TCP"]["source_port"] = 30000 + i
    if edit is not None:
        edit(rec["flow"])
    return json.dumps(rec).encode()  # non-ASCII as \u escapes: a lone surrogate stays one


def _port(side: str, value: Any) -> Edit:
    def edit(flow: dict[str, Any]) -> None:
        flow["l4"]["TCP"][side] = value

    return edit


def _time(value: str) -> Edit:
    def edit(flow: dict[str, Any]) -> None:
        flow["time"] = value

    return edit


def _label(value: str) -> Edit:
    def edit(flow: dict[str, Any]) -> None:
        flow["source"]["labels"].append(f"k8s:tier={value}")

    return edit


def _bytes(old: bytes, new: bytes) -> Callable[[int], bytes]:
    """A good line with ``old`` replaced by ``new`` (raw bytes that are not UTF-8)."""
    return lambda i: _flow(i).replace(old, new)


# (name, hostile line builder from a line number, expected reason)
PORT_AND_TIME: list[tuple[str, Callable[[int], bytes], str]] = [
    ("dst port -1", lambda i: _flow(i, _port("destination_port", -1)), INVALID_PORT),
    ("dst port 65536", lambda i: _flow(i, _port("destination_port", 65536)), INVALID_PORT),
    ("dst port 80.5", lambda i: _flow(i, _port("destination_port", 80.5)), INVALID_PORT),
    ("src port 1e30", lambda i: _flow(i, _port("source_port", 1e30)), INVALID_PORT),
    ("src port 2**64", lambda i: _flow(i, _port("source_port", 2**64 + 1)), INVALID_PORT),
    ("year 0", lambda i: _flow(i, _time("0000-01-01T00:00:00Z")), TIME_OUT_OF_RANGE),
    ("year -1", lambda i: _flow(i, _time("-0001-06-01T00:00:00Z")), TIME_OUT_OF_RANGE),
    ("year 0 in UTC", lambda i: _flow(i, _time("0001-01-01T00:30:00+01:00")), TIME_OUT_OF_RANGE),
]
UTF8: list[tuple[str, Callable[[int], bytes], str]] = [
    ("label bytes", _bytes(b"name=web", b"name=w\xff\xfeb"), INVALID_UTF8),
    ("label lone surrogate", lambda i: _flow(i, _label("\udcff")), INVALID_UTF8),
    ("pod name bytes", _bytes(b"web-6d8f7c9b5-abcde", b"web-\xc3("), INVALID_UTF8),
    ("node name bytes", _bytes(b'"kind-worker2"', b'"kind-\xe2\x82"'), INVALID_UTF8),
    (
        "namespace escape",
        _bytes(b'"namespace": "shop"', b'"namespace": "sh\\ud800op"'),
        INVALID_UTF8,
    ),
]


def _mixed(
    tmp_path: Path, cases: list[tuple[str, Callable[[int], bytes], str]], good: int = 40
) -> tuple[Path, dict[str, list[int]]]:
    """``good`` good lines with the hostile ones spread between them; reason -> line numbers."""
    lines: list[bytes] = []
    expected: dict[str, list[int]] = {}
    every = max(1, good // len(cases))
    pending = list(cases)
    for i in range(good):
        lines.append(_flow(i))
        if i % every == every - 1 and pending:
            _, build, reason = pending.pop(0)
            lines.append(build(1000 + len(lines)))
            expected.setdefault(reason, []).append(len(lines))
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, expected


def _report(reader: FlowReader) -> dict[str, tuple[int, tuple[int, ...]]]:
    return {r.reason: (r.count, r.first_lines) for r in reader.report.reasons()}


def _want(expected: dict[str, list[int]]) -> dict[str, tuple[int, tuple[int, ...]]]:
    return {reason: (len(lines), tuple(lines[:5])) for reason, lines in expected.items()}


def _chunked(path: Path, **kw: Any) -> tuple[pl.DataFrame, FlowReader]:
    with FlowReader(path, batch_rows=7, **kw) as reader:
        frame = pl.concat(list(reader.batches()))
    return frame, reader


def _assert_store_reads_back(store: Path, rows: int) -> None:
    """Independent readers read every column of every part; the store's own scan agrees."""
    glob = str(store / "flows" / "*.parquet")
    con = duckdb.connect()
    assert con.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall() == [(rows,)]
    # every string and list column, materialised (DuckDB validates UTF-8 while reading)
    assert len(con.sql(f"SELECT * FROM read_parquet('{glob}')").fetchall()) == rows
    table = pq.read_table(store / "flows")
    table.validate(full=True)
    assert table.num_rows == rows
    stored = FlowStore.open(store).scan().collect()
    assert stored.height == rows
    stored.select(pl.col(pl.String).str.len_bytes(), pl.col("time").dt.year()).to_dicts()
    assert stored["time"].dt.year().min() >= 1


@pytest.mark.parametrize(
    "cases", [PORT_AND_TIME, UTF8, PORT_AND_TIME + UTF8], ids=["ports-times", "utf8", "all"]
)
def test_hostile_hubble_records_are_skipped_by_line(tmp_path: Path, cases: list[Any]) -> None:
    path, expected = _mixed(tmp_path, cases)
    frame, reader = _chunked(path)
    assert _report(reader) == _want(expected)
    assert frame.height == reader.rows == 40
    # 80.5 was never rounded: every stored port is one the good lines carry
    assert frame["dst_port"].unique().to_list() == [8080]
    assert frame["src_port"].min() == 30000

    summary = ingest(tmp_path / "store", [str(path)])
    (loaded,) = summary.inputs
    assert loaded.rows == 40
    assert {s.reason: (s.count, s.first_lines) for s in loaded.skipped} == _want(expected)
    _assert_store_reads_back(tmp_path / "store", 40)


def test_duckdb_path_skips_ports_and_times_like_the_chunked_path(tmp_path: Path) -> None:
    path, expected = _mixed(tmp_path, PORT_AND_TIME)
    with FlowReader(path, batch_rows=7) as reader:
        assert reader.native_ok
        native = pl.concat(list(reader.native_batches()))
    chunked, chunked_reader = _chunked(path)
    assert _report(reader) == _report(chunked_reader) == _want(expected)
    assert native.drop("ingest_id").equals(chunked.drop("ingest_id"))


def test_duckdb_path_hands_text_that_is_not_utf8_to_the_chunked_path(tmp_path: Path) -> None:
    path, expected = _mixed(tmp_path, UTF8)
    with FlowReader(path) as reader, pytest.raises(_native.Refused):
        list(reader.native_batches())
    (loaded,) = ingest(tmp_path / "store", [str(path)]).inputs
    assert {s.reason: (s.count, s.first_lines) for s in loaded.skipped} == _want(expected)


def test_per_line_path_skips_the_same_records(tmp_path: Path) -> None:
    # camelCase keys send every line through json.loads + prepare (the per-line path)
    path, expected = _mixed(tmp_path, PORT_AND_TIME + UTF8)
    camel = tmp_path / "camel.jsonl"
    camel.write_bytes(path.read_bytes().replace(b'"node_name"', b'"nodeName"'))
    frame, reader = _chunked(camel)
    assert reader.spec.fast_read is None
    assert _report(reader) == _want(expected)
    assert frame.height == 40 and frame["dst_port"].unique().to_list() == [8080]


def test_json_array_values_that_are_not_utf8_are_skipped_not_repaired(tmp_path: Path) -> None:
    path, expected = _mixed(tmp_path, PORT_AND_TIME + UTF8)
    lines = path.read_bytes().splitlines()
    array = tmp_path / "array.json"
    array.write_bytes(b"[\n" + b",\n".join(lines) + b"\n]\n")
    frame, reader = _chunked(array)
    assert reader.layout == "array"
    # each element's line number is its line in the file: one further down, after the "["
    assert _report(reader) == _want({r: [n + 1 for n in ns] for r, ns in expected.items()})
    assert frame.height == 40
    assert not frame.select(pl.col("src_labels").list.join(",").str.contains("\ufffd").any()).item()


def test_grpc_web_timestamp_out_of_range_is_skipped(tmp_path: Path) -> None:
    rec = json.loads(_flow(1))
    rec["flow"]["time"] = {"seconds": 10**13, "nanos": 5}
    path = tmp_path / "grpcweb.jsonl"
    path.write_bytes(b"\n".join([_flow(0), json.dumps(rec).encode(), _flow(2)]) + b"\n")
    frame, reader = _chunked(path)
    assert frame.height == 2
    assert _report(reader) == {TIME_OUT_OF_RANGE: (1, (2,))}


def _calico(edit: dict[str, Any]) -> bytes:
    rec = json.loads((FIX / "calico_flows.log").read_bytes().splitlines()[0])
    rec.update(edit)
    return json.dumps(rec).encode()


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ({"dest_port": -1}, INVALID_PORT),
        ({"dest_port": 65536}, INVALID_PORT),
        ({"dest_port": 80.5}, INVALID_PORT),
        ({"source_port": "4e4x"}, INVALID_PORT),
        ({"start_time": 10**15}, TIME_OUT_OF_RANGE),
        ({"end_time": -(10**12)}, TIME_OUT_OF_RANGE),
        ({"start_time": 2**62}, TIME_OUT_OF_RANGE),  # from_epoch would wrap to 1970
    ],
)
def test_calico_records_with_bad_ports_or_times(
    tmp_path: Path, edit: dict[str, Any], reason: str
) -> None:
    good = _calico({})
    path = tmp_path / "flows.log"
    path.write_bytes(b"\n".join([good, _calico(edit), good]) + b"\n")
    frame, reader = _chunked(path)
    assert _report(reader) == {reason: (1, (2,))}
    assert frame.height == 2 and frame["dst_port"].to_list() == [7070, 7070]


def test_goldmane_and_whisker_records_with_bad_ports_or_times(tmp_path: Path) -> None:
    goldmane = json.loads((FIX / "goldmane_emitter.ndjson").read_bytes().splitlines()[0])
    bad_port = json.loads(json.dumps(goldmane))
    bad_port["Key"]["dest_port"] = 70000
    bad_time = {**goldmane, "start_time": str(10**14)}
    path = tmp_path / "goldmane.ndjson"
    path.write_bytes(b"\n".join(json.dumps(r).encode() for r in (goldmane, bad_port, bad_time)))
    frame, reader = _chunked(path, fmt="goldmane")
    assert frame.height == 1
    assert _report(reader) == {INVALID_PORT: (1, (2,)), TIME_OUT_OF_RANGE: (1, (3,))}

    whisker = json.loads((FIX / "whisker_lines.jsonl").read_bytes().splitlines()[0])
    records = [
        whisker,
        {**whisker, "dest_port": "80.5"},
        {**whisker, "start_time": "0000-01-01T00:00:00Z"},
    ]
    path = tmp_path / "whisker.jsonl"
    path.write_bytes(b"\n".join(json.dumps(r).encode() for r in records))
    frame, reader = _chunked(path, fmt="whisker")
    assert frame.height == 1
    assert _report(reader) == {INVALID_PORT: (1, (2,)), TIME_OUT_OF_RANGE: (1, (3,))}


def test_the_extremes_of_the_range_are_kept(tmp_path: Path) -> None:
    lines = [
        _flow(0, _time("0001-01-01T00:00:00Z")),
        _flow(1, _time("9999-12-31T23:59:59.999999Z")),
        _flow(2, _port("destination_port", 65535)),
        _flow(3, _port("destination_port", 0)),  # 0 means "no port" in Hubble
        _flow(4, _port("destination_port", 443.0)),  # integral, whatever the spelling
    ]
    path = tmp_path / "edges.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    frame, reader = _chunked(path)
    assert reader.report.total == 0
    assert frame["time"].dt.year().to_list()[:2] == [1, 9999]
    assert frame["dst_port"].to_list()[2:] == [65535, None, 443]
    ingest(tmp_path / "store", [str(path)])
    _assert_store_reads_back(tmp_path / "store", 5)
