"""Zero flags on the real captures of ../shared/samples (Star Wars demo with its bare pods,
Istio bookinfo, Calico Enterprise): nothing there is an attack."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from analyzer.anomaly import detect_anomalies
from analyzer.connections import derive_connections
from analyzer.ingest import read_flow_file


def _samples(shared: Path) -> list[Path]:
    return sorted(p for p in (shared / "samples").rglob("*") if p.suffix in (".json", ".jsonl"))


def test_real_samples_flag_nothing(shared_dir: Path) -> None:
    samples = _samples(shared_dir)
    assert len(samples) >= 5
    frames = []
    for path in samples:
        conns = derive_connections(read_flow_file(path).frame).frame
        assert detect_anomalies(conns).flagged.height == 0, path.name
        frames.append(conns)
    # All of them in one store, as a user who ingests every sample would have it.
    merged = pl.concat(frames, how="vertical_relaxed")
    result = detect_anomalies(merged)
    assert result.flagged.height == 0
    assert result.summary.suspects == ()


def test_star_wars_bare_pods_are_read_as_bare_and_left_alone(shared_dir: Path) -> None:
    path = shared_dir / "samples/hubble/cnpgen__testdata1-exporter-kind-starwars.json"
    edges = detect_anomalies(derive_connections(read_flow_file(path).frame).frame).edges
    tiefighter = edges.filter(pl.col("src_name") == "default/tiefighter")
    assert tiefighter.height > 0
    assert tiefighter["src_bare"].min() == 1.0  # `kind: Pod` in the demo: no controller
    assert not tiefighter["flagged"].any()
