"""Shared helpers: store contents as a multiset of rows, the reference a file ingest gives."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from analyzer.store import FlowStore, ingest


def rows(store: Path) -> pl.DataFrame:
    """The store's rows without ``ingest_id``, in a canonical order."""
    frame = FlowStore.open(store).scan().drop("ingest_id").collect()
    return frame.sort(frame.columns, nulls_last=True)


def reference(lines: list[bytes], tmp: Path) -> pl.DataFrame:
    """What ``analyzer ingest`` stores for these lines (a file ingest: the reference)."""
    path = tmp / f"ref-{len(lines)}.jsonl"
    path.write_bytes(b"".join(lines))
    store = tmp / f"ref-store-{len(lines)}"
    ingest(store, [str(path)])
    return rows(store)


def committed_rows(store: Path) -> int:
    try:
        doc = json.loads((store / "manifest.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(int(e["rows"]) for e in doc["inputs"])


def committed_lines(store: Path) -> int:
    try:
        doc = json.loads((store / "manifest.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(int(e["stream"]["lines"]) for e in doc["inputs"] if e.get("stream"))


def make_capture(directory: Path, flows: int = 3000, fmt: str = "hubble") -> Path:
    """The first ``flows`` records of a generated capture (10,000 generated)."""
    scenario = build_scenario(ScenarioConfig(seed=5))
    full = write_flows(scenario, directory / f"all.{fmt}.jsonl", fmt, 10_000)
    lines = full.read_bytes().splitlines(keepends=True)[:flows]
    out = directory / f"flows.{fmt}.jsonl"
    out.write_bytes(b"".join(lines))
    return out
