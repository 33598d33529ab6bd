"""suspicious-allowed: edges the anomaly detector flags that the audited policies allow.

A policy that admits traffic the detector finds suspicious (a debug pod reaching a database, a
scan) deserves a second look even when the rule is otherwise fine. These are for review, not
proof: the finding carries the detector's score and reasons.
"""

from __future__ import annotations

from collections.abc import Set

import polars as pl

from analyzer.audit.findings import Finding

__all__ = ["suspicious_findings"]

_KEYS = ["src_key", "dst_key", "protocol", "dst_port", "outcome"]


def suspicious_findings(
    evaluated: pl.DataFrame, namespaces: Set[str] | None, random_state: int,
    warnings: list[str],
) -> list[Finding]:
    """Findings for flagged connections that ``evaluated`` marks ``allowed``."""
    from analyzer.anomaly import detect_anomalies

    conns = evaluated.drop(
        [c for c in ("allowed", "ingress_rules", "egress_rules", "ingress_isolated",
                     "egress_isolated", "reason") if c in evaluated.columns]
    )
    try:
        result = detect_anomalies(
            conns, random_state=random_state,
            namespaces=sorted(namespaces) if namespaces is not None else None,
        )
    except ValueError as exc:  # too little traffic for the model, for example
        warnings.append(f"anomaly detection skipped: {exc}")
        return []
    flagged = result.flagged
    if flagged.height == 0:
        return []
    verdicts = evaluated.select(
        *_KEYS, "allowed", "ingress_rules", "egress_rules"
    ).unique(subset=_KEYS, keep="first")
    joined = flagged.select(*_KEYS, "score", "reasons", "connections").join(
        verdicts, on=_KEYS, how="inner", nulls_equal=True
    ).filter(pl.col("allowed"))
    findings: list[Finding] = []
    for row in joined.sort("score", descending=True).iter_rows(named=True):
        rules = sorted(set(row["ingress_rules"] or []) | set(row["egress_rules"] or []))
        if not rules:
            continue  # open because nothing selects it: unprotected-pods says so
        policy, rule = _first_rule(rules)
        port = row["dst_port"] if row["dst_port"] is not None else "-"
        allowed_by = ", ".join(rules)
        findings.append(
            Finding(
                severity="medium",
                category="suspicious-allowed",
                policy=policy,
                rule=rule,
                namespace=policy.split("/", 1)[0] if policy else None,
                explanation=(
                    f"the anomaly detector flags {row['src_key']} -> {row['dst_key']} "
                    f"{row['protocol']} {port} (score {row['score']:.2f}: "
                    f"{'; '.join(row['reasons'] or [])}) and these policies allow it via "
                    f"{allowed_by}; review whether it should be allowed"
                ),
                hits=int(row["connections"] or 0),
                evidence={
                    "src": row["src_key"],
                    "dst": row["dst_key"],
                    "protocol": row["protocol"],
                    "port": row["dst_port"],
                    "observed": row["outcome"],
                    "score": round(float(row["score"]), 4),
                    "reasons": list(row["reasons"] or []),
                    "allowed_by": rules,
                },
            )
        )
    return findings


def _first_rule(rules: list[str]) -> tuple[str | None, str | None]:
    if not rules:
        return None, None
    policy, _, rest = rules[0].partition("#")
    return policy, f"spec.{rest}"
