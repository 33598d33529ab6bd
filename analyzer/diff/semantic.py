"""``diff_policies``: which connections change verdict between two policy sets.

Pipeline: distinct observed connections -> probe universe (``universe``) -> per-direction
verdict tables for each set (``directions``, the policy engine) -> changed probes
(``compare``) -> observed connections judged by ``evaluate_connections`` (``observed``) ->
changes grouped by namespace pair and identity pair (``assemble``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from analyzer.connections import Connections
from analyzer.diff.assemble import (
    combo_table,
    decision_combos,
    observed_only_changes,
    probe_changes,
)
from analyzer.diff.compare import SetTables, compare
from analyzer.diff.directions import Verdicts, direction_tables
from analyzer.diff.model import (
    Change,
    DiffCounts,
    NamespacePairDiff,
    PolicyDiff,
    PolicySetInfo,
    UniverseInfo,
)
from analyzer.diff.observed import judge_observed
from analyzer.diff.universe import ADDRESSES, PROTOCOLS, Universe, build_universe
from analyzer.k8s.inventory import Inventory
from analyzer.policy.compile import CompiledPolicies, compile_policies
from analyzer.policy.model import EGRESS, INGRESS, NetworkPolicy
from analyzer.policy.simulate import distinct_connections

__all__ = ["diff_policies"]


def diff_policies(
    old: Sequence[NetworkPolicy],
    new: Sequence[NetworkPolicy],
    connections: Connections | pl.DataFrame | None = None,
    *,
    inventory: Inventory | None = None,
    namespaces: Sequence[str] | None = None,
    ipblock_mode: str = "kubernetes",
    old_info: PolicySetInfo | None = None,
    new_info: PolicySetInfo | None = None,
    probes: bool = True,
    old_evaluated: pl.DataFrame | None = None,
) -> PolicyDiff:
    """Compare ``old`` and ``new`` on observed traffic and on every identity pair and port.

    Parameters
    ----------
    old, new
        Loaded policies (``policy.load.load_policies(...).policies``).
    connections
        Observed connections (``connections.derive_connections``); their endpoints and the
        inventory's pods are the identities probes pair up. None: the inventory only.
    inventory
        ``kubectl get pods,namespaces -A -o json``: labels, namespace labels, named ports.
    namespaces
        Only connections with a pod end in one of these namespaces.
    ipblock_mode
        ``kubernetes`` or ``cilium`` (``policy.compile.compile_policies``), for both sets.
    probes
        False: compare observed connections only (what ``--fail-on newly-denied-observed``
        needs); no identity pair is enumerated.
    old_evaluated
        ``connections`` with ``old``'s verdict columns (``evaluate_connections`` with the same
        inventory and ipblock mode), when the caller already has them (``Analysis.verdicts``):
        the observed edges then take their old verdicts from it instead of a second evaluation.
    """
    old_c = compile_policies(list(old), ipblock_mode=ipblock_mode)
    new_c = compile_policies(list(new), ipblock_mode=ipblock_mode)
    frame = connections.frame if isinstance(connections, Connections) else connections
    edges = distinct_connections(frame) if frame is not None and frame.height else _no_edges()
    old_judged = None
    if old_evaluated is not None and frame is not None and frame.height:
        # the same rows in the same order as ``edges`` (one group_by, maintain_order); the
        # verdict is the same for every row of a distinct connection, so ``first`` is it
        old_judged = distinct_connections(old_evaluated)
    universe = build_universe(edges, inventory, [old_c, new_c])
    old_t, new_t = (_tables(c, universe if probes else None) for c in (old_c, new_c))
    scope = list(namespaces) if namespaces is not None else None
    comparison = compare(universe, old_t, new_t, scope)
    runs, combos = decision_combos(comparison.cells, old_t.verdicts, new_t.verdicts)
    table = combo_table(combos)
    judged = _with_namespaces(
        judge_observed(edges, old_c, new_c, inventory, universe, scope, old_judged), universe
    )
    changed = (
        judged.filter(pl.col("old_allowed") != pl.col("new_allowed"))
        .with_columns(
            _port_text().alias("_text"),
            pl.concat_str(
                [pl.col("src_key"), pl.lit(" -> "), pl.col("dst_key"), pl.lit(" "), _port_text()]
            ).alias("_example"),
        )
        .with_row_index("_edge")
    )
    # An observed change joins the probe change of its endpoints and port class when both
    # sets decide it the same way there (same rules, same isolation).
    matched = (
        changed.join(runs.select("i", "j", "combo", "lo", "hi"), on=["i", "j"])
        .filter(pl.col("c").is_between(pl.col("lo"), pl.col("hi")))
        .join(
            table.select("combo", pl.col("old_sig").alias("_po"), pl.col("new_sig").alias("_pn")),
            on="combo",
        )
        .filter((pl.col("old_sig") == pl.col("_po")) & (pl.col("new_sig") == pl.col("_pn")))
    )
    unmatched = changed.join(matched.select("_edge"), on="_edge", how="anti")
    evidence = matched.group_by(["i", "j", "c", "combo"]).agg(
        pl.len().alias("_edges"),
        pl.col("connections").sum().alias("_conns"),
        pl.col("working").sum().alias("_working"),
        pl.col("first_seen").min().alias("_first"),
        pl.col("last_seen").max().alias("_last"),
        pl.col("_text").alias("_oports"),
        pl.col("_example").alias("_examples"),
    )
    changes = probe_changes(runs, combos, evidence, universe)
    changes += observed_only_changes(unmatched)
    warnings = []
    if unmatched.height:
        warnings.append(
            f"{unmatched.height} changed observed connection(s) have no probe of their own "
            "(a protocol without ports, a peer without an address, or traffic from a node); "
            "they are listed with the observed decision"
        )
    counts = _counts(runs, table, comparison.unchanged, judged, universe)
    groups = _groups(changes, counts)
    return PolicyDiff(
        old=old_info or PolicySetInfo("OLD", (), len(old_c.policies)),
        new=new_info or PolicySetInfo("NEW", (), len(new_c.policies)),
        ipblock_mode=ipblock_mode,
        namespaces=tuple(sorted(set(scope))) if scope is not None else None,
        universe=UniverseInfo(
            pod_identities=universe.count("pod"),
            address_classes=universe.count(ADDRESSES),
            entities=universe.count("entity"),
            port_classes=len(universe.ports),
            protocols=PROTOCOLS,
            probes=comparison.probes,
            enumerated=probes,
        ),
        groups=groups,
        counts=sum((g.counts for g in groups), DiffCounts()),
        warnings=tuple(warnings),
    )


def _tables(compiled: CompiledPolicies, universe: Universe | None) -> SetTables:
    registry = Verdicts()
    if universe is None:
        return SetTables([], [], registry)
    return SetTables(
        egress=direction_tables(compiled, universe, EGRESS, registry),
        ingress=direction_tables(compiled, universe, INGRESS, registry),
        verdicts=registry,
    )


def _no_edges() -> pl.DataFrame:
    from analyzer.connections import empty_connections

    return distinct_connections(empty_connections())


def _port_text() -> pl.Expr:
    return pl.col("protocol") + pl.lit(" ") + pl.col("dst_port").cast(pl.String).fill_null("-")


def _namespace_of(universe: Universe) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "_idx": [e.index for e in universe.endpoints],
            "_ns": [e.namespace for e in universe.endpoints],
        },
        schema={"_idx": pl.Int32, "_ns": pl.String},
    )


def _with_namespaces(judged: pl.DataFrame, universe: Universe) -> pl.DataFrame:
    """``_src_ns``/``_dst_ns``: the endpoint's namespace in the universe (inventory-resolved),
    else the flow's namespace for a pod, else null."""
    table = _namespace_of(universe)
    for side, col in (("src", "i"), ("dst", "j")):
        pod = (pl.col(f"{side}_entity") == "pod") | pl.col(f"{side}_entity").is_null()
        judged = (
            judged.join(table, left_on=col, right_on="_idx", how="left", maintain_order="left")
            .with_columns(
                pl.when(pl.col(col).is_not_null())
                .then(pl.col("_ns"))
                .otherwise(pl.when(pod).then(pl.col(f"{side}_namespace")))
                .alias(f"_{side}_ns")
            )
            .drop("_ns")
        )
    return judged


def _counts(
    runs: pl.DataFrame,
    combos: pl.DataFrame,
    unchanged: pl.DataFrame,
    judged: pl.DataFrame,
    universe: Universe,
) -> dict[tuple[str | None, str | None], DiffCounts]:
    """Per (source namespace, destination namespace): probes and observed edges by outcome."""
    ns = np.array([e.namespace or "" for e in universe.endpoints], dtype=object)
    probes = (
        pl.DataFrame(
            {
                "src_namespace": ns[runs["i"].to_numpy()],
                "dst_namespace": ns[runs["j"].to_numpy()],
                "combo": runs["combo"],
                "probes": runs["probes"],
            },
            schema={
                "src_namespace": pl.String,
                "dst_namespace": pl.String,
                "combo": pl.Int32,
                "probes": pl.Int64,
            },
        )
        .join(combos.select("combo", "newly_denied"), on="combo")
        .group_by("src_namespace", "dst_namespace", "newly_denied")
        .agg(pl.col("probes").sum())
        .with_columns(pl.col("^.*_namespace$").replace("", None))
    )
    out: dict[tuple[str | None, str | None], dict[str, int]] = {}

    def add(key: tuple[str | None, str | None], **values: int) -> None:
        entry = out.setdefault(key, {})
        for name, value in values.items():
            entry[name] = entry.get(name, 0) + int(value)

    for s, d, newly_denied, n in probes.iter_rows():
        add((s, d), **{"probes_newly_denied" if newly_denied else "probes_newly_allowed": n})
    for s, d, allowed, denied in unchanged.iter_rows():
        add((s, d), probes_unchanged_allowed=allowed, probes_unchanged_denied=denied)
    status = (
        pl.when(pl.col("old_allowed") == pl.col("new_allowed"))
        .then(pl.lit("unchanged"))
        .when(pl.col("old_allowed"))
        .then(pl.lit("newly_denied"))
        .otherwise(pl.lit("newly_allowed"))
    )
    observed = judged.group_by("_src_ns", "_dst_ns", status.alias("_status")).agg(
        pl.len().alias("edges"),
        pl.col("connections").sum().alias("conns"),
        pl.col("working").sum().alias("working"),
    )
    for s, d, kind, edges, conns, working in observed.iter_rows():
        add((s, d), **{f"observed_{kind}_edges": edges, f"observed_{kind}_connections": conns})
        if kind == "newly_denied":
            add((s, d), observed_newly_denied_working=working)
    return {k: DiffCounts(**v) for k, v in out.items()}


def _groups(
    changes: list[Change], counts: dict[tuple[str | None, str | None], DiffCounts]
) -> tuple[NamespacePairDiff, ...]:
    by_pair: dict[tuple[str | None, str | None], list[Change]] = {}
    for change in changes:
        by_pair.setdefault((change.src_namespace, change.dst_namespace), []).append(change)
    keys = sorted(set(by_pair) | set(counts), key=_pair_order)
    out = []
    for key in keys:
        items = sorted(by_pair.get(key, ()), key=_change_order)
        out.append(
            NamespacePairDiff(
                src_namespace=key[0],
                dst_namespace=key[1],
                newly_denied=tuple(c for c in items if c.kind == "newly_denied"),
                newly_allowed=tuple(c for c in items if c.kind == "newly_allowed"),
                counts=counts.get(key, DiffCounts()),
            )
        )
    return tuple(out)


def _pair_order(key: tuple[str | None, str | None]) -> tuple[bool, str, bool, str]:
    return key[0] is None, key[0] or "", key[1] is None, key[1] or ""


def _change_order(c: Change) -> tuple[object, ...]:
    working = c.observed.working_edges if c.observed else 0
    return (
        -working,
        c.observed is None,
        c.src_display,
        c.dst_display,
        c.ports,
        c.old.reason_template,
        c.new.reason_template,
    )
