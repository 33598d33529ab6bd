"""Replay observed legitimate connections against recommended policies before writing them.

The recommended manifests go through the same loader and engine as ``analyzer simulate``
(``policy.load.parse_documents`` -> ``compile_policies`` -> ``evaluate_connections``) together
with the namespaces' other given policies. Every legitimate observed request in scope counts,
including the ones synthesis wrote no rule for: each comes out allowed by the engine (a rule,
or the node-local exemption), or cannot be replayed because the flows carry no address for its
peer (Calico aggregates; the rule or CNI behaviour that covers it is named), or it *breaks*.
A recommendation that breaks an observed request is never called verified:
:class:`VerificationError` names what would break unless the caller accepts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from analyzer.errors import VerificationError
from analyzer.present.text import printable

if TYPE_CHECKING:
    from analyzer.policy.load import LoadResult

__all__ = [
    "Breaking",
    "Verification",
    "parse_manifests",
    "rows_in_scope",
    "rows_to_verify",
    "verify",
]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
MAX_LISTED = 10
RECOMMENDED = "<recommended>"  # the file name the parsed recommended policies carry


@dataclass(frozen=True, slots=True)
class Breaking:
    """An observed legitimate request edge the policies would deny, and why."""

    src: str
    dst: str
    protocol: str
    port: int | None
    connections: int
    reason: str

    def describe(self) -> str:
        port = "-" if self.port is None else self.port
        return (
            f"{self.src} -> {self.dst} {self.protocol}/{port} ({self.connections} connections): "
            f"{self.reason}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "dst": self.dst,
            "protocol": self.protocol,
            "port": self.port,
            "connections": self.connections,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Verification:
    """What was replayed and how it came out.

    ``checked`` counts every observed legitimate request edge in scope; each is ``allowed``
    (replayed, the engine allows it), ``unreplayable`` (no address to replay it with: covered
    by an address-range rule, or assumed to be kubelet probes the CNI allows; the notes say
    which), or in ``breaking``.
    """

    checked: int
    allowed: int
    connections: int  # observed connections the allowed edges stand for
    method: str  # which manifests were evaluated and with which engine mode
    unreplayable: int = 0
    breaking: tuple[Breaking, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.breaking

    @property
    def excluded(self) -> int:
        """Edges not proven by replay (unreplayable or breaking)."""
        return self.unreplayable + len(self.breaking)

    def summary(self) -> str:
        """One line: ``verified: ...`` only when nothing observed would break."""
        head = "verified" if self.ok else "NOT verified"
        text = f"{head}: {self.allowed}/{self.checked} observed request edges allowed"
        if self.unreplayable:
            text += f", {self.unreplayable} without an address to replay (see notes)"
        if self.breaking:
            lost = sum(b.connections for b in self.breaking)
            text += f", {len(self.breaking)} would be denied ({lost} connections)"
        return text

    def failure(self) -> str:
        """The breaking edges in one message (empty when nothing breaks)."""
        if self.ok:
            return ""
        lines = "; ".join(b.describe() for b in self.breaking[:MAX_LISTED])
        more = (
            f"; and {len(self.breaking) - MAX_LISTED} more"
            if len(self.breaking) > MAX_LISTED
            else ""
        )
        return (
            f"recommended policies would deny {len(self.breaking)} observed legitimate "
            f"connection edge(s): {lines}{more}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.ok,
            "checked": self.checked,
            "allowed": self.allowed,
            "connections": self.connections,
            "method": self.method,
            "unreplayable": self.unreplayable,
            "excluded": self.excluded,
            "breaking": [b.to_json() for b in self.breaking],
        }


def rows_in_scope(conns: pl.DataFrame, namespaces: Sequence[str]) -> pl.DataFrame:
    """Every allowed connection row with a pod of ``namespaces`` at either end."""
    ns = list(namespaces)
    scope = conns.filter(
        (pl.col("outcome") == "allowed")
        & (
            ((pl.col("src_entity") == "pod") & pl.col("src_namespace").is_in(ns))
            | ((pl.col("dst_entity") == "pod") & pl.col("dst_namespace").is_in(ns))
        )
    )
    return _with_namespace_names(scope)


def rows_to_verify(
    conns: pl.DataFrame, namespaces: Sequence[str], uncovered: pl.DataFrame
) -> tuple[pl.DataFrame, int]:
    """The rows of :func:`rows_in_scope` that a rule covers (probes are made from these).

    Returns the rows and how many in-scope rows synthesis left without a rule.
    """
    scope = rows_in_scope(conns, namespaces)
    rows = scope
    for direction, own, peer in (("ingress", "dst", "src"), ("egress", "src", "dst")):
        skip = uncovered.filter(pl.col("direction") == direction).select(
            pl.col("owner").alias(f"{own}_group"),
            pl.col("peer").alias(f"{peer}_group"),
            "protocol",
            pl.col("dst_port").cast(pl.Int32),
        )
        if skip.height:
            rows = rows.join(
                skip.unique(),
                on=[f"{own}_group", f"{peer}_group", "protocol", "dst_port"],
                how="anti",
                nulls_equal=True,
            )
    return rows, scope.height - rows.height


def _with_namespace_names(frame: pl.DataFrame) -> pl.DataFrame:
    # The API server sets kubernetes.io/metadata.name on every namespace; flows rarely carry it.
    out = []
    for side in ("src", "dst"):
        col = f"{side}_namespace_labels"
        label = pl.lit(f"{NAMESPACE_NAME_LABEL}=") + pl.col(f"{side}_namespace")
        out.append(
            pl.when(pl.col(f"{side}_namespace").is_null())
            .then(pl.col(col))
            .when(pl.col(col).fill_null([]).list.contains(label))
            .then(pl.col(col))
            .otherwise(pl.col(col).fill_null([]).list.concat(pl.concat_list(label)))
            .alias(col)
        )
    return frame.with_columns(out)


def parse_manifests(manifests: Sequence[Mapping[str, Any]], name: str = RECOMMENDED) -> LoadResult:
    """``manifests`` through the policy loader, staged (Calico) policies evaluated as
    NetworkPolicies: what :func:`verify` replays, parsed once by the caller and kept (the
    report's diff applies the same policies)."""
    from analyzer.policy.load import LoadResult, parse_documents

    result = LoadResult()
    parse_documents([dict(m) for m in manifests], name, result, include_staged=True)
    return result


def verify(
    manifests: Sequence[Mapping[str, Any]],
    rows: pl.DataFrame,
    *,
    given: Sequence[Any] = (),
    ipblock_mode: str = "kubernetes",
    fallback: Sequence[Mapping[str, Any]] | None = None,
    uncovered: pl.DataFrame | None = None,
    allow_breaking: bool = False,
    parsed: LoadResult | None = None,
) -> Verification:
    """Replay ``rows`` against ``manifests`` plus ``given`` policies.

    Parameters
    ----------
    manifests
        Recommended manifests (any flavour the loader reads).
    rows
        Every observed legitimate connection row in scope (``rows_in_scope``).
    given
        Already loaded ``NetworkPolicy`` objects the namespaces have besides the recommendation;
        ones with the same namespace/name as a recommended policy are replaced by it.
    ipblock_mode
        ``kubernetes`` or ``cilium`` (how ipBlocks treat pod addresses).
    fallback
        Equivalent Kubernetes manifests, evaluated instead when the engine reports parts of
        ``manifests`` it cannot evaluate (Cilium toFQDNs, entities).
    uncovered
        Synthesis' edges without a rule and why (``SynthesisResult.uncovered``): the reason a
        denied edge gives, and which edges without an address are covered anyway.
    allow_breaking
        Return a verification that lists breaking edges instead of raising.
    parsed
        ``parse_manifests(manifests)`` when the caller has it (not parsed again).

    Raises
    ------
    VerificationError
        The manifests do not load, or (unless ``allow_breaking``) an observed legitimate
        request would be denied.
    """
    from analyzer.policy.compile import compile_policies
    from analyzer.policy.frame import evaluate_connections

    loaded = parsed if parsed is not None else parse_manifests(manifests)
    if loaded.problems:
        listed = "; ".join(str(p) for p in loaded.problems[:MAX_LISTED])
        raise VerificationError(f"recommended manifests do not load: {listed}")
    method = f"recommended manifests, {ipblock_mode} ipBlock semantics"
    if loaded.unsupported and fallback is not None:
        loaded = parse_manifests(fallback, "<recommended:kubernetes>")
        method = "equivalent Kubernetes manifests (engine cannot evaluate every Cilium field)"
        ipblock_mode = "kubernetes"
    ours = {(p.namespace, p.name) for p in loaded.policies}
    policies = [p for p in given if (p.namespace, p.name) not in ours] + list(loaded.policies)
    compiled = compile_policies(policies, ipblock_mode=ipblock_mode)
    if rows.height == 0:
        return Verification(0, 0, 0, method)
    result = _with_reasons(evaluate_connections(compiled, rows), uncovered)
    allowed = result.filter(pl.col("allowed").fill_null(False))
    denied = result.filter(~pl.col("allowed").fill_null(False))
    unreplayable = denied.filter(pl.col("_covered"))
    breaking = tuple(
        Breaking(
            _end(r, "src"),
            _end(r, "dst"),
            str(r["protocol"]),
            r["dst_port"],
            int(r.get("connections") or 0),
            _short(r["_why"] or r["reason"] or "denied"),
        )
        for r in denied.filter(~pl.col("_covered")).iter_rows(named=True)
    )
    conns = int(allowed["connections"].sum() or 0) if "connections" in allowed.columns else 0
    verification = Verification(
        result.height, allowed.height, conns, method, unreplayable.height, breaking
    )
    if breaking and not allow_breaking:
        raise VerificationError(verification.failure())
    return verification


# Uncovered reasons for edges whose peer has no address (Calico aggregates it away): a rule
# or the CNI covers them, but the engine cannot replay an address it does not know.
_COVERED_WITHOUT_ADDRESS = ("addresses unknown (aggregated)", "private-network sources")


def _with_reasons(result: pl.DataFrame, uncovered: pl.DataFrame | None) -> pl.DataFrame:
    """Each row's synthesis reason (``_why``) and whether it is covered without an address."""
    no_address = pl.lit(False)
    for side in ("src", "dst"):
        no_address = no_address | (
            (pl.col(f"{side}_entity") != "pod").fill_null(True) & pl.col(f"{side}_ip").is_null()
        )
    why = pl.lit(None, dtype=pl.String)
    if uncovered is not None and uncovered.height:
        for direction, own, peer in (("ingress", "dst", "src"), ("egress", "src", "dst")):
            reasons = (
                uncovered.filter(pl.col("direction") == direction)
                .select(
                    pl.col("owner").alias(f"{own}_group"),
                    pl.col("peer").alias(f"{peer}_group"),
                    "protocol",
                    pl.col("dst_port").cast(pl.Int32),
                    pl.col("reason").alias(f"_why_{direction}"),
                )
                .unique(subset=[f"{own}_group", f"{peer}_group", "protocol", "dst_port"])
            )
            result = result.join(
                reasons,
                on=[f"{own}_group", f"{peer}_group", "protocol", "dst_port"],
                how="left",
                nulls_equal=True,
            )
        why = pl.coalesce("_why_egress", "_why_ingress")
    covered = why.fill_null("").str.starts_with(_COVERED_WITHOUT_ADDRESS[0])
    for prefix in _COVERED_WITHOUT_ADDRESS[1:]:
        covered = covered | why.fill_null("").str.starts_with(prefix)
    return result.with_columns(why.alias("_why"), (covered & no_address).alias("_covered"))




def _end(row: Mapping[str, Any], side: str) -> str:
    if row.get(f"{side}_pod"):
        return f"{row.get(f'{side}_namespace')}/{row.get(f'{side}_pod')}"
    return str(row.get(f"{side}_ip") or row.get(f"{side}_entity") or "?")


def _short(text: str) -> str:
    return printable(text, 300)
