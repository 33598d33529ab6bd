"""Calico Enterprise / Calico Cloud ``flows.log`` (Felix file reporter; also ES/Linseed docs).

One aggregate per line: ``num_flows`` connections between two endpoints in an export window.
Placeholders (``-``) become null; ``pvt``/``pub`` become network entities; the reporter side
gives the direction (``dst`` ingress, ``src`` egress); both policy-string grammars are read.
Aggregates describe the initiating direction, so ``is_reply`` is false.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from analyzer import schema as S
from analyzer.ingest import _calico_common as C
from analyzer.ingest._format import (
    FastResult,
    FormatSpec,
    Prepared,
    Skip,
    arrow_schema,
    read_ndjson,
    snake_keys,
)
from analyzer.ingest._screen import (
    INVALID_PORT,
    TIME_OUT_OF_RANGE,
    bad_epoch_text,
    bad_port_text,
    first_problem,
)

__all__ = ["SPEC", "RAW_SCHEMA", "normalize", "prepare", "sniff"]

_S = pl.String()
_LABELS = pl.Struct({"labels": pl.List(_S)})
RAW_SCHEMA = pl.Schema(
    {
        "start_time": _S,
        "end_time": _S,
        "host": _S,
        **{
            f"{side}_{f}": t
            for side in ("source", "dest")
            for f, t in (
                ("ip", _S),
                ("name", _S),
                ("name_aggr", _S),
                ("namespace", _S),
                ("port", _S),
                ("type", _S),
                ("labels", _LABELS),
            )
        },
        "dest_service_namespace": _S,
        "dest_service_name": _S,
        "dest_service_port": _S,
        "dest_service_port_num": _S,
        "dest_domains": pl.List(_S),
        "proto": _S,
        "action": _S,
        "reporter": _S,
        "policies": pl.Struct(
            {
                "all_policies": pl.List(_S),
                "enforced_policies": pl.List(_S),
                "pending_policies": pl.List(_S),
            }
        ),
        "bytes_in": _S,
        "bytes_out": _S,
        "packets_in": _S,
        "packets_out": _S,
        "num_flows": _S,
    }
)
# Felix writes numbers as JSON numbers; pyarrow will not read a number into a string column.
_NUMERIC = {
    "start_time",
    "end_time",
    "source_port",
    "dest_port",
    "dest_service_port_num",
    "bytes_in",
    "bytes_out",
    "packets_in",
    "packets_out",
    "num_flows",
}
_RAW_ARROW = arrow_schema(
    pl.Schema({k: (pl.Int64() if k in _NUMERIC else v) for k, v in RAW_SCHEMA.items()})
)
_SIGNATURE = ("source_name_aggr", "dest_name_aggr", "num_flows", "source_type", "dest_type")


def sniff(obj: Any) -> bool:
    if not isinstance(obj, dict) or "Key" in obj:
        return False
    keys = {k.replace("Aggr", "_aggr") for k in obj}
    return sum(1 for k in _SIGNATURE if k in keys) >= 2 or (
        "proto" in obj and "reporter" in obj and "action" in obj
    )


def prepare(obj: Any) -> Prepared:
    if not isinstance(obj, dict):
        return [Skip("records that are not JSON objects")]
    if any(not k.islower() for k in obj):
        obj = snake_keys(obj)
    if not sniff(obj):
        return [Skip("records that are not Calico flow-log entries")]
    labels = {}
    for side in ("source_labels", "dest_labels"):
        value = obj.get(side)
        if isinstance(value, list):  # some exporters flatten the {"labels": [...]} wrapper
            labels[side] = {"labels": value}
    return [{**obj, **labels} if labels else obj]


def fast_read(chunk: bytes) -> FastResult:
    raw = read_ndjson(chunk, _RAW_ARROW).cast(RAW_SCHEMA)
    known = pl.col("reporter").is_not_null() | pl.col("source_name_aggr").is_not_null()
    skip = raw.select(
        pl.when(known)
        .then(pl.lit(None, _S))
        .otherwise(pl.lit("records that are not Calico flow-log entries"))
    ).to_series()
    if skip.null_count() != len(skip):
        raise ValueError("unrecognised records in chunk")
    return FastResult(raw=raw, skip_reason=skip, lost_events=0)


def _side(side: str, out: str) -> list[pl.Expr]:
    def c(field: str) -> pl.Expr:
        return pl.col(f"{side}_{field}")

    ent = C.entity(c("type"), c("name_aggr"), c("namespace"))
    return [
        C.clean(c("ip")).alias(f"{out}_ip"),
        C.port(c("port")).alias(f"{out}_port"),
        C.clean(c("namespace")).alias(f"{out}_namespace"),
        C.pod(ent, c("name"), c("name_aggr")).alias(f"{out}_pod"),
        C.workload(ent, c("name_aggr")).alias(f"{out}_workload"),
        C.labels_list(c("labels").struct.field("labels")).alias(f"{out}_labels"),
        ent.alias(f"{out}_entity"),
    ]


def normalize(raw: pl.DataFrame) -> pl.DataFrame:
    """Raw flows.log rows (``RAW_SCHEMA``) -> canonical flow rows. Pure."""
    pol = raw.select(
        pl.col("policies").struct.field(f).alias(f)
        for f in ("all_policies", "enforced_policies", "pending_policies")
    )
    has_new = pl.col("enforced_policies").is_not_null() | pl.col("pending_policies").is_not_null()
    enforced = (
        pl.when(has_new)
        .then(C.policy_strings(pl.col("enforced_policies"), None, pol, "enforced_policies"))
        .otherwise(C.policy_strings(pl.col("all_policies"), False, pol, "all_policies"))
    )
    pending = (
        pl.when(has_new)
        .then(C.policy_strings(pl.col("pending_policies"), None, pol, "pending_policies"))
        .otherwise(C.policy_strings(pl.col("all_policies"), True, pol, "all_policies"))
    )
    policies = pol.select(enforced.alias(S.POLICIES_ENFORCED), pending.alias(S.POLICIES_PENDING))
    svc_ns, svc = C.clean(pl.col("dest_service_namespace")), C.clean(pl.col("dest_service_name"))
    frame = raw.select(
        C.epoch_seconds(pl.col("start_time")).alias(S.TIME),
        pl.lit("calico").alias(S.SOURCE_FORMAT),
        C.clean(pl.col("host")).alias(S.NODE),
        C.verdict(pl.col("action")).alias(S.VERDICT),
        C.direction(pl.col("reporter")).alias(S.DIRECTION),
        pl.lit(False).alias(S.IS_REPLY),
        C.protocol(pl.col("proto")).alias(S.PROTOCOL),
        *_side("source", "src"),
        *_side("dest", "dst"),
        pl.col("dest_domains").alias(S.DST_NAMES),
        C.to_int(pl.col("num_flows")).fill_null(1).alias(S.FLOW_COUNT),
        C.epoch_seconds(pl.col("end_time")).alias(S.END_TIME),
        pl.lit("aggregate").alias(S.FLOW_TYPE),
        pl.when(svc.is_not_null())
        .then(pl.concat_str(svc_ns.fill_null(""), pl.lit("/"), svc))
        .alias(S.DST_SERVICE),
        pl.col("reporter").str.to_lowercase().alias(S.REPORTER),
        *C.traffic_totals(),
    ).with_columns(policies)
    return S.conform(frame)


RAW_PROBLEMS = first_problem(
    (bad_port_text(pl.col("source_port")) | bad_port_text(pl.col("dest_port")), INVALID_PORT),
    (bad_epoch_text(pl.col("start_time")) | bad_epoch_text(pl.col("end_time")), TIME_OUT_OF_RANGE),
)

SPEC = FormatSpec(
    name="calico",
    raw_schema=RAW_SCHEMA,
    prepare=prepare,
    normalize=normalize,
    sniff=sniff,
    fast_read=fast_read,
    raw_problems=RAW_PROBLEMS,
)
