"""The shape every format module fills in, and helpers they share.

A format is: a raw schema (the nested JSON record as polars types), a per-record ``prepare``
for the slow path (unwrap envelopes, fix key spelling, classify non-flow records), an optional
``fast_read`` that parses a chunk of NDJSON natively, and a pure ``normalize`` from a raw frame
to the canonical flow schema.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

__all__ = [
    "Skip",
    "Prepared",
    "FastResult",
    "FormatSpec",
    "snake_keys",
    "enum_name",
    "normalize_arrow",
    "arrow_schema",
    "read_ndjson",
    "SKIP_MARKER",
]

# A key the reader writes in place of a line it already knows to skip (e.g. an agent log line
# in a container log), so the native reader keeps one row per line; the value is the reason.
SKIP_MARKER = "__analyzer_skip__"


@dataclass(frozen=True, slots=True)
class Skip:
    """A record that is not a flow: why, and (for lost-event records) how many events it lost."""

    reason: str
    lost_events: int = 0


Prepared = Iterable["dict[str, Any] | Skip"]


@dataclass(frozen=True, slots=True)
class FastResult:
    """A natively parsed chunk: raw rows, and per row a skip reason (null for flow rows)."""

    raw: pl.DataFrame
    skip_reason: pl.Series
    lost_events: int


@dataclass(frozen=True, slots=True)
class FormatSpec:
    name: str
    raw_schema: pl.Schema
    prepare: Callable[[Any], Prepared]
    normalize: Callable[[pl.DataFrame], pl.DataFrame]
    sniff: Callable[[Any], bool]
    fast_read: Callable[[bytes], FastResult] | None = None
    # fast_read understands SKIP_MARKER lines (so container-log-wrapped files can use it)
    fast_reads_markers: bool = False
    # per raw row, why it must not be stored (null: fine); see _screen.screen
    raw_problems: pl.Expr | None = None


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
# Proto field names that are not snake_case in the .proto itself; protojson keeps them as is.
_KEEP = frozenset(
    {
        "IP",
        "Type",
        "ID",
        "ipVersion",
        "TCP",
        "UDP",
        "SCTP",
        "ICMPv4",
        "ICMPv6",
        "VRRP",
        "IGMP",
        "Summary",
        "FIN",
        "SYN",
        "RST",
        "PSH",
        "ACK",
        "URG",
        "ECE",
        "CWR",
        "NS",
        "Key",
    }
)
# gRPC-web (old Hubble UI) suffixes repeated fields with "List".
_LIST_SUFFIX = re.compile(r"List$")


@lru_cache(maxsize=4096)
def _snake(key: str) -> str:
    if key in _KEEP:
        return key
    if key.endswith("List") and len(key) > 4 and key[0].islower():
        key = _LIST_SUFFIX.sub("", key)
    return _CAMEL.sub(r"_\1", key).lower()


def snake_keys(obj: Any) -> Any:
    """Rewrite lowerCamelCase keys (protojson, grpcurl, gRPC-web) to the proto snake_case names.

    Values are untouched: label strings and names are data, never rewritten.
    """
    if isinstance(obj, dict):
        return {_snake(k): snake_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [snake_keys(v) for v in obj]
    return obj


def enum_name(expr: pl.Expr, names: Mapping[int, str]) -> pl.Expr:
    """An enum column that may hold names or integers (as text) -> upper-case names."""
    mapping = {str(k): v for k, v in names.items()}
    return expr.cast(pl.String).replace(mapping)


def normalize_arrow(
    normalize: Callable[[pl.DataFrame], pl.DataFrame], batch: pa.RecordBatch
) -> pa.RecordBatch:
    """Run a frame normalizer on one Arrow batch (the shape Spark ``mapInArrow`` hands over)."""
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    out = normalize(frame).to_arrow()
    batches = out.to_batches()
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=out.schema)
    return pa.concat_batches(batches) if len(batches) > 1 else batches[0]


def _plain(t: pa.DataType) -> pa.DataType:
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain(f.type)) for f in t])
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_plain(t.value_type))
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    return t


def arrow_schema(schema: pl.Schema) -> pa.Schema:
    """The Arrow schema pyarrow's JSON reader needs for a polars raw schema."""
    empty = pl.DataFrame(schema=schema).to_arrow().schema
    return pa.schema([pa.field(f.name, _plain(f.type)) for f in empty])


def read_ndjson(chunk: bytes, schema: pa.Schema) -> pl.DataFrame:
    """Parse NDJSON natively (pyarrow's multi-threaded reader) with an explicit schema.

    Unknown keys are ignored; any line that does not fit the schema raises, and the caller
    falls back to the per-line path for that chunk. (polars' own NDJSON reader was several
    times slower on deeply nested Hubble records.)
    """
    table = pa_json.read_json(
        io.BytesIO(chunk),
        read_options=pa_json.ReadOptions(block_size=1 << 22),
        parse_options=pa_json.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="ignore"
        ),
    )
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame
