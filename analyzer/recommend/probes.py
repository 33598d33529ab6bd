"""Probe commands that check the rollout the way the seed does: by trying to break the rules.

For observed paths, ``kubectl -n NS exec deploy/<src> -- nc -zv -w 3 <dst> <port>`` must
succeed; for a path that was never observed (preferably into another namespace, like
``production-db:5432`` from ``frontend``) the same command must time out.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import polars as pl

from analyzer.recommend.checks import name_error

__all__ = ["Probe", "make_probes"]

MAX_PER_NAMESPACE = 12
# What an attacker moving laterally looks for first (the seed probes production-db:5432).
_DATABASE_PORTS = frozenset({5432, 3306, 6379, 27017, 9042, 1433, 5984, 9200})


@dataclass(frozen=True, slots=True)
class Probe:
    namespace: str
    command: str
    expect: Literal["succeed", "time out"]
    reason: str

    def to_json(self) -> dict[str, str]:
        return {
            "namespace": self.namespace,
            "command": self.command,
            "expect": self.expect,
            "reason": self.reason,
        }


def _command(ns: str, target: str, host: str, protocol: str, port: int) -> str:
    nc = ["nc", "-zuv" if protocol == "UDP" else "-zv", "-w", "3", host, str(port)]
    argv = ["kubectl", "-n", ns, "exec", target, "--", *nc]
    return " ".join(shlex.quote(a) for a in argv)


def _dns_command(ns: str, target: str) -> str:
    argv = ["kubectl", "-n", ns, "exec", target, "--", "nslookup",
            "kubernetes.default.svc.cluster.local"]
    return " ".join(shlex.quote(a) for a in argv)


def _bare(target: str) -> str:
    return target.partition("/")[2]


def _target_error(target: str) -> str | None:
    kind, _, name = target.partition("/")
    # pod names are DNS-1123 subdomains (dots allowed); deployments are labels
    return name_error(name) if kind == "deploy" else (
        None if name and len(name) <= 253 and all(name_error(p) is None for p in name.split("."))
        else "invalid pod name"
    )


def _host(row: dict[str, object], own_ns: str) -> str | None:
    workload, ns = row.get("dst_workload"), row.get("dst_namespace")
    if row.get("dst_entity") == "pod" and isinstance(workload, str) and isinstance(ns, str):
        if name_error(workload) or name_error(ns):
            return None
        # The Service usually carries the workload's name; ports are the pod's (post-DNAT).
        return workload if ns == own_ns else f"{workload}.{ns}"
    ip = row.get("dst_ip")
    return ip if isinstance(ip, str) and ip else None


def make_probes(
    verified: pl.DataFrame, conns: pl.DataFrame, namespaces: Sequence[str]
) -> list[Probe]:
    """Positive probes from verified rows, negative ones from unobserved pod targets."""
    probes: list[Probe] = []
    # Targets are real services: ports that served allowed traffic (not a scanner's probes).
    pods = conns.filter(
        (pl.col("dst_entity") == "pod")
        & pl.col("dst_port").is_not_null()
        & (pl.col("outcome") == "allowed")
    )
    targets = (
        pods.filter(pl.col("protocol") == "TCP")
        .select("dst_namespace", "dst_workload", "dst_port", "dst_entity")
        .drop_nulls()
        .unique()
        .with_columns(pl.col("dst_port").is_in(list(_DATABASE_PORTS)).not_().alias("_rank"))
        .sort(["_rank", "dst_namespace", "dst_workload", "dst_port"])
        .to_dicts()
    )
    # Same order as ``targets``: a namespace's own targets without scanning every other one.
    targets_by_ns: dict[object, list[dict[str, object]]] = {}
    for target in targets:
        targets_by_ns.setdefault(target["dst_namespace"], []).append(target)
    wanted = sorted(set(namespaces))
    by_ns = verified.filter(
        (pl.col("src_entity") == "pod")
        & pl.col("src_namespace").is_in(wanted)
        & pl.col("protocol").is_in(["TCP", "UDP"])
    ).with_columns(
        # kubectl exec target: the Deployment when known, else the pod itself
        pl.when(pl.col("src_workload").is_not_null())
        .then(pl.lit("deploy/") + pl.col("src_workload"))
        .otherwise(pl.lit("pod/") + pl.col("src_pod"))
        .alias("src_workload")
    ).filter(pl.col("src_workload").is_not_null()).partition_by(
        "src_namespace", as_dict=True
    )
    for ns in wanted:
        mine = by_ns.get((ns,))
        if mine is None:
            continue
        seen: set[tuple[str, str, str, int]] = set()
        positives: list[Probe] = []
        ordered = mine.with_columns(
            (pl.col("protocol") != "TCP").alias("_udp")
        ).sort(["_udp", "src_workload", "dst_namespace", "dst_port"])
        for row in ordered.iter_rows(named=True):
            workload = row["src_workload"]
            host = _host(row, ns)
            if host is None or _target_error(workload) or row["dst_port"] is None:
                continue
            if row["protocol"] == "UDP":
                # `nc -zu` "succeeds" whether or not anything answers: only DNS, by a lookup
                if int(row["dst_port"]) != 53:
                    continue
                host = "kubernetes.default.svc.cluster.local"
            key = (workload, host, row["protocol"], int(row["dst_port"]))
            if key in seen:
                continue
            seen.add(key)
            command = (
                _dns_command(ns, workload) if row["protocol"] == "UDP"
                else _command(ns, workload, host, row["protocol"], key[3])
            )
            what = "a DNS lookup" if row["protocol"] == "UDP" else f"TCP/{key[3]} to {host}"
            positives.append(Probe(ns, command, "succeed",
                                   f"observed {what} from {_bare(workload)}"))
        probes.extend(positives[:MAX_PER_NAMESPACE])
        observed: set[tuple[object, ...]] = {
            (r["src_workload"], r["dst_namespace"], r["dst_workload"], r["dst_port"])
            for r in mine.iter_rows(named=True)
        }
        for workload in sorted({k[0] for k in seen})[:MAX_PER_NAMESPACE]:
            probes.extend(_negatives(ns, workload, targets, targets_by_ns, observed))
    return probes


def _negatives(
    ns: str,
    workload: str,
    targets: Sequence[dict[str, object]],
    targets_by_ns: Mapping[object, Sequence[dict[str, object]]],
    observed: set[tuple[object, ...]],
) -> list[Probe]:
    """One unobserved target in another namespace (a database first, the seed's
    production-db:5432) and one in this namespace, each expected to time out."""
    out = []
    for other_namespace in (True, False):
        candidates = targets if other_namespace else targets_by_ns.get(ns, ())
        probe = _negative(ns, workload, candidates, observed, other_namespace)
        if probe is not None:
            out.append(probe)
    return out


def _negative(
    ns: str,
    workload: str,
    targets: Sequence[dict[str, object]],
    observed: set[tuple[object, ...]],
    other_namespace: bool,
) -> Probe | None:
    for target in targets:
        if (target["dst_namespace"] != ns) is not other_namespace:
            continue
        key = (workload, target["dst_namespace"], target["dst_workload"], target["dst_port"])
        if key in observed or target["dst_workload"] == _bare(workload):
            continue
        host = _host(target, ns)
        if host is None:
            continue
        port = int(str(target["dst_port"]))
        where = "another namespace" if other_namespace else "this namespace"
        return Probe(ns, _command(ns, workload, host, "TCP", port), "time out",
                     f"never observed from {_bare(workload)}: {host}:{port} ({where})")
    return None
