"""The derivation as map -> merge -> finish (issue 11, incremental rollup): the states of
consecutive runs of rows, merged and finished, give exactly the derivation of all the rows —
connections, statistics, buckets and counts — however the rows are split."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analyzer.connections import (
    OTHER_IDLE,
    TCP_IDLE,
    Buckets,
    DerivationState,
    derive_bucketed,
    derive_connections,
    derive_state,
    endpoint_range,
    finish_bucketed,
    finish_endpoints,
    hubble_edges,
    merge_endpoints,
    merge_hubble_edges,
    merge_sessions,
    merge_states,
    session_range,
)
from analyzer.connections import _dedupe as D
from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from analyzer.ingest import read_flow_file
from analyzer.schema import CONNECTIONS, conform

Frame = Callable[..., pl.DataFrame]


def _map(rows: pl.DataFrame, offset: int = 0) -> DerivationState:
    return derive_state(rows, offset=offset, tcp_idle=TCP_IDLE, other_idle=OTHER_IDLE)


MINUTES = Buckets()


def _outputs(state: DerivationState, schedule: Buckets = MINUTES) -> tuple[Any, ...]:
    connections, bucketed = finish_bucketed(state, schedule)
    return connections.frame, bucketed.buckets, bucketed.counts, repr(connections.stats)


def _split_state(rows: pl.DataFrame, cuts: list[int]) -> DerivationState:
    """Map each run of rows between ``cuts`` on its own (from its global position), merge."""
    bounds = [0, *cuts, rows.height]
    state = None
    for start, end in zip(bounds, bounds[1:], strict=False):
        part = _map(rows.slice(start, end - start), offset=start)
        state = part if state is None else merge_states(state, part)
    assert state is not None
    return state


def _ranged_outputs(
    runs: list[DerivationState],
    parts: int,
    schedule: Buckets = MINUTES,
    endpoint_parts: int | None = None,
) -> tuple[Any, ...]:
    """What an incremental ingest does (``store.rollup.stage_incremental``): the states of
    consecutive runs merged without their sessions and endpoint rows, those merged and
    finished one ``session_range`` of ``parts`` (``endpoint_range`` of ``endpoint_parts``,
    default ``parts``) at a time."""
    ranges = [session_range(p, parts) for p in range(parts)]
    e_parts = parts if endpoint_parts is None else endpoint_parts
    e_ranges = [endpoint_range(p, e_parts) for p in range(e_parts)]
    rest = runs[0]
    sessions = [rest.sessions.filter(r) for r in ranges]
    ends = [rest.endpoints.filter(r) for r in e_ranges]
    assert sum(s.height for s in sessions) == rest.sessions.height  # the ranges cover all
    assert sum(e.height for e in ends) == rest.endpoints.height
    for run in runs[1:]:
        rest = merge_states(rest, run, sessions=False, endpoints=False)
        sessions = [merge_sessions(s, run.sessions.filter(r), TCP_IDLE, OTHER_IDLE)
                    for s, r in zip(sessions, ranges, strict=True)]
        ends = [merge_endpoints(e, run.endpoints.filter(r))
                for e, r in zip(ends, e_ranges, strict=True)]
    hub = merge_hubble_edges([hubble_edges(s, rest, schedule) for s in sessions])
    table = pl.concat([finish_endpoints(e, rest.listening) for e in ends])
    connections, bucketed = finish_bucketed(rest, schedule, hub, table)
    return connections.frame, bucketed.buckets, bucketed.counts, repr(connections.stats)


def _runs(rows: pl.DataFrame, cuts: list[int]) -> list[DerivationState]:
    bounds = [0, *cuts, rows.height]
    return [_map(rows.slice(a, b - a), offset=a) for a, b in zip(bounds, bounds[1:],
                                                                   strict=False)]


def assert_same(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    for x, y in zip(a, b, strict=True):
        if isinstance(x, pl.DataFrame):
            assert x.equals(y)
        else:
            assert x == y


def _check_splits(rows: pl.DataFrame, trials: int, seed: int) -> None:
    whole = _outputs(_map(rows))
    connections, bucketed = derive_bucketed(rows, Buckets())  # the public path is the same
    assert_same(whole, (connections.frame, bucketed.buckets, bucketed.counts,
                        repr(connections.stats)))
    rnd = random.Random(seed)
    for _ in range(trials):
        cuts = sorted(rnd.sample(range(1, rows.height), rnd.randint(1, 4)))
        assert_same(_outputs(_split_state(rows, cuts)), whole)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """Generated Hubble events then Calico aggregates (mixed formats), as one run of rows."""
    directory = tmp_path_factory.mktemp("state")
    scenario = build_scenario(ScenarioConfig(seed=11))
    hubble = write_flows(scenario, directory / "h.jsonl", "hubble", 10_000)
    calico = write_flows(scenario, directory / "c.jsonl", "calico", 10_000)
    return pl.concat(
        [read_flow_file(hubble).frame.head(6_000), read_flow_file(calico).frame.head(1_500)]
    )


def test_random_splits_of_generated_data_merge_to_the_whole(generated: pl.DataFrame) -> None:
    _check_splits(generated, trials=4, seed=1)


def test_per_node_runs_merge_to_the_whole(generated: pl.DataFrame) -> None:
    """One run per exporter node (the two ends of a connection in different runs, sessions
    of one 5-tuple straddling them), in manifest order."""
    by_node = generated.sort("node", maintain_order=True, nulls_last=True)
    sizes = by_node.group_by("node", maintain_order=True).len()["len"].to_list()
    assert len(sizes) >= 3
    cuts = [sum(sizes[: i + 1]) for i in range(len(sizes) - 1)]
    state = _split_state(by_node, cuts)
    assert_same(_outputs(state), _outputs(_map(by_node)))
    # the per-node partial sessions really were joined across runs
    singles = [_map(by_node.slice(a, b - a)) for a, b in zip([0, *cuts], [*cuts, by_node.height],
                                                              strict=True)]
    assert sum(s.sessions.height for s in singles) > state.sessions.height


def test_partitioned_map_merges_to_the_whole(
    generated: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _outputs(_map(generated))
    monkeypatch.setenv(D.PARTITION_ENV, "900")
    assert_same(_outputs(_split_state(generated, [2_000, 5_000])), whole)


def test_sessions_merged_and_finished_range_by_range_equal_the_whole(
    generated: pl.DataFrame,
) -> None:
    """Per-node runs (sessions of one 5-tuple straddling them), their sessions merged and
    finished in several 5-tuple-hash ranges: the derivation of all the rows."""
    by_node = generated.sort("node", maintain_order=True, nulls_last=True)
    sizes = by_node.group_by("node", maintain_order=True).len()["len"].to_list()
    cuts = [sum(sizes[: i + 1]) for i in range(len(sizes) - 1)]
    runs = _runs(by_node, cuts)
    whole = _outputs(_map(by_node))
    for parts in (1, 3, 8):
        if parts > 1:  # every range holds sessions: the split is real
            assert all(runs[0].sessions.filter(session_range(p, parts)).height
                       for p in range(parts))
        assert_same(_ranged_outputs(runs, parts), whole)
    for e_parts in (3, 8):  # endpoint rows in ranges of their own, every range non-empty
        assert all(runs[0].endpoints.filter(endpoint_range(p, e_parts)).height
                   for p in range(e_parts))
        assert_same(_ranged_outputs(runs, 2, endpoint_parts=e_parts), whole)
    first = generated["time"].min()
    assert first is not None
    coarse = Buckets(hours_before=first.replace(hour=0, minute=0, second=0, microsecond=0)
                     + timedelta(days=1))
    assert_same(_ranged_outputs(runs, 4, coarse), _outputs(_map(by_node), coarse))


def test_coarse_schedule_of_a_merged_state(generated: pl.DataFrame) -> None:
    """Finishing under a coarser schedule gives what ``derive_bucketed`` gives under it (what
    ``store compact`` relies on), for merged states too."""
    first = generated["time"].min()
    assert first is not None
    midnight = first.replace(hour=0, minute=0, second=0, microsecond=0)
    coarse = Buckets(hours_before=midnight + timedelta(days=1))
    connections, bucketed = derive_bucketed(generated, coarse)
    merged = _split_state(generated, [3_000])
    assert_same(
        _outputs(merged, coarse),
        (connections.frame, bucketed.buckets, bucketed.counts, repr(connections.stats)),
    )


def test_samples_split_anywhere_merge_to_the_whole(shared_dir: Path) -> None:
    files = sorted((shared_dir / "samples" / "hubble").glob("*.json")) + sorted(
        (shared_dir / "samples" / "calico").glob("*.jsonl")
    )
    rows = pl.concat([read_flow_file(f).frame for f in files], how="vertical_relaxed")
    assert rows.height > 800
    _check_splits(rows, trials=4, seed=2)
    # every single-row boundary in the smallest samples too
    small = rows.head(60)
    whole = _outputs(_map(small))
    for cut in range(1, small.height):
        assert_same(_outputs(_split_state(small, [cut])), whole)


# --- the cases that are not decomposable naively, by hand ----------------------------------


def _every_split_equal(rows: pl.DataFrame) -> tuple[Any, ...]:
    """Every split in two equals the whole, merged whole and merged range by range (the
    incremental ingest's way; 5-tuple-hash ranges of 1 to 4)."""
    whole = _outputs(_map(rows))
    for cut in range(1, rows.height):
        assert_same(_outputs(_split_state(rows, [cut])), whole)
        for parts in (1, 2, 4):
            assert_same(_ranged_outputs(_runs(rows, [cut]), parts), whole)
    return whole


# Each case: its rows (built with the ``flow`` fixture) and what the whole derivation of them
# must say besides every split equalling it.
Flow = Callable[..., dict[str, Any]]
Check = Callable[[pl.DataFrame, tuple[Any, ...]], None]


def _straddling_rows(flow: Flow) -> list[dict[str, Any]]:
    # 0, 50, 100 s: one session (gaps of 50 s < 60 s) only when the 50 s row is seen; the
    # run holding 0 and 100 alone would count two
    return [flow(0, node="n1"), flow(100, node="n1"), flow(50, node="n2"), flow(200, node="n2")]


def _straddling_check(rows: pl.DataFrame, whole: tuple[Any, ...]) -> None:
    assert whole[0][CONNECTIONS].sum() == 2
    assert _outputs(_map(rows.head(2)))[0][CONNECTIONS].sum() == 2  # 0 and 100 apart


_UNDECIDED = dict(tcp_flags="ACK", is_reply=None, direction=None, src_port=40001)


def _listening_rows(flow: Flow) -> list[dict[str, Any]]:
    # ACK-only rows 40000 -> 8080 are undecided; a later SYN to 8080 makes 8080 listening and
    # so them requests; a still later SYN to 40000 makes the source port listening too, and
    # the rule no longer decides them
    return [
        flow(0, **_UNDECIDED),
        flow(1, **_UNDECIDED),
        flow(10, src_port=40002),  # SYN: 8080 listens
        flow(20, src_port=50000, dst_port=40001),  # SYN to 40001: it listens too
        flow(30, **_UNDECIDED),
    ]


def _listening_check(rows: pl.DataFrame, whole: tuple[Any, ...]) -> None:
    assert "undecidable" in whole[3] and "undecidable=3" in whole[3]
    first_three = _outputs(_map(rows.head(3)))
    assert "decided_by_ports=2" in first_three[3]  # before the SYN to 40001 they were requests


def _relabel_rows(flow: Flow) -> list[dict[str, Any]]:
    return [
        flow(0, src_labels=["app=web", "v=1"]),
        flow(5, src_labels=[], src_port=40010),
        flow(9, src_labels=["app=web", "v=2"], src_port=40011),
        flow(9, src_labels=[], src_port=40012),
    ]


def _relabel_check(rows: pl.DataFrame, whole: tuple[Any, ...]) -> None:
    assert whole[0]["src_labels"].to_list() == [["app=web", "v=2"]]


def _ties_rows(flow: Flow) -> list[dict[str, Any]]:
    # equal times on two nodes: which node is "first" is decided by the row's position
    return [
        flow(0, node="n2", direction="ingress", observation_point="TO_ENDPOINT"),
        flow(0, node="n1"),
        flow(0, node="n3", direction="ingress", observation_point="TO_ENDPOINT"),
        flow(0, node="n0"),
    ]


def _ties_check(rows: pl.DataFrame, whole: tuple[Any, ...]) -> None:
    frame_ = whole[0]
    assert frame_["src_node"].to_list() == ["n1"] and frame_["dst_node"].to_list() == ["n2"]
    assert frame_["nodes"].to_list() == [["n0", "n1", "n2"]]


def _mixed_rows(flow: Flow) -> list[dict[str, Any]]:
    calico = dict(source_format="calico", tcp_flags=None, is_reply=None, flow_count=3)
    return [
        flow(0),
        flow(1, reporter="src", node="n1", **calico),
        flow(2, reporter="dst", node="n2", verdict="dropped", **calico),
        flow(70, reporter="dst", node="n2", **calico),
        flow(90),
    ]


def _nothing_more(rows: pl.DataFrame, whole: tuple[Any, ...]) -> None:
    """Every split equalling the whole is the whole check."""


@pytest.mark.parametrize(
    ("rows_of", "check"),
    [
        pytest.param(_straddling_rows, _straddling_check, id="session-straddling-the-split"),
        pytest.param(_listening_rows, _listening_check,
                     id="undecided-rows-change-fate-when-a-later-part-adds-a-listening-port"),
        pytest.param(_relabel_rows, _relabel_check,
                     id="label-changes-across-parts-take-the-latest"),
        pytest.param(_ties_rows, _ties_check, id="ties-in-time-resolve-by-position"),
        pytest.param(_mixed_rows, _nothing_more, id="calico-and-hubble-mixed"),
    ],
)
def test_every_split_of_a_hand_made_case_equals_the_whole(
    frame: Frame, flow: Flow, rows_of: Callable[[Flow], list[dict[str, Any]]], check: Check
) -> None:
    rows = frame(*rows_of(flow))
    check(rows, _every_split_equal(rows))


def test_endpoint_rows_of_one_key_from_two_runs_merge_in_their_range(
    frame: Frame, flow: Callable[..., dict[str, Any]]
) -> None:
    # the source pod is seen by a decided request in the first run and relabelled by an
    # undecided row (a request once 8080 listens) in the second: its rows of both runs lie in
    # one range (its key's hash) and merge there; most of 8 ranges hold no row at all
    rows = frame(
        flow(0, src_labels=["app=web", "v=1"]),
        flow(5, src_labels=["app=web", "v=2"], **_UNDECIDED),
        flow(9, src_port=40002, src_labels=[]),
    )
    runs = _runs(rows, [1])
    key = runs[0].endpoints.filter(pl.col("_pending").not_())["key"][0]
    assert key in runs[1].endpoints["key"].to_list()
    whole = _outputs(_map(rows))
    assert whole[0]["src_labels"].to_list() == [["app=web", "v=2"]]
    for parts in (1, 2, 8):
        heights = [runs[0].endpoints.filter(endpoint_range(p, parts)).height
                   for p in range(parts)]
        assert parts < 8 or heights.count(0) >= 6  # ranges with no rows finish as nothing
        assert_same(_ranged_outputs(runs, 1, endpoint_parts=parts), whole)


def test_derive_connections_is_the_unbucketed_finish(generated: pl.DataFrame) -> None:
    merged = _split_state(generated, [1_000, 4_000])
    connections, _ = finish_bucketed(merged, Buckets())
    direct = derive_connections(generated)
    assert connections.frame.equals(direct.frame)
    assert connections.stats == direct.stats


def test_the_state_is_far_smaller_than_the_rows(generated: pl.DataFrame) -> None:
    state = _map(generated)
    held = sum(getattr(state, name).height for name in DerivationState.frames())
    assert state.rows == generated.height
    assert held < generated.height / 2
    assert json.dumps(sorted(DerivationState.frames()))  # the persisted frames are named


def test_conformed_empty_run_merges_as_nothing(generated: pl.DataFrame) -> None:
    empty = conform(generated.head(0))
    state = merge_states(_map(generated), _map(empty, offset=generated.height))
    assert_same(_outputs(state), _outputs(_map(generated)))
