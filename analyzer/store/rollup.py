"""The connection rollup: the store's connections, derived once at ingest instead of per command.

::

    STORE/rollup/connections-<key>.parquet   CONNECTION_SCHEMA rows (one per edge); the
                                             derivation's statistics and the flow-record counts
                                             in the file's key-value metadata
    STORE/rollup/rollup.json                 which file is current, for people and other readers

``key`` is the SHA-256 of the code fingerprint (rollup version, connection schema, and the
source of the modules that derive connections) and the ordered part names of the manifest. A
reader computes the key from the manifest it sees and reads ``connections-<key>.parquet`` only
when it exists: a rollup of other parts (a live commit, which does not rebuild it) or of older
code is *stale*, never read, and the caller derives from the raw flows instead (same answer,
slower). Nothing but the key decides freshness, so ``rollup.json`` is informative only.

Exactness: the rollup *is* ``derive_connections`` over every committed flow, in manifest order
(the order the raw scan reads), so its rows and statistics equal a raw derivation of the same
store whatever files the rows came from and in whatever order they were ingested. It is the
answer for "the whole store"; a ``--since``/``--until`` window reads the raw flows (see
docs/rollup.md for why a per-bucket rollup would not be exact).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from analyzer import schema as S
from analyzer.connections import Connections, ConnectionStats, derive_connections
from analyzer.store.files import atomic_write, fsync

__all__ = [
    "INDEX",
    "ROLLUP_DIR",
    "ROLLUP_ENV",
    "Rollup",
    "build_rollup",
    "code_fingerprint",
    "flow_record_counts",
    "publish_rollup",
    "read_rollup",
    "remove_stale",
    "rollup_file",
    "rollup_key",
    "stage_rollup",
]

ROLLUP_DIR = "rollup"
INDEX = "rollup.json"
ROLLUP_VERSION = 1
# Set to 1 to ignore the rollup and derive from the raw flows (benchmarks, checks).
ROLLUP_ENV = "ANALYZER_NO_ROLLUP"
_META = b"analyzer.rollup"
_PREFIX = "connections-"
# Modules whose code decides what a connection is: a change to any of them makes every
# existing rollup stale (an upgrade never serves numbers of the old derivation).
_DERIVING = ("connections", "identity")


@cache
def code_fingerprint() -> str:
    """SHA-256 of what the rollup depends on besides the flows."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(f"rollup {ROLLUP_VERSION}\n{S.CONNECTION_SCHEMA!r}\n".encode())
    files = [package / "schema.py", Path(__file__).resolve()]
    for name in _DERIVING:
        files.extend(sorted((package / name).glob("*.py")))
    for path in files:
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def rollup_key(parts: Sequence[str]) -> str:
    """The key of the rollup over ``parts`` (manifest order) with this code."""
    digest = hashlib.sha256(code_fingerprint().encode())
    for part in parts:
        digest.update(b"\n" + part.encode())
    return digest.hexdigest()[:32]


def _masked(side: str) -> pl.Expr:
    name = pl.col(f"{side}_pod")
    return (pl.col(f"{side}_entity") == "pod") & (
        pl.col(f"{side}_ip").is_null()
        | name.is_null()
        | name.str.contains("*", literal=True)
        | (name == "-")
    )


def flow_record_counts(flows: pl.LazyFrame) -> tuple[int, int]:
    """Flow records, and those whose addresses or pod names were masked or aggregated away
    (Calico aggregation, field masks): one streaming pass."""
    row = flows.select(
        pl.len().alias("rows"),
        (_masked("src") | _masked("dst")).fill_null(False).sum().alias("masked"),
    ).collect(engine="streaming")
    return int(row["rows"][0]), int(row["masked"][0] or 0)


@dataclass(frozen=True, slots=True)
class Rollup:
    """A fresh rollup: its connections and the flow-record counts of the whole store."""

    key: str
    path: Path
    stats: ConnectionStats
    records: int
    masked: int

    def connections(self) -> Connections:
        frame = pl.read_parquet(self.path)
        frame = frame.select(pl.col(n).cast(t) for n, t in S.CONNECTION_SCHEMA.items())
        return Connections(frame=frame, stats=self.stats)


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


def build_rollup(flows: pl.LazyFrame) -> tuple[Connections, int, int]:
    """The rollup's content: connections of ``flows`` (all of the store's, in manifest order)
    and the flow-record counts."""
    records, masked = flow_record_counts(flows)
    return derive_connections(flows), records, masked


def stage_rollup(directory: Path, key: str, flows: pl.LazyFrame) -> Path:
    """Build the rollup of ``flows`` and write it, fsynced, into ``directory`` (a staging
    directory: invisible until ``publish_rollup``)."""
    connections, records, masked = build_rollup(flows)
    meta = {
        "version": ROLLUP_VERSION,
        "key": key,
        "records": records,
        "masked": masked,
        "stats": _stats_json(connections.stats),
    }
    table = connections.frame.to_arrow()
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _META: json.dumps(meta, sort_keys=True).encode()}
    )
    path = directory / f"{_PREFIX}{key}.parquet"
    pq.write_table(table, path, compression="zstd")
    fsync(path)
    return path


def publish_rollup(root: Path, staged: Path, parts: Sequence[str]) -> None:
    """Move a staged rollup into ``root/rollup/`` (after the manifest commit: a rollup whose
    key matches no manifest is never read), describe it in ``rollup.json`` and remove the
    rollups it replaces. Callers hold the store's lock."""
    directory = root / ROLLUP_DIR
    directory.mkdir(exist_ok=True)
    os.replace(staged, directory / staged.name)
    fsync(directory)
    key = staged.name.removeprefix(_PREFIX).removesuffix(".parquet")
    index = {
        "version": ROLLUP_VERSION,
        "key": key,
        "file": staged.name,
        "parts": list(parts),
        "note": "connections of every flow part listed, one row per edge (CONNECTION_SCHEMA)",
    }
    atomic_write(directory / INDEX, json.dumps(index, indent=2, sort_keys=True).encode() + b"\n")
    remove_stale(root, key)


def remove_stale(root: Path, keep: str) -> None:
    """Delete rollup files other than ``keep``'s (callers hold the lock)."""
    for path in (root / ROLLUP_DIR).glob(f"{_PREFIX}*.parquet"):
        if path.name != f"{_PREFIX}{keep}.parquet":
            path.unlink(missing_ok=True)


def rollup_file(root: Path, parts: Sequence[str]) -> Path:
    """Where the rollup of ``parts`` lives once published."""
    return root / ROLLUP_DIR / f"{_PREFIX}{rollup_key(parts)}.parquet"


def read_rollup(root: Path, parts: Sequence[str], *, switchable: bool = True) -> Rollup | None:
    """The rollup of exactly ``parts`` with this code, or None (missing, stale, unreadable,
    or, when ``switchable``, switched off with ``ANALYZER_NO_ROLLUP=1``)."""
    if switchable and os.environ.get(ROLLUP_ENV, "") not in ("", "0"):
        return None
    key = rollup_key(parts)
    path = rollup_file(root, parts)
    try:
        metadata = pq.read_schema(path).metadata or {}
        meta = json.loads(metadata[_META])
        if meta["key"] != key or int(meta["version"]) != ROLLUP_VERSION:
            return None
        stats = _stats_from(meta["stats"])
        return Rollup(key, path, stats, int(meta["records"]), int(meta["masked"]))
    except (OSError, KeyError, ValueError, TypeError):
        return None  # the raw flows give the same answer
