"""Careful attackers and legitimate newcomers planted into the project generator's captures.

Calibration only: `calibrate_anomaly.py` and `bench_anomaly.py` use it to give the detector's
thresholds a population of quiet attacks to be chosen on. The world is the generator's
(``develop`` with ``env=dev``, ``production`` with ``env=prod``, ``extra-NNN`` namespaces,
``app`` labels, Deployments). The held-out family (`heldout/`) is written separately, with
other topologies, label schemes and timings, and never feeds calibration.

Rows are added to a connection frame (`analyzer.connections` contract): one row per planted
edge, built from an existing row of the same workload so that its labels, namespace labels and
workload name are the generator's own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import polars as pl

from analyzer.identity import group_key

__all__ = ["CLASSES", "Planted", "plant"]

# Attack classes (the four stealthy ones plus the harmful-escalation case) and the
# legitimate newcomers that must stay allowed.
CLASSES = ("bare_cross_env", "exfil", "api_token", "bare_db", "escalation_probe")
LEGIT = ("newcomer", "cronjob_db", "scrape_newcomer")


@dataclass(frozen=True, slots=True)
class Planted:
    frame: pl.DataFrame  # the connection frame with the planted rows
    labels: pl.DataFrame  # EDGE keys (src_group, dst_group, protocol, dst_port) -> class


def _side(row: dict[str, Any], side: str) -> dict[str, Any]:
    return {k[len(side) + 1 :]: v for k, v in row.items() if k.startswith(side + "_")}


def _row(
    template: dict[str, Any],
    src: dict[str, Any],
    dst: dict[str, Any],
    *,
    protocol: str,
    port: int,
    first: Any,
    last: Any,
    n: int,
) -> dict[str, Any]:
    row = dict(template)
    for side, values in (("src", src), ("dst", dst)):
        for k, v in values.items():
            if f"{side}_{k}" in row:
                row[f"{side}_{k}"] = v
    row.update(
        protocol=protocol,
        dst_port=port,
        outcome="allowed",
        connections=n,
        events=4 * n,
        first_seen=first,
        last_seen=last,
        audit=False,
    )
    return row


def _pod(
    base: dict[str, Any], *, pod: str, workload: str | None, labels: list[str]
) -> dict[str, Any]:
    ns = base["namespace"]
    out = dict(base)
    out.update(
        key=f"{ns}/{pod}",
        pod=pod,
        workload=workload,
        labels=sorted(labels),
        group=group_key(ns, labels, "pod", None),
        ip=f"10.244.9.{random.Random(pod).randrange(2, 250)}",
        entity="pod",
    )
    return out


def plant(conns: pl.DataFrame, seed: int, classes: tuple[str, ...] = CLASSES) -> Planted:
    """Add one edge of each attack class (and the legitimate newcomers) to `conns`."""
    rng = random.Random(seed * 7919 + 13)
    start = conns["first_seen"].min()
    end = conns["last_seen"].max()
    span = end - start  # type: ignore[operator]

    def at(frac: float) -> Any:
        return start + span * frac

    rows = conns.to_dicts()
    by_src = {}
    for r in rows:
        if r["src_entity"] == "pod" and r["src_workload"]:
            by_src.setdefault(r["src_workload"] + "@" + r["src_namespace"], r)
    by_dst = {}
    for r in rows:
        if r["dst_entity"] == "pod" and r["dst_workload"]:
            by_dst.setdefault(r["dst_workload"] + "@" + r["dst_namespace"], r)
    template = rows[0]
    added: list[dict[str, Any]] = []
    labels: list[tuple[dict[str, Any], str]] = []

    def add(row: dict[str, Any], cls: str) -> None:
        added.append(row)
        labels.append((row, cls))

    def burst(lo: float, hi: float) -> tuple[Any, Any, int]:
        t0 = rng.uniform(lo, hi)
        n = rng.randint(1, 6)
        return at(t0), at(min(0.999, t0 + rng.uniform(0.0, 0.08))), n

    api = _side(by_dst["api@production"], "dst")
    postgres = _side(by_dst["postgres@production"], "dst")
    develop = _side(by_src["frontend@develop"], "src")
    production = _side(by_src["api@production"], "src")
    name = rng.choice(["shell", "debug-tools", "tmp", "curl", "psql-client"])
    if "bare_cross_env" in classes:
        bare = _pod(develop, pod=f"{name}", workload=None, labels=[f"run={name}"])
        first, last, n = burst(0.4, 0.95)
        add(_row(template, bare, api, protocol="TCP", port=8080, first=first, last=last, n=n),
            "bare_cross_env")  # fmt: skip
    if "bare_db" in classes:
        bare = _pod(production, pod=f"{name}-x", workload=None, labels=[f"run={name}-x"])
        first, last, n = burst(0.3, 0.95)
        add(_row(template, bare, postgres, protocol="TCP", port=5432, first=first, last=last,
                 n=n), "bare_db")  # fmt: skip
    # Workloads of the application namespaces, none of which talks to the API server.
    victims = sorted(
        k for k in by_src if k.split("@")[1] in ("develop", "production") or "@extra-" in k
    )
    victim = _side(by_src[rng.choice(victims)], "src")
    if "exfil" in classes:
        ip = f"{rng.choice((45, 91, 185))}.{rng.randrange(256)}.{rng.randrange(256)}.7"
        dst = {"key": ip, "namespace": None, "pod": None, "workload": None, "ip": ip,
               "entity": "world", "labels": [], "namespace_labels": [], "group": f"ip:{ip}",
               "names": []}  # fmt: skip
        first, last, n = burst(0.55, 0.95)
        add(_row(template, victim, dst, protocol="TCP", port=443, first=first, last=last, n=n),
            "exfil")  # fmt: skip
    if "api_token" in classes:
        dst = {"key": "reserved:kube-apiserver", "namespace": None, "pod": None,
               "workload": None, "ip": "172.18.0.2", "entity": "kube-apiserver", "labels": [],
               "namespace_labels": [], "group": "entity:kube-apiserver", "names": []}  # fmt: skip
        t0 = rng.uniform(0.55, 0.9)
        n = rng.randint(2, 8)
        add(_row(template, victim, dst, protocol="TCP", port=6443, first=at(t0),
                 last=at(min(0.999, t0 + 0.05)), n=n), "api_token")  # fmt: skip
    if "escalation_probe" in classes:
        steady = _side(by_src[rng.choice(["backend@develop", "frontend-primary@develop"])], "src")
        first = at(rng.uniform(0.3, 0.95))
        add(_row(template, steady, postgres, protocol="TCP", port=5432, first=first, last=first,
                 n=1), "escalation_probe")  # fmt: skip
    # Legitimate newcomers: a Deployment rolled out late calling develop/backend like the
    # frontends, scraped by Prometheus from its start; a CronJob's pod on the database.
    t0 = rng.uniform(0.5, 0.85)
    new = _pod(develop, pod="checkout-7d9fbb5c4d-x2k9q", workload="checkout",
               labels=["app=checkout", "app.kubernetes.io/name=checkout",
                       "app.kubernetes.io/part-of=shop"])  # fmt: skip
    backend = _side(by_dst["backend@develop"], "dst")
    coredns = _side(by_dst["coredns@kube-system"], "dst")
    add(_row(template, new, backend, protocol="TCP", port=8080, first=at(t0), last=end,
             n=rng.randint(5, 40)), "newcomer")  # fmt: skip
    add(_row(template, new, coredns, protocol="UDP", port=53, first=at(t0), last=end,
             n=rng.randint(5, 20)), "newcomer")  # fmt: skip
    prom = _side(by_src["prometheus@monitoring"], "src")
    add(_row(template, prom, {**new, "key": new["key"]}, protocol="TCP", port=9090,
             first=at(t0 + 0.01), last=end, n=rng.randint(3, 20)), "scrape_newcomer")  # fmt: skip
    t1 = rng.uniform(0.3, 0.9)
    job = _pod(production, pod="nightly-report-29001440-q8x7z", workload="nightly-report-29001440",
               labels=["app=nightly-report"])  # fmt: skip
    add(_row(template, job, postgres, protocol="TCP", port=5432, first=at(t1),
             last=at(t1) + timedelta(seconds=40), n=rng.randint(1, 5)), "cronjob_db")  # fmt: skip
    add(_row(template, job, coredns, protocol="UDP", port=53, first=at(t1),
             last=at(t1) + timedelta(seconds=30), n=2), "cronjob_db")  # fmt: skip
    frame = pl.concat([conns, pl.DataFrame(added, schema=conns.schema)], how="vertical")
    keyed = pl.DataFrame(
        [
            {"src_group": r["src_group"], "dst_group": r["dst_group"], "protocol": r["protocol"],
             "dst_port": r["dst_port"], "class": cls}
            for r, cls in labels
        ],
        schema={"src_group": pl.String, "dst_group": pl.String, "protocol": pl.String,
                "dst_port": pl.Int32, "class": pl.String},
    ).unique(subset=["src_group", "dst_group", "protocol", "dst_port"], keep="first")  # fmt: skip
    return Planted(frame=frame, labels=keyed)
