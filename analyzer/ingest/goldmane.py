"""Calico Open Source (v3.30+) Goldmane flows.

Two renderings of the same proto: protojson as grpcurl prints it (``FlowResult {id, flow}`` or
bare ``Flow``; lowerCamelCase, ``Key``, int64 as strings, enum names) and the emitter NDJSON
(snake_case, integer enums). Goldmane never has IPs, pod names or source ports: names are the
aggregated ``prefix-*`` names.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from analyzer import schema as S
from analyzer.ingest import _calico_common as C
from analyzer.ingest._format import FormatSpec, Prepared, Skip, snake_keys
from analyzer.ingest._screen import (
    INVALID_PORT,
    TIME_OUT_OF_RANGE,
    bad_epoch_text,
    bad_port_text,
    first_problem,
)

__all__ = ["SPEC", "RAW_SCHEMA", "normalize", "prepare", "sniff"]

_S = pl.String()
_KEY = pl.Struct(
    {
        **{f"{side}_{f}": _S for side in ("source", "dest") for f in ("name", "namespace", "type")},
        "dest_port": _S,
        "dest_service_name": _S,
        "dest_service_namespace": _S,
        "dest_service_port_name": _S,
        "dest_service_port": _S,
        "proto": _S,
        "reporter": _S,
        "action": _S,
        "policies": pl.Struct(
            {"enforced_policies": pl.List(C.HIT), "pending_policies": pl.List(C.HIT)}
        ),
    }
)
RAW_SCHEMA = pl.Schema(
    {
        "Key": _KEY,
        "start_time": _S,
        "end_time": _S,
        "source_labels": pl.List(_S),
        "dest_labels": pl.List(_S),
        **{f: _S for f in ("packets_in", "packets_out", "bytes_in", "bytes_out")},
        "num_connections_started": _S,
        "num_connections_completed": _S,
        "num_connections_live": _S,
    }
)


def _key(obj: dict[str, Any]) -> Any:
    return obj.get("Key", obj.get("key"))


def sniff(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    if isinstance(obj.get("flow"), dict):  # FlowResult {id, flow}
        obj = obj["flow"]
    return isinstance(_key(obj), dict)


def prepare(obj: Any) -> Prepared:
    if not isinstance(obj, dict):
        return [Skip("records that are not JSON objects")]
    if isinstance(obj.get("flow"), dict):
        obj = obj["flow"]
    key = _key(obj)
    if not isinstance(key, dict):
        return [Skip("records that are not Goldmane flows")]
    flow = snake_keys({k: v for k, v in obj.items() if k not in ("Key", "key")})
    flow["Key"] = snake_keys(key)
    return [flow]


def _side(side: str, out: str) -> list[pl.Expr]:
    k = pl.col("Key")
    name = k.struct.field(f"{side}_name")
    ent = C.entity(k.struct.field(f"{side}_type"), name, k.struct.field(f"{side}_namespace"))
    return [
        C.clean(k.struct.field(f"{side}_namespace")).alias(f"{out}_namespace"),
        C.pod(ent, name).alias(f"{out}_pod"),
        C.workload(ent, name).alias(f"{out}_workload"),
        C.labels_list(pl.col(f"{side}_labels")).alias(f"{out}_labels"),
        ent.alias(f"{out}_entity"),
    ]


def normalize(raw: pl.DataFrame) -> pl.DataFrame:
    """Raw Goldmane Flow rows (``RAW_SCHEMA``, snake_case) -> canonical flow rows. Pure."""
    k = pl.col("Key")
    pol = k.struct.field("policies")
    svc = C.clean(k.struct.field("dest_service_name"))
    svc_ns = C.clean(k.struct.field("dest_service_namespace"))
    live = C.to_int(pl.col("num_connections_live"))
    started = C.to_int(pl.col("num_connections_started"))
    reporter = k.struct.field("reporter").cast(_S).str.to_lowercase()
    frame = raw.select(
        C.epoch_seconds(pl.col("start_time")).alias(S.TIME),
        pl.lit("goldmane").alias(S.SOURCE_FORMAT),
        C.verdict(k.struct.field("action")).alias(S.VERDICT),
        C.direction(k.struct.field("reporter")).alias(S.DIRECTION),
        pl.lit(False).alias(S.IS_REPLY),
        C.protocol(k.struct.field("proto")).alias(S.PROTOCOL),
        C.port(k.struct.field("dest_port")).replace(0, None).alias(S.DST_PORT),
        *_side("source", "src"),
        *_side("dest", "dst"),
        pl.coalesce(live.replace(0, None), started.replace(0, None), pl.lit(1, pl.Int64)).alias(
            S.FLOW_COUNT
        ),
        C.epoch_seconds(pl.col("end_time")).alias(S.END_TIME),
        pl.lit("aggregate").alias(S.FLOW_TYPE),
        pl.when(svc.is_not_null())
        .then(pl.concat_str(svc_ns.fill_null(""), pl.lit("/"), svc))
        .alias(S.DST_SERVICE),
        reporter.replace({"1": "src", "2": "dst"}).alias(S.REPORTER),
        C.policy_hits(pol.struct.field("enforced_policies")).alias(S.POLICIES_ENFORCED),
        C.policy_hits(pol.struct.field("pending_policies")).alias(S.POLICIES_PENDING),
        *C.traffic_totals(),
    )
    return S.conform(frame)


RAW_PROBLEMS = first_problem(
    (bad_port_text(pl.col("Key").struct.field("dest_port")), INVALID_PORT),
    (bad_epoch_text(pl.col("start_time")) | bad_epoch_text(pl.col("end_time")), TIME_OUT_OF_RANGE),
)

SPEC = FormatSpec(
    name="goldmane",
    raw_schema=RAW_SCHEMA,
    prepare=prepare,
    normalize=normalize,
    sniff=sniff,
    raw_problems=RAW_PROBLEMS,
)
