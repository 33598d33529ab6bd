"""``explain`` resolves a peer from the endpoint table the rollup carries (``identity.seen``)
exactly as from the flow rows: latest labels first, replies included, an IP's latest pod, a
label form's candidates, a namespace's labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analyzer.errors import UsageError
from analyzer.identity.seen import SeenTable, seen_endpoints
from analyzer.policy.peers import resolve_endpoint
from analyzer.schema import conform

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


def _row(i: int, src: tuple[str, str, str, list[str]], dst: tuple[str, str, str, list[str]],
         *, reply: bool = False, ns_labels: list[str] | None = None) -> dict[str, object]:
    (sns, spod, sip, slabels), (dns, dpod, dip, dlabels) = src, dst
    return {
        "time": T0 + timedelta(seconds=i),
        "src_namespace": sns, "src_pod": spod, "src_ip": sip, "src_labels": slabels,
        "src_entity": "pod" if spod else "world",
        "src_namespace_labels": ns_labels or [],
        "dst_namespace": dns, "dst_pod": dpod, "dst_ip": dip, "dst_labels": dlabels,
        "dst_entity": "pod" if dpod else "world",
        "dst_namespace_labels": [],
        "is_reply": reply, "protocol": "TCP", "src_port": 40000 + i, "dst_port": 8080,
        "verdict": "FORWARDED",
    }


API = ("prod", "api-1", "10.0.0.1", ["app=api", "version=1"])
API2 = ("prod", "api-1", "10.0.0.9", ["app=api", "version=2"])  # restarted: new IP, labels
DB = ("prod", "db-0", "10.0.0.2", ["app=db"])
ONLY_REPLY = ("prod", "cache-0", "10.0.0.3", ["app=cache"])  # never a request source
WEB = ("web", "web-1", "10.1.0.1", ["app=web"])
OUT = ("", "", "203.0.113.9", [])


@pytest.fixture
def flows() -> pl.LazyFrame:
    rows = [
        _row(0, API, DB, ns_labels=["team=a"]),
        _row(1, DB, API, reply=True),
        _row(2, ONLY_REPLY, WEB, reply=True),
        _row(3, API2, DB),
        _row(4, WEB, API2, ns_labels=["team=web"]),
        _row(5, API, OUT),
        _row(6, ("prod", "api-1", "10.0.0.9", []), DB),  # empty labels: not the latest set
    ]
    return conform(pl.DataFrame(rows, infer_schema_length=None)).lazy()


NAMES = [
    "prod/api-1", "prod/db-0", "prod/cache-0", "web/web-1", "10.0.0.1", "10.0.0.9", "10.0.0.3",
    "203.0.113.9", "198.51.100.1", "prod:app=db", "prod:app=cache", "prod:app=nothing",
    "web:app=web", "entity:world",
]


@pytest.mark.parametrize("name", NAMES)
def test_the_table_resolves_as_the_rows_do(flows: pl.LazyFrame, name: str) -> None:
    table = SeenTable(seen_endpoints(flows))
    assert resolve_endpoint(name, None, table) == resolve_endpoint(name, None, flows)


def test_latest_labels_and_address(flows: pl.LazyFrame) -> None:
    table = SeenTable(seen_endpoints(flows))
    api = resolve_endpoint("prod/api-1", None, table).peer
    assert api.labels == {"app": "api", "version": "1"}  # row 5: the latest non-empty set
    assert api.ip == "10.0.0.9"  # row 6 (empty labels, still the latest address)
    old = resolve_endpoint("10.0.0.1", None, table)
    assert old.peer.name == "api-1"  # the pod the old address was
    cache = resolve_endpoint("prod/cache-0", None, table).peer  # only ever in a reply
    assert cache.labels == {"app": "cache"}
    with pytest.raises(UsageError, match="different label sets"):
        resolve_endpoint("prod:", None, table)
    with pytest.raises(UsageError, match="not in the inventory or the flow store"):
        resolve_endpoint("prod/none", None, table)


def test_the_table_is_small_and_round_trips(flows: pl.LazyFrame) -> None:
    table = seen_endpoints(flows)
    assert table.height <= 2 * 7
    again = pl.read_json(table.write_json().encode(), schema=table.schema)
    assert again.equals(table)
