"""Replay observed legitimate connections against recommended policies before writing them.

The recommended manifests go through the same loader and engine as ``analyzer simulate``
(``policy.load.parse_documents`` -> ``compile_policies`` -> ``evaluate_connections``) together
with the namespaces' other given policies. Every legitimate observed request must come out
allowed; otherwise :class:`VerificationError` names what would break.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from analyzer.errors import VerificationError

__all__ = ["Verification", "rows_to_verify", "verify"]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
MAX_LISTED = 10


@dataclass(frozen=True, slots=True)
class Verification:
    """What was replayed and how it came out (failures raise instead)."""

    checked: int  # distinct connection edges replayed
    allowed: int
    connections: int  # observed connections those edges stand for
    method: str  # which manifests were evaluated and with which engine mode
    excluded: int  # edges left to the CNI or refused (listed in the notes)

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "allowed": self.allowed,
            "connections": self.connections,
            "method": self.method,
            "excluded": self.excluded,
        }


def rows_to_verify(
    conns: pl.DataFrame, namespaces: Sequence[str], uncovered: pl.DataFrame
) -> tuple[pl.DataFrame, int]:
    """Allowed connection rows touching ``namespaces`` minus edges deliberately left uncovered.

    Returns the rows and how many in-scope rows were excluded.
    """
    ns = list(namespaces)
    scope = conns.filter(
        (pl.col("outcome") == "allowed")
        & (
            ((pl.col("src_entity") == "pod") & pl.col("src_namespace").is_in(ns))
            | ((pl.col("dst_entity") == "pod") & pl.col("dst_namespace").is_in(ns))
        )
    )
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
    return _with_namespace_names(rows), scope.height - rows.height


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


def _load(manifests: Sequence[Mapping[str, Any]], name: str) -> Any:
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
    excluded: int = 0,
) -> Verification:
    """Replay ``rows`` against ``manifests`` plus ``given`` policies; raise if any is denied.

    Parameters
    ----------
    manifests
        Recommended manifests (any flavour the loader reads).
    rows
        Connection rows that must be allowed (``rows_to_verify``).
    given
        Already loaded ``NetworkPolicy`` objects the namespaces have besides the recommendation;
        ones with the same namespace/name as a recommended policy are replaced by it.
    ipblock_mode
        ``kubernetes`` or ``cilium`` (how ipBlocks treat pod addresses).
    fallback
        Equivalent Kubernetes manifests, evaluated instead when the engine reports parts of
        ``manifests`` it cannot evaluate (Cilium toFQDNs, entities).
    """
    from analyzer.policy.compile import compile_policies
    from analyzer.policy.evaluate import evaluate_connections

    loaded = _load(manifests, "<recommended>")
    if loaded.problems:
        listed = "; ".join(str(p) for p in loaded.problems[:MAX_LISTED])
        raise VerificationError(f"recommended manifests do not load: {listed}")
    method = f"recommended manifests, {ipblock_mode} ipBlock semantics"
    if loaded.unsupported and fallback is not None:
        loaded = _load(fallback, "<recommended:kubernetes>")
        method = "equivalent Kubernetes manifests (engine cannot evaluate every Cilium field)"
        ipblock_mode = "kubernetes"
    ours = {(p.namespace, p.name) for p in loaded.policies}
    policies = [p for p in given if (p.namespace, p.name) not in ours] + list(loaded.policies)
    compiled = compile_policies(policies, ipblock_mode=ipblock_mode)
    if rows.height == 0:
        return Verification(0, 0, 0, method, excluded)
    result = evaluate_connections(compiled, rows)
    denied = result.filter(~pl.col("allowed").fill_null(False))
    if denied.height:
        lines = [
            f"{_end(r, 'src')} -> {_end(r, 'dst')} {r['protocol']}/{r['dst_port']}"
            f" ({r.get('connections', '?')} connections)"
            for r in denied.head(MAX_LISTED).iter_rows(named=True)
        ]
        more = f" and {denied.height - MAX_LISTED} more" if denied.height > MAX_LISTED else ""
        raise VerificationError(
            f"recommended policies would deny {denied.height} observed legitimate "
            f"connection edge(s): {'; '.join(lines)}{more}"
        )
    conns = int(result["connections"].sum()) if "connections" in result.columns else 0
    return Verification(result.height, result.height, conns, method, excluded)


def _end(row: Mapping[str, Any], side: str) -> str:
    if row.get(f"{side}_pod"):
        return f"{row.get(f'{side}_namespace')}/{row.get(f'{side}_pod')}"
    return str(row.get(f"{side}_ip") or row.get(f"{side}_entity") or "?")
