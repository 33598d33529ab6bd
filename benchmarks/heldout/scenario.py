"""A held-out scenario: pods, routine traffic, legitimate newcomers, careful attacks, flow rows.

Seeded and deterministic. The flow rows are canonical-schema rows (one request and one reply
per connection, as an exporter at the client's node sees them), so the evaluation runs the same
path as the product: flows -> connections -> anomalies -> recommend. Spellings vary with the
seed: exporters that give the owning workload or not (then only pod-name shapes tell bare pods
apart), with or without namespace labels (then only namespace names tell environments apart).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from analyzer.schema import conform

from .topologies import TOPOLOGIES, Route, Service, Topology

__all__ = ["ATTACK_CLASSES", "VARIANTS", "Heldout", "build"]

ATTACK_CLASSES = ("bare_cross_env", "exfil", "api_token", "bare_db", "escalation_probe")
APISERVER_IP = "192.168.10.5"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
VOLATILE_JOB = ("batch.kubernetes.io/job-name", "job-name", "controller-uid")


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    workload: str | None
    labels: dict[str, str]  # stable labels only (volatile ones are added to the flow rows)
    volatile: dict[str, str]
    ip: str
    node: str


@dataclass
class Heldout:
    """One scenario: its flows and the paths that the checks replay."""

    name: str
    topology: str
    flows: pl.DataFrame
    attack_paths: list[dict[str, Any]] = field(default_factory=list)
    newcomer_paths: list[dict[str, Any]] = field(default_factory=list)
    established_paths: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


class _Builder:
    def __init__(self, topo: Topology, seed: int) -> None:
        self.topo = topo
        self.rng = random.Random(seed)
        rng = self.rng
        self.window = rng.choice((1800, 7200, 43_200))
        self.start = datetime(2027, 3, 1, 6, 0, tzinfo=UTC) + timedelta(hours=rng.randrange(48))
        self.workloads_field = rng.random() < 0.5
        self.namespace_labels = rng.random() < 0.7
        self.scale = rng.choice((0.5, 1.0, 2.0))
        self.nodes = [f"node-{chr(97 + i)}" for i in range(rng.randint(2, 5))]
        self.pods: dict[str, list[Pod]] = {}
        self.rows: list[dict[str, Any]] = []
        self.next_ip = 10
        self.api_port = 443 if any(r.dst == "apiserver" and r.port == 443 for r in topo.routes) \
            else 6443  # fmt: skip
        for svc in topo.services:
            self.pods[svc.key] = [self._pod(svc, i) for i in range(svc.replicas)]
        self.external: dict[str, list[str]] = {}

    # --- pods and addresses ----------------------------------------------------------------
    def _h(self, n: int) -> str:
        return "".join(self.rng.choice(_ALPHABET) for _ in range(n))

    def _pod(self, svc: Service, i: int, *, name: str | None = None) -> Pod:
        vol: dict[str, str] = {}
        if svc.kind == "Deployment":
            vol["pod-template-hash"] = getattr(self, "_hash_" + svc.key, None) or self._h(10)
            setattr(self, "_hash_" + svc.key, vol["pod-template-hash"])
            pod = f"{svc.name}-{vol['pod-template-hash']}-{self._h(5)}"
        elif svc.kind == "StatefulSet":
            pod = f"{svc.name}-{i}"
            vol = {"controller-revision-hash": f"{svc.name}-{self._h(10)}",
                   "statefulset.kubernetes.io/pod-name": pod}  # fmt: skip
        elif svc.kind == "DaemonSet":
            pod = f"{svc.name}-{self._h(5)}"
            vol = {"controller-revision-hash": self._h(10), "pod-template-generation": "1"}
        else:
            pod = svc.name
        workload = None if svc.kind == "Pod" else svc.name
        self.next_ip += 1
        ip = f"10.42.{self.next_ip // 250}.{self.next_ip % 250 + 2}"
        return Pod(svc.namespace, name or pod, workload, dict(svc.labels), vol, ip,
                   self.rng.choice(self.nodes))  # fmt: skip

    def _public(self) -> str:
        return f"{self.rng.choice((34, 52, 104, 151, 203))}.{self.rng.randrange(256)}." \
               f"{self.rng.randrange(256)}.{self.rng.randrange(2, 250)}"  # fmt: skip

    def _names(self, name: str) -> list[str]:
        if name not in self.external:
            self.external[name] = [self._public() for _ in range(self.rng.randint(1, 3))]
        return self.external[name]

    # --- flow rows -------------------------------------------------------------------------
    def _end(self, side: str, pod: Pod | None, entity: str, ip: str) -> dict[str, Any]:
        if pod is None:
            return {f"{side}_ip": ip, f"{side}_entity": entity, f"{side}_labels": [],
                    f"{side}_namespace_labels": []}  # fmt: skip
        labels = {**pod.labels, **pod.volatile}
        ns_labels = {"kubernetes.io/metadata.name": pod.namespace}
        if self.namespace_labels:
            ns_labels.update(self.topo.namespaces.get(pod.namespace, {}))
        return {
            f"{side}_ip": pod.ip, f"{side}_entity": "pod", f"{side}_namespace": pod.namespace,
            f"{side}_pod": pod.name,
            f"{side}_workload": pod.workload if self.workloads_field else None,
            f"{side}_labels": sorted(f"{k}={v}" for k, v in labels.items()),
            f"{side}_namespace_labels": sorted(f"{k}={v}" for k, v in ns_labels.items()),
        }  # fmt: skip

    def connect(self, src: Pod | None, dst: Pod | None, port: int, at: float, *,
                protocol: str = "TCP", src_ip: str = "", dst_ip: str = "",
                src_entity: str = "pod", dst_entity: str = "pod",
                names: tuple[str, ...] = ()) -> None:  # fmt: skip
        t = self.start + timedelta(seconds=min(max(at, 0.0), 0.9999) * self.window)
        a = self._end("src", src, src_entity, src_ip)
        b = self._end("dst", dst, dst_entity, dst_ip)
        sport = self.rng.randrange(32768, 60999)
        node = src.node if src is not None else (dst.node if dst is not None else None)
        request = {"time": t, "source_format": "hubble", "node": node, "verdict": "forwarded",
                   "direction": "egress", "is_reply": False, "protocol": protocol,
                   "src_port": sport, "dst_port": port, "flow_count": 1,
                   "dst_names": list(names), **a, **b}  # fmt: skip
        reply = {k.replace("src_", "§").replace("dst_", "src_").replace("§", "dst_"): v
                 for k, v in request.items()}  # fmt: skip
        reply.update(time=t + timedelta(milliseconds=3), is_reply=True, src_port=port,
                     dst_port=sport, dst_names=[], src_names=list(names))  # fmt: skip
        self.rows += [request, reply]

    def times(self, rate: float, lo: float = 0.0, hi: float = 1.0) -> list[float]:
        # Poisson-like count over [lo, hi], at least one connection.
        mean = max(rate * self.scale * (hi - lo), 0.0)
        n = max(1, int(self.rng.gauss(mean, mean**0.5)) if mean > 0 else 1)
        return sorted(self.rng.uniform(lo, hi) for _ in range(n))

    def route(self, r: Route, lo: float = 0.0, srcs: list[Pod] | None = None) -> None:
        pods = srcs or self.pods[r.src]
        for at in self.times(r.rate, lo):
            src = self.rng.choice(pods)
            if r.dst == "apiserver":
                self.connect(src, None, r.port, at, dst_ip=APISERVER_IP,
                             dst_entity="kube-apiserver")  # fmt: skip
            elif r.dst.startswith("world:"):
                name = r.dst[len("world:") :]
                ip = self.rng.choice(self._names(name))
                self.connect(src, None, r.port, at, dst_ip=ip, dst_entity="world", names=(name,))
            else:
                dst = self.rng.choice(self.pods[r.dst])
                self.connect(src, dst, r.port, at, protocol=r.protocol)


def _spec(pod: Pod | None = None, **other: Any) -> dict[str, Any]:
    if pod is None:
        return dict(other)
    return {"kind": "pod", "namespace": pod.namespace, "labels": dict(pod.labels),
            "pod": pod.name, "ip": pod.ip}  # fmt: skip


def _path(cls: str, src: dict[str, Any], dst: dict[str, Any], port: int,
          protocol: str = "TCP") -> dict[str, Any]:  # fmt: skip
    return {"id": f"{cls}:{src.get('pod') or src.get('kind')}->{dst.get('pod') or dst.get('kind')}"
                  f":{protocol}/{port}", "class": cls, "source": src, "destination": dst,
            "protocol": protocol, "port": port}  # fmt: skip


def _routine(b: _Builder) -> list[dict[str, Any]]:
    """Everything the cluster does all window; returns the steady paths (established)."""
    topo, rng = b.topo, b.rng
    established = []
    for r in topo.routes:
        b.route(r)
        if r.rate * b.scale >= 20 and r.dst != "apiserver" and not r.dst.startswith("world:"):
            src, dst = b.pods[r.src][0], b.pods[r.dst][0]
            established.append(_path("established", _spec(src), _spec(dst), r.port, r.protocol))
    clients = [rng.randrange(2**32) for _ in range(40)]
    ingress = b.pods[topo.ingress]
    for port in topo.ingress_ports:
        for at in b.times(600):
            ip = f"{clients[rng.randrange(len(clients))] % 200 + 20}.{rng.randrange(256)}.7.9"
            b.connect(None, rng.choice(ingress), port, at, src_ip=ip, src_entity="world")
    coredns = b.pods["kube-system/coredns"]
    for svc in topo.services:
        if svc.namespace == "kube-system":
            continue
        for pod in b.pods[svc.key]:
            for at in b.times(40):
                b.connect(pod, rng.choice(coredns), 53, at, protocol="UDP")
            if svc.ports:
                node_ip = f"10.0.0.{b.nodes.index(pod.node) + 1}"
                for at in b.times(60):
                    b.connect(None, pod, svc.ports[0], at, src_ip=node_ip, src_entity="host")
            if svc.metrics_port is not None and svc.key != topo.monitor:
                for at in b.times(30):
                    b.connect(rng.choice(b.pods[topo.monitor]), pod, svc.metrics_port, at)
        monitor = b.pods[topo.monitor][0]
        if svc.metrics_port is not None and svc.key != topo.monitor:
            established.append(_path("established", _spec(monitor), _spec(b.pods[svc.key][0]),
                                     svc.metrics_port))  # fmt: skip
        if svc.key == topo.steady_nonprod:
            established.append(_path("established", _spec(b.pods[svc.key][0]),
                                     _spec(coredns[0]), 53, "UDP"))  # fmt: skip
    for up in ("8.8.8.8", "8.8.4.4"):
        for at in b.times(100):
            b.connect(rng.choice(coredns), None, 53, at, protocol="UDP", dst_ip=up,
                      dst_entity="world")  # fmt: skip
    return established


def _newcomers(b: _Builder) -> list[dict[str, Any]]:
    """A Deployment rolled out late calling a shared port like its peers (scraped and probed
    from its start), and a CronJob's pods on their database."""
    topo, rng = b.topo, b.rng
    paths = []
    ns = topo.newcomer_peer.split("/")[0]
    naming_keys = ("app.kubernetes.io/name", "k8s-app", "service")
    name = next(v for k, v in topo.newcomer_labels.items() if k in naming_keys)
    svc = Service(ns, name, "Deployment", dict(sorted(topo.newcomer_labels.items())), 2, (8080,),
                  next(s.metrics_port for s in topo.services if s.metrics_port))  # fmt: skip
    pods = [b._pod(svc, i) for i in range(2)]
    t0 = rng.uniform(0.45, 0.85)
    peer = topo.newcomer_peer
    b.route(Route(svc.key, peer, topo.newcomer_port, 250), lo=t0, srcs=pods)
    paths.append(_path("newcomer", _spec(pods[0]), _spec(b.pods[peer][0]), topo.newcomer_port))
    for pod in pods:
        for at in b.times(40, lo=t0):
            b.connect(pod, rng.choice(b.pods["kube-system/coredns"]), 53, at, protocol="UDP")
        for at in b.times(30, lo=t0 + 0.01):
            b.connect(rng.choice(b.pods[topo.monitor]), pod, svc.metrics_port or 9090, at)
        for at in b.times(60, lo=t0):
            b.connect(None, pod, 8080, at, src_ip=f"10.0.0.{b.nodes.index(pod.node) + 1}",
                      src_entity="host")  # fmt: skip
    paths.append(_path("scrape_newcomer", _spec(b.pods[topo.monitor][0]), _spec(pods[0]),
                       svc.metrics_port or 9090))  # fmt: skip
    db_ns = topo.cronjob_db.split("/")[0]
    naming = next(iter(topo.newcomer_labels))
    job_labels = {naming: "nightly-export"}
    runs = rng.randint(1, 2)
    job_pod: Pod | None = None
    for run in range(runs):
        t = rng.uniform(0.25, 0.95) if run == 0 else min(0.97, rng.uniform(0.6, 0.97))
        job = f"nightly-export-{29_000_000 + rng.randrange(999_999)}"
        job_pod = Pod(db_ns, f"{job}-{b._h(5)}", job, job_labels,
                      {"batch.kubernetes.io/job-name": job, "job-name": job,
                       "controller-uid": f"{b._h(8)}-{b._h(4)}"}, f"10.42.9.{100 + run}",
                      rng.choice(b.nodes))  # fmt: skip
        for _ in range(rng.randint(1, 5)):
            at = t + rng.uniform(0, 0.004)
            b.connect(job_pod, rng.choice(b.pods[topo.cronjob_db]), topo.cronjob_db_port, at)
        b.connect(job_pod, rng.choice(b.pods["kube-system/coredns"]), 53, t, protocol="UDP")
    assert job_pod is not None
    paths.append(_path("cronjob_db", _spec(job_pod), _spec(b.pods[topo.cronjob_db][0]),
                       topo.cronjob_db_port))  # fmt: skip
    return paths


def _attacks(b: _Builder) -> list[dict[str, Any]]:
    """The careful attacker: few connections, late, on ports services really use."""
    topo, rng = b.topo, b.rng
    out = []

    def burst(lo: float = 0.35, hi: float = 0.95, most: int = 4) -> list[float]:
        t = rng.uniform(lo, hi)
        return [min(0.999, t + rng.uniform(0, 0.05)) for _ in range(rng.randint(1, most))]

    def bare(ns: str, names: tuple[str, ...]) -> Pod:
        name = rng.choice(names)
        return b._pod(Service(ns, name, "Pod", {"run": name}), 0)

    # 1. a bare pod in a non-production namespace opens an application port in production
    intruder = bare(topo.nonprod_namespace, ("debug", "netshoot", "tmp-shell", "alpine"))
    target = rng.choice(b.pods[topo.prod_app])
    times = burst()
    dns = rng.choice(b.pods["kube-system/coredns"])
    b.connect(intruder, dns, 53, times[0] - 0.001, protocol="UDP")
    # The intruder's own lookup: attack traffic, but the DNS guardrail keeps it open.
    out.append({**_path("bare_cross_env", _spec(intruder), _spec(dns), 53, "UDP"), "support": True})
    for at in times:
        b.connect(intruder, target, topo.prod_app_port, at)
    out.append(_path("bare_cross_env", _spec(intruder), _spec(target), topo.prod_app_port))
    # 2. exfiltration from a long-lived workload to an address nobody contacted before
    victim = rng.choice(b.pods[rng.choice(topo.victims)])
    ip = b._public()
    named = rng.random() < 0.5
    port = rng.choice((443, 8443, 80))
    for at in burst(0.5, 0.97, most=8):
        b.connect(victim, None, port, at, dst_ip=ip, dst_entity="world",
                  names=("drop.files-share.example",) if named else ())  # fmt: skip
    out.append(_path("exfil", _spec(victim), {"kind": "world", "ips": [ip]}, port))
    # 3. a stolen service-account token: a workload that never used the API server starts to
    victim = rng.choice(b.pods[rng.choice(topo.victims)])
    for at in burst(0.45, 0.95, most=8):
        b.connect(victim, None, b.api_port, at, dst_ip=APISERVER_IP, dst_entity="kube-apiserver")
    out.append(_path("api_token", _spec(victim), {"kind": "kube-apiserver", "ips": [APISERVER_IP]},
                     b.api_port))  # fmt: skip
    # 4. a bare pod on its namespace's database port, which legitimate clients also use
    db_ns = topo.prod_db.split("/")[0]
    client = bare(db_ns, ("db-client", "psql", "mysql-cli", "mongosh"))
    db = rng.choice(b.pods[topo.prod_db])
    for at in burst(most=5):
        b.connect(client, db, topo.prod_db_port, at)
    out.append(_path("bare_db", _spec(client), _spec(db), topo.prod_db_port))
    # 5. a legitimate workload makes one cross-environment connection to a production database
    steady = rng.choice(b.pods[topo.steady_nonprod])
    b.connect(steady, db, topo.prod_db_port, rng.uniform(0.3, 0.95))
    out.append(_path("escalation_probe", _spec(steady), _spec(db), topo.prod_db_port))
    return out


VARIANTS = ("sparse_replicas",)


def _sparse_replicas(b: _Builder) -> None:
    """Legitimate clients with replicas and sparse traffic: each replicated workload (outside
    kube-system) calls an update service of its own a few times a window, and one that is not
    a victim reads the API server a few times. With 1-6 connections over 2-4 replicas one pod
    often makes all of them, late: what a lone-replica signal must not mistake for an attack."""
    topo, rng = b.topo, b.rng
    replicated = [
        s for s in topo.services
        if s.replicas >= 2 and s.namespace != "kube-system" and s.kind != "Pod"
    ]  # fmt: skip
    for svc in replicated:
        b.route(Route(svc.key, f"world:{svc.name}-updates.{svc.namespace}.example", 443,
                      rng.uniform(2, 6)))  # fmt: skip
    readers = [s for s in replicated if s.key not in topo.victims]
    if readers:
        b.route(Route(rng.choice(readers).key, "apiserver", b.api_port, rng.uniform(2, 6)))


def build(seed: int, topology: str | None = None, variant: str | None = None) -> Heldout:
    """One held-out scenario, deterministic from `seed` (and the topology, else by seed).

    ``variant="sparse_replicas"`` adds legitimate sparse traffic from replicated workloads
    (`_sparse_replicas`) before the newcomers and the attacks.
    """
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"unknown held-out variant {variant!r}")
    name = topology or sorted(TOPOLOGIES)[seed % len(TOPOLOGIES)]
    b = _Builder(TOPOLOGIES[name](), seed)
    established = _routine(b)
    if variant == "sparse_replicas":
        _sparse_replicas(b)
    newcomers = _newcomers(b)
    attacks = _attacks(b)
    flows = conform(pl.DataFrame(b.rows, infer_schema_length=None)).sort("time")
    return Heldout(
        name=f"{name}-{seed}" + (f"-{variant}" if variant else ""),
        topology=name, flows=flows, attack_paths=attacks,
        newcomer_paths=newcomers, established_paths=established,
        settings={"window_seconds": b.window, "workloads_field": b.workloads_field,
                  "namespace_labels": b.namespace_labels, "scale": b.scale,
                  "variant": variant},
    )  # fmt: skip
