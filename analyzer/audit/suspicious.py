"""suspicious-allowed: edges the anomaly detector flags that the audited policies allow.

A policy that admits traffic the detector finds suspicious (a debug pod reaching a database, a
port scan) deserves a second look even when the rule is otherwise fine. These are for review,
not proof: each finding carries the detector's best score and reasons. Flagged connections are
folded per (allowing rules, source workload, destination workload), so a 30-port scan is one
finding listing the ports, not thirty.
"""

from __future__ import annotations

from collections.abc import Set

import polars as pl

from analyzer.audit.findings import Finding

__all__ = ["EDGE_KEYS", "detect_flagged", "suspicious_findings"]

EDGE_KEYS = ["src_key", "dst_key", "protocol", "dst_port"]
_RESULT_COLUMNS = (
    "allowed", "ingress_rules", "egress_rules", "ingress_isolated", "egress_isolated", "reason",
)
_PORTS_SHOWN = 8


def detect_flagged(
    evaluated: pl.DataFrame, namespaces: Set[str] | None, random_state: int,
    warnings: list[str],
) -> pl.DataFrame | None:
    """The anomaly detector's flagged connection rows (None when it cannot run)."""
    from analyzer.anomaly import detect_anomalies

    conns = evaluated.drop([c for c in _RESULT_COLUMNS if c in evaluated.columns])
    try:
        result = detect_anomalies(
            conns, random_state=random_state,
            namespaces=sorted(namespaces) if namespaces is not None else None,
        )
    except ValueError as exc:  # e.g. too little traffic for the model
        warnings.append(f"anomaly detection skipped: {exc}")
        return None
    return result.flagged


def suspicious_findings(evaluated: pl.DataFrame, flagged: pl.DataFrame) -> list[Finding]:
    """Findings for flagged connections that ``evaluated`` marks allowed by some rule."""
    if flagged.height == 0:
        return []
    verdicts = evaluated.select(
        *EDGE_KEYS, "outcome", "allowed", "ingress_rules", "egress_rules",
        _workload("src").alias("_src"), _workload("dst").alias("_dst"),
    ).unique(subset=[*EDGE_KEYS, "outcome"], keep="first")
    joined = (
        flagged.select(*EDGE_KEYS, "outcome", "score", "reasons", "connections")
        .join(verdicts, on=[*EDGE_KEYS, "outcome"], how="inner", nulls_equal=True)
        .filter(pl.col("allowed"))
        .with_columns(
            pl.concat_list([pl.col("ingress_rules"), pl.col("egress_rules")])
            .list.unique()
            .list.sort()
            .alias("_rules")
        )
        .filter(pl.col("_rules").list.len() > 0)  # open because unselected: coverage says so
    )
    if joined.height == 0:
        return []
    grouped = (
        # Ties in score are ordered by port and endpoints: the join's row order is not stable,
        # and `-o json` must be byte-identical across runs.
        joined.sort(
            ["score", "protocol", "dst_port", "src_key", "dst_key", "outcome"],
            descending=[True, False, False, False, False, False],
            nulls_last=True,
        )
        .group_by("_rules", "_src", "_dst", maintain_order=True)
        .agg(
            pl.col("score").max(),
            pl.col("reasons").first(),
            pl.col("connections").sum(),
            pl.concat_str(
                [pl.col("protocol"), pl.col("dst_port").cast(pl.String).fill_null("-")],
                separator=" ",
            ).unique(maintain_order=True).alias("ports"),
            pl.col("outcome").unique().sort().alias("observed"),
            pl.col("src_key").first(),
            pl.col("dst_key").first(),
        )
        .sort("score", descending=True, maintain_order=True)
    )
    findings: list[Finding] = []
    for row in grouped.iter_rows(named=True):
        rules = list(row["_rules"])
        policy, _, rest = rules[0].partition("#")
        ports = list(row["ports"])
        shown = ", ".join(ports[:_PORTS_SHOWN]) + (
            f" and {len(ports) - _PORTS_SHOWN} more" if len(ports) > _PORTS_SHOWN else ""
        )
        findings.append(
            Finding(
                severity="medium",
                category="suspicious-allowed",
                policy=policy,
                rule=f"spec.{rest}",
                namespace=policy.split("/", 1)[0],
                explanation=(
                    f"the anomaly detector flags {row['_src']} -> {row['_dst']} on {shown} "
                    f"(score {row['score']:.2f}: {'; '.join((row['reasons'] or [])[:2])}) and "
                    f"these policies allow it via {', '.join(rules)}; review whether it should "
                    "be allowed"
                ),
                hits=int(row["connections"] or 0),
                evidence={
                    "src": row["_src"],
                    "dst": row["_dst"],
                    "example": f"{row['src_key']} -> {row['dst_key']}",
                    "ports": ports,
                    "observed": list(row["observed"]),
                    "score": round(float(row["score"]), 4),
                    "reasons": list(row["reasons"] or []),
                    "allowed_by": rules,
                },
            )
        )
    return findings


def _workload(side: str) -> pl.Expr:
    return pl.coalesce(
        pl.concat_str(
            [pl.col(f"{side}_namespace"), pl.coalesce(f"{side}_workload", f"{side}_pod")],
            separator="/",
        ),
        pl.col(f"{side}_ip"),
        pl.lit("reserved:") + pl.col(f"{side}_entity"),
    )
