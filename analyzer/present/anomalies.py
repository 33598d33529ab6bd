"""``analyzer anomalies`` for people: scans and sweeps folded into one row each."""

from __future__ import annotations

from typing import Any

from analyzer import schema as c
from analyzer.anomaly._detect import AnomalyResult
from analyzer.anomaly.records import flagged_edge_records
from analyzer.present.text import port_text, text_table

__all__ = ["anomaly_table"]


def _port(row: dict[str, Any]) -> str:
    return port_text(row[c.PROTOCOL], row[c.DST_PORT])


def _ports(ports: list[str]) -> str:
    shown = ", ".join(ports[:3])
    return f"{len(ports)} ports ({shown}{', ...' if len(ports) > 3 else ''})"


def _findings(records: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Table rows: a scan is one row per (source, destination), a sweep one per (source, port).

    Records come most anomalous first, so the first record of a finding gives its score and
    reason; the order of findings follows their first record.
    """
    grouped: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in records:
        rule = str(r[c.RULE] or "model")
        key: tuple[str, ...]
        if rule == "port_scan":
            key = (rule, r["src_name"], r["dst_name"])
        elif rule == "host_sweep":
            key = (rule, r["src_name"], _port(r))
        else:
            key = (rule, r["src_name"], r["dst_name"], _port(r))
        grouped.setdefault(key, []).append(r)
    rows: list[tuple[str, ...]] = []
    for found, members in grouped.items():
        top = members[0]
        ports = list(dict.fromkeys(_port(m) for m in members))
        dsts = list(dict.fromkeys(str(m["dst_name"]) for m in members))
        rows.append(
            (
                f"{top[c.SCORE]:.2f}",
                found[0],
                str(top["src_name"]),
                dsts[0] if len(dsts) == 1 else f"{len(dsts)} destinations",
                ports[0] if len(ports) == 1 else _ports(ports),
                str(sum(int(m["connections"]) for m in members)),
                top[c.REASONS][0] if top[c.REASONS] else "",
            )
        )
    return rows


def anomaly_table(result: AnomalyResult) -> str:
    """Findings for people: scans and sweeps folded into one row each, then a summary line.

    `-o json` lists every flagged edge with all of its reasons.
    """
    records = flagged_edge_records(result)
    s = result.summary
    summary = (
        f"{s.flagged_edges} of {s.edges} edges flagged "
        f"({', '.join(f'{k} {v}' for k, v in s.by_rule.items()) or 'no rule hits'}; "
        f"model {s.model_flagged}); model threshold {s.threshold:.2f}"
    )
    if not records:
        return f"no anomalies: {summary}"
    header = ("SCORE", "RULE", "SOURCE", "DESTINATION", "PORT", "CONNS", "REASON")
    lines = text_table([header, *_findings(records)], last_free=True)
    lines.append("")
    lines.append(summary)
    lines.extend(f"suspect: {suspect.message()}" for suspect in s.suspects)
    return "\n".join(lines)
