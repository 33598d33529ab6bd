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

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import polars as pl

from analyzer.recommend.model import (
    DNS_NAMESPACE,
    DNS_SELECTORS,
    EXAMPLES_PER_EDGE,
    NAMESPACE_NAME_LABEL,
    PORT_PROTOCOLS,
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
from analyzer.recommend.namespace_rules import (
    _namespace_policies,
)
from analyzer.recommend.rule_peers import (
    _UNCOVERED_SCHEMA,
    _label_map,
    _peers_for,
    _readable,
    _uncovered,
    _valid_names,
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
    from analyzer.recommend.checks import name_error, selector_error

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
























