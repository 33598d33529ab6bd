"""Time windows over the rollup (issue 11): a window is the whole-store derivation's connections
observed in the window's time buckets, rounded out to whole buckets; the rollup and the raw
fallback (``ANALYZER_NO_ROLLUP=1``) give the same answer; ``compact_store`` coarsens old
buckets without changing the whole-store answer, and windows still work at the coarse grain."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from analyzer.analysis import Analysis, Scope
from analyzer.analysis.connection_source import connections_for, flow_counts, window_of
from analyzer.analysis.inputs import StoreFlows
from analyzer.connections import (
    Buckets,
    Connections,
    derive_bucketed,
    derive_connections,
    window_connections,
)
from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from analyzer.schema import CONNECTIONS
from analyzer.store import FlowStore, ingest
from analyzer.store import rollup as R
from analyzer.store.compact import compact_store

DAY = timedelta(days=1)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One generated hour of Hubble events (2026-11-02 09:00-10:00), and the same hour on the
    next two days (the text of each time shifted): a store of three days."""
    directory = tmp_path_factory.mktemp("rollup-days")
    scenario = build_scenario(ScenarioConfig(seed=5))
    full = write_flows(scenario, directory / "all.jsonl", "hubble", 10_000)
    text = b"".join(full.read_bytes().splitlines(keepends=True)[:5000])
    first = directory / "d0.jsonl"
    first.write_bytes(text)
    files = [first]
    for n in (1, 2):
        path = directory / f"d{n}.jsonl"
        shifted = f'"time":"2026-11-0{2 + n}T'.encode()
        path.write_bytes(text.replace(b'"time":"2026-11-02T', shifted))
        files.append(path)
    return files


@pytest.fixture(scope="module")
def pristine(days: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("rollup-days-store") / "store"
    for path in days:
        ingest(store, [str(path)])
    return store


@pytest.fixture
def store(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(pristine, copy)
    return copy


def _window(store: Path, since: str | None, until: str | None) -> Connections:
    scope = Scope.parse(since=since, until=until)
    return connections_for(StoreFlows(FlowStore.open(store)), scope)


def _raw_window(store: Path, since: str | None, until: str | None) -> Connections:
    os.environ[R.ROLLUP_ENV] = "1"
    try:
        return _window(store, since, until)
    finally:
        del os.environ[R.ROLLUP_ENV]


def _same(a: Connections, b: Connections) -> None:
    assert a.frame.equals(b.frame)
    assert a.stats == b.stats


WINDOWS = [
    ("2026-11-02T09:20:00Z", "2026-11-02T09:40:00Z"),  # whole minutes: used as given
    ("2026-11-03T09:20:30Z", "2026-11-03T09:40:10Z"),  # rounded out to minutes
    ("2026-11-03T00:00:00Z", None),
    (None, "2026-11-03T09:30:00Z"),
    ("2030-01-01T00:00:00Z", None),  # after every flow: empty
]


@pytest.mark.parametrize(("since", "until"), WINDOWS)
def test_a_window_reads_the_buckets_and_equals_the_raw_definition(
    store: Path, since: str | None, until: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = _raw_window(store, since, until)
    calls: list[int] = []
    real = R.Rollup.bucketed
    monkeypatch.setattr(R.Rollup, "bucketed", lambda self: calls.append(1) or real(self))
    got = _window(store, since, until)
    assert calls, "the window did not read the rollup's buckets"
    _same(got, raw)
    rounded = any(t is not None and _t(t).second for t in (since, until))
    assert rounded == any("rounded out to whole buckets" in w for w in got.stats.warnings)
    if since == "2030-01-01T00:00:00Z":
        assert got.frame.height == 0 and got.stats.rows_in == 0


def test_windows_partition_the_store(store: Path) -> None:
    """Adjacent windows count every connection once (in the bucket of its first event) and
    every flow row once (by its own time), so they add up to the whole store; the edges of a
    window are edges of the whole store with its identities and labels."""
    whole = connections_for(StoreFlows(FlowStore.open(store)), Scope())
    cuts = [None, "2026-11-02T09:30:00Z", "2026-11-03T00:00:00Z", "2026-11-04T09:59:00Z", None]
    parts = [_window(store, a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    assert sum(p.stats.rows_in for p in parts) == whole.stats.rows_in
    assert sum(p.stats.requests for p in parts) == whole.stats.requests
    assert sum(int(p.frame[CONNECTIONS].sum()) for p in parts) == whole.stats.connections
    identity = ["src_key", "dst_key", "protocol", "dst_port", "outcome", "src_labels",
                "dst_labels", "src_group", "dst_group"]
    for part in parts:
        assert part.frame.select(identity).join(
            whole.frame.select(identity), on=identity, how="anti", nulls_equal=True
        ).height == 0
    # a day of the three holds a third of each edge's connections (the same hour replayed)
    day = _window(store, "2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z")
    assert day.stats.rows_in * 3 == whole.stats.rows_in


def test_whole_store_without_buckets_is_unchanged(store: Path) -> None:
    flows = FlowStore.open(store).scan()
    plain = derive_connections(flows)
    connections, bucketed = derive_bucketed(flows, Buckets())
    _same(connections, plain)
    # the unbounded window sums every bucket: the whole store again
    everything = window_connections(bucketed, None, None)
    assert everything.frame.equals(plain.frame)
    assert everything.stats == plain.stats


def _recommend_json(store: Path) -> str:
    analysis = Analysis(StoreFlows(FlowStore.open(store)), Scope())
    return json.dumps(analysis.recommendation().to_json(), sort_keys=True, default=str)


def test_compaction_keeps_the_whole_store_answer_and_coarsens_windows(store: Path) -> None:
    before_json = _recommend_json(store)
    before = FlowStore.open(store).rollup()
    assert before is not None
    minute_rows = before.bucketed().buckets.height
    before_connections = before.connections()
    # ages counted back from 2026-11-05: hours before 11-04, days before 11-03
    done = compact_store(
        store, hours_after=DAY, days_after=2 * DAY, now=_t("2026-11-05T00:00:00Z")
    )
    assert done.after == Buckets(_t("2026-11-04T00:00:00Z"), _t("2026-11-03T00:00:00Z"))
    assert done.bucket_rows_before == minute_rows > done.bucket_rows_after
    after = FlowStore.open(store).rollup()
    assert after is not None and after.key != before.key
    _same(after.connections(), before_connections)
    assert _recommend_json(store) == before_json
    # the coarse rollup equals a derivation made under the coarse schedule from the start
    _, direct = derive_bucketed(FlowStore.open(store).scan(), done.after)
    assert after.bucketed().buckets.equals(direct.buckets)
    assert after.bucketed().counts.equals(direct.counts)
    # a minute window on the day-bucketed 11-02 is the whole day, on 11-03 the hour; on 11-04
    # still minutes
    source = StoreFlows(FlowStore.open(store))
    scope = Scope.parse(since="2026-11-02T09:20:00Z", until="2026-11-02T09:40:00Z")
    assert window_of(source, scope) == (_t("2026-11-02T00:00:00Z"), _t("2026-11-03T00:00:00Z"))
    scope = Scope.parse(since="2026-11-03T09:20:00Z", until="2026-11-03T09:40:00Z")
    assert window_of(source, scope) == (_t("2026-11-03T09:00:00Z"), _t("2026-11-03T10:00:00Z"))
    scope = Scope.parse(since="2026-11-04T09:20:00Z", until="2026-11-04T09:40:00Z")
    assert window_of(source, scope) == (_t("2026-11-04T09:20:00Z"), _t("2026-11-04T09:40:00Z"))
    for since, until in [*WINDOWS, ("2026-11-02T09:20:00Z", "2026-11-02T09:40:00Z")]:
        got, raw = _window(store, since, until), _raw_window(store, since, until)
        _same(got, raw)
    day = _window(store, "2026-11-02T09:20:00Z", "2026-11-02T09:40:00Z")
    assert day.stats.rows_in * 3 == before.records
    assert "days before 2026-11-03T00:00:00Z" in day.stats.warnings[-1]
    counts = flow_counts(source, Scope.parse(since="2026-11-02T09:20:00Z"))
    assert counts.records == before.records


def test_compaction_only_merges_and_a_repeat_is_a_no_op(store: Path, days: list[Path]) -> None:
    now = _t("2026-11-05T00:00:00Z")
    first = compact_store(store, hours_after=DAY, days_after=None, now=now)
    assert first.after == Buckets(hours_before=_t("2026-11-04T00:00:00Z"))
    # an earlier boundary never splits hours back into minutes
    again = compact_store(store, hours_after=3 * DAY, days_after=None, now=now)
    assert again.after == again.before == first.after
    assert again.rollup.key == first.rollup.key
    # the next ingest keeps the schedule: its rollup is bucketed the same way
    fourth = store.parent / "d3.jsonl"
    fourth.write_bytes(
        days[0].read_bytes().replace(b'"time":"2026-11-02T', b'"time":"2026-11-05T')
    )
    ingest(store, [str(fourth)])
    rollup = FlowStore.open(store).rollup()
    assert rollup is not None and rollup.schedule == first.after
    _, direct = derive_bucketed(FlowStore.open(store).scan(), first.after)
    assert rollup.bucketed().buckets.equals(direct.buckets)
    _same(_window(store, "2026-11-02T09:20:00Z", None),
          _raw_window(store, "2026-11-02T09:20:00Z", None))


def test_a_compaction_killed_after_its_commit_point_serves_the_same_answers(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between replacing the schedule and publishing the coarse rollup: readers find
    no fresh rollup and derive under the new schedule (same answers); recovery publishes the
    staged rollup."""
    expected_whole = connections_for(StoreFlows(FlowStore.open(store)), Scope())

    def killed(root: Path, staged: Path, parts: object) -> None:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr("analyzer.store.compact.publish_rollup", killed)
    monkeypatch.setattr("analyzer.store.compact.shutil.rmtree", lambda *a, **k: None)
    with pytest.raises(KeyboardInterrupt):
        compact_store(store, hours_after=DAY, days_after=None, now=_t("2026-11-05T00:00:00Z"))
    monkeypatch.undo()
    opened = FlowStore(store)  # no recovery yet
    assert R.read_schedule(store) == Buckets(hours_before=_t("2026-11-04T00:00:00Z"))
    assert opened.rollup() is None
    _same(connections_for(StoreFlows(opened), Scope()), expected_whole)
    stale = _window(store, "2026-11-02T09:20:00Z", None)
    recovered = FlowStore.open(store)  # recovers: publishes the staged rollup
    assert recovered.rollup() is not None
    assert not list(store.glob(".tmp-*"))
    _same(_window(store, "2026-11-02T09:20:00Z", None), stale)


def test_schedules_round_and_validate() -> None:
    b = Buckets(_t("2026-11-04T00:00:00Z"), _t("2026-11-03T00:00:00Z"))
    assert b.floor(_t("2026-11-02T09:20:30Z")) == _t("2026-11-02T00:00:00Z")
    assert b.ceil(_t("2026-11-02T09:20:30Z")) == _t("2026-11-03T00:00:00Z")
    assert b.floor(_t("2026-11-03T09:20:30Z")) == _t("2026-11-03T09:00:00Z")
    assert b.ceil(_t("2026-11-03T09:00:00Z")) == _t("2026-11-03T09:00:00Z")
    assert b.floor(_t("2026-11-04T09:20:30Z")) == _t("2026-11-04T09:20:00Z")
    assert b.ceil(_t("2026-11-04T09:20:30Z")) == _t("2026-11-04T09:21:00Z")
    assert Buckets.from_json(b.to_json()) == b
    frame = pl.DataFrame(
        {"t": [_t("2026-11-02T09:20:30Z"), _t("2026-11-03T09:20:30Z"), None]}
    ).with_columns(pl.col("t").cast(pl.Datetime("us", "UTC")))
    got = frame.select(b.expr(pl.col("t")))["t"].to_list()
    assert got == [_t("2026-11-02T00:00:00Z"), _t("2026-11-03T09:00:00Z"), None]
    with pytest.raises(ValueError, match="UTC midnight"):
        Buckets(hours_before=_t("2026-11-04T01:00:00Z"))
    with pytest.raises(ValueError, match="schedule"):
        Buckets.from_json({"version": 1, "grain": "5m"})
    # coarsening rounds down to midnight and never lets days pass hours
    c = Buckets.coarsened(Buckets(), None, _t("2026-11-05T07:00:00Z"))
    assert c == Buckets(_t("2026-11-05T00:00:00Z"), _t("2026-11-05T00:00:00Z"))


def test_calico_windows_equal_the_raw_definition(tmp_path: Path) -> None:
    """Calico aggregates: which reporter counts is decided over the whole edge, so the
    buckets add up to the edge and windows agree with the raw fallback."""
    scenario = build_scenario(ScenarioConfig(seed=9))
    path = write_flows(scenario, tmp_path / "calico.jsonl", "calico", 10_000)
    store = tmp_path / "store"
    ingest(store, [str(path)])
    whole = connections_for(StoreFlows(FlowStore.open(store)), Scope())
    first = FlowStore.open(store).scan().select(pl.col("time").min()).collect().item()
    middle = (first + timedelta(minutes=47)).strftime("%Y-%m-%dT%H:%M:%SZ")
    a, b = _window(store, None, middle), _window(store, middle, None)
    _same(a, _raw_window(store, None, middle))
    _same(b, _raw_window(store, middle, None))
    assert a.frame.height and b.frame.height
    total = int(a.frame[CONNECTIONS].sum()) + int(b.frame[CONNECTIONS].sum())
    assert total == whole.stats.connections
