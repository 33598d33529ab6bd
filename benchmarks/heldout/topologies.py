"""Held-out clusters: three topologies written apart from `analyzer.generate`.

Nothing here is shared with the project generator or with the calibration injector: other
namespaces and environments (``stage=production`` labels, ``environment=prd`` labels, or only
``-prod``/``-dev`` in namespace names), other label schemes (``app.kubernetes.io/*`` with
``team``, ``k8s-app``/``role``, ``service``/``owner``), other ports and databases (gRPC 50051,
MySQL, MongoDB, RabbitMQ, memcached), DaemonSet ingress, an agent-style monitor, operators that
use the API server, a legitimate bare pod that runs all window.

A topology is plain data: services (namespace, name, controller kind, labels, replicas, ports),
namespace labels, and the routine paths between them with a rate in connections per window.
`scenario.py` turns it into pods, traffic, attacks and flow rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Service", "Route", "Topology", "TOPOLOGIES"]


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    kind: str  # Deployment, StatefulSet, DaemonSet, CronJob, Pod (bare)
    labels: dict[str, str]
    replicas: int = 1
    ports: tuple[int, ...] = ()
    metrics_port: int | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Route:
    """A routine path: ``dst`` is ``ns/name``, ``world:<dns name>``, or ``apiserver``."""

    src: str
    dst: str
    port: int
    rate: float  # connections per window
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class Topology:
    name: str
    namespaces: dict[str, dict[str, str]]
    services: tuple[Service, ...]
    routes: tuple[Route, ...]
    ingress: str  # the service that receives internet traffic
    ingress_ports: tuple[int, ...]
    monitor: str  # scrapes every service's metrics port
    prod_app: str  # a production application service (target of a cross-environment probe)
    prod_app_port: int
    prod_db: str  # production database and its port (bare-pod and escalation targets)
    prod_db_port: int
    nonprod_namespace: str
    steady_nonprod: str  # a non-production workload with steady traffic (escalation case)
    victims: tuple[str, ...]  # long-lived workloads that never use the API server
    newcomer_peer: str  # a service whose client port a late Deployment calls like its peers
    newcomer_port: int
    newcomer_labels: dict[str, str]
    cronjob_db: str  # the database a CronJob's pods use
    cronjob_db_port: int
    external_names: tuple[str, ...] = field(default=())


def _t(labels: dict[str, str]) -> dict[str, str]:
    return dict(sorted(labels.items()))


def _retail() -> Topology:
    def svc(ns: str, name: str, kind: str, comp: str, replicas: int, *ports: int) -> Service:
        team = "payments" if ns.startswith("payments") else "shop"
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": comp,
                  "team": team}  # fmt: skip
        return Service(ns, name, kind, _t(labels), replicas, ports, 9464)

    services = []
    for ns, r in (("shop-prd", 3), ("shop-stg", 1)):
        services += [
            svc(ns, "web", "Deployment", "frontend", r, 3000),
            svc(ns, "catalog", "Deployment", "backend", r, 50051),
            svc(ns, "orders", "Deployment", "backend", max(1, r - 1), 9000),
            svc(ns, "mysql", "StatefulSet", "database", 1, 3306),
            svc(ns, "redis", "StatefulSet", "cache", 1, 6379),
        ]
    services += [
        svc("payments-prd", "gateway", "Deployment", "backend", 2, 8443),
        svc("payments-prd", "ledger-db", "StatefulSet", "database", 1, 5432),
        Service("edge", "ingress-nginx", "DaemonSet",
                _t({"app.kubernetes.io/name": "ingress-nginx", "team": "platform"}), 3,
                (80, 443), 10254),
        Service("edge", "external-dns", "Deployment",
                _t({"app.kubernetes.io/name": "external-dns", "team": "platform"}), 1, ()),
        Service("observability", "vmagent", "Deployment",
                _t({"app.kubernetes.io/name": "vmagent", "team": "platform"}), 1, ()),
        Service("kube-system", "coredns", "Deployment", {"k8s-app": "kube-dns"}, 2, (53,)),
    ]  # fmt: skip
    routes = [
        Route("edge/ingress-nginx", f"{ns}/web", 3000, 400) for ns in ("shop-prd", "shop-stg")
    ]
    for ns, k in (("shop-prd", 1.0), ("shop-stg", 0.25)):
        routes += [
            Route(f"{ns}/web", f"{ns}/catalog", 50051, 300 * k),
            Route(f"{ns}/web", f"{ns}/orders", 9000, 120 * k),
            Route(f"{ns}/orders", f"{ns}/mysql", 3306, 150 * k),
            Route(f"{ns}/catalog", f"{ns}/mysql", 3306, 60 * k),
            Route(f"{ns}/catalog", f"{ns}/redis", 6379, 200 * k),
        ]
    routes += [
        Route("shop-prd/orders", "payments-prd/gateway", 8443, 80),
        Route("payments-prd/gateway", "payments-prd/ledger-db", 5432, 90),
        Route("payments-prd/gateway", "world:api.psp-partner.example", 443, 40),
        Route("shop-prd/orders", "world:api.shipping.example", 443, 25),
        Route("shop-stg/orders", "world:sandbox.shipping.example", 443, 6),
        Route("edge/external-dns", "apiserver", 443, 30),
        Route("observability/vmagent", "apiserver", 443, 60),
        Route("shop-prd/catalog", "world:images.cdn.example", 443, 3),  # rare
    ]
    return Topology(
        name="retail",
        namespaces={
            "shop-prd": {"stage": "production", "team": "shop"},
            "shop-stg": {"stage": "staging", "team": "shop"},
            "payments-prd": {"stage": "production", "team": "payments"},
            "edge": {"team": "platform"},
            "observability": {"team": "platform"},
            "kube-system": {},
        },
        services=tuple(services), routes=tuple(routes), ingress="edge/ingress-nginx",
        ingress_ports=(80, 443), monitor="observability/vmagent", prod_app="shop-prd/orders",
        prod_app_port=9000, prod_db="shop-prd/mysql", prod_db_port=3306,
        nonprod_namespace="shop-stg", steady_nonprod="shop-stg/orders",
        victims=("shop-prd/catalog", "shop-prd/orders", "payments-prd/gateway"),
        newcomer_peer="shop-prd/catalog", newcomer_port=50051,
        newcomer_labels={"app.kubernetes.io/name": "recommender",
                         "app.kubernetes.io/component": "backend", "team": "shop"},
        cronjob_db="shop-prd/mysql", cronjob_db_port=3306,
    )  # fmt: skip


def _saas() -> Topology:
    def svc(ns: str, name: str, kind: str, role: str, replicas: int, *ports: int) -> Service:
        return Service(ns, name, kind, _t({"k8s-app": name, "role": role}), replicas, ports, 9102)

    services = (
        svc("core", "api", "Deployment", "api", 3, 8000),
        svc("core", "auth", "Deployment", "api", 2, 7000),
        svc("core", "mongo", "StatefulSet", "db", 3, 27017),
        svc("core", "queue", "StatefulSet", "broker", 1, 5672),
        svc("tenants", "worker", "Deployment", "worker", 4),
        svc("tenants", "scheduler", "Deployment", "worker", 1),
        svc("sandbox", "api-qa", "Deployment", "api", 1, 8000),
        svc("sandbox", "mongo-qa", "StatefulSet", "db", 1, 27017),
        Service("infra", "traefik", "Deployment", _t({"k8s-app": "traefik", "role": "edge"}), 2,
                (8000, 8443), 9100),
        Service("infra", "prometheus", "StatefulSet", _t({"k8s-app": "prometheus",
                                                          "role": "monitoring"}), 1, ()),
        Service("infra", "argo", "Deployment", _t({"k8s-app": "argo", "role": "ops"}), 1, ()),
        Service("infra", "toolbox", "Pod", _t({"k8s-app": "toolbox"}), 1, ()),  # legit bare pod
        Service("kube-system", "coredns", "Deployment", {"k8s-app": "kube-dns"}, 2, (53,)),
    )  # fmt: skip
    routes = (
        Route("infra/traefik", "core/api", 8000, 500),
        Route("infra/traefik", "sandbox/api-qa", 8000, 60),
        Route("core/api", "core/auth", 7000, 300),
        Route("core/api", "core/mongo", 27017, 400),
        Route("core/api", "core/queue", 5672, 200),
        Route("tenants/worker", "core/queue", 5672, 250),
        Route("tenants/worker", "core/mongo", 27017, 300),
        Route("tenants/scheduler", "core/queue", 5672, 40),
        Route("sandbox/api-qa", "sandbox/mongo-qa", 27017, 80),
        Route("core/auth", "world:login.idp.example", 443, 50),
        Route("tenants/worker", "world:hooks.partner.example", 443, 30),
        Route("infra/argo", "apiserver", 6443, 80),
        Route("infra/prometheus", "apiserver", 6443, 40),
        Route("infra/toolbox", "core/api", 8000, 20),  # an operator's bare pod, all window
        Route("tenants/scheduler", "core/api", 8000, 4),  # rare
    )
    return Topology(
        name="saas",
        namespaces={"core": {"environment": "prd"}, "tenants": {"environment": "prd"},
                    "sandbox": {"environment": "qa"}, "infra": {}, "kube-system": {}},
        services=services, routes=routes, ingress="infra/traefik", ingress_ports=(8000, 8443),
        monitor="infra/prometheus", prod_app="core/auth", prod_app_port=7000,
        prod_db="core/mongo", prod_db_port=27017, nonprod_namespace="sandbox",
        steady_nonprod="sandbox/api-qa", victims=("core/auth", "tenants/worker", "core/api"),
        newcomer_peer="core/queue", newcomer_port=5672,
        newcomer_labels={"k8s-app": "billing-sync", "role": "worker"},
        cronjob_db="core/mongo", cronjob_db_port=27017,
    )  # fmt: skip


def _ledger() -> Topology:
    def svc(ns: str, name: str, kind: str, replicas: int, *ports: int) -> Service:
        return Service(ns, name, kind, _t({"service": name, "owner": "ledger"}), replicas,
                       ports, 9090)  # fmt: skip

    services = (
        svc("ledger-prod", "ledger-api", "Deployment", 2, 8081),
        svc("ledger-prod", "ledger-db", "StatefulSet", 2, 5432),
        svc("ledger-prod", "cache", "Deployment", 1, 11211),
        svc("ledger-prod", "reconciler", "Deployment", 1),
        svc("ledger-dev", "ledger-api", "Deployment", 1, 8081),
        svc("ledger-dev", "ledger-db", "StatefulSet", 1, 5432),
        Service("gateway-prod", "edge-gw", "Deployment", _t({"service": "edge-gw",
                                                            "owner": "net"}), 2, (8443,)),
        Service("monitoring", "prometheus", "StatefulSet", _t({"service": "prometheus",
                                                               "owner": "sre"}), 1, ()),
        Service("monitoring", "kube-state", "Deployment", _t({"service": "kube-state",
                                                              "owner": "sre"}), 1, ()),
        Service("kube-system", "coredns", "Deployment", {"k8s-app": "kube-dns"}, 2, (53,)),
    )  # fmt: skip
    routes = (
        Route("gateway-prod/edge-gw", "ledger-prod/ledger-api", 8081, 600),
        Route("ledger-prod/ledger-api", "ledger-prod/ledger-db", 5432, 500),
        Route("ledger-prod/ledger-api", "ledger-prod/cache", 11211, 700),
        Route("ledger-prod/reconciler", "ledger-prod/ledger-db", 5432, 120),
        Route("ledger-prod/reconciler", "world:sftp.bank.example", 22, 12),
        Route("ledger-dev/ledger-api", "ledger-dev/ledger-db", 5432, 90),
        Route("monitoring/kube-state", "apiserver", 6443, 150),
        Route("monitoring/prometheus", "apiserver", 6443, 50),
        Route("ledger-prod/ledger-api", "world:fx-rates.example", 443, 8),
    )
    return Topology(
        name="ledger",
        namespaces={n: {} for n in ("ledger-prod", "ledger-dev", "gateway-prod", "monitoring",
                                    "kube-system")},
        services=services, routes=routes, ingress="gateway-prod/edge-gw", ingress_ports=(8443,),
        monitor="monitoring/prometheus", prod_app="ledger-prod/ledger-api", prod_app_port=8081,
        prod_db="ledger-prod/ledger-db", prod_db_port=5432, nonprod_namespace="ledger-dev",
        steady_nonprod="ledger-dev/ledger-api",
        victims=("ledger-prod/reconciler", "ledger-prod/ledger-api"),
        newcomer_peer="ledger-prod/ledger-db", newcomer_port=5432,
        newcomer_labels={"service": "statements", "owner": "ledger"},
        cronjob_db="ledger-prod/ledger-db", cronjob_db_port=5432,
    )  # fmt: skip


TOPOLOGIES = {"retail": _retail, "saas": _saas, "ledger": _ledger}
