"""The canonical flow schema contract of DESIGN.md."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from analyzer import schema
from analyzer.errors import SchemaError

DESIGN_COLUMNS = {
    "time": pa.timestamp("us", tz="UTC"),
    "source_format": pa.string(),
    "node": pa.string(),
    "verdict": pa.string(),
    "drop_reason": pa.string(),
    "direction": pa.string(),
    "is_reply": pa.bool_(),
    "protocol": pa.string(),
    "src_ip": pa.string(),
    "dst_ip": pa.string(),
    "src_port": pa.int32(),
    "dst_port": pa.int32(),
    "src_namespace": pa.string(),
    "dst_namespace": pa.string(),
    "src_pod": pa.string(),
    "dst_pod": pa.string(),
    "src_workload": pa.string(),
    "dst_workload": pa.string(),
    "src_labels": pa.list_(pa.string()),
    "dst_labels": pa.list_(pa.string()),
    "src_namespace_labels": pa.list_(pa.string()),
    "dst_namespace_labels": pa.list_(pa.string()),
    "src_entity": pa.string(),
    "dst_entity": pa.string(),
    "src_identity": pa.int64(),
    "dst_identity": pa.int64(),
    "dst_names": pa.list_(pa.string()),
    "dns_query": pa.string(),
    "flow_count": pa.int64(),
}


def test_design_columns_keep_their_names_and_types() -> None:
    for name, arrow_type in DESIGN_COLUMNS.items():
        assert schema.FLOW_SCHEMA.field(name).type == arrow_type, name


def test_conform_fills_missing_columns_and_orders_them() -> None:
    frame = schema.conform(pl.DataFrame({"dst_port": [8080], "verdict": ["forwarded"]}))
    assert tuple(frame.columns) == schema.FLOW_COLUMNS
    assert frame.schema == schema.FLOW_POLARS_SCHEMA
    assert frame["dst_port"].to_list() == [8080]
    assert frame["src_labels"].to_list() == [None]


def test_conform_rejects_unknown_columns() -> None:
    with pytest.raises(SchemaError, match="not_a_column"):
        schema.conform(pl.DataFrame({"not_a_column": [1]}))


def test_arrow_and_polars_schemas_agree() -> None:
    table = schema.to_arrow(pl.DataFrame({"src_labels": [["app=a"]], "dst_port": [53]}))
    assert table.schema == schema.FLOW_SCHEMA
    assert table.column("src_labels").to_pylist() == [["app=a"]]
