"""The connection rollup: the store's connections, derived once at ingest instead of per command.

::

    STORE/rollup/connections-<key>.parquet   CONNECTION_SCHEMA rows (one per edge); the
                                             derivation's statistics and the flow-record counts
                                             in the file's key-value metadata
    STORE/rollup/buckets-<key>.parquet       BUCKET_SCHEMA rows: each edge (its row number in
                                             the connections file) per time bucket
    STORE/rollup/counts-<key>.parquet        COUNT_SCHEMA rows: flow statistics per bucket
    STORE/rollup/rollup.json                 which files are current, for people and other readers
    STORE/buckets.json                       the bucket schedule (minutes, hours, days: which
                                             grain where); absent: minutes everywhere

``key`` is the SHA-256 of the rollup's derivation fingerprint (``ROLLUP_VERSION`` and the
schemas of its files: what the stored bytes mean, not the source text that wrote them), the
bucket schedule and the ordered part names of the manifest. A reader computes the key from the
manifest and schedule it sees and reads the rollup only when all three files of that key exist:
a rollup of other parts (a live commit, which does not rebuild it), another schedule or another
rollup version is *stale*, never read, and the caller derives from the raw flows instead (same
answer, slower). Nothing but the key decides freshness, so ``rollup.json`` is informative only.
An upgrade that does not change what the files hold keeps every rollup and derivation state
fresh; one that does must bump ``ROLLUP_VERSION`` (or ``connections._state.STATE_VERSION``), and
``tests/unit/store/test_derivation_version.py`` fails until it does (docs/rollup.md,
"Versions").

Exactness: the rollup *is* ``derive_bucketed`` over every committed flow, in manifest order
(the order the raw scan reads), so its rows and statistics equal a raw derivation of the same
store whatever files the rows came from and in whatever order they were ingested. Without a
window, the connections file is the answer; a ``--since``/``--until`` window sums the buckets
it covers (``analyzer.connections.buckets``: the window's definition, which the raw fallback
applies too).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from analyzer import schema as S
from analyzer.connections import (
    OTHER_IDLE,
    TCP_IDLE,
    BucketedConnections,
    Buckets,
    Connections,
    ConnectionStats,
    DerivationState,
    derive_state,
    endpoint_range,
    finish_bucketed,
    finish_endpoints,
    hubble_edges,
    masked_expr,
    merge_endpoints,
    merge_hubble_edges,
    merge_sessions,
    merge_states,
    session_range,
)
from analyzer.connections._dedupe import (
    ENDPOINT_PARTITION_ROWS,
    SESSION_PARTITION_ROWS,
    partition_count,
)
from analyzer.connections._state import ENDPOINT_SCHEMA, SESSION_SCHEMA, STATE_VERSION
from analyzer.connections.buckets import BUCKET_SCHEMA, COUNT_SCHEMA
from analyzer.errors import StoreError
from analyzer.store.files import atomic_write, fsync
from analyzer.store.parquet_meta import parquet_metadata

__all__ = [
    "INDEX",
    "ROLLUP_DIR",
    "SCHEDULE",
    "coarsen_rollup",
    "dtype_token",
    "read_schedule",
    "write_schedule",
    "ROLLUP_ENV",
    "Rollup",
    "build_rollup",
    "flow_record_counts",
    "publish_rollup",
    "kept_rollup_file",
    "previous_rollup_file",
    "read_kept_rollup",
    "rollup_version",
    "read_rollup",
    "remove_stale",
    "rollup_file",
    "rollup_fingerprint",
    "rollup_key",
    "stage_rollup",
    "stage_incremental",
    "has_state",
    "read_state",
    "rekey_rollup",
    "write_state",
    "state_fingerprint",
    "state_key",
]

ROLLUP_DIR = "rollup"
INDEX = "rollup.json"
# What the rollup files hold (their rows' meaning, not the code that writes them): bump it with
# every change that changes their bytes for the same flows (test_derivation_version.py fails
# until then); 2: the per-bucket files
ROLLUP_VERSION = 2
SCHEDULE = "buckets.json"
# Set to 1 to ignore the rollup and derive from the raw flows (benchmarks, checks).
ROLLUP_ENV = "ANALYZER_NO_ROLLUP"
_META = b"analyzer.rollup"
_PREFIX = "connections-"
# the files of one rollup, in the order they are published (the connections file last: it is
# what marks a rollup as present)
_PREFIXES = ("buckets-", "counts-", _PREFIX)
# the derivation state the next ingest extends (connections._state): one file per frame,
# ``state-<state key>-<frame>.parquet``, keyed by the parts only (compaction keeps it)
_STATE = "state-"
# the state's bulk, written range by range of a hash (one row group each) and read, merged and
# finished one range at a time: its range, the rows per range, its schema
_RANGED: dict[str, tuple[Callable[[int, int], pl.Expr], int, pl.Schema]] = {
    "sessions": (session_range, SESSION_PARTITION_ROWS, SESSION_SCHEMA),
    "endpoints": (endpoint_range, ENDPOINT_PARTITION_ROWS, ENDPOINT_SCHEMA),
}
_STATE_META = b"analyzer.rollup_state"


def dtype_token(dtype: object) -> str:
    """A column type (a polars data type, or its class) spelled the same by every polars (its
    ``repr`` has changed between versions; a key must change only when the type does)."""
    if isinstance(dtype, type):  # a class given for an instance (``pl.String``)
        return dtype.__name__
    if isinstance(dtype, pl.Datetime):
        return f"Datetime({dtype.time_unit},{dtype.time_zone})"
    if isinstance(dtype, pl.List):
        return f"List({dtype_token(dtype.inner)})"
    if isinstance(dtype, pl.Struct):
        return "Struct(" + ",".join(f"{f.name}:{dtype_token(f.dtype)}" for f in dtype.fields) + ")"
    return type(dtype).__name__


def _fingerprint(head: str, schemas: dict[str, pl.Schema]) -> str:
    digest = hashlib.sha256(head.encode())
    for name, schema in schemas.items():
        columns = ",".join(f"{column}:{dtype_token(t)}" for column, t in schema.items())
        digest.update(f"\n{name} {columns}".encode())
    return digest.hexdigest()


def rollup_fingerprint() -> str:
    """What the rollup files mean besides the flows and the schedule: their format version and
    schemas. Not the source of the deriving code: a change to it that changes what the files
    hold must bump ``ROLLUP_VERSION`` (the guard test, test_derivation_version.py, says so)."""
    return _fingerprint(
        f"rollup {ROLLUP_VERSION}",
        {"connections": S.CONNECTION_SCHEMA, "buckets": BUCKET_SCHEMA, "counts": COUNT_SCHEMA},
    )


def state_fingerprint() -> str:
    """What a stored derivation state means besides the flows: its format version, its frames'
    schemas, the idle times its sessions were cut with, and the polars version, whose 64-bit
    ``hash()`` the state stores (5-tuples, endpoint keys, and the ranges they are written in):
    those hashes cannot be recomputed (the addresses behind them are not kept), and polars does
    not promise them stable across versions."""
    return _fingerprint(
        f"state {STATE_VERSION} polars {pl.__version__} idle {TCP_IDLE} {OTHER_IDLE}",
        DerivationState.frames(),
    )


def rollup_key(parts: Sequence[str], schedule: Buckets) -> str:
    """The key of the rollup over ``parts`` (manifest order) under ``schedule`` in this
    rollup version."""
    digest = hashlib.sha256(rollup_fingerprint().encode())
    digest.update(b"\n" + schedule.token().encode())
    for part in parts:
        digest.update(b"\n" + part.encode())
    return digest.hexdigest()[:32]


def read_schedule(root: Path) -> Buckets:
    """The store's bucket schedule (minutes everywhere until ``analyzer store compact``)."""
    path = root / SCHEDULE
    try:
        return Buckets.from_json(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return Buckets()
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise StoreError(f"{path} is not a bucket schedule of this analyzer: {exc}") from exc


def write_schedule(root: Path, schedule: Buckets) -> None:
    """Replace the store's schedule atomically (callers hold the lock)."""
    doc = json.dumps(schedule.to_json(), indent=2, sort_keys=True).encode() + b"\n"
    atomic_write(root / SCHEDULE, doc)


def flow_record_counts(flows: pl.LazyFrame) -> tuple[int, int]:
    """Flow records, and those whose addresses or pod names were masked or aggregated away
    (Calico aggregation, field masks): one streaming pass."""
    row = flows.select(
        pl.len().alias("rows"),
        masked_expr().sum().alias("masked"),
    ).collect(engine="streaming")
    return int(row["rows"][0]), int(row["masked"][0] or 0)


def _sibling(path: Path, prefix: str) -> Path:
    return path.with_name(prefix + path.name.removeprefix(_PREFIX))


def _read(path: Path, schema: pl.Schema) -> pl.DataFrame:
    return pl.read_parquet(path).select(pl.col(n).cast(t) for n, t in schema.items())


@dataclass(frozen=True, slots=True)
class Rollup:
    """A fresh rollup: its connections and the flow-record counts of the whole store, its
    buckets under ``schedule``."""

    key: str
    path: Path
    stats: ConnectionStats
    records: int
    masked: int
    schedule: Buckets

    def connections(self) -> Connections:
        return Connections(frame=_read(self.path, S.CONNECTION_SCHEMA), stats=self.stats)

    def counts(self) -> pl.DataFrame:
        """Flow statistics per bucket (``COUNT_SCHEMA``)."""
        return _read(_sibling(self.path, "counts-"), COUNT_SCHEMA)

    def bucketed(self) -> BucketedConnections:
        """The connections with their per-bucket rows (what a time window reads)."""
        return BucketedConnections(
            frame=_read(self.path, S.CONNECTION_SCHEMA),
            buckets=_read(_sibling(self.path, "buckets-"), BUCKET_SCHEMA),
            counts=self.counts(),
            schedule=self.schedule,
        )


def _stats_json(stats: ConnectionStats) -> dict[str, Any]:
    data = asdict(stats)
    data["window"] = [t.isoformat() if t else None for t in stats.window]
    return data


def _stats_from(data: dict[str, Any]) -> ConnectionStats:
    first, last = (datetime.fromisoformat(t) if t else None for t in data["window"])
    counts = {k: int(v) for k, v in data.items() if k not in ("window", "warnings")}
    return ConnectionStats(
        **counts, window=(first, last), warnings=[str(w) for w in data["warnings"]]
    )


def build_rollup(
    flows: pl.LazyFrame, schedule: Buckets, spill: Path | None = None
) -> tuple[Connections, BucketedConnections, int, int]:
    """The rollup's content: connections of ``flows`` (all of the store's, in manifest order),
    per bucket of ``schedule``, and the flow-record counts. ``spill``: where a big store's
    derivation may write a temporary file (bounded memory)."""
    state = derive_state(flows, tcp_idle=TCP_IDLE, other_idle=OTHER_IDLE, spill=spill)
    return _content(state, schedule)


def _content(
    state: DerivationState,
    schedule: Buckets,
    hub: pl.DataFrame | None = None,
    endpoints: pl.DataFrame | None = None,
) -> tuple[Connections, BucketedConnections, int, int]:
    connections, bucketed = finish_bucketed(state, schedule, hub, endpoints)
    records = int(bucketed.counts["rows_in"].sum() or 0)
    masked = int(bucketed.counts["masked"].sum() or 0)
    return connections, bucketed, records, masked


def _write(frame: pl.DataFrame, path: Path, meta: dict[str, Any]) -> None:
    table = frame.to_arrow()
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _META: json.dumps(meta, sort_keys=True).encode()}
    )
    pq.write_table(table, path, compression="zstd")
    fsync(path)


def write_rollup(
    directory: Path,
    key: str,
    connections: Connections,
    bucketed: BucketedConnections,
    records: int,
    masked: int,
) -> Path:
    """Write a rollup's three files, fsynced, into ``directory`` (a staging directory:
    invisible until ``publish_rollup``); returns the connections file."""
    meta = {
        "version": ROLLUP_VERSION,
        "key": key,
        "records": records,
        "masked": masked,
        "stats": _stats_json(connections.stats),
        "schedule": bucketed.schedule.to_json(),
    }
    path = directory / f"{_PREFIX}{key}.parquet"
    small = {"version": ROLLUP_VERSION, "key": key}
    _write(bucketed.buckets, _sibling(path, "buckets-"), small)
    _write(bucketed.counts, _sibling(path, "counts-"), small)
    _write(connections.frame, path, meta)
    return path


def stage_rollup(
    directory: Path,
    key: str,
    flows: pl.LazyFrame,
    schedule: Buckets,
    parts: Sequence[str] | None = None,
) -> Path:
    """Build the rollup of ``flows`` under ``schedule`` and write it into ``directory``; with
    ``parts`` (the names of the parts ``flows`` reads), its derivation state too, so the next
    ingest extends it instead of deriving the store again. The state's bulk (endpoint rows,
    sessions) is written and finished range by range as the map produces it, never held
    whole."""
    skey = state_key(parts) if parts is not None else None
    hubs: list[pl.DataFrame] = []
    ends: list[pl.DataFrame] = []
    with ExitStack() as stack:
        sinks: dict[str, Callable[[pl.DataFrame], None]] = {}

        def consume(frame: str, rows: pl.DataFrame, early: DerivationState) -> None:
            if frame not in sinks:
                sinks[frame] = stack.enter_context(_ranged_sink(directory, skey, early, frame))
            if frame == "sessions":  # already one contiguous range of the 5-tuple hash
                sinks[frame](rows)
                hubs[:] = [merge_hubble_edges([*hubs, hubble_edges(rows, early, schedule)])]
                return
            in_range, limit, _ = _RANGED[frame]
            k = partition_count(rows.height, limit)
            for part in range(k):
                chunk = rows.filter(in_range(part, k))
                sinks[frame](chunk)
                ends.append(finish_endpoints(chunk, early.listening))

        state = derive_state(flows, tcp_idle=TCP_IDLE, other_idle=OTHER_IDLE, spill=directory,
                             consume=consume)
    if skey is not None:
        write_state(directory, skey, state, ranged=False)
    # already merged range by range (``consume``): merged again only when there is none
    hub = hubs.pop() if hubs else merge_hubble_edges([])
    return write_rollup(
        directory, key, *_content(state, schedule, hub, pl.concat(ends, how="vertical_relaxed"))
    )


def _finish_ranges(
    directory: Path,
    key: str | None,
    state: DerivationState,
    schedule: Buckets,
    sessions: pl.DataFrame,
    endpoints: pl.DataFrame,
    stored: dict[str, tuple[Path, int]] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The sessions' Hubble edge rows and the endpoint table of ``state`` (whose own
    sessions and endpoints are left empty) from its sessions and endpoint rows, written
    (with ``key``) and finished one hash range at a time; with ``stored`` (the files of the
    state these rows extend and their row counts), each range's stored rows are read alone
    and merged with the range's new rows first."""

    def merge_s(old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
        return merge_sessions(old, new, state.tcp_idle, state.other_idle)

    hub = _ranges(directory, key, state, "sessions", sessions, stored, merge_s,
                  lambda rows: hubble_edges(rows, state, schedule), merge_hubble_edges)
    del sessions
    ends = _ranges(directory, key, state, "endpoints", endpoints, stored, merge_endpoints,
                   lambda rows: finish_endpoints(rows, state.listening), _concat)
    return hub, ends


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames, how="vertical_relaxed")


def _ranges(
    directory: Path,
    key: str | None,
    state: DerivationState,
    frame: str,
    added: pl.DataFrame,
    stored: dict[str, tuple[Path, int]] | None,
    merge: Callable[[pl.DataFrame, pl.DataFrame], pl.DataFrame],
    finish: Callable[[pl.DataFrame], pl.DataFrame],
    combine: Callable[[list[pl.DataFrame]], pl.DataFrame],
) -> pl.DataFrame:
    """``finish`` of each hash range of a ranged frame (``_RANGED``) combined: the range's
    ``added`` rows, merged with the stored rows of the range when there are ``stored`` ones,
    written to the state's file of ``frame`` (one row group per range) when there is a
    ``key``. Each range's result is combined into the previous ones' at once (the Hubble
    edge rows of every 5-tuple range name mostly the same edges: kept apart, they would
    stack up)."""
    in_range, limit, _ = _RANGED[frame]
    path, rows = stored[frame] if stored is not None else (None, 0)
    k = partition_count(rows + added.height, limit)
    out: list[pl.DataFrame] = []
    with _ranged_sink(directory, key, state, frame) as sink:
        for part in range(k):
            chunk = added.filter(in_range(part, k))
            if path is not None:
                chunk = merge(_read_ranged(path, frame, in_range(part, k)), chunk)
            sink(chunk)
            out = [combine([*out, finish(chunk)])]
            del chunk
    return out[0]


def stage_incremental(
    directory: Path,
    root: Path,
    before: Sequence[str],
    added: pl.LazyFrame,
    added_names: Sequence[str],
    schedule: Buckets,
) -> Path | None:
    """Stage the rollup and state of the store's parts ``before`` followed by new parts: the
    stored state of ``before`` extended by the map of the added rows alone (``added``, the
    parts named ``added_names``), merged and finished: exactly what a derivation of every row
    gives (``connections._state``). None when no state of ``before`` is stored (or it is of
    another state version or polars: ``state_fingerprint``): the caller derives the whole
    store.

    Memory stays bounded whatever the store's size: the stored sessions and endpoint rows
    (the state's bulk) are read, merged with the new ones, written and finished one hash
    range at a time (``session_range``, ``endpoint_range``: sessions of different 5-tuples,
    rows of different endpoint keys never interact); only the rest of the state, small, is
    merged whole."""
    found = _stored_state(root, before)
    if found is None:
        return None
    state, stored = found
    new = derive_state(
        added,
        offset=state.rows,
        tcp_idle=state.tcp_idle,
        other_idle=state.other_idle,
        spill=directory,
    )
    merged = merge_states(state, new, sessions=False, endpoints=False)
    sessions, endpoints = new.sessions, new.endpoints
    del state, new  # the frames merged: only the merge and the new rows' bulk stay
    parts = [*before, *added_names]
    key = state_key(parts)
    hub, ends = _finish_ranges(directory, key, merged, schedule, sessions, endpoints, stored)
    write_state(directory, key, merged, ranged=False)
    return write_rollup(
        directory, rollup_key(parts, schedule), *_content(merged, schedule, hub, ends)
    )


def state_key(parts: Sequence[str]) -> str:
    """The key of the derivation state of ``parts`` (manifest order) in this state version
    with this polars (``state_fingerprint``)."""
    digest = hashlib.sha256(state_fingerprint().encode())
    for part in parts:
        digest.update(b"\n" + part.encode())
    return digest.hexdigest()[:32]


def _state_path(directory: Path, key: str, frame: str) -> Path:
    return directory / f"{_STATE}{key}-{frame}.parquet"


def _state_meta(key: str, state: DerivationState) -> dict[bytes, bytes]:
    meta = {
        "version": STATE_VERSION,
        "key": key,
        "rows": state.rows,
        "tcp_idle_us": state.tcp_idle // timedelta(microseconds=1),
        "other_idle_us": state.other_idle // timedelta(microseconds=1),
    }
    return {_STATE_META: json.dumps(meta, sort_keys=True).encode()}


@contextmanager
def _ranged_sink(
    directory: Path, key: str | None, state: DerivationState, frame: str
) -> Iterator[Callable[[pl.DataFrame], None]]:
    """A writer of the state's file of a ranged ``frame`` (``_RANGED``), fed one range after
    the other (so each range is its own row groups, which a later ingest reads alone); with
    no ``key`` (no state kept), a sink that drops them."""
    if key is None:
        yield lambda rows: None
        return
    schema = _RANGED[frame][2].to_frame().to_arrow().schema.with_metadata(
        _state_meta(key, state)
    )
    path = _state_path(directory, key, frame)
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        yield lambda rows: writer.write_table(rows.to_arrow().cast(schema))
    fsync(path)


def write_state(
    directory: Path, key: str, state: DerivationState, *, ranged: bool = True
) -> None:
    """Write ``state`` into the staging ``directory``: one fsynced Parquet file per frame, the
    sessions and endpoint rows range by range (``_ranged_sink``). ``ranged=False``: the caller
    has written those two through its own sinks (merging and finishing one range at a
    time)."""
    for name in DerivationState.frames():
        frame: pl.DataFrame = getattr(state, name)
        if name in _RANGED:
            if ranged:
                in_range, limit, _ = _RANGED[name]
                k = partition_count(frame.height, limit)
                with _ranged_sink(directory, key, state, name) as sink:
                    for part in range(k):
                        sink(frame.filter(in_range(part, k)))
            continue
        table = frame.to_arrow()
        table = table.replace_schema_metadata(_state_meta(key, state))
        path = _state_path(directory, key, name)
        pq.write_table(table, path, compression="zstd")
        fsync(path)


def _read_ranged(path: Path, frame: str, rows: pl.Expr | None = None) -> pl.DataFrame:
    """The stored rows of a ranged ``frame`` (those of one range: the other ranges' row
    groups are skipped by their statistics)."""
    scan = pl.scan_parquet(path)
    if rows is not None:
        scan = scan.filter(rows)
    return scan.select(pl.col(n).cast(t) for n, t in _RANGED[frame][2].items()).collect()


def _stored_state(
    root: Path, parts: Sequence[str]
) -> tuple[DerivationState, dict[str, tuple[Path, int]]] | None:
    """The stored derivation state of exactly ``parts`` with this code but its ranged frames
    (left empty), and for those their files and row counts; or None."""
    key = state_key(parts)
    frames: dict[str, pl.DataFrame] = {}
    ranged: dict[str, tuple[Path, int]] = {}
    meta: dict[str, Any] = {}
    try:
        for name, schema in DerivationState.frames().items():
            path = _state_path(root / ROLLUP_DIR, key, name)
            meta = json.loads((pq.read_schema(path).metadata or {})[_STATE_META])
            if meta["key"] != key or int(meta["version"]) != STATE_VERSION:
                return None
            if name in _RANGED:
                ranged[name] = (path, pq.ParquetFile(path).metadata.num_rows)
                frames[name] = schema.to_frame()
            else:
                frames[name] = _read(path, schema)
        state = DerivationState(
            rows=int(meta["rows"]),
            tcp_idle=timedelta(microseconds=int(meta["tcp_idle_us"])),
            other_idle=timedelta(microseconds=int(meta["other_idle_us"])),
            **frames,
        )
        return state, ranged
    except (OSError, KeyError, ValueError, TypeError, pl.exceptions.PolarsError):
        return None  # the caller derives the whole store


def has_state(root: Path, parts: Sequence[str]) -> bool:
    """Whether the store holds a derivation state of exactly ``parts`` that this analyzer
    reads (its version, schemas and polars): what an ingest extends, and what
    ``store rebuild`` finishes in a store without raw flows."""
    return _stored_state(root, parts) is not None


def read_state(root: Path, parts: Sequence[str]) -> DerivationState | None:
    """The stored derivation state of exactly ``parts`` with this code, or None."""
    found = _stored_state(root, parts)
    if found is None:
        return None
    state, ranged = found
    try:
        sessions, endpoints = (_read_ranged(ranged[name][0], name) for name in _RANGED)
    except (OSError, pl.exceptions.PolarsError):
        return None
    return replace(state, sessions=sessions, endpoints=endpoints)


def coarsen_rollup(
    directory: Path, rollup: Rollup, key: str, schedule: Buckets
) -> Path:
    """Stage ``rollup`` re-aggregated under the coarser ``schedule`` (no raw flow read):
    equal to a rollup built under ``schedule`` from the start."""
    bucketed = rollup.bucketed().coarsen(schedule)
    connections = Connections(frame=bucketed.frame, stats=rollup.stats)
    return write_rollup(directory, key, connections, bucketed, rollup.records, rollup.masked)


def rekey_rollup(directory: Path, rollup: Rollup, key: str) -> Path:
    """Stage ``rollup``'s three files under ``key`` (the same rows, the same metadata but the
    key): the rollup of parts that hold the same rows in the same order under other names
    (``store compact`` merging small parts)."""
    target = directory / f"{_PREFIX}{key}.parquet"
    for prefix in _PREFIXES:
        table = pq.read_table(_sibling(rollup.path, prefix))
        metadata = dict(table.schema.metadata or {})
        metadata[_META] = json.dumps(
            {**json.loads(metadata[_META]), "key": key}, sort_keys=True
        ).encode()
        path = _sibling(target, prefix)
        pq.write_table(table.replace_schema_metadata(metadata), path, compression="zstd")
        fsync(path)
    return target


def publish_rollup(root: Path, staged: Path, parts: Sequence[str]) -> None:
    """Move a staged rollup (its connections file ``staged`` and the files beside it) into
    ``root/rollup/`` (after the manifest commit: a rollup whose key matches no manifest is
    never read), describe it in ``rollup.json`` and remove the rollups it replaces. Callers
    hold the store's lock."""
    directory = root / ROLLUP_DIR
    directory.mkdir(exist_ok=True)
    state = state_key(parts)
    for source in sorted(staged.parent.glob(f"{_STATE}{state}-*.parquet")):
        os.replace(source, directory / source.name)  # before the connections file (the marker)
    for prefix in _PREFIXES:
        source = _sibling(staged, prefix)
        if source.exists() or not (directory / source.name).is_file():
            os.replace(source, directory / source.name)
        # else: moved by a publish that was killed before the next file (recover resumes it)
    fsync(directory)
    key = staged.name.removeprefix(_PREFIX).removesuffix(".parquet")
    index = {
        "version": ROLLUP_VERSION,
        "key": key,
        "file": staged.name,
        "files": [_sibling(staged, prefix).name for prefix in _PREFIXES],
        "parts": list(parts),
        "schedule": read_schedule(root).to_json(),
        "note": "connections of every flow part listed: one row per edge (CONNECTION_SCHEMA), "
        "per edge and time bucket (buckets-), flow statistics per bucket (counts-)",
    }
    atomic_write(directory / INDEX, json.dumps(index, indent=2, sort_keys=True).encode() + b"\n")
    remove_stale(root, key, state)


def remove_stale(root: Path, keep: str, state: str | None = None) -> None:
    """Delete rollup files other than ``keep``'s, and with ``state`` derivation states other
    than that one (callers hold the lock)."""
    for prefix in _PREFIXES:
        for path in (root / ROLLUP_DIR).glob(f"{prefix}*.parquet"):
            if path.name != f"{prefix}{keep}.parquet":
                path.unlink(missing_ok=True)
    if state is not None:
        for path in (root / ROLLUP_DIR).glob(f"{_STATE}*.parquet"):
            if not path.name.startswith(f"{_STATE}{state}-"):
                path.unlink(missing_ok=True)


def rollup_file(root: Path, parts: Sequence[str], schedule: Buckets | None = None) -> Path:
    """Where the rollup of ``parts`` (under the store's schedule) lives once published."""
    key = rollup_key(parts, read_schedule(root) if schedule is None else schedule)
    return root / ROLLUP_DIR / f"{_PREFIX}{key}.parquet"


def kept_rollup_file(root: Path, parts: Sequence[str]) -> Path | None:
    """The published connections file ``rollup.json`` names as the rollup of exactly ``parts``
    under the store's schedule, whatever analyzer wrote it (it may be of another rollup
    version: a store without raw flows keeps it, nothing could derive it again); or None."""
    try:
        index = json.loads((root / ROLLUP_DIR / INDEX).read_bytes())
        if [str(p) for p in index["parts"]] != list(parts) or index["schedule"] != (
            read_schedule(root).to_json()
        ):
            return None
        path = root / ROLLUP_DIR / str(index["file"])
    except (OSError, KeyError, ValueError, TypeError, StoreError):
        return None
    return path if path.is_file() else None


def rollup_version(path: Path) -> int | None:
    """The rollup version the connections file ``path`` was written in, or None (unreadable)."""
    try:
        return int(json.loads((pq.read_schema(path).metadata or {})[_META])["version"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def previous_rollup_file(root: Path, parts: Sequence[str], schedule: Buckets) -> Path:
    """The rollup file whose ``stats`` summary and endpoint table an ingest extends
    (``flow_summary.attach_merged_summary``): this version's rollup of ``parts``, or when there
    is none the one ``rollup.json`` names for them (another rollup version: the summary and
    the table carry their own version, ``flow_summary.SUMMARY_VERSION``), so that a store
    without raw flows, whose rollup is rebuilt from its state, keeps them."""
    path = rollup_file(root, parts, schedule)
    if path.is_file():
        return path
    return kept_rollup_file(root, parts) or path


def read_kept_rollup(
    root: Path, parts: Sequence[str], *, switchable: bool = True
) -> Rollup | None:
    """The published rollup of exactly ``parts`` under the store's schedule whatever key it
    was written under (``kept_rollup_file``), when its files carry this rollup version and the
    columns this code reads: for a store that did not keep its raw flows, which nothing could
    derive again. None otherwise (and, when ``switchable``, switched off with
    ``ANALYZER_NO_ROLLUP=1``)."""
    if switchable and os.environ.get(ROLLUP_ENV, "") not in ("", "0"):
        return None
    path = kept_rollup_file(root, parts)
    if path is None:
        return None
    key = path.name.removeprefix(_PREFIX).removesuffix(".parquet")
    try:
        schedule = read_schedule(root)
        for prefix, schema in (
            ("buckets-", BUCKET_SCHEMA),
            ("counts-", COUNT_SCHEMA),
            (_PREFIX, S.CONNECTION_SCHEMA),
        ):
            meta = json.loads(parquet_metadata(_sibling(path, prefix), _META)[_META])
            if meta["key"] != key or int(meta["version"]) != ROLLUP_VERSION:
                return None
            if not set(schema.names()) <= set(pl.read_parquet_schema(_sibling(path, prefix))):
                return None
        stats = _stats_from(meta["stats"])
        return Rollup(key, path, stats, int(meta["records"]), int(meta["masked"]), schedule)
    except (OSError, KeyError, ValueError, TypeError, StoreError, pl.exceptions.PolarsError):
        return None


def read_rollup(root: Path, parts: Sequence[str], *, switchable: bool = True) -> Rollup | None:
    """The rollup of exactly ``parts`` under the store's schedule with this code, or None
    (missing, stale, unreadable, or, when ``switchable``, switched off with
    ``ANALYZER_NO_ROLLUP=1``)."""
    if switchable and os.environ.get(ROLLUP_ENV, "") not in ("", "0"):
        return None
    schedule = read_schedule(root)
    key = rollup_key(parts, schedule)
    path = rollup_file(root, parts, schedule)
    try:
        for prefix in _PREFIXES:
            meta = json.loads(parquet_metadata(_sibling(path, prefix), _META)[_META])
            if meta["key"] != key or int(meta["version"]) != ROLLUP_VERSION:
                return None
        stats = _stats_from(meta["stats"])  # the connections file's (read last)
        return Rollup(key, path, stats, int(meta["records"]), int(meta["masked"]), schedule)
    except (OSError, KeyError, ValueError, TypeError):
        return None  # the raw flows give the same answer
