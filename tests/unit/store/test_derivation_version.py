"""The guard behind keying stored derivations by version, not by source (docs/rollup.md,
"Versions"): a fixed fixture's derivation state, rollup and ``stats``/``explain`` tables are
digested and compared with the digests recorded in ``derivation_digests.json``. When what a
store holds changes for the same flows while ``STATE_VERSION``, ``ROLLUP_VERSION`` or
``SUMMARY_VERSION`` did not, stores written by the previous code would be read as this code's:
the test fails and says which version to bump. After a bump (or a change to the fixture
itself), re-record::

    .venv/bin/python -m tests.unit.store.test_derivation_version --record

The digests ignore what does not matter: row order within a file (group-bys, hash ranges),
the order of the connections file (the buckets name their edge by content, not row number),
and the values of polars' 64-bit hashes in the state (they depend on the polars version,
which the state's key holds apart): endpoint-key hashes are replaced by the keys they stand
for, and the sessions' 5-tuple hash by the grouping it makes.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analyzer.connections import EDGE_INDEX, DerivationState
from analyzer.connections._state import STATE_VERSION
from analyzer.generate import ScenarioConfig, build_scenario, write_flows
from analyzer.store import FlowStore, ingest
from analyzer.store import rollup as R
from analyzer.store.flow_summary import SUMMARY_VERSION, read_endpoints, read_summary
from tests.unit.store._helpers import node_capture

RECORDED = Path(__file__).with_name("derivation_digests.json")
RECORD_COMMAND = ".venv/bin/python -m tests.unit.store.test_derivation_version --record"
# what each digest covers: (the constant to bump, where it lives)
VERSIONS = {
    "state": ("STATE_VERSION", "analyzer/connections/_state.py"),
    "rollup": ("ROLLUP_VERSION", "analyzer/store/rollup.py"),
    "summary": ("SUMMARY_VERSION", "analyzer/store/flow_summary.py"),
}


def current_versions() -> dict[str, int]:
    return {"state": STATE_VERSION, "rollup": R.ROLLUP_VERSION, "summary": SUMMARY_VERSION}


# --- the fixture -------------------------------------------------------------------------------


def build_fixture(directory: Path) -> tuple[Path, list[Path]]:
    """A store of generated Hubble events split per exporter node plus Calico aggregates of
    another scenario, each file ingested on its own (so the state is merged across ingests:
    sessions, listening ports and labels straddle files); returns the store and its inputs."""
    (directory / "hubble").mkdir(parents=True, exist_ok=True)
    _, _, nodes = node_capture(directory / "hubble", seed=25, events=10_000)
    calico = write_flows(
        build_scenario(ScenarioConfig(seed=26)), directory / "calico.jsonl", "calico", 1_500
    )
    inputs = [*nodes, calico]
    store = directory / "store"
    for path in inputs:
        ingest(store, [str(path)])
    return store, inputs


# --- canonical digests -------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value // timedelta(microseconds=1)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _line(values: Iterable[Any]) -> str:
    return json.dumps(_plain(list(values)), sort_keys=True)


def _rows(frame: pl.DataFrame) -> list[str]:
    """The frame's rows as a sorted list (row order is not what a store means)."""
    return sorted(_line(row) for row in frame.iter_rows())


def _columns(frame: pl.DataFrame) -> list[list[str]]:
    return [[name, R.dtype_token(dtype)] for name, dtype in frame.schema.items()]


def _digest(doc: Any) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def state_digest(state: DerivationState) -> str:
    """The state's frames as sets of rows, independent of polars' hash values."""
    keys = state.endpoints["key"].drop_nulls().unique()
    hashed = state.endpoints.select(pl.col("key").hash().alias("h"), pl.col("_kh"))
    assert (hashed["h"] == hashed["_kh"]).all(), "endpoint rows' _kh is no longer hash(key)"
    names = dict(zip(keys.hash().to_list(), keys.to_list(), strict=True))
    doc: dict[str, Any] = {
        "rows": state.rows,
        "idle": [_plain(state.tcp_idle), _plain(state.other_idle)],
    }
    for name in DerivationState.frames():
        frame: pl.DataFrame = getattr(state, name)
        if name == "endpoints":
            frame = frame.drop("_kh")
        if name != "sessions":
            doc[name] = [_columns(frame), _rows(frame)]
            continue
        # every other 64-bit column holds an endpoint key's hash: the key it stands for
        hashes = [c for c, t in frame.schema.items() if t == pl.UInt64() and c != "_h"]
        frame = frame.with_columns(
            pl.col(c).replace_strict(names, default="(unmapped)", return_dtype=pl.String())
            for c in hashes
        )
        groups = sorted(
            _line(_rows(group.drop("_h"))) for _, group in frame.group_by("_h")
        )
        doc[name] = [_columns(frame), groups]
    return _digest(doc)


def rollup_digest(rollup: R.Rollup) -> str:
    """The rollup's three files and metadata, the buckets naming their edge by its row."""
    bucketed = rollup.bucketed()
    edges = [_line(row) for row in bucketed.frame.iter_rows()]
    buckets = bucketed.buckets.with_columns(
        pl.col(EDGE_INDEX).map_elements(edges.__getitem__, return_dtype=pl.String())
    )
    doc = {
        "connections": [_columns(bucketed.frame), sorted(edges)],
        "buckets": [_columns(buckets), _rows(buckets)],
        "counts": [_columns(bucketed.counts), _rows(bucketed.counts)],
        "stats": _plain(R._stats_json(rollup.stats)),
        "records": [rollup.records, rollup.masked],
        "schedule": rollup.schedule.to_json(),
    }
    return _digest(doc)


def summary_digest(rollup: R.Rollup) -> str:
    """The ``stats`` summary and ``explain``'s endpoint table the rollup carries."""
    summary, seen = read_summary(rollup.path), read_endpoints(rollup.path)
    assert summary is not None and seen is not None
    return _digest({name: [_columns(f), _rows(f)] for name, f in (("summary", summary),
                                                                  ("seen", seen))})


def inputs_digest(inputs: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in inputs:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def record_of(store: Path, inputs: list[Path]) -> dict[str, Any]:
    """The record of this code: the fixture's digest, and per stored thing its version and
    digest."""
    opened = FlowStore.open(store)
    rollup = opened.rollup()
    state = R.read_state(store, opened.part_names())
    assert rollup is not None and state is not None
    digests = {
        "state": state_digest(state),
        "rollup": rollup_digest(rollup),
        "summary": summary_digest(rollup),
    }
    versions = current_versions()
    return {
        "fixture": inputs_digest(inputs),
        **{name: {"version": versions[name], "digest": digests[name]} for name in VERSIONS},
    }


def problems(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What a developer must do for ``now`` to match ``recorded`` (empty: nothing)."""
    if recorded["fixture"] != now["fixture"]:
        return [
            "the fixture's flows changed (the generator?), so the digests cannot tell whether "
            f"the derivation did: re-record them ({RECORD_COMMAND}), and bump a version if "
            "what stores hold changed too"
        ]
    found = []
    for name, (constant, where) in VERSIONS.items():
        old, new = recorded[name], now[name]
        if old["digest"] != new["digest"] and old["version"] == new["version"]:
            found.append(
                f"what the {name} holds for the same flows changed but {constant} did not: "
                f"stores written by the previous code would be read as this code's. Bump "
                f"{constant} in {where} (their {name} then counts as another version's: "
                f"derived again, or refused where raw flows were not kept; docs/rollup.md, "
                f"\"Versions\") and re-record the digests: {RECORD_COMMAND}"
            )
        elif old != new:
            found.append(
                f"{constant} is {new['version']} but the digests were recorded for "
                f"{old['version']}: re-record them ({RECORD_COMMAND})"
            )
    return found


# --- tests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    return build_fixture(tmp_path_factory.mktemp("derivation"))


def test_stored_derivations_change_only_with_their_version(
    fixture_store: tuple[Path, list[Path]],
) -> None:
    now = record_of(*fixture_store)
    recorded = json.loads(RECORDED.read_text())
    found = problems(recorded, now)
    assert not found, "\n".join(found)


def test_the_fixture_covers_what_the_state_merges(fixture_store: tuple[Path, list[Path]]) -> None:
    """A guard that digests an empty frame guards nothing: every frame holds rows, Calico and
    Hubble inputs both, and sessions whose two ends came in different ingests (one file per
    node: their first and last node differ)."""
    store, _ = fixture_store
    opened = FlowStore.open(store)
    state = R.read_state(store, opened.part_names())
    assert state is not None
    for name in DerivationState.frames():
        assert getattr(state, name).height > 0, name
    formats = {e.format for e in opened.manifest()}
    assert {"hubble", "calico"} <= formats
    assert len(opened.manifest()) >= 4
    assert state.sessions.filter(pl.col("n0") != pl.col("n1")).height > 0


def test_the_digests_ignore_row_order_and_hash_values(
    fixture_store: tuple[Path, list[Path]],
) -> None:
    store, _ = fixture_store
    opened = FlowStore.open(store)
    state = R.read_state(store, opened.part_names())
    assert state is not None
    shuffled = DerivationState(
        rows=state.rows,
        tcp_idle=state.tcp_idle,
        other_idle=state.other_idle,
        **{n: getattr(state, n).sample(fraction=1.0, shuffle=True, seed=1)
           for n in DerivationState.frames()},
    )
    assert state_digest(shuffled) == state_digest(state)
    # the 5-tuple hash's values (another polars) do not matter, the grouping it makes does
    renumbered = _with(state, sessions=state.sessions.with_columns(pl.col("_h") // 3 * 7 + 1))
    assert state_digest(renumbered) == state_digest(state)
    merged = _with(state, sessions=state.sessions.with_columns(pl.lit(0, pl.UInt64()).alias("_h")))
    assert state_digest(merged) != state_digest(state)


def test_the_digests_see_one_changed_value(fixture_store: tuple[Path, list[Path]]) -> None:
    store, _ = fixture_store
    opened = FlowStore.open(store)
    state = R.read_state(store, opened.part_names())
    assert state is not None
    base = state_digest(state)
    for name in DerivationState.frames():
        frame: pl.DataFrame = getattr(state, name)
        column = next(c for c, t in frame.schema.items() if t in (pl.Int64(), pl.Int32()))
        changed = frame.with_columns(
            # one row's value (the first that has one: the state's row order is free)
            pl.when(pl.int_range(pl.len()) == pl.col(column).is_not_null().arg_max())
            .then(pl.col(column) + 1)
            .otherwise(pl.col(column)).alias(column)
        )
        assert state_digest(_with(state, **{name: changed})) != base, name


def test_a_changed_digest_without_a_bump_is_reported_with_what_to_do() -> None:
    recorded = {"fixture": "f", **{n: {"version": 3, "digest": "a"} for n in VERSIONS}}
    same = json.loads(json.dumps(recorded))
    assert problems(recorded, same) == []
    changed = json.loads(json.dumps(recorded))
    changed["state"]["digest"] = "b"
    (message,) = problems(recorded, changed)
    assert "Bump STATE_VERSION in analyzer/connections/_state.py" in message
    assert RECORD_COMMAND in message
    changed["state"]["version"] = 4  # bumped: only the record is behind
    (message,) = problems(recorded, changed)
    assert "re-record" in message and "Bump" not in message
    refixtured = {**recorded, "fixture": "g"}
    (message,) = problems(recorded, refixtured)
    assert "fixture's flows changed" in message


def test_the_keys_do_not_depend_on_how_polars_prints_types(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys hold the schemas' types, spelled by ``dtype_token``, not by polars' ``repr``
    (which changes between versions: the rollup's key must not)."""
    rollup, state = R.rollup_fingerprint(), R.state_fingerprint()
    for dtype in (pl.List, pl.Datetime, pl.String, pl.UInt64):
        monkeypatch.setattr(dtype, "__repr__", lambda self: "printed otherwise")
        monkeypatch.setattr(dtype, "__str__", lambda self: "printed otherwise")
    assert (R.rollup_fingerprint(), R.state_fingerprint()) == (rollup, state)
    assert R.dtype_token(pl.String) == R.dtype_token(pl.String()) == "String"
    assert R.dtype_token(pl.List(pl.Datetime("us", "UTC"))) == "List(Datetime(us,UTC))"
    monkeypatch.undo()
    monkeypatch.setattr(R, "ROLLUP_VERSION", R.ROLLUP_VERSION + 1)
    assert R.rollup_fingerprint() != rollup  # a version bump does change it


def _with(state: DerivationState, **frames: pl.DataFrame) -> DerivationState:
    values = {n: getattr(state, n) for n in DerivationState.frames()} | frames
    return DerivationState(
        rows=state.rows, tcp_idle=state.tcp_idle, other_idle=state.other_idle, **values
    )


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        record = record_of(*build_fixture(Path(tmp)))
    RECORDED.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"recorded {RECORDED}")
