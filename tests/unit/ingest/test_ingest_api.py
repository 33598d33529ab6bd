"""Library entry points: streaming batches and the pure Arrow-batch normalizers."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa

from analyzer.ingest import calico, hubble, iter_flow_batches, read_flow_file
from analyzer.ingest._format import normalize_arrow
from analyzer.schema import FLOW_SCHEMA

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"


def test_iter_flow_batches_streams_canonical_arrow(tmp_path: Path) -> None:
    lines = (FIX / "hubble_envelope.jsonl").read_bytes() * 30  # 210 rows
    path = tmp_path / "many.jsonl"
    path.write_bytes(lines)
    batches = list(iter_flow_batches(path, batch_rows=50))
    assert all(b.schema.equals(FLOW_SCHEMA) for b in batches)
    assert sum(b.num_rows for b in batches) == 210


def test_normalizers_are_pure_functions_of_an_arrow_batch() -> None:
    records = [json.loads(line)["flow"] for line in (FIX / "hubble_envelope.jsonl").open()]
    raw = pl.DataFrame(records, schema=hubble.FLOW_SCHEMA_RAW, strict=False).to_arrow()
    batch = pa.concat_batches(raw.to_batches())
    out = normalize_arrow(hubble.normalize, batch)
    again = normalize_arrow(hubble.normalize, batch)
    assert out.equals(again)
    expected = read_flow_file(FIX / "hubble_envelope.jsonl").frame
    got = pl.from_arrow(out)
    assert isinstance(got, pl.DataFrame)
    assert got.equals(expected)


def test_calico_normalizer_on_an_empty_batch() -> None:
    empty = pl.DataFrame(schema=calico.RAW_SCHEMA)
    out = calico.normalize(empty)
    assert out.height == 0 and out.columns == list(FLOW_SCHEMA.names)
