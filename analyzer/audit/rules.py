"""broad-rule and unused-rule findings, with the tighter replacement of each.

Two passes: first every rule is judged (structural reasons, filtered and completed by what the
known universe and the traffic show), then findings are written. The replacement of a broad rule
covers the connections no *other tight* rule admitted: traffic another broad rule also admits
still needs a rule once that broad rule is tightened too.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from analyzer.audit.findings import Finding, Replacement, max_severity
from analyzer.audit.replace import remove_rule, replacement_for
from analyzer.audit.structural import BreadthReason, describe_ports, rule_breadth, rule_severity
from analyzer.audit.universe import Universe
from analyzer.audit.usage import Breadth, RuleUsage, breadth, describe_breadth, rule_key
from analyzer.policy.compile import CompiledPolicy, CompiledRule

__all__ = ["EMPIRICAL_MIN_WORKLOADS", "EMPIRICAL_RATIO", "RuleView", "judge_rules", "rule_findings"]

# A rule that is tight by shape is reported as empirically broad only when it admits at least
# this many known workloads and at least EMPIRICAL_RATIO times as many as used it.
EMPIRICAL_MIN_WORKLOADS = 4
EMPIRICAL_RATIO = 3
# Selector-wide peers that are broad only relative to what exists.
_RELATIVE = frozenset({"namespace-only", "any-namespace", "all-pods"})


@dataclass(frozen=True, slots=True)
class RuleView:
    """One rule with what the audit concluded about it."""

    policy: CompiledPolicy
    rule: CompiledRule
    direction: str
    key: str
    use: RuleUsage | None
    reasons: tuple[BreadthReason, ...]
    breadth: Breadth
    empirical: str

    @property
    def path(self) -> str:
        return f"spec.{self.direction}[{self.rule.index}]"

    @property
    def hits(self) -> int:
        return self.use.stat.hits if self.use else 0


def judge_rules(
    policies: Sequence[CompiledPolicy], usage: Mapping[str, RuleUsage], universe: Universe,
    mode: str,
) -> list[RuleView]:
    """Judge every rule of ``policies``: why it is broad (if it is) and what it admits."""
    views = []
    for cp in policies:
        for rule in (cp.ingress or ()) + (cp.egress or ()):
            direction = rule.direction.lower()
            key = rule_key(cp.key, direction, rule.index)
            use = usage.get(key)
            hits = use.stat.hits if use else 0
            reasons = rule_breadth(cp.policy, direction, rule.rule)
            b = breadth(rule, universe, mode)
            used_peers = len(use.peer_workloads) if use else 0
            if len(b.workloads) <= max(used_peers, 1):
                # A tighter selector would admit no less (kube-dns "in any namespace").
                reasons = [r for r in reasons if r.code not in _RELATIVE]
            if not reasons and hits and len(b.workloads) >= EMPIRICAL_MIN_WORKLOADS and (
                len(b.workloads) >= EMPIRICAL_RATIO * max(used_peers, 1)
            ):
                reasons = [
                    BreadthReason("empirical", "admits far more workloads than use it", "low")
                ]
            views.append(
                RuleView(cp, rule, direction, key, use, tuple(reasons), b,
                         describe_breadth(b, describe_ports(rule.rule.ports), use))
            )
    return views


def rule_findings(
    views: Sequence[RuleView],
    evaluated: pl.DataFrame,
    groups: Mapping[str, Any],
    unused_policies: Collection[str],
    shadowing: Mapping[str, list[str]],
    span: str,
) -> list[Finding]:
    """``broad-rule`` and ``unused-rule`` findings for ``views``.

    ``views`` must include every rule the evaluated frame can name (out-of-scope ones too), so
    that "another tight rule admits it" is decided over all of them.
    """
    broad = frozenset(v.key for v in views if v.reasons)
    admitted = _Admitted(evaluated, broad)
    findings: list[Finding] = []
    for v in views:
        if not v.reasons and v.hits:
            continue
        replacement = _replacement(v, admitted, groups)
        use = v.use
        if v.reasons:
            sev = rule_severity(list(v.reasons))
            if v.hits == 0:
                sev = max_severity(sev, "medium")  # broad and unused: pure exposure
            extra = ""
            if use and use.dropped:
                extra = (
                    f"; it would also admit {use.dropped} connection(s) observed dropped "
                    f"({', '.join(use.dropped_examples)})"
                )
            findings.append(
                Finding(
                    severity=sev,
                    category="broad-rule",
                    policy=v.policy.key,
                    rule=v.path,
                    namespace=v.policy.namespace,
                    direction=v.direction,
                    explanation=(
                        f"{'; '.join(r.text for r in v.reasons)}. Observed: {v.empirical}{extra}"
                    ),
                    hits=v.hits,
                    first_hit=use.stat.first_hit if use else None,
                    last_hit=use.stat.last_hit if use else None,
                    replacement=replacement,
                    evidence={
                        "reasons": [r.code for r in v.reasons],
                        "admitted_workloads": len(v.breadth.workloads),
                        "admitted_namespaces": len(v.breadth.namespaces),
                        "any_address": v.breadth.any_address,
                        "used_by": list(use.peer_workloads) if use else [],
                        "ports_used": list(use.ports) if use else [],
                        "shadows": shadowing.get(v.key, []),
                    },
                )
            )
        if v.hits == 0:
            in_unused = v.policy.key in unused_policies
            findings.append(
                Finding(
                    severity="info" if in_unused else "low",
                    category="unused-rule",
                    policy=v.policy.key,
                    rule=v.path,
                    namespace=v.policy.namespace,
                    direction=v.direction,
                    explanation=(
                        f"admitted no observed connection in the window ({span}); it "
                        f"{v.empirical.removesuffix('; nothing used it in the window')}"
                        + ("; the whole policy selects no observed pod" if in_unused else "")
                    ),
                    hits=0,
                    replacement=replacement
                    or remove_rule("nothing used it in the window"),
                    evidence={"dropped_it_would_admit": use.dropped if use else 0},
                )
            )
    return findings


class _Admitted:
    """Which allowed connection rows each broad rule admitted, and which tight rules did too.

    Built once for all rules (a per-rule filter over the whole frame grows with rules x rows).
    """

    def __init__(self, evaluated: pl.DataFrame, broad: frozenset[str]) -> None:
        self.frame = evaluated
        self.rows: dict[str, list[int]] = {}
        # (direction, row) -> the tight rules admitting that row in that direction
        self.tight: dict[tuple[str, int], set[str]] = {}
        if evaluated.height == 0:
            return
        numbered = evaluated.with_row_index("_row").filter(pl.col("outcome") == "allowed")
        wanted = pl.Series(sorted(broad), dtype=pl.String).implode()
        for direction in ("ingress", "egress"):
            pairs = (
                numbered.select("_row", pl.col(f"{direction}_rules").alias("_rule"))
                .explode("_rule")
                .drop_nulls("_rule")
                .with_columns(pl.col("_rule").is_in(wanted).alias("_broad"))
            )
            for rule, rows in (
                pairs.filter("_broad").group_by("_rule").agg(pl.col("_row").sort()).iter_rows()
            ):
                self.rows[rule] = list(rows)
            for row, rule in pairs.filter(~pl.col("_broad")).select("_row", "_rule").iter_rows():
                self.tight.setdefault((direction, row), set()).add(rule)

    def of(self, rule: str, direction: str) -> tuple[list[int], list[int], set[str]]:
        """Rows ``rule`` admitted, those no tight rule admits, and the tight rules of the rest."""
        rows = self.rows.get(rule, [])
        alone = [r for r in rows if (direction, r) not in self.tight]
        covering: set[str] = set()
        for r in rows:
            covering |= self.tight.get((direction, r), set())
        return rows, alone, covering


def _replacement(
    v: RuleView, admitted: _Admitted, groups: Mapping[str, Any]
) -> Replacement | None:
    label = f"{v.policy.key} {v.path}"
    if v.hits == 0:
        return remove_rule(f"nothing used {label} in the window")
    if v.policy.namespace is None:
        return None  # cluster-wide policies: synthesis writes namespaced policies only
    # Traffic another tight rule admits needs nothing new; traffic only broad rules admit does.
    _, alone, covering_rules = admitted.of(v.key, v.direction)
    if not alone:
        covering = sorted(covering_rules - {v.key})
        named = [c.replace("#", " spec.") for c in covering[:3]]
        return remove_rule(
            f"each of the {v.hits} connection(s) {label} admitted is also admitted by "
            f"{', '.join(named)}" + (" and more" if len(covering) > 3 else "")
        )
    return replacement_for(
        admitted.frame[alone], v.policy.namespace, v.direction, groups, label,
        v.policy.policy.name,
    )
