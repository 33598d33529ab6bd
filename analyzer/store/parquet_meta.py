"""The key-value metadata of a Parquet file (where the rollup keeps its key, statistics, the
``stats`` summary and the endpoint table), read by polars' footer reader.

Every reading command checks its rollup's freshness from this metadata. pyarrow's
``read_schema`` also decodes ``ARROW:schema``, a base64 copy of the Arrow schema *with* the
metadata, so its cost follows the endpoint table, which grows with the endpoints the store's
events name: on the rollup of a 10M-flow store (3.3 MB of footer) 12-18 ms per file read
against ~1 ms here (0.4 ms at 1M; benchmarks/README.md, "report flat in events").
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

__all__ = ["parquet_metadata"]


def parquet_metadata(path: Path, *keys: bytes) -> dict[bytes, bytes]:
    """The entries ``keys`` of the key-value metadata of the Parquet file at ``path`` (those it
    has; what pyarrow's ``read_schema(path).metadata`` holds under them). Only the entries
    asked for are encoded: the endpoint table is ~1.3 MB at 10M flows.

    Raises
    ------
    OSError
        No file at ``path``.
    ValueError
        Not a Parquet file, or a damaged one (values that are not UTF-8 included).
    """
    try:
        metadata = pl.read_parquet_metadata(path)
    except pl.exceptions.PolarsError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    found = ((key, metadata.get(key.decode())) for key in keys)
    return {key: value.encode() for key, value in found if value is not None}
