"""Least-privilege rules from observed connection requests (the flavour-neutral model).

The input is the connections frame of ``analyzer.connections`` (one row per distinct request
edge, replies already removed) and the identity groups of ``analyzer.identity.graph``. The
output is a list of :class:`PolicySpec`: per namespace a default-deny, the DNS guardrail, an
ingress policy per destination group and an egress policy per source group, each rule listing
exactly the peers and ports that were observed, with the evidence that justifies it.
``merge.py`` folds groups with identical rules together; ``render.py`` turns specs into
manifests.

Bulk work (aggregating millions of connection rows into edges) is polars; the Python loops run
over edges between identity groups, which number in the thousands.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import polars as pl

from analyzer.k8s.syntax import dns_name_error
from analyzer.recommend.merge import merge_owners, merge_peers
from analyzer.recommend.model import (
    DNS_NAMESPACE,
    DNS_SELECTORS,
    EXAMPLES_PER_EDGE,
    MANY_ADDRESSES,
    NAMESPACE_NAME_LABEL,
    PORT_PROTOCOLS,
    PRIVATE_RANGES,
    AllowedPeer,
    AllowRule,
    Direction,
    EdgeEvidence,
    Evidence,
    GroupLike,
    Note,
    PolicySpec,
    Port,
    Selector,
    SynthesisOptions,
    SynthesisResult,
    combine_evidence,
)

__all__ = [
    "DNS_NAMESPACE",
    "DNS_SELECTORS",
    "NAMESPACE_NAME_LABEL",
    "combine_evidence",
    "Evidence",
    "GroupLike",
    "Note",
    "AllowedPeer",
    "PolicySpec",
    "Port",
    "AllowRule",
    "Selector",
    "SynthesisOptions",
    "SynthesisResult",
    "aggregate_edges",
    "synthesize",
]

# ---------------------------------------------------------------------------------------------
# edges


def aggregate_edges(conns: pl.DataFrame, namespaces: Sequence[str]) -> pl.DataFrame:
    """Fold allowed connection rows touching ``namespaces`` into (owner, peer, port) edges.

    Returns one row per (direction, owner group, peer group, protocol, dst_port) with the
    counts, first/last seen, peer facts and example flows. ``direction`` is ``ingress`` when
    the owner is the destination, ``egress`` when it is the source.
    """
    allowed = conns.filter(pl.col("outcome") == "allowed")
    ns = list(namespaces)
    example = pl.format(
        "{} -> {} {}/{} at {} seen on {}",
        _endpoint("src"),
        _endpoint("dst"),
        pl.col("protocol"),
        pl.col("dst_port").cast(pl.String).fill_null("-"),
        pl.col("first_seen").dt.strftime("%Y-%m-%dT%H:%M:%SZ").fill_null("?"),
        pl.col("nodes").list.first().fill_null("?"),
    )
    frames = []
    for direction, own, peer in (("ingress", "dst", "src"), ("egress", "src", "dst")):
        part = allowed.filter(
            (pl.col(f"{own}_entity") == "pod") & pl.col(f"{own}_namespace").is_in(ns)
        )
        frames.append(
            part.sort("first_seen")
            .group_by([f"{own}_group", f"{peer}_group", "protocol", "dst_port"])
            .agg(
                pl.col("connections").sum(),
                pl.col("first_seen").min(),
                pl.col("last_seen").max(),
                pl.col(f"{own}_namespace").first().alias("owner_namespace"),
                pl.col(f"{own}_labels").first().alias("owner_labels"),
                pl.col(f"{peer}_namespace").first().alias("peer_namespace"),
                pl.col(f"{peer}_entity").first().alias("peer_entity"),
                pl.col(f"{peer}_labels").first().alias("peer_labels"),
                pl.col(f"{peer}_ip").drop_nulls().unique().sort().head(64).alias("peer_ips"),
                (pl.col("src_node").is_not_null() & (pl.col("src_node") == pl.col("dst_node")))
                .all()
                .alias("same_node"),
                (
                    pl.col("dst_names")
                    .list.explode(keep_nulls=False, empty_as_null=False)
                    .drop_nulls()
                    .unique()
                    .sort()
                    .head(16)
                    if peer == "dst"
                    else pl.lit([], dtype=pl.List(pl.String)).first()
                ).alias("peer_names"),
                example.head(EXAMPLES_PER_EDGE).alias("examples"),
            )
            .rename({f"{own}_group": "owner", f"{peer}_group": "peer"})
            .with_columns(pl.lit(direction).alias("direction"))
        )
    return pl.concat(frames, how="diagonal_relaxed").sort(
        ["direction", "owner", "peer", "protocol", "dst_port"], nulls_last=True
    )


def _endpoint(side: str) -> pl.Expr:
    pod = pl.concat_str([pl.col(f"{side}_namespace"), pl.col(f"{side}_pod")], separator="/")
    return pl.coalesce(pod, pl.col(f"{side}_ip"), pl.lit("reserved:") + pl.col(f"{side}_entity"))


# ---------------------------------------------------------------------------------------------
# synthesis


def synthesize(
    conns: pl.DataFrame,
    groups: Mapping[str, GroupLike],
    namespaces: Sequence[str],
    options: SynthesisOptions | None = None,
    *,
    selector_check: Callable[[Mapping[str, str]], str | None] | None = None,
) -> SynthesisResult:
    """Synthesize least-privilege policies for ``namespaces`` from allowed connection rows.

    Parameters
    ----------
    conns
        Connections frame (``analyzer.connections`` contract), already without anomalies.
    groups
        Identity groups by key; their ``selector`` is the label choice of ``identity.py``.
    namespaces
        Namespaces to write policies for.
    options
        ``SynthesisOptions``.
    selector_check
        Callable ``(labels: Mapping[str, str]) -> str | None`` returning why a selector is
        refused (invalid label syntax), or None; refused groups get no rule and a warning.
    """
    from analyzer.recommend.render import name_error, selector_error

    opts = options or SynthesisOptions()
    check = selector_check or selector_error
    edges = aggregate_edges(conns, namespaces)
    notes: list[Note] = []
    uncovered: list[dict[str, Any]] = []
    refused: dict[str, str] = {}
    chosen_cache: dict[str, Selector] = {}
    unlabelled: set[str] = set()

    def selector_for(key: str, labels: Sequence[str] | None, ns: str | None) -> Selector | None:
        if key in refused:
            return None
        if key in chosen_cache:
            return chosen_cache[key]
        group = groups.get(key)
        chosen: Mapping[str, str] = dict(group.selector) if group is not None else {}
        if not chosen:
            chosen = _label_map(labels)
        reason = name_error(ns or "")
        if reason is None and chosen:
            reason = check(chosen)
        if reason is not None:
            refused[key] = reason
            return None
        if not chosen:
            # No labels in the flows: nothing tells these pods from the rest of their namespace
            # (see _unlabelled_notes), so their rules name every pod of it.
            unlabelled.add(key)
        chosen_cache[key] = Selector.of(chosen)
        return chosen_cache[key]

    # owner -> direction -> peer -> ports (+ evidence pieces)
    table: dict[tuple[str, Direction], dict[AllowedPeer, dict[Port, EdgeEvidence]]]
    table = defaultdict(dict)
    owner_ns: dict[str, str] = {}
    owner_sel: dict[str, Selector] = {}
    active: set[str] = set()
    host_only: dict[str, int] = defaultdict(int)

    for row in edges.iter_rows(named=True):
        direction: Direction = row["direction"]
        owner, ns = row["owner"], row["owner_namespace"]
        sel = owner_sel.get(owner) or selector_for(owner, row["owner_labels"], ns)
        if sel is None:
            uncovered.append(_uncovered(row, f"workload refused: {refused[owner]}"))
            continue
        owner_sel[owner], owner_ns[owner] = sel, ns
        proto, port_num = row["protocol"], row["dst_port"]
        if proto not in PORT_PROTOCOLS or port_num is None:
            uncovered.append(_uncovered(row, f"{proto} has no port a policy can name"))
            notes.append(
                Note(
                    "warning",
                    ns,
                    f"{direction} {proto} between {_readable(owner)} and {_readable(row['peer'])} "
                    "cannot be expressed "
                    "as a port rule; the default-deny will drop it",
                )
            )
            continue
        peers, reason = _peers_for(row, opts, selector_for)
        peers = _valid_names(peers, row, direction, owner, ns, notes)
        if reason is not None:
            uncovered.append(_uncovered(row, reason))
            if reason.startswith("host"):
                host_only[owner] += int(row["connections"])
            else:
                notes.append(Note("warning", ns, f"{direction} of {_readable(owner)}: {reason}"))
            continue
        active.add(owner)
        if row["peer_entity"] != "pod" and not row["peer_ips"]:
            # no address to replay it with: listed, and left out of verification
            wide = "private" if row["peer_entity"] == "private-network" else "public"
            reason = f"addresses unknown (aggregated): the {wide} address ranges are allowed"
            uncovered.append(_uncovered(row, reason))
            notes.append(Note("warning", ns, f"{direction} of {_readable(owner)} "
                              f"{'to' if direction == 'egress' else 'from'} "
                              f"{_readable(row['peer'])} {proto}/{port_num}: {reason} on this "
                              "port only; narrow them to the real addresses"))
        port = Port(proto, int(port_num))
        ev = EdgeEvidence.of(row)
        for peer in peers:
            table[(owner, direction)].setdefault(peer, {})
            slot = table[(owner, direction)][peer]
            slot[port] = slot[port].add(ev) if port in slot else ev

    for owner, count in sorted(host_only.items()):
        notes.append(
            Note(
                "info",
                owner_ns.get(owner, ""),
                f"{count} connection(s) from the node to {_readable(owner)} (kubelet probes) "
                "need no rule: CNIs allow traffic from a pod's own node",
            )
        )
    notes.extend(_unlabelled_notes(conns, sorted(unlabelled)))
    for key, reason in sorted(refused.items()):
        ns = groups[key].namespace if key in groups else ""
        message = f"refused to select {_readable(key)}: {reason}; no rule"
        notes.append(Note("warning", _readable(ns or ""), message))

    policies: list[PolicySpec] = []
    Table = dict[tuple[str, Direction], dict[AllowedPeer, dict[Port, EdgeEvidence]]]
    by_ns: dict[str, Table] = defaultdict(dict)
    for (owner, direction), owner_peers in table.items():
        by_ns[owner_ns[owner]][(owner, direction)] = owner_peers
    seen_groups = _pod_groups(conns, namespaces)
    for ns in sorted(set(namespaces)):
        policies.extend(
            _namespace_policies(ns, by_ns[ns], owner_ns, owner_sel, frozenset(namespaces), notes)
        )
        for key in sorted(seen_groups.get(ns, set()) - active - set(refused)):
            notes.append(
                Note(
                    "warning",
                    ns,
                    f"{_readable(key)} has no observed traffic a rule could allow; "
                    "the default-deny isolates it completely",
                )
            )
    return SynthesisResult(
        policies=tuple(policies),
        notes=tuple(notes),
        uncovered=pl.DataFrame(uncovered, schema=_UNCOVERED_SCHEMA) if uncovered
        else pl.DataFrame(schema=_UNCOVERED_SCHEMA),
    )


def _unlabelled_notes(conns: pl.DataFrame, keys: Sequence[str]) -> list[Note]:
    """How rules name pods that the flows show without labels, and why not otherwise."""
    out = []
    for key in keys:
        pods: set[str] = set()
        namespaces: set[str] = set()
        for side in ("src", "dst"):
            part = conns.filter(pl.col(f"{side}_group") == key)
            pods.update(part[f"{side}_pod"].drop_nulls().unique().to_list())
            namespaces.update(part[f"{side}_namespace"].drop_nulls().unique().to_list())
        ns = min(namespaces, default="")
        listed = ", ".join(sorted(pods)[:5]) + (", ..." if len(pods) > 5 else "")
        message = (
            f"{len(pods)} pod(s) of {ns} have no labels in the flows ({listed}): rules that "
            f"involve them name every pod of {ns} (podSelector {{}}), on the observed ports and "
            "peers only. Flows cannot tell missing labels from labels the observer did not know "
            "(Hubble shows such pods as reserved:world, or a field mask drops labels), so a "
            "selector with Exists/DoesNotExist could miss them, and pod addresses change on "
            "restart: this is the narrowest rule that cannot break them. Label the pods, or "
            "pass --inventory to use the labels they have."
        )
        out.append(Note("warning", _readable(ns), _readable(message, 600)))
    return out


def _pod_groups(conns: pl.DataFrame, namespaces: Sequence[str]) -> dict[str, set[str]]:
    """Every pod group per namespace seen in any flow (allowed, denied or only probed)."""
    out: dict[str, set[str]] = defaultdict(set)
    for side in ("src", "dst"):
        pairs = (
            conns.filter(
                (pl.col(f"{side}_entity") == "pod")
                & pl.col(f"{side}_namespace").is_in(list(namespaces))
            )
            .select(f"{side}_namespace", f"{side}_group")
            .drop_nulls()
            .unique()
        )
        for ns, group in pairs.iter_rows():
            out[ns].add(group)
    return out


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


def _namespace_policies(
    ns: str,
    table: Mapping[tuple[str, Direction], Mapping[AllowedPeer, Mapping[Port, EdgeEvidence]]],
    owner_ns: Mapping[str, str],
    owner_sel: Mapping[str, Selector],
    targets: frozenset[str],
    notes: list[Note],
) -> list[PolicySpec]:
    from analyzer.recommend.render import policy_name, selector_base

    def internal(peer: AllowedPeer) -> bool:
        # A pod of a namespace we write policies for: default-deny plus exact egress rules
        # already close every path its egress did not use.
        return peer.kind == "pod" and all(n in targets for n in peer.namespaces)

    taken = {"allow-dns-egress", "default-deny"}
    out: list[PolicySpec] = [
        PolicySpec("allow-dns-egress", ns, "dns", ("egress",), Selector()),
    ]
    for direction in ("ingress", "egress"):
        tables: dict[str, dict[AllowedPeer, dict[Port, EdgeEvidence]]] = {}
        for (owner, d), peers in table.items():
            if d != direction or owner_ns[owner] != ns:
                continue
            kept = _without_guardrail(peers, direction)
            if kept:
                tables[owner] = kept
        items = []
        for owner, peers in sorted(tables.items()):
            # Egress merges only identical rule sets. Ingress may also merge groups whose rules
            # differ only in sources of these namespaces (the seed's allow-backend-ingress):
            # those sources' exact egress policies keep every unobserved path closed.
            # They must also serve the same ports, so that no group is opened on a port it
            # never served and the merged policy reads as one role.
            relaxed = direction == "ingress"
            shape = frozenset(
                (peer, port)
                for peer, ports in peers.items()
                for port in ports
                if not (relaxed and internal(peer))
            )
            served = frozenset(port for ports in peers.values() for port in ports)
            items.append((owner_sel[owner], owner, (shape, served)))
        for selector, owners in merge_owners(items):
            union: dict[AllowedPeer, dict[Port, EdgeEvidence]] = defaultdict(dict)
            for owner in owners:
                for peer, ports in tables[owner].items():
                    for port, ev in ports.items():
                        slot = union[peer]
                        slot[port] = slot[port].add(ev) if port in slot else ev
            name = policy_name(selector_base(selector), direction, taken)
            addresses = sum(1 for peer in union if peer.kind == "cidr")
            if addresses > MANY_ADDRESSES:
                notes.append(Note("info", ns, f"{name} lists {addresses} external addresses one "
                                  "by one; --ipblock-prefix N widens them to /N blocks"))
            if len(owners) > 1:
                _note_widened(notes, ns, name, owners, tables, union)
            out.append(
                PolicySpec(
                    name=name,
                    namespace=ns,
                    kind="allow",
                    directions=(direction,),
                    selector=selector,
                    rules=_rules(union),
                    groups=owners,
                )
            )
    out.append(PolicySpec("default-deny", ns, "default-deny", ("ingress", "egress"), Selector()))
    return out


def _note_widened(
    notes: list[Note],
    ns: str,
    name: str,
    owners: Sequence[str],
    tables: Mapping[str, Mapping[AllowedPeer, Mapping[Port, EdgeEvidence]]],
    union: Mapping[AllowedPeer, Mapping[Port, EdgeEvidence]],
) -> None:
    extra = sorted(
        {
            f"{peer.describe()} {port.protocol}/{port.port}"
            for owner in owners
            for peer, ports in union.items()
            for port in ports
            if port not in tables[owner].get(peer, {})
        }
    )
    if extra:
        shown = "; ".join(extra[:8]) + (f"; and {len(extra) - 8} more" if len(extra) > 8 else "")
        notes.append(
            Note(
                "info",
                ns,
                f"{name} admits at ingress some sources not seen for every selected group "
                f"({_readable(shown)}); those sources' own egress policies keep the "
                "unobserved paths closed",
            )
        )


def _without_guardrail(
    peers: Mapping[AllowedPeer, Mapping[Port, EdgeEvidence]], direction: str
) -> dict[AllowedPeer, dict[Port, EdgeEvidence]]:
    out: dict[AllowedPeer, dict[Port, EdgeEvidence]] = {}
    for peer, ports in peers.items():
        kept = {
            p: ev for p, ev in ports.items() if not _covered_by_dns_guardrail(peer, p, direction)
        }
        if kept:
            out[peer] = kept
    return out


def _covered_by_dns_guardrail(peer: AllowedPeer, port: Port, direction: str) -> bool:
    if direction != "egress" or peer.kind != "pod" or port.port != 53:
        return False
    if peer.namespaces != (DNS_NAMESPACE,) or port.protocol not in ("UDP", "TCP"):
        return False
    return any(peer.selector.match_labels == ((k, v),) for k, v in DNS_SELECTORS) or any(
        (k, v) in peer.selector.match_labels for k, v in DNS_SELECTORS
    )


def _rules(peers: Mapping[AllowedPeer, Mapping[Port, EdgeEvidence]]) -> tuple[AllowRule, ...]:
    """Group peers by identical port sets (no cross products), then merge peers per rule."""
    by_ports: dict[tuple[Port, ...], list[tuple[AllowedPeer, list[EdgeEvidence]]]]
    by_ports = defaultdict(list)
    for peer, ports in peers.items():
        by_ports[tuple(sorted(ports))].append((peer, list(ports.values())))
    rules = []
    for ports_key, members in by_ports.items():
        merged = merge_peers([m[0] for m in members])
        ev = combine_evidence(e for _, evs in members for e in evs)
        rules.append(AllowRule(peers=tuple(merged), ports=ports_key, evidence=ev))
    return tuple(sorted(rules, key=lambda r: (r.ports, r.peers)))
