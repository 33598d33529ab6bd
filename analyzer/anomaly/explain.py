"""Reasons in words for a flagged edge, from the same features the rules and the model read.

Only flagged edges are explained, so this runs over a handful of rows, not the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from analyzer.present.text import port_text

__all__ = ["DATABASE_NAMES", "explain_edge", "explain_edges", "MAX_REASONS"]

MAX_REASONS = 4

DATABASE_NAMES: dict[int, str] = {
    1433: "SQL Server",
    1521: "Oracle",
    2379: "etcd",
    3306: "MySQL",
    5432: "PostgreSQL",
    5984: "CouchDB",
    6379: "Redis",
    7000: "Cassandra",
    7687: "Neo4j",
    8086: "InfluxDB",
    9042: "Cassandra",
    9200: "Elasticsearch",
    11211: "memcached",
    26257: "CockroachDB",
    27017: "MongoDB",
    28015: "RethinkDB",
}


def _port(row: Mapping[str, Any]) -> str:
    return port_text(row.get("protocol"), row.get("dst_port"))


def _pct(share: float) -> str:
    return f"{round(100 * share)}%"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _rule_reason(row: Mapping[str, Any]) -> str | None:
    rule = row.get("rule")
    src, dst = row["src_name"], row["dst_name"]
    if rule == "port_scan":
        ports = int(row["pair_ports"])
        text = f"{src} reached {_plural(ports, 'port')} on {dst}"
        denied = int(row["pair_denied_ports"])
        if denied:
            text += f", {denied} denied"
        unshared = round(float(row["pair_unshared_share"]) * ports)
        if unshared == ports:
            text += "; no other client uses them"
        elif unshared:
            text += f"; no other client uses {unshared} of them"
        return text
    if rule == "host_sweep":
        targets = int(row["sweep_targets"])
        text = f"{src} reached {targets} destinations on {_port(row)}"
        if float(row["sweep_denied_share"]) > 0:
            text += f", {_pct(float(row['sweep_denied_share']))} of attempts denied"
        if float(row["sweep_unshared_share"]) >= 0.5:
            text += "; no other source reaches most of them on this port"
        return text
    if rule == "database_lateral":
        port = row.get("dst_port")
        name = DATABASE_NAMES.get(int(port)) if port is not None else None
        what = f"database port {port}" + (f" ({name})" if name else "")
        return (
            f"cross-namespace access to {what} on {dst} from {src}, "
            "which is not an established client"
        )
    if rule == "compromised_source":
        hits = int(row["source_rule_hits"])
        rules = ", ".join(str(r).replace("_", " ") for r in row["source_rules"])
        return (
            f"{src} was caught on {_plural(hits, 'other edge')} ({rules}); "
            "its new traffic is held back for review (its established traffic stays allowed)"
        )
    return _stealth_reason(row)


def _when(row: Mapping[str, Any]) -> str:
    """When the edge started, and the p-value of its novelty when that is telling."""
    text = f"first seen {_pct(float(row['first_seen_at']))} into the window"
    p = float(row.get("novelty_p", 1.0))
    if p < 0.5:
        text += (
            f", {_pct(float(row['novelty']))} of it after both ends were present "
            f"(a routine edge shows that late with p={p:.2g})"
        )
    return text


def _lone(row: Mapping[str, Any]) -> str:
    """The lone-replica clause: which pod alone did it while its siblings did not."""
    if float(row.get("lone_replica") or 0) <= 0:
        return ""
    siblings = int(row.get("src_replicas") or 0) - 1
    return (
        f", only from pod {row['lone_pod']} while its {_plural(siblings, 'sibling replica')} "
        "never did (one compromised pod among replicas?)"
    )


def _stealth_reason(row: Mapping[str, Any]) -> str | None:
    """Reasons of the careful attacker's rules (`stealth`)."""
    rule = row.get("rule")
    src, dst = row["src_name"], row["dst_name"]
    bare = " (a pod without a controller)" if float(row.get("src_bare", 0)) > 0 else ""
    if rule == "environment_crossing":
        return (
            f"{src}{bare} in environment {row['src_env']} reached {dst} in environment "
            f"{row['dst_env']} on {_port(row)}, its first crossing into {row['dst_env']}, "
            f"with no established client of {row['src_env']} on that port; {_when(row)}"
        )
    if rule == "new_api_access":
        return (
            f"{src}{bare} started to talk to the Kubernetes API server{_lone(row)}; {_when(row)}"
        )
    if rule == "new_external":
        return (
            f"{src} contacted {dst} outside the cluster on {_port(row)}, which no other "
            f"workload contacts and it did not contact before{_lone(row)}; {_when(row)}"
        )
    if rule == "unlike_client":
        ways = [
            name
            for name, col in (
                ("namespace", "unlike_namespace"),
                ("controller kind", "unlike_kind"),
                ("labels", "unlike_labels"),
            )
            if float(row.get(col, 0)) > 0
        ]
        return (
            f"{src}{bare} is a new client of {dst} on {_port(row)} unlike its established "
            f"clients ({', '.join(ways)} differ); {_when(row)}"
        )
    return None


def _indicator_reasons(row: Mapping[str, Any]) -> list[str]:
    """Evidence in the order a reviewer should read it: failures, exclusivity, timing, rarity."""
    reasons: list[str] = []
    conns, denied = int(row["connections"]), int(row["denied"])
    if denied:
        reasons.append(f"{denied} of {_plural(conns, 'connection')} denied by policy")
    if float(row["unshared_port"]) > 0:
        reasons.append(f"no other client of {row['dst_name']} uses {_port(row)}")
    first = float(row["first_seen_at"])
    active = 1.0 - float(row["inactive_share"])
    if first >= 0.5 and active <= 0.1:
        reasons.append(
            f"first seen {_pct(first)} into the window and active for {_pct(active)} of it"
        )
    elif active <= 0.1 and float(row["log_connections"]) > 0:
        reasons.append(f"active for only {_pct(active)} of the window")
    if float(row["src_first_seen_at"]) >= 0.5:
        reasons.append(
            f"{row['src_name']} first appeared {_pct(float(row['src_first_seen_at']))} "
            "into the window"
        )
    if float(row["cross_namespace"]) > 0 and int(row["ns_pair_sources"]) <= 1:
        reasons.append(
            f"the only source in {row['src_namespace']} that talks to {row['dst_namespace']}"
        )
    if int(row["src_fanout_ports"]) >= 8:
        reasons.append(
            f"{row['src_name']} reached {int(row['src_fanout_ports'])} distinct ports "
            f"on {_plural(int(row['src_fanout_dsts']), 'destination')}"
        )
    if int(row["port_sources"]) <= 1:
        reasons.append(f"no other source in the store uses {_port(row)}")
    if float(row["events_per_connection"]) >= 4:
        reasons.append(
            f"{float(row['events_per_connection']):.1f} events per connection "
            "(retries or unanswered attempts)"
        )
    return reasons


def explain_edge(row: Mapping[str, Any]) -> list[str]:
    """Up to `MAX_REASONS` reasons in words for one edge of the feature frame.

    The rule that fired comes first; for a model-only flag, the model's verdict on the source.
    Then the strongest pieces of evidence.
    """
    rule = _rule_reason(row)
    if rule is None:
        rule = (
            f"{row['src_name']} behaves unlike the other workloads of this store "
            f"(model score {float(row['model_score']):.2f})"
        )
    return [rule, *_indicator_reasons(row)][:MAX_REASONS]


def explain_edges(edges: pl.DataFrame) -> pl.Series:
    """Reasons for each row of a (small) frame of flagged edges, as a ``list[str]`` series."""
    return pl.Series(
        "reasons",
        [explain_edge(row) for row in edges.iter_rows(named=True)],
        dtype=pl.List(pl.String),
    )
