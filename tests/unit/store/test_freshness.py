"""The stale-rollup hint (``store.freshness``): a reading command is told once why the store's
rollup is not used and what to run, but only when there is a rollup that went stale -- not when
it is switched off (``ANALYZER_NO_ROLLUP=1``) or the store never had one."""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest

from analyzer.connections import Buckets
from analyzer.errors import StaleRollupWarning
from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from analyzer.store import FlowStore, ingest
from analyzer.store import rollup as R
from analyzer.store.freshness import stale_reason
from analyzer.store.pipeline import rebuild_rollup


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("fresh-cap")
    scenario = build_scenario(ScenarioConfig(seed=5))
    full = write_flows(scenario, directory / "all.jsonl", "hubble", 10_000)
    lines = full.read_bytes().splitlines(keepends=True)
    first, second = directory / "first.jsonl", directory / "second.jsonl"
    first.write_bytes(b"".join(lines[:3000]))
    second.write_bytes(b"".join(lines[3000:4000]))
    return first, second


@pytest.fixture
def store(tmp_path: Path, captures: tuple[Path, Path]) -> Path:
    root = tmp_path / "store"
    ingest(root, [str(captures[0])])
    return root


def _notes(root: Path) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FlowStore.open(root).rollup()
    return [str(w.message) for w in caught if issubclass(w.category, StaleRollupWarning)]


def _commit_without_rollup(root: Path, other: Path, tmp: Path) -> None:
    """What a live commit does: parts added, the rollup left as it was."""
    ingest(tmp / "other", [str(other)])
    entry = FlowStore.open(tmp / "other").manifest()[0]
    opened = FlowStore.open(root)  # before staging: opening cleans up leftover staging
    staged = root / ".tmp-live"
    staged.mkdir()
    for part in entry.parts:
        shutil.copy(tmp / "other" / "flows" / part, staged / part)
    with opened.lock():
        assert opened.commit(staged, [dataclasses.replace(entry, ingest_id="y" * 64)])


def test_a_fresh_rollup_says_nothing(store: Path) -> None:
    assert FlowStore.open(store).rollup() is not None
    assert _notes(store) == []


def test_parts_committed_since_the_rollup(
    store: Path, captures: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commit_without_rollup(store, captures[1], tmp_path)
    (note,) = _notes(store)
    assert "connection rollup is stale (1 flow part(s) committed since it was built" in note
    assert f"run 'analyzer store rebuild --store {store}'" in note
    monkeypatch.setenv("ANALYZER_NO_ROLLUP", "1")  # asked for: no hint
    assert _notes(store) == []
    monkeypatch.delenv("ANALYZER_NO_ROLLUP")
    rebuild_rollup(store)
    assert _notes(store) == []


def test_an_upgrade_that_bumps_the_rollup_version(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(R, "ROLLUP_VERSION", R.ROLLUP_VERSION + 1)
    (note,) = _notes(store)
    assert (
        f"built in rollup format {R.ROLLUP_VERSION - 1} and this analyzer reads format "
        f"{R.ROLLUP_VERSION}" in note
    )
    rebuild_rollup(store)
    assert _notes(store) == []


def test_a_rollup_under_another_key_of_the_same_version(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other schemas, or a key computed as analyzers before the versioned key did."""
    monkeypatch.setattr(R, "rollup_fingerprint", lambda: "another analyzer's")
    (note,) = _notes(store)
    assert "built by another version of the analyzer" in note


def test_an_upgrade_that_keeps_the_derivation_says_nothing(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only versions and schemas key a rollup: new source text (here: new polars, which the
    state's key holds but the rollup's does not) leaves it fresh."""
    before = FlowStore.open(store).rollup()
    monkeypatch.setattr(R.pl, "__version__", "99.0.0")
    assert FlowStore.open(store).rollup() == before
    assert _notes(store) == []


def test_another_bucket_schedule(store: Path) -> None:
    R.write_schedule(store, Buckets(hours_before=datetime(2030, 1, 1, tzinfo=UTC)))
    (note,) = _notes(store)
    assert "another bucket schedule" in note


def test_a_store_that_never_had_a_rollup_says_nothing(store: Path) -> None:
    shutil.rmtree(store / R.ROLLUP_DIR)
    assert FlowStore.open(store).rollup() is None
    assert _notes(store) == []
    assert stale_reason(store, FlowStore.open(store).part_names()) is None


def test_an_unreadable_description_still_says_stale(store: Path) -> None:
    (store / R.ROLLUP_DIR / R.INDEX).write_text("{")
    for path in (store / R.ROLLUP_DIR).glob("connections-*.parquet"):
        path.write_bytes(b"PAR1 broken")
    (note,) = _notes(store)
    assert "rollup.json is missing or unreadable" in note
