"""The synthetic cluster: namespaces, workloads, pods and the traffic plan between them.

Everything here is plain data built once by :func:`analyzer.generate.scenario.build_scenario`;
the writers (``hubble.py``, ``aggregate.py`` and the renderers) only read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "APISERVER_IP",
    "ATTACKS",
    "DEFAULT_ATTACKS",
    "DEFAULT_SCAN_PORTS",
    "ContainerPort",
    "Endpoint",
    "Namespace",
    "Pod",
    "ScenarioConfig",
    "TrafficPath",
    "Workload",
    "Node",
]

ATTACKS: tuple[str, ...] = ("scan", "sweep", "lateral", "exfil")
DEFAULT_ATTACKS: tuple[str, ...] = ("scan", "sweep", "lateral")  # the seed chapter's story
APISERVER_IP = "172.18.0.2"  # the control-plane node; pods reach the API there on 6443

# What an attacker's first `nmap --top-ports` style probe of a neighbour tries.
DEFAULT_SCAN_PORTS: tuple[int, ...] = (
    21, 22, 23, 25, 53, 80, 110, 135, 139, 143, 443, 445, 993, 995, 1433, 1521, 2375,
    3306, 3389, 5432, 5900, 6379, 8000, 8080, 8443, 9000, 9090, 9200, 10250, 27017,
)  # fmt: skip

Outcome = Literal["allowed", "denied", "reset", "unanswered"]
EndpointKind = Literal["pod", "world", "host", "kube-apiserver"]


@dataclass(frozen=True, slots=True)
class ScenarioConfig:
    """Everything that shapes a synthetic cluster and its traffic; the seed fixes the rest.

    Parameters
    ----------
    seed:
        Same seed and config give byte-identical output.
    nodes:
        Worker nodes (``worker-1`` ...); more are added when the pods do not fit.
    extra_namespaces, workloads_per_namespace:
        Generic ``extra-NNN`` namespaces with that many chained workloads each, to scale the
        number of identities (``K * M`` plus the ~12 core workloads).
    attacks:
        Which behaviours of the compromised ``develop/debug`` pod to include: any of
        ``scan``, ``sweep``, ``lateral`` (the default three) and ``exfil`` (bulk upload to an
        unknown internet address). Empty means no debug pod at all.
    dns_visibility:
        Emit Hubble L7 DNS events and ``destination_names`` (Cilium DNS proxy on).
    policy_verdicts:
        Emit Hubble policy-verdict events (type 5) for policy-enforced endpoints.
    lost_events:
        Hubble ``lost_events`` lines to sprinkle in (not counted as flows).
    noise:
        Non-policy drops (IPv6 router solicitations) that a consumer must ignore.
    window_seconds, start:
        Time window the Hubble flows are spread over (Calico formats grow the window in
        flush intervals until they hold the requested number of records).
    scan_ports, sweep_hosts:
        Ports the scan tries on each neighbour; addresses per node the sweep tries.
    """

    seed: int = 1
    nodes: int = 3
    extra_namespaces: int = 0
    workloads_per_namespace: int = 4
    attacks: frozenset[str] = frozenset(DEFAULT_ATTACKS)
    dns_visibility: bool = True
    policy_verdicts: bool = True
    lost_events: int = 0
    noise: bool = True
    window_seconds: int = 3600
    start: datetime = datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)
    scan_ports: tuple[int, ...] = DEFAULT_SCAN_PORTS
    sweep_hosts: int = 24


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    ip: str  # node InternalIP
    router_ip: str  # cilium_host address inside the node's pod CIDR: source of kubelet probes
    index: int


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class ContainerPort:
    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    namespace: str
    workload: str  # owning controller name ("" for a bare pod)
    labels: dict[str, str]  # all pod labels, volatile ones included
    ip: str
    node: Node
    endpoint_id: int  # Cilium endpoint ID (shown only by the pod's own node)
    mac: str
    ifindex: int
    ifname: str


@dataclass(frozen=True, slots=True)
class Workload:
    namespace: str
    name: str
    kind: str  # Deployment, StatefulSet, DaemonSet, or "" for a bare Pod
    labels: dict[str, str]  # stable labels (the pod template's, minus volatile ones)
    volatile: dict[str, str]  # e.g. pod-template-hash, common to every pod of the workload
    service_account: str
    ports: tuple[ContainerPort, ...]
    image: str
    identity: int  # Cilium numeric identity of the label set
    pods: tuple[Pod, ...] = ()
    probe_port: int | None = None  # kubelet probe target
    metrics_port: int | None = None  # what Prometheus scrapes

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def pod_prefix(self) -> str:
        """Calico's aggregated name: the pods' generateName followed by ``*``."""
        if not self.kind:
            return self.pods[0].name if self.pods else self.name
        if self.kind == "Deployment":
            return f"{self.name}-{self.volatile['pod-template-hash']}-*"
        return f"{self.name}-*"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of a traffic path: a workload's pods, or a peer outside the pod network."""

    kind: EndpointKind
    workload: Workload | None = None
    ips: tuple[str, ...] = ()  # world / kube-apiserver addresses (or swept addresses)
    dns_name: str | None = None  # external name the pod resolved before connecting

    def describe(self) -> dict[str, Any]:
        """The ground-truth form used in truth.json."""
        if self.workload is not None:
            return {
                "kind": "pod",
                "namespace": self.workload.namespace,
                "workload": self.workload.name,
                "labels": dict(sorted(self.workload.labels.items())),
            }
        out: dict[str, Any] = {"kind": self.kind}
        if self.ips:
            out["ips"] = list(self.ips)
        if self.dns_name:
            out["dns_name"] = self.dns_name
        return out


@dataclass(frozen=True, slots=True)
class TrafficPath:
    """A (source, destination, protocol, port) the cluster uses, with its rate and shape.

    ``category`` is ``legit`` or the attack name. ``outcome`` is what the network does with
    the connection; ``rate`` is connections per hour at the reference scale (relative weights).
    ``dst_pods`` narrows the destination to some pods (scans), ``dst_ip`` to one address.
    """

    id: str
    category: str
    src: Endpoint
    dst: Endpoint
    protocol: str
    port: int
    rate: float
    outcome: Outcome = "allowed"
    purpose: str = ""
    dns_queries: tuple[str, ...] = ()  # for DNS paths: the names asked (with trailing dot)
    enforced_by: tuple[str, ...] = field(default=())  # ns/name of policies enforcing ingress
    dst_pod: str | None = None
    dst_ip: str | None = None
    data: bool = True  # whether the connection carries data (open scan ports do not)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "category": self.category,
            "source": self.src.describe(),
            "destination": self.dst.describe(),
            "protocol": self.protocol,
            "port": self.port,
            "outcome": self.outcome,
        }
        if self.dst_pod:
            out["destination"]["pod"] = self.dst_pod
        if self.dst_ip:
            out["destination"]["ip"] = self.dst_ip
        if self.category == "legit":
            out["rate_per_hour"] = round(self.rate, 3)
        if self.enforced_by:
            out["decided_by"] = list(self.enforced_by)
        if self.purpose:
            out["purpose"] = self.purpose
        if self.dns_queries:
            out["dns_queries"] = list(self.dns_queries)
        return out
