"""Property: whatever strings a flow carries, the store hands them back unchanged."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.ingest import read_flow_file
from analyzer.store import ingest

# Label keys cannot hold "=" (the split point); values and names may hold anything.
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_key = _text.filter(lambda k: "=" not in k and k.strip() != "" and not k.startswith("io."))
_labels = st.lists(st.tuples(_key, _text), max_size=6, unique_by=lambda kv: kv[0])


def _line(i: int, pod: str, labels: list[tuple[str, str]], port: int, verdict: str) -> str:
    flow = {
        "time": f"2024-01-01T00:00:{i % 60:02d}.123456Z",
        "verdict": verdict,
        "IP": {"source": "10.0.0.1", "destination": "10.0.0.2"},
        "l4": {"TCP": {"source_port": 40000 + i, "destination_port": port}},
        "source": {
            "namespace": "ns",
            "pod_name": pod,
            "labels": [f"k8s:{k}={v}" for k, v in labels],
        },
        "destination": {"namespace": "ns", "pod_name": "b", "labels": ["k8s:app=b"]},
        "Type": "L3_L4",
    }
    return json.dumps({"flow": flow})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            _text.filter(lambda s: s != ""),
            _labels,
            st.integers(1, 65535),
            st.sampled_from(["FORWARDED", "DROPPED", "AUDIT", 5]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_store_returns_what_was_read(
    rows: list[tuple[str, list[tuple[str, str]], int, object]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "flows.jsonl"
        src.write_text(
            "\n".join(_line(i, *row) for i, row in enumerate(rows)) + "\n",  # type: ignore[arg-type]
            encoding="utf-8",
        )
        read = read_flow_file(src, "hubble").frame
        ingest(Path(tmp) / "store", [str(src)])
        stored = pl.from_arrow(pq.read_table(Path(tmp) / "store" / "flows"))
        assert isinstance(stored, pl.DataFrame)
        assert stored.drop("ingest_id").equals(read.drop("ingest_id"))
        assert stored["src_pod"].to_list() == [r[0] for r in rows]
        assert stored["src_labels"].to_list() == [sorted(f"{k}={v}" for k, v in r[1]) for r in rows]
        assert stored["dst_port"].to_list() == [r[2] for r in rows]
