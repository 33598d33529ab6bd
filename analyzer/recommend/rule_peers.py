"""Rule peers from observed endpoints: selectors from stable labels, ipBlocks from addresses,
and the rows no rule can express (uncovered)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import polars as pl

from analyzer.k8s.syntax import dns_name_error
from analyzer.recommend.model import (
    PRIVATE_RANGES,
    AllowedPeer,
    Note,
    Selector,
    SynthesisOptions,
)

_UNCOVERED_SCHEMA = {
    "direction": pl.String,
    "owner": pl.String,
    "peer": pl.String,
    "protocol": pl.String,
    "dst_port": pl.Int32,
    "reason": pl.String,
}


def _readable(key: str, limit: int = 120) -> str:
    """A group key for a note: printable, bounded (it may carry hostile label values)."""
    text = "".join(c if c.isprintable() else "?" for c in key)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _uncovered(row: Mapping[str, Any], reason: str) -> dict[str, Any]:
    return {k: row[k] for k in _UNCOVERED_SCHEMA if k != "reason"} | {"reason": reason}


def _label_map(labels: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in labels or ():
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
    return out


def _valid_names(
    peers: list[AllowedPeer], row: Mapping[str, Any], direction: str, owner: str, ns: str,
    notes: list[Note],
) -> list[AllowedPeer]:
    """Drop DNS names a toFQDNs rule cannot hold (flows are untrusted), with a warning each;
    a peer left without names keeps its address rule, like every other refused value."""
    out = []
    for peer in peers:
        bad = [n for n in peer.fqdns if dns_name_error(n)]
        if bad:
            for name in bad:
                notes.append(Note(
                    "warning", ns,
                    f"{direction} of {_readable(owner)}: {dns_name_error(name)}; skipped, the "
                    f"address rule for {_readable(row['peer'])} stays",
                ))
            peer = replace(peer, fqdns=tuple(n for n in peer.fqdns if n not in bad))
        out.append(peer)
    return out


def _cidr(ip: str, prefix: int | None) -> str | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version == 4 and prefix is not None:
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
    return f"{addr}/{addr.max_prefixlen}"


def _peers_for(
    row: Mapping[str, Any],
    opts: SynthesisOptions,
    selector_for: Callable[[str, Sequence[str] | None, str | None], Selector | None],
) -> tuple[list[AllowedPeer], str | None]:
    """The peer elements for one edge, or why none is emitted."""
    entity, key = row["peer_entity"] or "unknown", row["peer"] or ""
    if entity == "pod":
        sel = selector_for(key, row["peer_labels"], row["peer_namespace"])
        if sel is None:
            return [], f"peer {_readable(key)} refused"
        return [AllowedPeer("pod", namespaces=(row["peer_namespace"],), selector=sel)], None
    if row["direction"] == "ingress" and entity in ("host", "health"):
        # Kubernetes: "traffic to and from the node where a Pod is running is always
        # allowed" for kubelet probes; Cilium allows its own health checks.
        return [], "host: traffic from the pod's own node (kubelet probes) needs no rule"
    ips = [c for c in (_cidr(ip, opts.ipblock_prefix) for ip in row["peer_ips"] or ()) if c]
    if opts.cilium and entity in ("kube-apiserver", "remote-node", "ingress", "host", "health"):
        return [AllowedPeer("entity", entity=entity, cidrs=tuple(sorted(set(ips))))], None
    if not ips:
        if entity in ("world", "public-network"):
            # Calico aggregates external addresses away: the best honest rule is "the public
            # internet on the observed port", flagged for a reviewer to narrow.
            if opts.cilium:
                return [AllowedPeer("entity", entity="world")], None
            return [AllowedPeer("cidr", cidr="0.0.0.0/0", excepts=PRIVATE_RANGES)], None
        if entity == "private-network" and row["direction"] == "egress":
            # e.g. the API server or node exporters behind an aggregated private address
            return [AllowedPeer("cidr", cidr=c, excepts=()) for c in PRIVATE_RANGES], None
        if entity == "private-network" and row["direction"] == "ingress":
            return [], (
                "private-network sources without addresses (Calico aggregates node addresses "
                "this way: kubelet probes, which the CNI allows) get no rule; any other "
                "private source will be dropped"
            )
        return [], f"peer {_readable(key)} ({entity}) has no observed address to put in an ipBlock"
    names = tuple(sorted(set(row.get("peer_names") or ()))) if opts.cilium else ()
    return [AllowedPeer("cidr", cidr=c, fqdns=names) for c in sorted(set(ips))], None
