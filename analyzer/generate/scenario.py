"""Build the synthetic cluster of the seed chapter and its traffic plan, from a seed.

The world (``seed/chapter-06``): ``develop`` (frontend, frontend-primary -> backend,
backend-primary on 8080), ``traefik`` (ingress from the internet), ``kube-system``
(CoreDNS), ``production`` (api -> postgres), ``monitoring`` (Prometheus scraping every pod),
kubelet probes from each pod's node, egress to the internet by DNS name, a controller
talking to the kube-apiserver, optional ``extra-NNN`` namespaces to scale identities, and an
optional compromised ``develop/debug`` pod (scan, sweep, lateral movement).

During the capture only ``develop``'s backends are isolated (by the seed's
``allow-backend-ingress`` and ``allow-backend-metrics``); the other policies in
``existing-policies.yaml`` are the repository's proposed set (see ``policies.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from analyzer.errors import UsageError
from analyzer.generate.inventory import build_inventory
from analyzer.generate.model import (
    ATTACKS,
    ContainerPort,
    Namespace,
    Node,
    Pod,
    ScenarioConfig,
    TrafficPath,
    Workload,
)
from analyzer.generate.traffic import attack_paths, legit_paths

__all__ = ["Scenario", "build_scenario", "ENFORCED_POLICIES"]

_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses for generated names
PODS_PER_NODE = 150  # at most, so that each node's /24 pod CIDR holds its pods
_LAST_HOST = 250
MAX_IDENTITY_WORKLOADS = 20000

# Policies enforced while the flows were captured (ingress of develop's backends only).
ENFORCED_POLICIES: tuple[str, ...] = (
    "develop/allow-backend-ingress",
    "develop/allow-backend-metrics",
)

EXTERNAL_NAMES: dict[str, int] = {"api.stripe.com": 3, "api.sendgrid.com": 2}


@dataclass(frozen=True, slots=True)
class Scenario:
    """A synthetic cluster and its traffic plan; see :func:`build_scenario`."""

    config: ScenarioConfig
    nodes: tuple[Node, ...]
    namespaces: tuple[Namespace, ...]
    workloads: tuple[Workload, ...]
    legit_paths: tuple[TrafficPath, ...]
    attack_paths: tuple[TrafficPath, ...]
    external_ips: dict[str, tuple[str, ...]]  # DNS name -> addresses

    @property
    def pods(self) -> tuple[Pod, ...]:
        return tuple(p for w in self.workloads for p in w.pods)

    @property
    def paths(self) -> tuple[TrafficPath, ...]:
        return self.legit_paths + self.attack_paths

    def workload(self, key: str) -> Workload:
        for w in self.workloads:
            if w.key == key:
                return w
        raise KeyError(key)

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        for ns in self.namespaces:
            if ns.name == namespace:
                return ns.labels
        return {"kubernetes.io/metadata.name": namespace}

    def inventory(self) -> dict[str, Any]:
        """The JSON of ``kubectl get pods,namespaces -A -o json`` for this cluster."""
        return build_inventory(self)

    def truth(self) -> dict[str, Any]:
        """Ground truth: every legitimate and attack path, for tests and benchmarks."""
        return {
            "seed": self.config.seed,
            "attacks": sorted(self.config.attacks),
            "enforced_policies": list(ENFORCED_POLICIES),
            "legit_paths": [p.describe() for p in self.legit_paths],
            "attack_paths": [p.describe() for p in self.attack_paths],
        }


# --- cluster --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spec:
    namespace: str
    name: str
    kind: str
    labels: dict[str, str]
    ports: tuple[ContainerPort, ...]
    replicas: int
    image: str
    probe_port: int | None
    metrics_port: int | None
    service_account: str = ""


def _p(name: str, port: int, protocol: str = "TCP") -> ContainerPort:
    return ContainerPort(name, port, protocol)


def _core_specs() -> list[_Spec]:
    web = {"app.kubernetes.io/part-of": "shop", "version": "v1"}
    return [
        _Spec("develop", "frontend", "Deployment",
              {"app": "frontend", "app.kubernetes.io/name": "frontend", **web},
              (_p("http", 80), _p("metrics", 9113)), 2, "nginx:1.27", 80, 9113),
        _Spec("develop", "frontend-primary", "Deployment",
              {"app": "frontend-primary", "app.kubernetes.io/name": "frontend-primary", **web},
              (_p("http", 8080),), 2, "ghcr.io/example/frontend:2.4.1", 8080, 8080),
        _Spec("develop", "backend", "Deployment",
              {"app": "backend", "app.kubernetes.io/name": "backend", **web},
              (_p("http", 8080), _p("metrics", 9090)), 3, "ghcr.io/example/backend:1.9.0",
              8080, 9090),
        _Spec("develop", "backend-primary", "Deployment",
              {"app": "backend-primary", "app.kubernetes.io/name": "backend-primary", **web},
              (_p("http", 8080), _p("metrics", 9090)), 2, "ghcr.io/example/backend:1.9.0",
              8080, 9090),
        _Spec("traefik", "traefik", "Deployment",
              {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik"},
              (_p("web", 80), _p("websecure", 443), _p("traefik", 9000), _p("metrics", 9100)),
              2, "traefik:v3.2", 9000, 9100),
        _Spec("kube-system", "coredns", "Deployment", {"k8s-app": "kube-dns"},
              (_p("dns", 53, "UDP"), _p("dns-tcp", 53), _p("metrics", 9153),
               _p("liveness-probe", 8080), _p("readiness-probe", 8181)),
              2, "registry.k8s.io/coredns/coredns:v1.11.3", 8181, 9153),
        _Spec("production", "api", "Deployment",
              {"app": "api", "app.kubernetes.io/name": "api", "app.kubernetes.io/part-of": "shop",
               "version": "v2"},
              (_p("http", 8080), _p("metrics", 9090)), 2, "ghcr.io/example/api:3.2.0", 8080, 9090),
        _Spec("production", "postgres", "StatefulSet",
              {"app": "postgres", "app.kubernetes.io/name": "postgresql",
               "app.kubernetes.io/component": "primary"},
              (_p("tcp-postgresql", 5432), _p("http-metrics", 9187)), 1, "postgres:16.4",
              5432, 9187),
        _Spec("monitoring", "prometheus", "StatefulSet",
              {"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/instance": "k8s"},
              (_p("web", 9090),), 1, "quay.io/prometheus/prometheus:v2.54.1", 9090, 9090,
              "prometheus-k8s"),
    ]  # fmt: skip


def _extra_specs(config: ScenarioConfig, rng: random.Random) -> list[_Spec]:
    specs = []
    for k in range(config.extra_namespaces):
        ns = f"extra-{k + 1:03d}"
        for i in range(config.workloads_per_namespace):
            name = f"svc-{i}"
            specs.append(
                _Spec(ns, name, "Deployment",
                      {"app": name, "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": ns,
                       "tier": ("web", "api", "worker", "cache")[i % 4]},
                      (_p("http", 8080), _p("metrics", 9090)), rng.choice((1, 1, 2, 3)),
                      f"ghcr.io/example/{name}:1.0.{rng.randrange(20)}", 8080, 9090)
            )  # fmt: skip
    return specs


def _namespaces(config: ScenarioConfig) -> tuple[Namespace, ...]:
    extra: dict[str, dict[str, str]] = {
        "develop": {"env": "dev", "team": "web"},
        "production": {"env": "prod", "team": "web"},
        "monitoring": {"team": "platform"},
        "traefik": {"team": "platform"},
        "kube-system": {},
    }
    names = ["develop", "traefik", "kube-system", "production", "monitoring"]
    names += [f"extra-{k + 1:03d}" for k in range(config.extra_namespaces)]
    out = []
    for name in names:
        own = extra.get(name, {"team": f"team-{name[-3:]}"})
        labels = {"kubernetes.io/metadata.name": name, **own}
        out.append(Namespace(name, dict(sorted(labels.items()))))
    return tuple(out)


def _rand_name(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_HASH_ALPHABET) for _ in range(n))


class _Allocator:
    """Hands out node placement, pod IPs, endpoint IDs and interfaces deterministically."""

    def __init__(self, rng: random.Random, nodes: tuple[Node, ...]) -> None:
        self.rng = rng
        self.nodes = nodes
        self.next_host = {n.name: 10 for n in nodes}
        self.used_ids: dict[str, set[int]] = {n.name: set() for n in nodes}
        self.next_ifindex = {n.name: 8 for n in nodes}

    def pod(self, name: str, namespace: str, workload: str, labels: dict[str, str]) -> Pod:
        rng = self.rng
        node = rng.choice(self.nodes)
        for _ in range(len(self.nodes)):
            if self.next_host[node.name] <= _LAST_HOST:
                break
            node = self.nodes[(node.index + 1) % len(self.nodes)]
        host = self.next_host[node.name]
        if host > _LAST_HOST:
            raise AssertionError("pod CIDRs exhausted: too few nodes for the pods")
        # Mostly consecutive addresses, with the gaps that pod churn leaves.
        self.next_host[node.name] = host + (2 if rng.random() < 0.15 else 1)
        eid = rng.randrange(1, 4096)
        while eid in self.used_ids[node.name]:
            eid = rng.randrange(1, 4096)
        self.used_ids[node.name].add(eid)
        ifindex = self.next_ifindex[node.name]
        self.next_ifindex[node.name] = ifindex + 2
        octets = [(rng.randrange(256) & 0xFC) | 0x02] + [rng.randrange(256) for _ in range(5)]
        mac = ":".join(f"{o:02x}" for o in octets)
        return Pod(
            name=name, namespace=namespace, workload=workload, labels=labels,
            ip=f"10.244.{node.index}.{host}", node=node, endpoint_id=eid, mac=mac,
            ifindex=ifindex, ifname=f"lxc{rng.getrandbits(48):012x}",
        )  # fmt: skip


def _build_workloads(
    config: ScenarioConfig, rng: random.Random
) -> tuple[tuple[Node, ...], tuple[Workload, ...]]:
    specs = _core_specs() + _extra_specs(config, rng)
    if len(specs) > MAX_IDENTITY_WORKLOADS:
        raise UsageError(
            f"{len(specs)} workloads is more than this generator supports "
            f"({MAX_IDENTITY_WORKLOADS}); lower --namespaces-extra or --workloads-per-namespace"
        )
    pods_total = sum(s.replicas for s in specs) + 1
    n_nodes = max(config.nodes, -(-pods_total // PODS_PER_NODE))
    nodes = tuple(
        Node(f"worker-{i + 1}", f"172.18.0.{3 + i}", f"10.244.{i}.1", i) for i in range(n_nodes)
    )
    alloc = _Allocator(rng, nodes)
    identities = rng.sample(range(256, 65535), len(specs) + 1)
    workloads: list[Workload] = []
    for spec, identity in zip(specs, identities, strict=False):
        volatile: dict[str, str] = {}
        if spec.kind == "Deployment":
            volatile["pod-template-hash"] = _rand_name(rng, 10)
        elif spec.kind == "StatefulSet":
            volatile["controller-revision-hash"] = f"{spec.name}-{_rand_name(rng, 10)}"
        pods = []
        for i in range(spec.replicas):
            if spec.kind == "StatefulSet":
                name = f"{spec.name}-{i}"
                extra = {
                    "statefulset.kubernetes.io/pod-name": name,
                    "apps.kubernetes.io/pod-index": str(i),
                }
            else:
                name = f"{spec.name}-{volatile['pod-template-hash']}-{_rand_name(rng, 5)}"
                extra = {}
            labels = dict(sorted({**spec.labels, **volatile, **extra}.items()))
            pods.append(alloc.pod(name, spec.namespace, spec.name, labels))
        workloads.append(
            Workload(
                namespace=spec.namespace, name=spec.name, kind=spec.kind,
                labels=dict(sorted(spec.labels.items())), volatile=volatile,
                service_account=spec.service_account or spec.name, ports=spec.ports,
                image=spec.image, identity=identity, pods=tuple(pods),
                probe_port=spec.probe_port, metrics_port=spec.metrics_port,
            )
        )  # fmt: skip
    if config.attacks:
        debug_labels = {"app": "debug"}
        pod = alloc.pod("debug", "develop", "", debug_labels)
        workloads.append(
            Workload(
                namespace="develop", name="debug", kind="", labels=debug_labels, volatile={},
                service_account="default", ports=(), image="nicolaka/netshoot:v0.13",
                identity=identities[-1], pods=(pod,),
            )
        )  # fmt: skip
    return nodes, tuple(workloads)


def _public_ip(rng: random.Random) -> str:
    # Public unicast space that is neither private, shared, loopback, multicast nor reserved.
    while True:
        a = rng.randrange(1, 224)
        if a not in (10, 100, 127, 169, 172, 192, 198, 203):
            return f"{a}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


# --- traffic plan ---------------------------------------------------------------------------


def build_scenario(config: ScenarioConfig) -> Scenario:
    """Build the cluster and its traffic plan; deterministic from ``config`` (and its seed).

    Raises
    ------
    UsageError
        When the configuration asks for something the generator cannot build.
    """
    unknown = set(config.attacks) - set(ATTACKS)
    if unknown:
        raise UsageError(
            f"unknown attack {', '.join(sorted(unknown))}; choose from {', '.join(ATTACKS)}"
        )
    if config.nodes < 1 or config.nodes > 200:
        raise UsageError(f"nodes must be between 1 and 200, not {config.nodes}")
    if config.extra_namespaces < 0 or config.workloads_per_namespace < 1:
        raise UsageError("extra namespaces must be >= 0 and workloads per namespace >= 1")
    if not 1 <= config.sweep_hosts <= 250:
        raise UsageError(f"sweep hosts must be between 1 and 250, not {config.sweep_hosts}")
    if config.window_seconds < 60:
        raise UsageError(f"the time window must be at least 60 s, not {config.window_seconds}")
    rng = random.Random(config.seed)
    nodes, workloads = _build_workloads(config, rng)
    namespaces = _namespaces(config)
    external = {n: tuple(_public_ip(rng) for _ in range(k)) for n, k in EXTERNAL_NAMES.items()}
    world_clients = tuple(_public_ip(rng) for _ in range(48))
    upstream_dns = ("1.1.1.1", "1.0.0.1")
    by_key = {w.key: w for w in workloads}
    legit = legit_paths(by_key, external, world_clients, upstream_dns, config)
    attacks = attack_paths(by_key, nodes, config) if config.attacks else ()
    return Scenario(
        config=config, nodes=nodes, namespaces=namespaces, workloads=workloads,
        legit_paths=legit, attack_paths=attacks, external_ips=external,
    )  # fmt: skip
