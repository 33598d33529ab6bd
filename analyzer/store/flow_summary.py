"""The flow rows of a store summarised for ``analyzer stats``, written beside the rollup.

``analyzer stats`` counts flow *rows* (by format, verdict and namespace, and the time window),
not connections, so the connection rollup cannot answer it. Every one of those numbers is a sum
(or min/max) over rows, so one small table grouped by (format, verdict, source namespace,
destination namespace) holds them all exactly: a few thousand rows for a cluster, whatever the
number of events. The rollup carries this table in its Parquet key-value metadata (under
``analyzer.flow_summary``; ``attach_summary`` adds it to a staged rollup before the commit), so
it is written in the same locked, atomic commit and is fresh exactly when the rollup is;
``stats`` derives from the table, and builds the same table from the raw flows (one streaming
pass) when the rollup is stale, switched off or carries no summary.

The same metadata carries, under ``analyzer.seen_endpoints``, the endpoint table ``explain``
resolves its peers from (``identity.seen``: every endpoint as the rows name it, replies
included; a few rows per endpoint), written, merged at each ingest and carried over with the
summary.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from analyzer import schema as S
from analyzer.identity.seen import SEEN_SCHEMA, merge_seen, seen_endpoints
from analyzer.store.files import fsync
from analyzer.store.parquet_meta import parquet_metadata

__all__ = [
    "SUMMARY_META",
    "SUMMARY_VERSION",
    "attach_summary",
    "copy_summary",
    "read_endpoints",
    "read_summary",
    "summary_metadata",
    "summary_table",
    "attach_merged_summary",
]

SUMMARY_META = b"analyzer.flow_summary"
ENDPOINTS_META = b"analyzer.seen_endpoints"
# What the summary and the endpoint table hold (absent: 1, as written before it was recorded):
# bump it when they change for the same rows, so that an ingest never merges tables of two
# definitions (test_derivation_version.py fails until then). Versioned apart from the rollup:
# a store without raw flows whose rollup is derived again from its state keeps them.
SUMMARY_VERSION = 1
_VERSION_META = b"analyzer.summary_version"
_KEYS = (S.SOURCE_FORMAT, S.VERDICT, S.SRC_NAMESPACE, S.DST_NAMESPACE)
_TS = pl.Datetime("us", "UTC")
_SCHEMA = pl.Schema(
    {
        **{k: pl.String() for k in _KEYS},
        "rows": pl.Int64(),
        "flows": pl.Int64(),
        "first": _TS,
        "last": _TS,
    }
)


def summary_table(flows: pl.LazyFrame) -> pl.DataFrame:
    """Rows, flows (``flow_count`` summed), first and last time per (format, verdict, source
    namespace, destination namespace): one streaming pass."""
    frame = (
        flows.group_by(*_KEYS)
        .agg(
            pl.len().alias("rows"),
            pl.col(S.FLOW_COUNT).sum().alias("flows"),
            pl.col(S.TIME).min().alias("first"),
            pl.max_horizontal(pl.col(S.TIME).max(), pl.col(S.END_TIME).max()).alias("last"),
        )
        .collect(engine="streaming")
    )
    return frame.select(pl.col(n).cast(t) for n, t in _SCHEMA.items()).sort(
        _KEYS, nulls_last=True
    )


def summary_metadata(flows: pl.LazyFrame) -> dict[bytes, bytes]:
    """The summary and the endpoint table of ``flows`` as Parquet key-value metadata."""
    return _metadata(summary_table(flows), seen_endpoints(flows))


def _metadata(frame: pl.DataFrame, seen: pl.DataFrame) -> dict[bytes, bytes]:
    """The summary ``frame`` and the endpoint table ``seen`` as metadata entries."""
    rows = [
        [*(row[k] for k in _KEYS), row["rows"], row["flows"],
         *(row[t].isoformat() if row[t] is not None else None for t in ("first", "last"))]
        for row in frame.iter_rows(named=True)
    ]
    return {
        SUMMARY_META: json.dumps({"columns": list(_SCHEMA), "rows": rows}).encode(),
        ENDPOINTS_META: seen.write_json().encode(),
        _VERSION_META: str(SUMMARY_VERSION).encode(),
    }


def attach_summary(staged: Path, flows: pl.LazyFrame) -> None:
    """Add the summary of ``flows`` to the metadata of the staged rollup file ``staged`` and
    fsync it. The file is rewritten in place: it sits in a private staging directory and the
    commit (the manifest's or the schedule's replacement) comes after this, so a kill here
    leaves an uncommitted staging directory that the next ``recover`` removes with the file."""
    _add_metadata(staged, summary_metadata(flows))


def attach_merged_summary(
    staged: Path, before: Path, added: pl.LazyFrame, flows: Callable[[], pl.LazyFrame]
) -> None:
    """``attach_summary(staged, flows)`` where ``flows`` is the rows summarised in the rollup
    file ``before`` followed by ``added``, from ``added`` alone: the summaries merged (sums,
    min, max per key) and the endpoint tables merged (``identity.seen.merge_seen``, the new
    rows' positions after the old rows'): the same tables. Without a readable summary and
    endpoint table in ``before``, ``flows()`` is summarised whole."""
    old, old_seen = read_summary(before), read_endpoints(before)
    if old is None or old_seen is None:
        attach_summary(staged, flows())
        return
    merged = (
        pl.concat([old, summary_table(added)])
        .group_by(*_KEYS)
        .agg(pl.col("rows", "flows").sum(), pl.col("first").min(), pl.col("last").max())
        .select(pl.col(n).cast(t) for n, t in _SCHEMA.items())
        .sort(_KEYS, nulls_last=True)
    )
    seen = merge_seen(old_seen, seen_endpoints(added), int(old["rows"].sum() or 0))
    _add_metadata(staged, _metadata(merged, seen))


def copy_summary(source: Path, staged: Path) -> None:
    """Carry the summary (and the endpoint table) of the rollup file ``source`` over to
    ``staged``, a rollup of the same parts (``store compact`` changes buckets, never which
    rows the store holds); nothing when ``source`` has none (``stats`` then counts the raw
    flows, ``explain`` reads the rows that name its peers)."""
    try:
        metadata = pq.read_schema(source).metadata or {}
    except (OSError, ValueError):
        return
    carried = {
        k: metadata[k] for k in (SUMMARY_META, ENDPOINTS_META, _VERSION_META) if k in metadata
    }
    if carried:
        _add_metadata(staged, carried)


def _add_metadata(staged: Path, extra: dict[bytes, bytes]) -> None:
    # ParquetFile, not read_table: that one imports pyarrow.dataset and pandas (~65 MB of
    # RSS at the end of every ingest, where the derivation peaks)
    with pq.ParquetFile(staged) as file:
        table = file.read()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    pq.write_table(table, staged, compression="zstd")
    fsync(staged)


def _current(metadata: dict[bytes, bytes]) -> bool:
    """Whether the tables in ``metadata`` are of this ``SUMMARY_VERSION``."""
    return int(metadata.get(_VERSION_META, b"1")) == SUMMARY_VERSION


def read_summary(path: Path) -> pl.DataFrame | None:
    """The summary stored in the metadata of the Parquet file at ``path`` (a rollup), or None
    when it has none or cannot be read (the caller summarises the raw flows instead)."""
    try:
        metadata = parquet_metadata(path, _VERSION_META, SUMMARY_META)
        if not _current(metadata):
            return None
        data = json.loads(metadata[SUMMARY_META])
        if data["columns"] != list(_SCHEMA):
            return None
        rows = [
            [*r[:6], *(datetime.fromisoformat(t) if t is not None else None for t in r[6:])]
            for r in data["rows"]
        ]
        return pl.DataFrame(rows, schema=_SCHEMA, orient="row")
    except (OSError, KeyError, ValueError, TypeError, IndexError):
        return None


def read_endpoints(path: Path) -> pl.DataFrame | None:
    """The endpoint table (``identity.seen.SEEN_SCHEMA``) stored in the metadata of the rollup
    file at ``path``, or None when it has none (a rollup written before it existed) or it
    cannot be read: ``explain`` then reads the raw rows that name its peers."""
    try:
        metadata = parquet_metadata(path, _VERSION_META, ENDPOINTS_META)
        if not _current(metadata):
            return None
        data = metadata[ENDPOINTS_META]
        return pl.read_json(io.BytesIO(data), schema=SEEN_SCHEMA)
    except (OSError, KeyError, ValueError, TypeError, pl.exceptions.PolarsError):
        return None
