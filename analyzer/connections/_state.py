"""The derivation of connections split into map -> merge -> finish (issue 11, incremental rollup).

``derive_connections``/``derive_bucketed`` are ``finish(map(all rows))``; an ingest maps only its
new rows, merges them into the state kept with the rollup, and finishes. Every part of the
state merges exactly:

* ``listening``: the (protocol, destination port) pairs of requests decided without ports
  (``classify``) — the port rule's set; a union, and it only grows.
* ``counts``: per minute, the row statistics of rows ``classify`` decides — sums, min, max.
* ``pending``: rows ``classify`` leaves undecided, counted per (protocol, source port,
  destination port, minute). Their fate (request, reply, undecidable) depends only on that
  pattern and the *final* listening set, so ``finish`` decides it; adding a listening port
  later can change it either way, so they are never folded into the decided rows.
* ``sessions``: Hubble request rows per 5-tuple hash ``_h`` as partial sessions (intervals:
  first/last time with the row's global position as tie-break, the per-session
  aggregates). Rows within the idle gap belong to one session, and inserting rows
  only shrinks gaps, so every partial session lies inside one session of all the rows; two
  partials (sorted by start) belong together exactly when the next starts within the idle gap
  of the latest end before it. Undecided rows form their own partials (``_pending``), folded
  into the requests in ``finish`` when the port rule makes them requests.
* ``calico``: the per-(edge, minute) pre-aggregates of the Calico aggregates before the choice of
  reporting side — sums, any, min, max, unions.
* ``endpoints``: per endpoint key (and pattern, for undecided rows) the max of its scalars,
  any(is pod), DNS names (union) and the latest non-empty label lists with their global
  position (manifest order: the latest is the largest position).

Positions are manifest-order row numbers: a state of the first ``rows`` rows maps the next rows
from ``rows`` on, so ties in time resolve the same way whichever ingest brought the rows.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path

import polars as pl

from analyzer import schema as S
from analyzer.connections._dedupe import (
    calico_select,
    edge_aggs,
    empty_cal,
    empty_hub,
    partition_count,
)
from analyzer.connections._derive_columns import (
    _AUD,
    _BUCKET,
    _CLASS,
    _DEN,
    _DK,
    _DN,
    _DPK,
    _DST_H,
    _EDGE,
    _IGNORED,
    _L7,
    _LAST,
    _LS,
    _REPLY,
    _REQUEST,
    _ROW,
    _SK,
    _SN,
    _SOCK,
    _SPK,
    _SRC_H,
    _UNDECIDED,
    _VIP,
    CALICO_FORMATS,
    masked_expr,
)
from analyzer.connections._direction import classify, port_rule, request_columns
from analyzer.connections.buckets import Buckets
from analyzer.schema import (
    ALLOWED,
    AUDIT,
    CONNECTIONS,
    DENIED,
    DST_KEY,
    DST_NODE,
    EVENTS,
    FIRST_SEEN,
    LAST_SEEN,
    NODES,
    OUTCOME,
    SRC_KEY,
    SRC_NODE,
)

__all__ = [
    "DerivationState",
    "STATE_VERSION",
    "derive_state",
    "endpoint_range",
    "finish_endpoints",
    "finish_state",
    "hubble_edges",
    "merge_endpoints",
    "merge_hubble_edges",
    "merge_sessions",
    "merge_states",
    "session_range",
]

# 2: sessions stored in contiguous ranges of the 5-tuple hash; 3: endpoints too, in ranges of
# their key's hash (``_kh``)
STATE_VERSION = 3
_TS = pl.Datetime("us", "UTC")
_MINUTE = Buckets()  # the state's grain: every schedule's buckets are unions of minutes
_PEND = "_pending"
_POS = "_pos"
_PATTERN = [S.PROTOCOL, S.SRC_PORT, S.DST_PORT]
_U64 = pl.UInt64()
_I64 = pl.Int64()

_COUNT_SUMS = ("rows_in", "requests", "replies", "undecidable", "ignored", "sock", "vip",
               "by_ports", "masked")
COUNTS_SCHEMA = pl.Schema(
    {_BUCKET: _TS, **{c: _I64 for c in _COUNT_SUMS}, "first": _TS, "last": _TS}
)
PENDING_SCHEMA = pl.Schema(
    {S.PROTOCOL: pl.String(), S.SRC_PORT: pl.Int32(), S.DST_PORT: pl.Int32(), _BUCKET: _TS,
     "rows": _I64, "masked": _I64, "first": _TS, "last": _TS}
)
LISTENING_SCHEMA = pl.Schema({S.PROTOCOL: pl.String(), S.DST_PORT: pl.Int32()})
SESSION_SCHEMA = pl.Schema(
    {
        "_h": _U64, _PEND: pl.Boolean(), S.PROTOCOL: pl.String(), S.SRC_PORT: pl.Int32(),
        S.DST_PORT: pl.Int32(),
        "t0": _TS, "p0": _I64, "n0": pl.String(), "t1": _TS, "p1": _I64, "n1": pl.String(),
        "seen": _TS, _SPK: _U64, _SK: _U64, _DPK: _U64, _DK: _U64,
        "den_nl7": pl.Boolean(), "den_all": pl.Boolean(), EVENTS: _I64, AUDIT: pl.Boolean(),
        CONNECTIONS: _I64,
        "sn": pl.String(), "sn_t": _TS, "sn_p": _I64, "dn": pl.String(), "dn_t": _TS,
        "dn_p": _I64,
    }
)
_CAL_SUMS = ("a_src", "a_dst", "a_oth", "d_src", "d_dst", "d_oth", f"{ALLOWED}_events",
             f"{DENIED}_events")
CALICO_SCHEMA = pl.Schema(
    {
        SRC_KEY: pl.String(), DST_KEY: pl.String(), S.PROTOCOL: pl.String(),
        S.DST_PORT: pl.Int32(), _BUCKET: _TS, **{c: _I64 for c in _CAL_SUMS},
        "has_src": pl.Boolean(), "has_dst": pl.Boolean(), SRC_NODE: pl.String(),
        DST_NODE: pl.String(),
        **{f"{o}_{x}": _TS for o in (ALLOWED, DENIED) for x in ("first", "last")},
        **{f"{o}_nodes": _LS for o in (ALLOWED, DENIED)},
    }
)
_SCALARS = ("namespace", "pod", "workload", "ip", "entity")
_ENDPOINT_AGGS = ("key", *_SCALARS, "_is_pod", "labels_at", "ns_labels_at")
ENDPOINT_SCHEMA = pl.Schema(
    {
        "_kh": _U64, _PEND: pl.Boolean(), S.PROTOCOL: pl.String(), S.SRC_PORT: pl.Int32(),
        S.DST_PORT: pl.Int32(), "key": pl.String(),
        **{c: pl.String() for c in _SCALARS}, "_is_pod": pl.Boolean(),
        "labels_at": _I64, "labels": _LS, "ns_labels_at": _I64, "namespace_labels": _LS,
        "names": _LS,
    }
)


@dataclass(frozen=True, slots=True)
class DerivationState:
    """Everything ``finish_state`` needs of a run of flow rows, far smaller than the rows (see
    the module docstring). ``rows``: rows mapped (the next row's global position)."""

    rows: int
    tcp_idle: timedelta
    other_idle: timedelta
    listening: pl.DataFrame
    counts: pl.DataFrame
    pending: pl.DataFrame
    sessions: pl.DataFrame
    calico: pl.DataFrame
    endpoints: pl.DataFrame

    @staticmethod
    def frames() -> dict[str, pl.Schema]:
        """The state's frames and their schemas (the persisted form, ``store/rollup.py``)."""
        return {
            "listening": LISTENING_SCHEMA,
            "counts": COUNTS_SCHEMA,
            "pending": PENDING_SCHEMA,
            "sessions": SESSION_SCHEMA,
            "calico": CALICO_SCHEMA,
            "endpoints": ENDPOINT_SCHEMA,
        }

    @staticmethod
    def field_names() -> list[str]:
        return [f.name for f in fields(DerivationState)]


# what ``derive_state`` hands its bulk to, when asked: (frame name, rows, the state so far)
Consume = Callable[[str, pl.DataFrame, DerivationState], None]


def _conform(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    return frame.select(pl.col(n).cast(t) for n, t in schema.items())


def _idle(tcp_idle: timedelta, other_idle: timedelta) -> pl.Expr:
    return (
        pl.when(pl.col(S.PROTOCOL) == "TCP").then(pl.lit(tcp_idle)).otherwise(pl.lit(other_idle))
    )


# --- map ------------------------------------------------------------------------------------


def derive_state(
    flows: pl.LazyFrame | pl.DataFrame,
    *,
    offset: int = 0,
    tcp_idle: timedelta,
    other_idle: timedelta,
    spill: Path | None = None,
    consume: Consume | None = None,
) -> DerivationState:
    """Map flow rows (canonical schema, manifest order, the first at global position
    ``offset``) to their derivation state. Each query streams over the flows on its own
    (sharing one scan would cache every request row). With ``consume``, the state's bulk is
    handed over as it is mapped instead of kept (the returned state has no sessions and no
    endpoint rows): ``consume("endpoints", rows, early)`` once, then ``consume("sessions",
    rows, early)`` per contiguous ``session_range`` (at least once), ``early`` being the state
    without its bulk (rows, listening set, counts, pending: all final)."""
    lf = flows.lazy() if isinstance(flows, pl.DataFrame) else flows
    lf = lf.with_row_index(_ROW)
    pos = (pl.col(_ROW).cast(_I64) + offset).alias(_POS)
    classified = lf.with_columns(classify().alias(_CLASS), pos)
    cls = pl.col(_CLASS)
    no_cse = pl.QueryOptFlags(comm_subplan_elim=False)

    def collect(query: pl.LazyFrame) -> pl.DataFrame:
        return query.collect(engine="streaming", optimizations=no_cse)

    minute = _MINUTE.expr(pl.col(S.TIME)).alias(_BUCKET)
    is_req = cls == _REQUEST
    # counts, pending and listening from one scan: the rows per (minute, class, the pattern
    # where it matters: undecided rows' and requests' destination), then re-aggregated (sums,
    # minima and maxima re-aggregate exactly). Each of them scanning on its own classified
    # every row three times; collected together their pipelines' buffers stacked.
    pend, kept = cls == _UNDECIDED, (cls == _UNDECIDED) | is_req
    per = collect(
        classified.group_by(
            minute,
            cls,
            pl.when(kept).then(pl.col(S.PROTOCOL)).alias(S.PROTOCOL),
            pl.when(pend).then(pl.col(S.SRC_PORT)).alias(S.SRC_PORT),
            pl.when(kept).then(pl.col(S.DST_PORT)).alias(S.DST_PORT),
        ).agg(
            pl.len().cast(_I64).alias("rows"),
            masked_expr().sum().cast(_I64).alias("masked"),
            pl.col(S.TIME).min().alias("first"),
            pl.coalesce(S.END_TIME, S.TIME).max().alias("last"),
            pl.col(S.SOURCE_FORMAT).is_in(CALICO_FORMATS).sum().alias("_calico"),
        )
    )
    # most stores hold no Calico aggregates: then their scan (every row read and classified
    # again to find none) is skipped
    has_calico = bool(per.filter(kept)["_calico"].sum())
    per = per.drop("_calico")
    rows = pl.col("rows")
    counts = per.filter(cls != _UNDECIDED).group_by(_BUCKET).agg(
        rows.sum().alias("rows_in"),
        rows.filter(is_req).sum().alias("requests"),
        rows.filter(cls == _REPLY).sum().alias("replies"),
        pl.lit(0, _I64).alias("undecidable"),
        rows.filter(cls == _IGNORED).sum().alias("ignored"),
        rows.filter(cls == _SOCK).sum().alias("sock"),
        rows.filter(cls == _VIP).sum().alias("vip"),
        pl.lit(0, _I64).alias("by_ports"),
        pl.col("masked").sum(),
        pl.col("first").filter(is_req).min(),
        pl.col("last").filter(is_req).max(),
    )
    pending = per.filter(pend).drop(_CLASS)
    listening = (
        per.filter(is_req & pl.col(S.DST_PORT).is_not_null() & pl.col(S.PROTOCOL).is_not_null())
        .select(S.PROTOCOL, S.DST_PORT)
        .unique()
    )
    del per
    early = DerivationState(
        rows=offset + int(counts["rows_in"].sum() or 0) + int(pending["rows"].sum() or 0),
        tcp_idle=tcp_idle,
        other_idle=other_idle,
        listening=_conform(listening, LISTENING_SCHEMA),
        counts=_conform(counts, COUNTS_SCHEMA),
        pending=_conform(pending, PENDING_SCHEMA),
        sessions=SESSION_SCHEMA.to_frame(),
        calico=CALICO_SCHEMA.to_frame(),
        endpoints=ENDPOINT_SCHEMA.to_frame(),
    )
    def requests(rows: pl.LazyFrame) -> pl.LazyFrame:
        """Request rows and undecided rows (requests-to-be) of ``rows``, with the working
        columns."""
        return request_columns(
            rows.with_columns(classify().alias(_CLASS), pos).filter(kept)
        ).with_columns(pend.alias(_PEND))

    req = requests(lf)
    # the key's hash: the range the row is stored and finished in (``endpoint_range``)
    endpoints = _conform(
        _map_endpoints(lf, requests, offset, collect).with_columns(
            pl.col("key").hash().alias("_kh")
        ),
        ENDPOINT_SCHEMA,
    )
    if consume is not None:
        consume("endpoints", endpoints, early)
        endpoints = ENDPOINT_SCHEMA.to_frame()
    calico = collect(_map_calico(req)) if has_calico else CALICO_SCHEMA.to_frame()
    hub_rows = int(counts["requests"].sum() or 0) + int(pending["rows"].sum() or 0)
    sessions = _map_sessions(
        req, hub_rows, tcp_idle, other_idle, spill, collect,
        None if consume is None else (lambda rows: consume("sessions", rows, early)),
    )
    return replace(
        early,
        sessions=sessions,
        calico=_conform(calico, CALICO_SCHEMA),
        endpoints=endpoints,
    )


def _pattern(column: str) -> pl.Expr:
    """The port-rule pattern of undecided rows; null for decided ones (one group)."""
    return pl.when(pl.col(_PEND)).then(pl.col(column)).alias(column)


def _map_endpoints(
    lf: pl.LazyFrame,
    requests: Callable[[pl.LazyFrame], pl.LazyFrame],
    offset: int,
    collect: Callable[[pl.LazyFrame], pl.DataFrame],
) -> pl.DataFrame:
    def at(name: str, column: str, bit: int) -> pl.Expr:
        return pl.when(pl.col(f"{name}_{column}").list.len() > 0).then(pl.col(_POS) * 2 + bit)

    def side(frame: pl.LazyFrame, name: str) -> pl.LazyFrame:
        return frame.select(
            _PEND, *_PATTERN, *(pl.col(f"{name}:{c}").alias(c) for c in _ENDPOINT_AGGS)
        )

    group = [_PEND, *_PATTERN, "key"]
    # one scan for both ends: grouped by (pattern, source key, destination key) first (the
    # aggregates are maxima and any: they re-aggregate per key exactly); a scan per end read
    # and classified every row twice, and stacking the ends row by row costs more still.
    # Keys and scalars are grouped as categoricals (polars compares them by their strings,
    # so maxima are the same): a string maximum per group held a string state per group and
    # thread, 4M flows +150 MB of peak (benchmarks/README.md, "The derivation's peak").
    pairs = collect(
        requests(lf)
        .group_by(
            _PEND,
            *(_pattern(c) for c in _PATTERN),
            pl.col(_SK).cast(pl.Categorical()).alias("src:key"),
            pl.col(_DK).cast(pl.Categorical()).alias("dst:key"),
        )
        .agg(
            *(
                agg
                for name, bit in (("src", 0), ("dst", 1))
                for agg in (
                    *(
                        pl.col(f"{name}_{c}").cast(pl.Categorical()).max().alias(f"{name}:{c}")
                        for c in _SCALARS
                    ),
                    (pl.col(f"_{name}_pk").is_not_null() | (pl.col(f"{name}_entity") == "pod"))
                    .any()
                    .alias(f"{name}:_is_pod"),
                    at(name, "labels", bit).max().alias(f"{name}:labels_at"),
                    at(name, "namespace_labels", bit).max().alias(f"{name}:ns_labels_at"),
                )
            )
        )
    ).lazy()
    scalars = (
        pl.concat([side(pairs, "src"), side(pairs, "dst")])
        .group_by(group)
        .agg(
            *(pl.col(c).max() for c in _SCALARS),
            pl.col("_is_pod").any(),
            pl.col("labels_at").max(),
            pl.col("ns_labels_at").max(),
        )
        .with_columns(pl.col("key", *_SCALARS).cast(pl.String()))
        .collect()
    )
    del pairs
    # DNS names are on few rows: those are found before anything is classified, and read
    # once for both ends (their distinct combinations)
    named = collect(
        requests(
            lf.filter(
                (pl.col(S.SRC_NAMES).list.len() > 0) | (pl.col(S.DST_NAMES).list.len() > 0)
            )
        )
        .select(
            _PEND, *(_pattern(c) for c in _PATTERN), pl.col(_SK).alias("src:key"),
            pl.col(_DK).alias("dst:key"), pl.col(S.SRC_NAMES).alias("src:names"),
            pl.col(S.DST_NAMES).alias("dst:names"),
        )
        .unique()
    )
    names = (
        pl.concat(
            [
                named.select(
                    _PEND, *_PATTERN, pl.col(f"{name}:key").alias("key"),
                    pl.col(f"{name}:names").alias("names"),
                )
                for name in ("src", "dst")
            ]
        )
        .filter(pl.col("names").list.len() > 0)
        .explode("names")
        .unique()
        .group_by(group)
        .agg(pl.col("names").sort())
    )
    del named
    # label lists read back for the chosen rows only (never millions of lists at once); the
    # positions are global, the rows of this map are numbered from ``offset``
    wanted = pl.concat([scalars["labels_at"], scalars["ns_labels_at"]]).drop_nulls() // 2
    ids = (wanted.unique().sort() - offset).cast(_I64)
    lists = collect(
        lf.filter(pl.col(_ROW).cast(_I64).is_in(ids.implode())).select(
            _ROW, S.SRC_LABELS, S.DST_LABELS, S.SRC_NAMESPACE_LABELS, S.DST_NAMESPACE_LABELS
        )
    )
    by_side = pl.concat(
        [
            lists.select(
                ((pl.col(_ROW).cast(_I64) + offset) * 2 + bit).alias("_at"),
                pl.col(f"{side}_labels").alias("labels"),
                pl.col(f"{side}_namespace_labels").alias("namespace_labels"),
            )
            for side, bit in (("src", 0), ("dst", 1))
        ]
    )
    return (
        scalars.join(by_side.select("_at", "labels"), left_on="labels_at", right_on="_at",
                     how="left")
        .join(by_side.select("_at", "namespace_labels"), left_on="ns_labels_at",
              right_on="_at", how="left")
        .join(names, on=group, how="left", nulls_equal=True)
        .with_columns(pl.col("names").fill_null(pl.lit([], dtype=_LS)))
    )


def _map_calico(req: pl.LazyFrame) -> pl.LazyFrame:
    rows = req.filter(pl.col(S.SOURCE_FORMAT).is_in(CALICO_FORMATS).fill_null(False))
    fc = pl.col(S.FLOW_COUNT).fill_null(1).clip(lower_bound=1)
    rep = pl.col(S.REPORTER).fill_null("").str.to_lowercase()
    den = pl.col(_DEN)
    is_src, is_dst = rep == "src", rep == "dst"
    other = ~is_src & ~is_dst

    def side(outcome: str, keep: pl.Expr) -> list[pl.Expr]:
        return [
            keep.sum().cast(_I64).alias(f"{outcome}_events"),
            pl.col(S.TIME).filter(keep).min().alias(f"{outcome}_first"),
            pl.col(_LAST).filter(keep).max().alias(f"{outcome}_last"),
            pl.col(S.NODE).filter(keep).drop_nulls().unique().sort().alias(f"{outcome}_nodes"),
        ]

    return rows.group_by(
        pl.col(_SK).alias(SRC_KEY), pl.col(_DK).alias(DST_KEY), S.PROTOCOL, S.DST_PORT,
        _MINUTE.expr(pl.col(S.TIME)).alias(_BUCKET),
    ).agg(
        fc.filter(is_src & ~den).sum().cast(_I64).alias("a_src"),
        fc.filter(is_dst & ~den).sum().cast(_I64).alias("a_dst"),
        fc.filter(other & ~den).sum().cast(_I64).alias("a_oth"),
        fc.filter(is_src & den).sum().cast(_I64).alias("d_src"),
        fc.filter(is_dst & den).sum().cast(_I64).alias("d_dst"),
        fc.filter(other & den).sum().cast(_I64).alias("d_oth"),
        is_src.any().alias("has_src"),
        is_dst.any().alias("has_dst"),
        pl.col(S.NODE).filter(is_src).drop_nulls().min().alias(SRC_NODE),
        pl.col(S.NODE).filter(is_dst).drop_nulls().min().alias(DST_NODE),
        *side(ALLOWED, ~den),
        *side(DENIED, den),
    )


def _session_rows(req: pl.LazyFrame) -> pl.LazyFrame:
    """The compact per-event projection of Hubble request (and undecided) rows."""
    five_tuple = pl.struct(
        pl.coalesce(S.SRC_IP, _SK), S.SRC_PORT, pl.coalesce(S.DST_IP, _DK), S.DST_PORT, S.PROTOCOL
    ).hash()
    return req.filter(~pl.col(S.SOURCE_FORMAT).is_in(CALICO_FORMATS).fill_null(False)).select(
        five_tuple.alias("_h"),
        _PEND,
        pl.col(S.PROTOCOL).cast(pl.Categorical()),
        S.SRC_PORT,
        S.DST_PORT,
        S.TIME,
        _POS,
        _LAST,
        pl.col(S.NODE).cast(pl.Categorical()),
        # endpoint keys travel as 64-bit hashes (string min/max per connection is slow); they
        # are mapped back through the endpoint table, whose keys are hashed the same way
        *(
            pl.when(pl.col(c).is_not_null()).then(pl.col(c).hash()).alias(c)
            for c in (_SPK, _DPK, _SK, _DK)
        ),
        # 1 for a Hubble event; more for a row of Hubble's exporter aggregation
        pl.col(S.FLOW_COUNT).fill_null(1).clip(lower_bound=1).cast(_I64),
        _DEN,
        _L7,
        _AUD,
        pl.col(_SN).cast(pl.Categorical()),
        pl.col(_DN).cast(pl.Categorical()),
    )


def _sessionize(rows: pl.LazyFrame, tcp_idle: timedelta, other_idle: timedelta) -> pl.LazyFrame:
    """Rows of one (5-tuple, pending) sorted by time then position; a new session starts at
    a gap above the idle time (or a row without time)."""
    same = (pl.col("_h") == pl.col("_h").shift(1)) & (pl.col(_PEND) == pl.col(_PEND).shift(1))
    gap = pl.col(S.TIME) - pl.col(S.TIME).shift(1)
    new = (~same | pl.col(S.TIME).is_null() | (gap > _idle(tcp_idle, other_idle))).fill_null(True)
    has_sn, has_dn = pl.col(_SN).is_not_null(), pl.col(_DN).is_not_null()
    return (
        rows.sort(["_h", _PEND, S.TIME, _POS], nulls_last=True)
        .with_columns(new.cum_sum().alias("_conn"))
        .group_by("_conn")
        .agg(
            pl.col("_h").first(),
            pl.col(_PEND).first(),
            pl.col(S.PROTOCOL).first(),
            pl.col(S.SRC_PORT).first(),
            pl.col(S.DST_PORT).first(),
            pl.col(S.TIME).first().alias("t0"),
            pl.col(_POS).first().alias("p0"),
            pl.col(S.NODE).first().alias("n0"),
            pl.col(S.TIME).last().alias("t1"),
            pl.col(_POS).last().alias("p1"),
            pl.col(S.NODE).last().alias("n1"),
            pl.col(_LAST).max().alias("seen"),
            # max() skips nulls: the pod key when any event of the connection named the pod
            *(pl.col(c).max() for c in (_SPK, _SK, _DPK, _DK)),
            (pl.col(_DEN) & ~pl.col(_L7)).any().alias("den_nl7"),
            pl.col(_DEN).all().alias("den_all"),
            pl.len().cast(_I64).alias(EVENTS),
            pl.col(_AUD).any().alias(AUDIT),
            pl.col(S.FLOW_COUNT).max().alias(CONNECTIONS),
            pl.col(_SN).drop_nulls().first().alias("sn"),
            pl.col(S.TIME).filter(has_sn).first().alias("sn_t"),
            pl.col(_POS).filter(has_sn).first().alias("sn_p"),
            pl.col(_DN).drop_nulls().first().alias("dn"),
            pl.col(S.TIME).filter(has_dn).first().alias("dn_t"),
            pl.col(_POS).filter(has_dn).first().alias("dn_p"),
        )
        .drop("_conn")
        .with_columns(pl.col(S.PROTOCOL, "n0", "n1", "sn", "dn").cast(pl.String()))
    )


def _map_sessions(
    req: pl.LazyFrame,
    rows: int,
    tcp_idle: timedelta,
    other_idle: timedelta,
    spill: Path | None,
    collect: Callable[[pl.LazyFrame], pl.DataFrame],
    consume: Callable[[pl.DataFrame], None] | None = None,
) -> pl.DataFrame:
    """Partial sessions of the rows, with bounded memory: above ``PARTITION_ROWS`` rows the
    projection is spilled (or recomputed) and sessionized per 5-tuple-hash partition (exact:
    a session never spans 5-tuples). With ``consume``, each partition's sessions go to it
    instead of into the result (then empty)."""
    k = partition_count(rows)
    source = _session_rows(req)
    kept: list[pl.DataFrame] = []

    def take(sessions: pl.DataFrame) -> None:
        sessions = _conform(sessions, SESSION_SCHEMA)
        if consume is None:
            kept.append(sessions)
        else:
            consume(sessions)

    if k == 1:
        take(collect(_sessionize(source, tcp_idle, other_idle)))
        return kept[0] if kept else SESSION_SCHEMA.to_frame()
    with tempfile.TemporaryDirectory(dir=spill, prefix=".hubble-") if spill else nullcontext(
        None
    ) as tmp:
        if tmp is not None:
            path = Path(tmp) / "rows.parquet"
            # small row groups: the writer buffers one whole (the default, 512^2 rows of the
            # session projection, was the 1M-flow derivation's largest step: +87 MB against
            # +33 MB); each range's scan skips nothing either way (rows are in scan order)
            source.sink_parquet(path, compression="lz4", engine="streaming",
                                row_group_size=_SPILL_ROW_GROUP)
            source = pl.scan_parquet(path)
        for part in range(k):
            take(collect(_sessionize(source.filter(session_range(part, k)), tcp_idle,
                                     other_idle)))
    return pl.concat(kept) if kept else SESSION_SCHEMA.to_frame()


_SPILL_ROW_GROUP = 32_768


def session_range(part: int, parts: int) -> pl.Expr:
    """Rows of the ``part``-th of ``parts`` contiguous ranges of the 5-tuple hash ``_h``.
    Sessions of different 5-tuples never interact, so each range merges and finishes on its
    own; contiguous ranges (not ``_h % parts``) let a file written range by range skip the
    others' row groups by their statistics, whatever ``parts`` it was written with."""
    return _hash_range("_h", part, parts)


def endpoint_range(part: int, parts: int) -> pl.Expr:
    """Endpoint rows of the ``part``-th of ``parts`` contiguous ranges of their key's hash
    ``_kh``. Rows of different keys never interact (merged and finished per key), so each
    range merges and finishes on its own, like the sessions (``session_range``)."""
    return _hash_range("_kh", part, parts)


def _hash_range(column: str, part: int, parts: int) -> pl.Expr:
    h = pl.col(column)
    if parts == 1:
        return pl.lit(True)
    low = pl.lit((part << 64) // parts, _U64)
    if part + 1 == parts:
        return h >= low
    return (h >= low) & (h < pl.lit(((part + 1) << 64) // parts, _U64))


# --- merge ----------------------------------------------------------------------------------


def _merge_sessions(frame: pl.DataFrame, tcp_idle: timedelta, other_idle: timedelta
                    ) -> pl.DataFrame:
    """Partial sessions of one (5-tuple, pending) joined where they belong to one session:
    sorted by start, the next joins when it starts within the idle gap of the latest end."""
    group = ["_h", _PEND]
    # only partials that share a (5-tuple, pending) can join: the rest pass through (most
    # sessions of a store lie within one ingest)
    shared = pl.len().over(group) > 1
    alone = frame.filter(~shared)
    ordered = frame.filter(shared).sort([*group, "t0", "p0"], nulls_last=True)
    reach = pl.col("t1").cum_max().over(group).shift(1)
    same = (pl.col("_h") == pl.col("_h").shift(1)) & (pl.col(_PEND) == pl.col(_PEND).shift(1))
    new = (
        ~same | pl.col("t0").is_null() | reach.is_null()
        | ((pl.col("t0") - reach) > _idle(tcp_idle, other_idle))
    ).fill_null(True)

    def at_first(t: str, p: str, *values: str) -> pl.Expr:
        # one sort per group for the three columns taken at the same (time, position)
        return pl.struct(*values).sort_by([t, p], nulls_last=True).first().alias(f"_{t}")

    merged = (
        ordered.with_columns(new.cum_sum().alias("_conn"))
        .group_by("_conn")
        .agg(
            pl.col("_h").first(),
            pl.col(_PEND).first(),
            pl.col(S.PROTOCOL).first(),
            pl.col(S.SRC_PORT).first(),
            pl.col(S.DST_PORT).first(),
            pl.col("t0").first(),
            pl.col("p0").first(),
            pl.col("n0").first(),
            pl.struct("t1", "p1", "n1").sort_by(["t1", "p1"], nulls_last=False).last()
            .alias("_t1"),
            pl.col("seen").max(),
            *(pl.col(c).max() for c in (_SPK, _SK, _DPK, _DK)),
            pl.col("den_nl7").any(),
            pl.col("den_all").all(),
            pl.col(EVENTS).sum(),
            pl.col(AUDIT).any(),
            pl.col(CONNECTIONS).max(),
            at_first("sn_t", "sn_p", "sn", "sn_t", "sn_p"),
            at_first("dn_t", "dn_p", "dn", "dn_t", "dn_p"),
        )
        .drop("_conn")
        .unnest("_t1", "_sn_t", "_dn_t")
    )
    return pl.concat([_conform(alone, SESSION_SCHEMA), _conform(merged, SESSION_SCHEMA)])


def _merge_endpoints(frame: pl.DataFrame, group: list[str]) -> pl.DataFrame:
    """Endpoint rows of one group combined: max, any, union, and the label lists at the largest
    position. A position (row and side) names one endpoint row, so the lists are joined back
    by position instead of carried through the group-by."""
    # rows alone in their group pass through (most undecided patterns are seen once)
    shared = pl.len().over(group) > 1
    alone = frame.filter(~shared).with_columns(
        pl.col("names").list.unique().list.sort().fill_null(pl.lit([], dtype=_LS))
    )
    many = frame.filter(shared)
    merged = (
        many.group_by(group)
        .agg(
            pl.col("_kh").first(),
            *(pl.col(c).max() for c in _SCALARS),
            pl.col("_is_pod").any(),
            pl.col("labels_at").max(),
            pl.col("ns_labels_at").max(),
            pl.col("names").explode().drop_nulls().unique().sort(),
        )
        .join(many.select("labels_at", "labels").drop_nulls("labels_at"), on="labels_at",
              how="left")
        .join(many.select("ns_labels_at", "namespace_labels").drop_nulls("ns_labels_at"),
              on="ns_labels_at", how="left")
    )
    return pl.concat([alone.select(merged.columns), merged])


def _merge_calico(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return frame.group_by(keys).agg(
        *(pl.col(c).sum() for c in _CAL_SUMS),
        pl.col("has_src", "has_dst").any(),
        pl.col(SRC_NODE, DST_NODE).min(),
        *(pl.col(f"{o}_first").min() for o in (ALLOWED, DENIED)),
        *(pl.col(f"{o}_last").max() for o in (ALLOWED, DENIED)),
        *(pl.col(f"{o}_nodes").explode().drop_nulls().unique().sort() for o in (ALLOWED, DENIED)),
    )


def _count_aggs() -> list[pl.Expr]:
    return [
        *(pl.col(c).sum() for c in _COUNT_SUMS),
        pl.col("first").min(),
        pl.col("last").max(),
    ]


def merge_sessions(
    a: pl.DataFrame, b: pl.DataFrame, tcp_idle: timedelta, other_idle: timedelta
) -> pl.DataFrame:
    """The partial sessions of two consecutive runs of rows (of the same 5-tuples, or all)
    merged: what ``merge_states`` does to the sessions, for one ``session_range`` at a time."""
    return _merge_sessions(pl.concat([a, b]), tcp_idle, other_idle)


def merge_endpoints(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    """The endpoint rows of two consecutive runs of rows (of the same keys, or all) merged:
    what ``merge_states`` does to the endpoints, for one ``endpoint_range`` at a time."""
    return _conform(_merge_endpoints(pl.concat([a, b]), [_PEND, *_PATTERN, "key"]),
                    ENDPOINT_SCHEMA)


def merge_states(
    a: DerivationState, b: DerivationState, *, sessions: bool = True, endpoints: bool = True
) -> DerivationState:
    """The state of a's rows followed by b's (b mapped from position ``a.rows``). Without
    ``sessions`` (``endpoints``), the merged state has none: the caller merges them range by
    range (``merge_sessions``, ``merge_endpoints``: bounded memory)."""
    if (a.tcp_idle, a.other_idle) != (b.tcp_idle, b.other_idle):
        raise ValueError("states of different idle gaps do not merge")
    listening = pl.concat([a.listening, b.listening]).unique().sort(pl.all(), nulls_last=True)
    counts = pl.concat([a.counts, b.counts]).group_by(_BUCKET).agg(_count_aggs())
    pending = pl.concat([a.pending, b.pending]).group_by(*_PATTERN, _BUCKET).agg(
        pl.col("rows", "masked").sum(), pl.col("first").min(), pl.col("last").max()
    )
    merged_sessions = (
        merge_sessions(a.sessions, b.sessions, a.tcp_idle, a.other_idle)
        if sessions
        else SESSION_SCHEMA.to_frame()
    )
    calico = _merge_calico(pl.concat([a.calico, b.calico]),
                           [SRC_KEY, DST_KEY, S.PROTOCOL, S.DST_PORT, _BUCKET])
    merged_endpoints = (
        merge_endpoints(a.endpoints, b.endpoints) if endpoints else ENDPOINT_SCHEMA.to_frame()
    )
    return DerivationState(
        rows=b.rows,
        tcp_idle=a.tcp_idle,
        other_idle=a.other_idle,
        listening=_conform(listening, LISTENING_SCHEMA),
        counts=_conform(counts, COUNTS_SCHEMA).sort(_BUCKET, nulls_last=True),
        pending=_conform(pending, PENDING_SCHEMA).sort([*_PATTERN, _BUCKET], nulls_last=True),
        sessions=merged_sessions,
        calico=_conform(calico, CALICO_SCHEMA),
        endpoints=merged_endpoints,
    )


# --- finish ---------------------------------------------------------------------------------


def _fated(frame: pl.DataFrame, listening: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``_fate``: the class of its undecided pattern under the final listening
    set (``port_rule``; a function of the row's pattern alone, so any subset of the rows
    gets the same fates)."""
    ports: dict[str, list[int]] = {}
    for proto, port in listening.drop_nulls().iter_rows():
        ports.setdefault(proto, []).append(port)
    rule = port_rule({k: sorted(v) for k, v in ports.items()})
    return (
        frame.with_columns(pl.lit(_UNDECIDED, pl.Int8).alias(_CLASS))
        .with_columns(rule.alias("_fate"))
        .drop(_CLASS)
    )


def _bucket_of(schedule: Buckets | None) -> Callable[[pl.Expr], pl.Expr]:
    def bucket(time: pl.Expr) -> pl.Expr:
        # without a schedule, one bucket (null) holds everything
        return schedule.expr(time) if schedule is not None else pl.lit(None, _TS)

    return bucket


def finish_endpoints(endpoints: pl.DataFrame, listening: pl.DataFrame) -> pl.DataFrame:
    """The endpoint table (one row per key) of endpoint rows (all of them, or the rows of
    some keys: one ``endpoint_range``) under the final listening set: decided requests and
    undecided rows whose pattern the port rule makes requests, merged per key."""
    ends = _fated(endpoints, listening).filter(~pl.col(_PEND) | (pl.col("_fate") == _REQUEST))
    return (
        _merge_endpoints(ends, ["key"])
        .with_columns(
            pl.when(pl.col("_is_pod")).then(pl.lit("pod")).otherwise(pl.col("entity"))
            .alias("entity"),
            pl.when(pl.col("names").list.len() > 0).then(pl.col("names")).alias("names"),
        )
        .drop("_kh", "_is_pod", "labels_at", "ns_labels_at")
    )


def finish_state(
    state: DerivationState,
    schedule: Buckets | None,
    hub: pl.DataFrame | None = None,
    endpoints: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame | None]:
    """The edge rows before endpoints are attached (grouped by ``_EDGE`` and, with
    ``schedule``, bucket), the row counts (per bucket, or one row), the endpoint table, and
    with ``schedule`` the per-bucket edge rows. ``hub``: the Hubble edge rows of the sessions
    when the caller finished them range by range (``hubble_edges``, ``merge_hubble_edges``);
    else they are finished from ``state.sessions``. ``endpoints``: the endpoint table when
    the caller finished it range by range (``finish_endpoints`` per ``endpoint_range``,
    concatenated); else it is finished from ``state.endpoints``."""
    bucket = _bucket_of(schedule)

    # counts: decided rows as they are; undecided rows by their pattern's fate
    pend = _fated(state.pending, state.listening)
    fate = pl.col("_fate")
    n = pl.col("rows")
    from_pending = pend.select(
        pl.col(_BUCKET),
        n.alias("rows_in"),
        pl.when(fate == _REQUEST).then(n).otherwise(0).alias("requests"),
        pl.when(fate == _REPLY).then(n).otherwise(0).alias("replies"),
        pl.when(fate == _UNDECIDED).then(n).otherwise(0).alias("undecidable"),
        *(pl.lit(0, _I64).alias(c) for c in ("ignored", "sock", "vip")),
        pl.when(fate != _UNDECIDED).then(n).otherwise(0).alias("by_ports"),
        pl.col("masked"),
        pl.when(fate == _REQUEST).then(pl.col("first")).alias("first"),
        pl.when(fate == _REQUEST).then(pl.col("last")).alias("last"),
    )
    counts = pl.concat([state.counts, _conform(from_pending, COUNTS_SCHEMA)])
    counts = counts.with_columns(bucket(pl.col(_BUCKET)).alias(_BUCKET))
    if schedule is None:
        counts = counts.select(_count_aggs())
    else:
        counts = counts.group_by(_BUCKET).agg(_count_aggs())

    if endpoints is None:
        endpoints = finish_endpoints(state.endpoints, state.listening)

    keyed = [*_EDGE, _BUCKET]
    if hub is None:
        hub = hubble_edges(state.sessions, state, schedule)
    # the keys looked up by hash column by column (endpoint keys are unique, so as a left
    # join does): a join gathered every column of the Hubble edge rows, twice
    keys, hashes = endpoints["key"], endpoints["key"].hash()
    hub = hub.with_columns(
        pl.col(f"_{side}_h").replace_strict(hashes, keys, default=None).alias(column)
        for side, column in (("src", SRC_KEY), ("dst", DST_KEY))
    ).drop(_SRC_H, _DST_H)
    cal = _calico_edges(state.calico, bucket)
    edges = pl.concat([hub.select(cal.columns), cal], how="vertical_relaxed")
    edges = edges.group_by(keyed).agg(edge_aggs())
    per_bucket = None
    if schedule is not None:
        per_bucket = edges
    edges = edges.group_by(_EDGE).agg(edge_aggs())
    return edges, counts, endpoints, per_bucket


_HUB_KEYS = [_SRC_H, _DST_H, S.PROTOCOL, S.DST_PORT, OUTCOME, _BUCKET]


def hubble_edges(
    sessions: pl.DataFrame, state: DerivationState, schedule: Buckets | None
) -> pl.DataFrame:
    """The Hubble edge rows (per endpoint-key hash and bucket) of ``sessions``: every partial
    session of some 5-tuples (all of them, or one ``session_range``) under the final
    listening set and idle gaps of ``state``. The rows of disjoint sets of 5-tuples combine
    with ``merge_hubble_edges``."""
    if sessions.height == 0:
        return empty_hub(True)
    # undecided partial sessions that the port rule makes requests join the requests' ones
    pending = (
        _fated(sessions.filter(pl.col(_PEND)), state.listening)
        .filter(pl.col("_fate") == _REQUEST)
        .drop("_fate")
        .with_columns(pl.lit(False).alias(_PEND))
    )
    sessions = _merge_sessions(
        pl.concat([sessions.filter(~pl.col(_PEND)), pending]),
        state.tcp_idle,
        state.other_idle,
    )
    if sessions.height == 0:
        return empty_hub(True)
    bucket = _bucket_of(schedule)
    return (
        sessions.select(
            pl.coalesce(_SPK, _SK).alias(_SRC_H),
            pl.coalesce(_DPK, _DK).alias(_DST_H),
            S.PROTOCOL,
            S.DST_PORT,
            # denied when a L3/L4 policy drop hit it, or when nothing but denials was seen (an
            # L7 denial of one request does not deny the TCP connection that carried it)
            pl.when(pl.col("den_nl7") | pl.col("den_all"))
            .then(pl.lit(DENIED))
            .otherwise(pl.lit(ALLOWED))
            .alias(OUTCOME),
            EVENTS,
            pl.col("t0").alias(FIRST_SEEN),
            pl.col("seen").alias(LAST_SEEN),
            # usually seen by two nodes at most (source's and destination's)
            pl.concat_list("n0", "n1", "sn", "dn").alias(NODES),
            pl.col("sn").alias(SRC_NODE),
            pl.col("dn").alias(DST_NODE),
            AUDIT,
            CONNECTIONS,
            bucket(pl.col("t0")).alias(_BUCKET),
        )
        .group_by(_HUB_KEYS)
        .agg(edge_aggs())
    )


def merge_hubble_edges(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """``hubble_edges`` of the union of disjoint sets of 5-tuples, from each set's (sums,
    minima, maxima and unions: exact in any order)."""
    empty = empty_hub(True)
    rows = [p.select(empty.columns) for p in parts if p.height]
    if not rows:
        return empty
    return pl.concat(rows, how="vertical_relaxed").group_by(_HUB_KEYS).agg(edge_aggs())


def _calico_edges(pre: pl.DataFrame, bucket: Callable[[pl.Expr], pl.Expr]) -> pl.DataFrame:
    if pre.height == 0:
        return empty_cal(True)
    keys = [SRC_KEY, DST_KEY, S.PROTOCOL, S.DST_PORT]
    agg = _merge_calico(pre.with_columns(bucket(pl.col(_BUCKET)).alias(_BUCKET)),
                        [*keys, _BUCKET])
    return calico_select(agg.lazy(), keys).collect()
