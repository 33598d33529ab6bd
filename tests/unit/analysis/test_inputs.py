"""What reading the flows reported travels as data: lost events are a number in the manifest
(old manifests stay readable), and the analysis counts them without parsing any text."""

from __future__ import annotations

import json
from pathlib import Path

from analyzer.analysis import Analysis, open_store, read_flow_files
from analyzer.store import FlowStore, ingest

LOST = {"lost_events": {"source": "HUBBLE_RING_BUFFER", "num_events_lost": "17", "cpu": 1}}
FLOW = {
    "flow": {
        "time": "2026-01-01T00:00:00Z",
        "verdict": "FORWARDED",
        "IP": {"source": "10.0.0.1", "destination": "10.0.0.2", "ipVersion": "IPv4"},
        "l4": {"TCP": {"source_port": 40000, "destination_port": 80, "flags": {"SYN": True}}},
        "source": {"namespace": "a", "pod_name": "web-1", "labels": ["k8s:app=web"]},
        "destination": {"namespace": "a", "pod_name": "api-1", "labels": ["k8s:app=api"]},
        "is_reply": False,
        "traffic_direction": "EGRESS",
        "Type": "L3_L4",
    }
}


def _capture(tmp_path: Path) -> Path:
    path = tmp_path / "flows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (FLOW, LOST, LOST)) + "\n")
    return path


def test_lost_events_are_a_number_in_the_manifest(tmp_path: Path) -> None:
    ingest(tmp_path / "store", [str(_capture(tmp_path))], progress=False)
    (entry,) = FlowStore.open(tmp_path / "store").manifest()
    assert entry.lost_events == 34
    doc = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert doc["inputs"][0]["lost_events"] == 34
    notes = Analysis(open_store(tmp_path / "store")).ingest_notes
    assert notes.lost_events == 34
    # the lost-events records are counted as lost events, not as skipped records
    assert all("lost" not in reason for reason, _ in notes.skipped)


def test_flow_files_report_lost_events_too(tmp_path: Path) -> None:
    notes = Analysis(read_flow_files([str(_capture(tmp_path))])).ingest_notes
    assert notes.lost_events == 34


def test_a_manifest_written_before_the_field_is_read_as_it_is(tmp_path: Path) -> None:
    ingest(tmp_path / "store", [str(_capture(tmp_path))], progress=False)
    manifest = tmp_path / "store" / "manifest.json"
    doc = json.loads(manifest.read_text())
    del doc["inputs"][0]["lost_events"]
    manifest.write_text(json.dumps(doc))
    (entry,) = FlowStore.open(tmp_path / "store").manifest()
    # one per lost-events record: a lower bound, said without reading the warning's text
    assert entry.lost_events == 2
    assert Analysis(open_store(tmp_path / "store")).ingest_notes.lost_events == 2
