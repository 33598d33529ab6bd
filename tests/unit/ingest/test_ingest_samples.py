"""Every real sample in ../shared/samples ingests."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.ingest import read_flow_file


def _samples(shared: Path) -> list[Path]:
    return sorted(p for p in (shared / "samples").rglob("*") if p.suffix in (".json", ".jsonl"))


def test_every_shared_sample_ingests(shared_dir: Path) -> None:
    samples = _samples(shared_dir)
    assert len(samples) >= 8
    for path in samples:
        result = read_flow_file(path)
        lines = sum(1 for line in path.read_bytes().splitlines() if line.strip())
        assert result.records + sum(s.count for s in result.skipped) == lines, path.name
        assert result.frame["time"].null_count() == 0, path.name
        assert result.frame["verdict"].null_count() == 0, path.name


def test_calico_sample_truncated_last_line_is_a_skip(shared_dir: Path) -> None:
    path = shared_dir / "samples" / "calico" / "enterprise_flows_log_felix_testdata.jsonl"
    result = read_flow_file(path)
    assert result.format == "calico" and result.records == 3
    assert [(s.reason, s.count, s.first_lines) for s in result.skipped] == [
        ("malformed JSON lines", 1, (4,))
    ]
    row = result.frame.row(0, named=True)
    assert (row["dst_pod"], row["dst_namespace"], row["flow_count"]) == (
        "coredns-576cbf47c7-*",
        "kube-system",
        41,
    )
    assert row["policies_enforced"] == ["profile:kns.kube-system"]


@pytest.mark.parametrize(
    ("name", "reply_true", "entities"),
    [
        ("hubble-otel__basic-sample-10-flows.json", 5, {"host", "pod", "world"}),
        (
            "hubble-otel__basic-sample-400-icmpv4-flows.json",
            None,
            {"health", "host", "remote-node"},
        ),
    ],
)
def test_hubble_sample_semantics(
    shared_dir: Path, name: str, reply_true: int | None, entities: set[str]
) -> None:
    frame = read_flow_file(shared_dir / "samples" / "hubble" / name).frame
    if reply_true is not None:  # 2021 agent: only the deprecated `reply: true`
        assert frame["is_reply"].sum() == reply_true
        assert frame["is_reply"].drop_nulls().all()
    assert set(frame["src_entity"]) | set(frame["dst_entity"]) >= entities


def test_kind_exporter_sample_matches_the_documented_tally(shared_dir: Path) -> None:
    """docs/hubble-flow-format.md §5 tallies this file by hand; the reader must agree."""
    path = shared_dir / "samples" / "hubble" / "cnpgen__testdata1-exporter-kind-starwars.json"
    frame = read_flow_file(path).frame
    keys = ["verdict", "observation_point", "event_type", "direction", "is_reply"]
    tally = {tuple(row[:-1]): row[-1] for row in frame.group_by(keys).len().iter_rows()}
    assert tally == {
        ("forwarded", "TO_ENDPOINT", 4, "ingress", False): 17,
        ("forwarded", "TO_ENDPOINT", 4, "egress", True): 14,
        ("forwarded", "TO_OVERLAY", 4, "egress", False): 13,
        ("forwarded", "TO_PROXY", 4, "ingress", False): 8,
        ("forwarded", "TO_OVERLAY", 4, "unknown", None): 4,
        ("dropped", None, 1, "ingress", None): 2,
        ("redirected", None, 5, "ingress", False): 2,
    }
    assert set(frame["flow_type"]) == {"L3_L4"}
    assert (
        frame.filter(frame["verdict"] == "dropped")["drop_reason"].to_list()
        == ["UNSUPPORTED_L3_PROTOCOL"] * 2
    )
