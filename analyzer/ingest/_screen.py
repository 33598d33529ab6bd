"""What must never reach the store, and the checks that keep it out.

One bad record must not make a whole store unreadable, nor make ``recommend`` write a rule
for traffic that was never observed. Such records are skipped, counted and reported with
their line numbers, whichever parse path read them:

* text that is not valid UTF-8 (raw invalid bytes, or a ``\\uD8xx`` escape without its
  partner): Parquet strings must be UTF-8, and polars, DuckDB and pyarrow refuse a part that
  holds one. Such records are skipped, never repaired: a "repaired" label value would be one
  no pod ever carried;
* ports that are not an integer in 0..65535 (``-1``, ``65536``, ``80.5``): never rounded;
* times outside 0001-01-01..9999-12-31 UTC, the range of protobuf's Timestamp (Hubble's own
  type) and of Python's datetime, through which every command reads the window.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import polars as pl

from analyzer import schema as S

__all__ = [
    "INVALID_UTF8",
    "INVALID_PORT",
    "TIME_OUT_OF_RANGE",
    "EPOCH_RANGE",
    "valid_utf8",
    "encodable",
    "may_hold_lone_surrogate",
    "bad_port",
    "bad_port_text",
    "bad_epoch_text",
    "first_problem",
    "screen",
]

INVALID_UTF8 = "records with invalid UTF-8 text"
INVALID_PORT = "records with an invalid port (not an integer in 0..65535)"
TIME_OUT_OF_RANGE = "records with a time outside 0001-01-01..9999-12-31"

_MIN_TIME = datetime(1, 1, 1, tzinfo=UTC)
_MAX_TIME = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
EPOCH_RANGE = (int(_MIN_TIME.timestamp()), int(_MAX_TIME.timestamp()))
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_PLACEHOLDERS = ("-", "", "*")


def valid_utf8(data: bytes) -> bool:
    """Whether ``data`` decodes as UTF-8 (ASCII, the usual case, is checked without decoding)."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def may_hold_lone_surrogate(data: bytes) -> bool:
    """Whether JSON text holds a ``\\uD800``-``\\uDFFF`` escape (then ``encodable`` decides)."""
    return _SURROGATE_ESCAPE.search(data) is not None


def encodable(value: Any) -> bool:
    """Whether a decoded JSON value can be written as UTF-8 (no lone surrogates)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def bad_port(value: pl.Expr) -> pl.Expr:
    """A numeric port that is present but not an integer in 0..65535."""
    return value.is_not_null() & (
        value.is_nan() | ~value.is_between(0, 65535) | (value.floor() != value)
    )


def bad_port_text(value: pl.Expr) -> pl.Expr:
    """A port given as text or number (Calico renderings): present, not a placeholder, and
    not an integer in 0..65535."""
    text = value.cast(pl.String).str.strip_chars()
    number = text.cast(pl.Float64, strict=False)
    present = text.is_not_null() & ~text.is_in(_PLACEHOLDERS)
    return present & (number.is_null() | bad_port(number))


def bad_epoch_text(value: pl.Expr) -> pl.Expr:
    """Epoch seconds (number or text) outside the representable range."""
    number = value.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    low, high = EPOCH_RANGE
    return number.is_not_null() & (number.is_nan() | ~number.is_between(low, high))


def first_problem(*checks: tuple[pl.Expr, str]) -> pl.Expr:
    """Per row, the reason of the first check that holds (null when none does)."""
    return pl.coalesce(pl.when(cond).then(pl.lit(reason)) for cond, reason in checks)


def _time_outside(column: str) -> pl.Expr:
    value = pl.col(column)
    return value.is_not_null() & ~value.is_between(pl.lit(_MIN_TIME), pl.lit(_MAX_TIME))


_CANONICAL = first_problem(
    (_time_outside(S.TIME) | _time_outside(S.END_TIME), TIME_OUT_OF_RANGE),
    (pl.col(S.SRC_PORT).is_not_null() & ~pl.col(S.SRC_PORT).is_between(0, 65535), INVALID_PORT),
    (pl.col(S.DST_PORT).is_not_null() & ~pl.col(S.DST_PORT).is_between(0, 65535), INVALID_PORT),
)

Skips = list[tuple[str, list[int]]]


def _split(reasons: pl.Series, lines: pl.Series) -> tuple[pl.Series | None, Skips]:
    """``(rows to keep or None for all, [(reason, lines)])`` from a per-row reason column."""
    if reasons.null_count() == len(reasons):
        return None, []
    table = pl.DataFrame({"r": reasons, "line": lines}).drop_nulls("r")
    skipped = [
        (str(reason), group["line"].to_list())
        for (reason,), group in table.group_by("r", maintain_order=True)
    ]
    return reasons.is_null(), skipped


def screen(
    raw: pl.DataFrame,
    lines: pl.Series,
    normalize: Callable[[pl.DataFrame], pl.DataFrame],
    raw_problems: pl.Expr | None,
) -> tuple[pl.DataFrame, Skips]:
    """Normalize ``raw`` (one row per record, ``lines`` its line numbers), leaving out and
    reporting the records the store must not hold.

    ``raw_problems`` checks what normalization would lose (a port of 80.5, epoch seconds
    that overflow); the canonical rows are then checked for times out of range. Pure.
    """
    skipped: Skips = []
    if raw_problems is not None and raw.height:
        keep, found = _split(raw.select(raw_problems).to_series(), lines)
        if keep is not None:
            raw, lines, skipped = raw.filter(keep), lines.filter(keep), found
    frame = normalize(raw)
    if frame.height:
        keep, found = _split(frame.select(_CANONICAL).to_series(), lines)
        if keep is not None:
            frame, skipped = frame.filter(keep), skipped + found
    return frame, skipped
