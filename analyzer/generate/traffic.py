"""The traffic plan: which workloads talk to which, on what port, how often; and the attacks.

Rates are connections per hour at the reference scale; writers use them as relative weights.
For attack paths ``rate`` is the number of connections in the attack burst.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from analyzer.generate.model import (
    APISERVER_IP,
    Endpoint,
    Node,
    Outcome,
    ScenarioConfig,
    TrafficPath,
    Workload,
)

__all__ = ["legit_paths", "attack_paths", "ingress_verdict"]

_APISERVER = Endpoint("kube-apiserver", ips=(APISERVER_IP,))
_HOST = Endpoint("host")
_BACKENDS = ("develop/backend", "develop/backend-primary")
_BACKEND_CLIENTS = ("develop/frontend", "develop/frontend-primary", "traefik/traefik")
_BACKEND_INGRESS = "develop/allow-backend-ingress"
_BACKEND_METRICS = "develop/allow-backend-metrics"


def ingress_verdict(src: Endpoint, dst: Workload, port: int) -> tuple[Outcome, tuple[str, ...]]:
    """What the policies enforced during the capture do with ``src`` -> ``dst``:``port``.

    Returns the outcome (``allowed``/``denied``) and the policies that decided it (the
    allowing policy, or every policy selecting the destination for a denial).
    """
    if dst.key not in _BACKENDS or src.kind == "host":
        # Unselected pods are open; node-local (kubelet) traffic is allowed by every CNI.
        return "allowed", ()
    src_key = src.workload.key if src.workload is not None else ""
    if src_key in _BACKEND_CLIENTS and port == 8080:
        return "allowed", (_BACKEND_INGRESS,)
    if src_key == "monitoring/prometheus" and port == 9090:
        return "allowed", (_BACKEND_METRICS,)
    return "denied", (_BACKEND_INGRESS, _BACKEND_METRICS)


def _svc_name(w: Workload) -> str:
    return f"{w.name}.{w.namespace}.svc.cluster.local."


def legit_paths(
    by_key: Mapping[str, Workload],
    external: Mapping[str, tuple[str, ...]],
    world_clients: tuple[str, ...],
    upstream_dns: tuple[str, ...],
    config: ScenarioConfig,
) -> tuple[TrafficPath, ...]:
    """Every legitimate path of the cluster, application traffic first."""
    paths: list[TrafficPath] = []

    def pod(key: str) -> Endpoint:
        return Endpoint("pod", by_key[key])

    def add(src: Endpoint, dst: Endpoint, proto: str, port: int, rate: float, purpose: str,
            dns_queries: tuple[str, ...] = ()) -> None:  # fmt: skip
        enforced: tuple[str, ...] = ()
        if dst.workload is not None:
            outcome, enforced = ingress_verdict(src, dst.workload, port)
            if outcome != "allowed":
                raise AssertionError(f"legit path denied by the capture's policies: {src} {dst}")
        s = src.workload.key if src.workload else src.kind
        d = dst.workload.key if dst.workload else (dst.dns_name or dst.kind)
        paths.append(
            TrafficPath(
                id=f"{s}->{d}:{proto}/{port}", category="legit", src=src, dst=dst,
                protocol=proto, port=port, rate=rate, purpose=purpose,
                dns_queries=dns_queries, enforced_by=enforced,
            )
        )  # fmt: skip

    world = Endpoint("world", ips=world_clients)
    add(world, pod("traefik/traefik"), "TCP", 80, 3000, "internet clients (HTTP)")
    add(world, pod("traefik/traefik"), "TCP", 443, 6000, "internet clients (HTTPS)")
    add(pod("traefik/traefik"), pod("develop/frontend"), "TCP", 80, 3000, "ingress route")
    add(pod("traefik/traefik"), pod("develop/frontend-primary"), "TCP", 8080, 2000, "ingress route")
    add(pod("traefik/traefik"), pod("develop/backend"), "TCP", 8080, 1500, "ingress /api route")
    add(pod("traefik/traefik"), pod("develop/backend-primary"), "TCP", 8080, 500, "ingress route")
    add(pod("develop/frontend"), pod("develop/backend"), "TCP", 8080, 2500, "app calls")
    add(pod("develop/frontend-primary"), pod("develop/backend-primary"), "TCP", 8080, 1500,
        "app calls")  # fmt: skip
    add(pod("develop/frontend-primary"), pod("develop/backend"), "TCP", 8080, 300, "app calls")
    add(pod("develop/backend"), pod("production/api"), "TCP", 8080, 1200, "cross-namespace API")
    add(pod("develop/backend-primary"), pod("production/api"), "TCP", 8080, 400,
        "cross-namespace API")  # fmt: skip
    add(pod("production/api"), pod("production/postgres"), "TCP", 5432, 2000, "database")
    for name, src_key, rate in (("api.stripe.com", "develop/frontend", 200),
                                ("api.sendgrid.com", "production/api", 60)):  # fmt: skip
        add(pod(src_key), Endpoint("world", ips=external[name], dns_name=name), "TCP", 443, rate,
            "third-party API")  # fmt: skip
    for key, rate in (("traefik/traefik", 30), ("monitoring/prometheus", 60),
                      ("kube-system/coredns", 20)):  # fmt: skip
        add(pod(key), _APISERVER, "TCP", 6443, rate, "controller watches the API")
    add(pod("kube-system/coredns"), Endpoint("world", ips=upstream_dns), "UDP", 53, 300,
        "upstream resolver")  # fmt: skip

    extras = sorted({w.namespace for w in by_key.values() if w.namespace.startswith("extra-")})
    m = config.workloads_per_namespace
    for k, ns in enumerate(extras):
        add(pod("traefik/traefik"), pod(f"{ns}/svc-0"), "TCP", 8080, 100, "ingress route")
        for i in range(m - 1):
            add(pod(f"{ns}/svc-{i}"), pod(f"{ns}/svc-{i + 1}"), "TCP", 8080, 200, "app calls")
        if k + 1 < len(extras):
            add(pod(f"{ns}/svc-{m - 1}"), pod(f"{extras[k + 1]}/svc-0"), "TCP", 8080, 50,
                "cross-namespace API")  # fmt: skip

    workloads = [w for w in by_key.values() if w.name != "debug"]
    prometheus = pod("monitoring/prometheus")
    for w in workloads:
        if w.metrics_port is not None and w.key != "monitoring/prometheus":
            add(prometheus, Endpoint("pod", w), "TCP", w.metrics_port, 120 * len(w.pods),
                "metrics scrape")  # fmt: skip
    for w in workloads:
        if w.probe_port is not None:
            add(_HOST, Endpoint("pod", w), "TCP", w.probe_port, 360 * len(w.pods), "kubelet probe")

    coredns = pod("kube-system/coredns")
    by_src: dict[str, list[TrafficPath]] = {}
    for p in paths:
        if p.src.workload is not None:
            by_src.setdefault(p.src.workload.key, []).append(p)
    for w in workloads:
        if w.key == "kube-system/coredns":
            continue
        names: list[str] = []
        out_rate = 0.0
        for p in by_src.get(w.key, []):
            out_rate += p.rate
            if p.dst.workload is not None:
                names.append(_svc_name(p.dst.workload))
            elif p.dst.dns_name:
                names.append(p.dst.dns_name + ".")
            elif p.dst.kind == "kube-apiserver":
                names.append("kubernetes.default.svc.cluster.local.")
        if not names:
            names.append(_svc_name(w))
        queries = tuple(dict.fromkeys(names))
        add(Endpoint("pod", w), coredns, "UDP", 53, 60 * len(w.pods) + 0.1 * out_rate,
            "DNS lookups", queries)  # fmt: skip
        if w.key in ("production/api", "monitoring/prometheus"):
            add(Endpoint("pod", w), coredns, "TCP", 53, 6, "DNS over TCP (large answers)", queries)
    return tuple(paths)


def _exfil_address(rng: random.Random) -> str:
    first = rng.choice((45, 91, 146, 185, 193))  # hosting ranges, not the legit APIs' clouds
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def attack_paths(
    by_key: Mapping[str, Workload], nodes: tuple[Node, ...], config: ScenarioConfig
) -> tuple[TrafficPath, ...]:
    """The compromised ``develop/debug`` pod: port scan, host sweep, exfiltration, lateral
    movement."""
    debug = Endpoint("pod", by_key["develop/debug"])
    out: list[TrafficPath] = []
    neighbours = [w for w in by_key.values() if w.namespace == "develop" and w.name != "debug"]

    def probe(category: str, w: Workload, pod_name: str, ip: str, port: int) -> TrafficPath:
        outcome, enforced = ingress_verdict(debug, w, port)
        listening = any(p.port == port and p.protocol == "TCP" for p in w.ports)
        if outcome == "allowed":
            outcome = "allowed" if listening else "reset"
        return TrafficPath(
            id=f"{category}:{w.namespace}/{pod_name}:TCP/{port}", category=category, src=debug,
            dst=Endpoint("pod", w), protocol="TCP", port=port, rate=1, outcome=outcome,
            purpose=f"{category} from the compromised debug pod", enforced_by=enforced,
            dst_pod=pod_name, dst_ip=ip, data=False,
        )  # fmt: skip

    if "scan" in config.attacks:
        for w in neighbours:
            for p in w.pods:
                for port in config.scan_ports:
                    out.append(probe("scan", w, p.name, p.ip, port))
    if "sweep" in config.attacks:
        by_ip = {p.ip: (w, p) for w in by_key.values() for p in w.pods}
        debug_ip = debug.workload.pods[0].ip if debug.workload else ""
        for node in nodes:
            for host in range(2, 2 + config.sweep_hosts):
                ip = f"10.244.{node.index}.{host}"
                if ip == debug_ip:
                    continue
                if ip in by_ip:
                    w, p = by_ip[ip]
                    out.append(probe("sweep", w, p.name, ip, 80))
                else:
                    out.append(
                        TrafficPath(
                            id=f"sweep:{ip}:TCP/80", category="sweep", src=debug,
                            dst=Endpoint("world", ips=(ip,)), protocol="TCP", port=80, rate=1,
                            outcome="unanswered", purpose="sweep from the compromised debug pod",
                            dst_ip=ip, data=False,
                        )
                    )  # fmt: skip
    if "exfil" in config.attacks:
        # Its own generator, so that adding the attack leaves every other choice unchanged.
        ip = _exfil_address(random.Random(config.seed * 31 + 7))
        out.append(
            TrafficPath(
                id=f"exfil:develop/debug->{ip}:TCP/443", category="exfil", src=debug,
                dst=Endpoint("world", ips=(ip,)), protocol="TCP", port=443, rate=4,
                purpose="bulk upload to an internet address nobody else talks to", dst_ip=ip,
            )
        )  # fmt: skip
    if "lateral" in config.attacks:
        db = by_key["production/postgres"]
        out.append(
            TrafficPath(
                id="lateral:develop/debug->kube-system/coredns:UDP/53", category="lateral",
                src=debug, dst=Endpoint("pod", by_key["kube-system/coredns"]), protocol="UDP",
                port=53, rate=3, purpose="resolves the production database",
                dns_queries=("postgres.production.svc.cluster.local.",),
            )
        )  # fmt: skip
        out.append(
            TrafficPath(
                id="lateral:develop/debug->production/postgres:TCP/5432", category="lateral",
                src=debug, dst=Endpoint("pod", db), protocol="TCP", port=5432, rate=6,
                purpose="lateral movement to the production database",
            )
        )  # fmt: skip
    return tuple(out)
