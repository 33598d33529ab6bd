"""Equivalence classes that let bulk evaluation share work: addresses and ports.

Two addresses that the same ipBlocks contain get the same verdicts; so do two ports that the
same port ranges contain (unless a named port could resolve to one of them). Classes are
computed once per distinct address or port, vectorised where it pays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from analyzer.policy.compile import CompiledPolicies, IPPeers, PortRange, ip_key
from analyzer.policy.model import INGRESS

if TYPE_CHECKING:
    from analyzer.k8s.inventory import Inventory

__all__ = ["ip_classes", "side_blocks", "port_classes"]

_MASK64 = (1 << 64) - 1
_OCTET = r"(0|[1-9]\d{0,2})"
_V4 = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"


def ip_classes(ips: list[str], blocks: tuple[IPPeers, ...]) -> list[str]:
    """Per IP, which of ``blocks`` contain it (``"0,3"``); equal classes give equal verdicts.

    Vectorised over IPs: addresses become 128-bit (high, low) uint64 pairs, and each block
    range is one comparison over all of them.
    """
    n = len(ips)
    series = pl.Series(ips, dtype=pl.String)
    octets = series.str.extract_groups(_V4).struct.unnest().cast(pl.UInt64, strict=False)
    ints = octets.with_columns(
        pl.when(pl.all_horizontal(pl.all() < 256))
        .then(pl.col("1") * 16777216 + pl.col("2") * 65536 + pl.col("3") * 256 + pl.col("4"))
        .alias("_int")
    )["_int"]
    version = np.where(ints.is_not_null().to_numpy(), 4, 0).astype(np.int8)
    hi = np.zeros(n, dtype=np.uint64)
    lo = ints.fill_null(0).to_numpy().astype(np.uint64)
    for i in np.flatnonzero(version == 0).tolist():
        key = ip_key(ips[i])  # IPv6 and anything unusual: the slow, exact path
        if key is not None:
            version[i] = key[0]
            hi[i], lo[i] = key[1] >> 64, key[1] & _MASK64

    def inside(v: int, first: int, last: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
        fh, fl, lh, ll = first >> 64, first & _MASK64, last >> 64, last & _MASK64
        above = (hi > fh) | ((hi == fh) & (lo >= fl))
        below = (hi < lh) | ((hi == lh) & (lo <= ll))
        return (version == v) & above & below  # type: ignore[no-any-return]

    member = np.zeros((n, len(blocks)), dtype=np.bool_)
    for j, block in enumerate(blocks):
        col = np.zeros(n, dtype=np.bool_)
        for v, first, last in block.ranges:
            col |= inside(v, first, last)
        for v, first, last in block.except_ranges:
            col &= ~inside(v, first, last)
        member[:, j] = col
    packed = np.packbits(member, axis=1)
    return [row.tobytes().hex() for row in packed]


def side_blocks(compiled: CompiledPolicies, direction: str) -> tuple[IPPeers, ...]:
    """ipBlocks of ``direction`` rules: they judge the other end (src for ingress)."""
    found: dict[IPPeers, None] = {}
    for cp in compiled.policies:
        for rule in (cp.ingress if direction == INGRESS else cp.egress) or ():
            for peer in rule.peers:
                if isinstance(peer, IPPeers):
                    found[peer] = None
    return tuple(found)


def port_classes(
    compiled: CompiledPolicies, work: pl.DataFrame, inventory: Inventory | None
) -> pl.DataFrame:
    """Replace the port in the edge key by its class: which port ranges contain it, plus the
    port itself only where a named port could resolve to it. Ports no rule tells apart (e.g.
    high ports) then share one evaluation."""
    ranges = sorted(
        {
            (p.protocol, p.low, p.high)
            for cp in compiled.policies
            for rules in (cp.ingress or (), cp.egress or ())
            for rule in rules
            for p in rule.ports
            if isinstance(p, PortRange)
        }
    )
    named: set[tuple[int, str]] = set()
    if inventory is not None:
        for pod in inventory.pods.values():
            for entries in pod.ports.values():
                named.update(entries)
    pairs = work.select("_k_protocol", pl.col("dst_port").cast(pl.Int64)).unique()
    classes = []
    for proto, port in pairs.iter_rows():
        if port is None:
            classes.append("-")
            continue
        bits = "".join("1" if (proto == rp and lo <= port <= hi) else "0" for rp, lo, hi in ranges)
        classes.append(f"{bits}#{port}" if (port, proto) in named else bits)
    table = pairs.with_columns(pl.Series("_k_port", classes, dtype=pl.String))
    return (
        work.with_columns(pl.col("dst_port").cast(pl.Int64).alias("_port_i64"))
        .join(
            table,
            left_on=["_k_protocol", "_port_i64"],
            right_on=["_k_protocol", "dst_port"],
            how="left",
            nulls_equal=True,
            maintain_order="left",
        )
        .drop("_port_i64")
    )
