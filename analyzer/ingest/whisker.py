"""Calico Whisker backend ``/whisker-backend/flows`` responses.

``{"items": [FlowResponse, ...]}`` as one document, or one FlowResponse per line (``jq -c
'.items[]'``, or the SSE stream with ``data:`` stripped). Labels arrive as one string joined by
`` | ``; there is no endpoint type, so ``PUBLIC NETWORK``/``PRIVATE NETWORK`` names and the
presence of a namespace decide the entity.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from analyzer import schema as S
from analyzer.ingest import _calico_common as C
from analyzer.ingest._format import FormatSpec, Prepared, Skip, snake_keys
from analyzer.ingest._screen import INVALID_PORT, bad_port_text, first_problem

__all__ = ["SPEC", "RAW_SCHEMA", "normalize", "prepare", "sniff"]

_S = pl.String()
RAW_SCHEMA = pl.Schema(
    {
        "start_time": _S,
        "end_time": _S,
        "action": _S,
        **{
            f"{side}_{f}": _S
            for side in ("source", "dest")
            for f in ("name", "namespace", "labels")
        },
        "protocol": _S,
        "dest_port": _S,
        "reporter": _S,
        "policies": pl.Struct({"enforced": pl.List(C.HIT), "pending": pl.List(C.HIT)}),
        **{f: _S for f in ("packets_in", "packets_out", "bytes_in", "bytes_out")},
    }
)


def sniff(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    return (
        "protocol" in obj
        and "reporter" in obj
        and (isinstance(obj.get("source_labels"), str) or isinstance(obj.get("start_time"), str))
    )


def prepare(obj: Any) -> Prepared:
    if not isinstance(obj, dict):
        return [Skip("records that are not JSON objects")]
    if any(not k.islower() for k in obj):
        obj = snake_keys(obj)
    if "protocol" not in obj or "reporter" not in obj:
        return [Skip("records that are not Whisker flows")]
    return [obj]


def _labels(col: str) -> pl.Expr:
    return C.labels_list(pl.col(col).str.split(" | ").list.eval(pl.element().str.strip_chars()))


def _side(side: str, out: str) -> list[pl.Expr]:
    name = pl.col(f"{side}_name")
    ent = C.entity(None, name, pl.col(f"{side}_namespace"))
    return [
        C.clean(pl.col(f"{side}_namespace")).alias(f"{out}_namespace"),
        C.pod(ent, name).alias(f"{out}_pod"),
        C.workload(ent, name).alias(f"{out}_workload"),
        _labels(f"{side}_labels").alias(f"{out}_labels"),
        ent.alias(f"{out}_entity"),
    ]


def normalize(raw: pl.DataFrame) -> pl.DataFrame:
    """Raw Whisker FlowResponse rows (``RAW_SCHEMA``) -> canonical flow rows. Pure."""
    pol = pl.col("policies")
    frame = raw.select(
        C.rfc3339(pl.col("start_time")).alias(S.TIME),
        pl.lit("whisker").alias(S.SOURCE_FORMAT),
        C.verdict(pl.col("action")).alias(S.VERDICT),
        C.direction(pl.col("reporter")).alias(S.DIRECTION),
        pl.lit(False).alias(S.IS_REPLY),
        C.protocol(pl.col("protocol")).alias(S.PROTOCOL),
        C.port(pl.col("dest_port")).replace(0, None).alias(S.DST_PORT),
        *_side("source", "src"),
        *_side("dest", "dst"),
        pl.lit(1, pl.Int64).alias(S.FLOW_COUNT),
        C.rfc3339(pl.col("end_time")).alias(S.END_TIME),
        pl.lit("aggregate").alias(S.FLOW_TYPE),
        pl.col("reporter").str.to_lowercase().alias(S.REPORTER),
        C.policy_hits(pol.struct.field("enforced")).alias(S.POLICIES_ENFORCED),
        C.policy_hits(pol.struct.field("pending")).alias(S.POLICIES_PENDING),
        *C.traffic_totals(),
    )
    return S.conform(frame)


SPEC = FormatSpec(
    name="whisker",
    raw_schema=RAW_SCHEMA,
    prepare=prepare,
    normalize=normalize,
    sniff=sniff,
    raw_problems=first_problem((bad_port_text(pl.col("dest_port")), INVALID_PORT)),
)
