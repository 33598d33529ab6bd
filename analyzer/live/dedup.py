"""Exactly-once for streamed records: a record already in the store is not added again.

A record's identity is its content: the canonical row (every stored column but ``ingest_id``),
keyed by its time and a hash of the row. Before rows are written, each is looked up:

* in the store: rows with the same times, read from the committed parts whose time range
  overlaps (part statistics, read once per part), so a restarted stream (a capture piped in
  again, ``--since`` reaching back before the last commit, a relay reconnect) adds only what
  the store does not hold yet, whoever committed it (another streaming run, a file ingest);
* in this run: keys of the rows seen in the last ``horizon`` of stream time, so a row re-sent
  within the run (a relay reconnect asks again for the last seconds) is dropped.

A key stands for as many copies as the store holds: a chunk that holds a row ``n`` times keeps
the copies beyond those already stored (identical rows read together stay as often as a file
ingest keeps them). The limit: two records identical in every stored column, time to the
microsecond included, that arrive in different chunks (more than a second apart) count once.
Hashes are compared only inside one process and never stored, so they need no stability
across versions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from analyzer.schema import FLOW_COLUMNS, FLOW_POLARS_SCHEMA, INGEST_ID, TIME
from analyzer.store import FlowStore

__all__ = ["RecordDeduper", "KEY_COLUMNS", "DEFAULT_HORIZON"]

KEY_COLUMNS = tuple(c for c in FLOW_COLUMNS if c != INGEST_ID)
DEFAULT_HORIZON = timedelta(minutes=2)
_NULL_TIME = -(2**63)  # the key time of a row without a time
_T, _H, _KNOWN, _OCC = "_t", "_h", "_known", "_occ"
_STATE_SCHEMA = {_T: pl.Int64, _H: pl.UInt64, _KNOWN: pl.Int64}


@dataclass(frozen=True, slots=True)
class _Part:
    path: Path
    tmin: int | None  # microseconds; None: unknown (always read)
    tmax: int | None
    mine: bool


def _keys(frame: pl.DataFrame) -> pl.DataFrame:
    """``_t`` (time in µs) and ``_h`` (row hash) of canonical rows."""
    rows = frame.select(pl.col(c).cast(FLOW_POLARS_SCHEMA[c]) for c in KEY_COLUMNS)
    return pl.DataFrame(
        {
            _T: rows.get_column(TIME).dt.epoch("us").fill_null(_NULL_TIME),
            _H: rows.hash_rows(),
        }
    )


def _time_range(path: Path) -> tuple[int | None, int | None]:
    try:
        meta = pq.ParquetFile(path).metadata
        column = meta.schema.names.index(TIME)
        lows, highs = [], []
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(column).statistics
            if stats is None or not stats.has_min_max or stats.null_count:
                return None, None
            lows.append(stats.min)
            highs.append(stats.max)
    except (OSError, ValueError):
        return None, None
    if not lows:
        return None, None
    return _us(min(lows)), _us(max(highs))


def _us(value: object) -> int | None:
    try:
        return int(pl.Series([value]).cast(pl.Datetime("us", "UTC")).dt.epoch("us")[0])
    except Exception:  # noqa: BLE001 - statistics of an unexpected type: treat as unknown
        return None


class RecordDeduper:
    """Drops rows the store (or this run) already holds. One per streaming run."""

    def __init__(self, store: FlowStore, horizon: timedelta = DEFAULT_HORIZON) -> None:
        self.store = store
        self.horizon_us = int(horizon.total_seconds() * 1_000_000)
        self._state = pl.DataFrame(schema=_STATE_SCHEMA)
        self._parts: dict[str, _Part] = {}
        self._watermark: int | None = None  # keys older than this have left the state
        self._max_t: int | None = None
        self._manifest_stamp: tuple[int, int] | None = None
        self.refresh()

    def refresh(self) -> None:
        """Learn the parts committed since the last call (by this or another writer); a
        ``stat`` of the manifest when nothing was committed."""
        try:
            st = self.store.manifest_path.stat()
            stamp = (st.st_mtime_ns, st.st_ino)
        except OSError:
            stamp = None
        if stamp is not None and stamp == self._manifest_stamp:
            return
        self._manifest_stamp = stamp
        listed = {p for e in self.store.manifest() for p in e.parts}
        # ``store compact`` replaces runs of parts by one merged part (same rows): forget the
        # deleted ones, learn the merged one like any other writer's part.
        self._parts = {name: part for name, part in self._parts.items() if name in listed}
        new = listed - self._parts.keys()
        if not new:
            return
        for path in self.store.part_paths():
            if path.name in new:
                tmin, tmax = _time_range(path)
                self._parts[path.name] = _Part(path, tmin, tmax, mine=False)

    def committed(self, parts: Iterable[str], paths: dict[str, Path]) -> None:
        """Parts this run committed (their rows' keys are in the state already)."""
        for name in parts:
            tmin, tmax = _time_range(paths[name])
            self._parts[name] = _Part(paths[name], tmin, tmax, mine=True)

    def filter(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        """The rows of ``frame`` that are new, and how many were dropped as already stored."""
        if frame.height == 0:
            return frame, 0
        self.refresh()
        keys = _keys(frame).with_columns(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(_T, _H).alias(_OCC)
        )
        known = keys.join(self._state, on=[_T, _H], how="left")
        unknown = known.filter(pl.col(_KNOWN).is_null()).select(_T, _H).unique()
        stored = self._stored_counts(unknown)
        judged = (
            known.join(stored, on=[_T, _H], how="left", suffix="_stored")
            .with_columns(
                pl.coalesce(_KNOWN, f"{_KNOWN}_stored", pl.lit(0, dtype=pl.Int64)).alias(_KNOWN)
            )
            .with_columns((pl.col(_OCC) > pl.col(_KNOWN)).alias("_new"))
        )
        keep = judged.get_column("_new")
        self._update_state(judged)
        new = frame.filter(keep)
        return new, frame.height - new.height

    def _stored_counts(self, unknown: pl.DataFrame, *, retried: bool = False) -> pl.DataFrame:
        """How many rows with each key the committed parts hold (keys of ``unknown``)."""
        empty = pl.DataFrame(schema=_STATE_SCHEMA)
        if unknown.height == 0:
            return empty
        times = unknown.get_column(_T)
        lo, hi = int(times.min()), int(times.max())  # type: ignore[arg-type]
        paths = [
            str(p.path)
            for p in self._parts.values()
            if not (p.mine and self._watermark is not None and (p.tmin or 0) >= self._watermark)
            and (p.tmin is None or p.tmax is None or (p.tmin <= hi and p.tmax >= lo))
        ]
        if not paths:
            return empty
        wanted = times.unique()
        with_null = bool((wanted == _NULL_TIME).any())
        epoch = pl.col(TIME).dt.epoch("us")
        cond = epoch.is_in(wanted.filter(wanted != _NULL_TIME).implode())
        if with_null:
            cond = cond | pl.col(TIME).is_null()
        try:
            rows = (
                pl.scan_parquet(paths, missing_columns="insert", extra_columns="ignore")
                .select(pl.col(c).cast(FLOW_POLARS_SCHEMA[c]) for c in KEY_COLUMNS)
                .filter(cond)
                .collect()
            )
        except FileNotFoundError:
            if retried:
                raise
            # compacted between our last look at the manifest and this read (or a merged part
            # moved out of staging by ``recover``): forget the missing files, look again
            self._parts = {n: p for n, p in self._parts.items() if p.path.is_file()}
            self._manifest_stamp = None
            self.refresh()
            return self._stored_counts(unknown, retried=True)
        if rows.height == 0:
            return empty
        return (
            _keys(rows)
            .join(unknown, on=[_T, _H], how="semi")
            .group_by(_T, _H)
            .agg(pl.len().cast(pl.Int64).alias(_KNOWN))
        )

    def _update_state(self, judged: pl.DataFrame) -> None:
        # After this chunk the store (with the open batch) holds max(known, n) copies.
        seen = judged.group_by(_T, _H).agg(
            pl.max_horizontal(pl.col(_KNOWN).first(), pl.len().cast(pl.Int64)).alias(_KNOWN)
        )
        state = pl.concat(
            [self._state.join(seen, on=[_T, _H], how="anti"), seen.select(list(_STATE_SCHEMA))]
        )
        top = seen.get_column(_T).max()
        if top is not None and int(top) != _NULL_TIME:  # type: ignore[arg-type]
            self._max_t = max(self._max_t or int(top), int(top))  # type: ignore[arg-type]
            mark = self._max_t - self.horizon_us
            if self._watermark is None or mark > self._watermark:
                self._watermark = mark
            state = state.filter((pl.col(_T) >= self._watermark) | (pl.col(_T) == _NULL_TIME))
        self._state = state

    @property
    def state_rows(self) -> int:
        return self._state.height
