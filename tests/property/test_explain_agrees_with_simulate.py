"""explain and simulate give one verdict for every pair of a generated cluster, however named.

A seeded scenario (``analyzer.generate``) is written as Hubble flows and ingested. Its endpoints
(every pod, the nodes, a few internet addresses) are paired on every port the policies name
(named ports resolved on the scenario's containers) plus one port no policy names. For each
probe ``simulate`` replays a request row built from the store's own rows for both ends, and
``explain`` is asked with each naming form of both ends: ``namespace/pod``, ``namespace:labels``
(a label that tells the workload apart), and the IP. Every answer must be the same; with and
without the inventory. The policies are the scenario's own plus ones that select namespaces by
their labels (``team``, ``env``) and ports by name, which only the flows' namespace labels and
the inventory's container ports can decide.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analyzer.generate import ScenarioConfig, build_scenario, generate
from analyzer.identity.seen import SeenTable, seen_endpoints
from analyzer.k8s.inventory import Inventory, load_inventory
from analyzer.policy.compile import CompiledPolicies, compile_policies
from analyzer.policy.evaluate import evaluate
from analyzer.policy.load import load_policies
from analyzer.policy.peers import resolve_peer
from analyzer.policy.simulate import simulate
from analyzer.schema import conform
from analyzer.store import FlowStore, ingest

EXTRA_POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web-teams, namespace: production}
spec:
  podSelector: {matchLabels: {app: postgres}}
  policyTypes: [Ingress]
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: web}}}]
    ports: [{port: tcp-postgresql}]
  - from:
    - namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [platform]}]}
      podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}
    ports: [{port: http-metrics}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dev-egress, namespace: develop}
spec:
  podSelector: {matchExpressions: [{key: app, operator: Exists}]}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {env: prod}}
      podSelector: {matchLabels: {app: api}}
    ports: [{port: http}]
  - to: [{namespaceSelector: {matchExpressions: [{key: env, operator: DoesNotExist}]}}]
    ports: [{protocol: UDP, port: 53}, {port: 9090}]
  - to: [{podSelector: {}}]
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
    ports: [{port: 443}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: traefik-from-platform, namespace: traefik}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: platform}}}]
    ports: [{port: metrics}]
  - from: [{ipBlock: {cidr: 0.0.0.0/0}}]
    ports: [{port: web}, {port: websecure}]
"""

SIDE_COLUMNS = ("ip", "namespace", "pod", "workload", "labels", "namespace_labels", "entity")


@dataclass(frozen=True)
class Endpoint:
    key: str
    ip: str | None
    namespace: str | None
    pod: str | None
    row: dict[str, Any]  # the side's columns as the store holds them


@dataclass(frozen=True)
class World:
    store: Path
    flows: pl.LazyFrame
    inventory: Inventory
    compiled: CompiledPolicies
    endpoints: tuple[Endpoint, ...]
    ports: tuple[tuple[str, int], ...]
    label_forms: dict[str, str]  # pod key -> "namespace:key=value"


@pytest.fixture(scope="module", params=[5, 23])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> World:
    seed = request.param
    out = tmp_path_factory.mktemp(f"cluster-{seed}")
    scenario = build_scenario(
        ScenarioConfig(seed=seed, extra_namespaces=1, workloads_per_namespace=2)
    )
    result = generate(scenario, out, flows=12000)
    store = out / "store"
    ingest(store, [str(result.files[0])])
    extra = out / "extra.yaml"
    extra.write_text(EXTRA_POLICIES)
    loaded = load_policies([out / "existing-policies.yaml", extra])
    assert not loaded.problems
    compiled = compile_policies(loaded.policies)
    flows = FlowStore.open(store).scan()
    return World(
        store=store,
        flows=flows,
        inventory=load_inventory(out / "inventory.json"),
        compiled=compiled,
        endpoints=_endpoints(flows, scenario),
        ports=_policy_ports(loaded.policies, scenario),
        label_forms=_label_forms(scenario),
    )


def _endpoints(flows: pl.LazyFrame, scenario: Any) -> tuple[Endpoint, ...]:
    """Every pod of the store, the nodes and three internet addresses, with a row of each."""
    frame = flows.collect()
    found: dict[str, Endpoint] = {}
    externals: list[str] = []
    for side in ("src", "dst"):
        part = frame.select([pl.col(f"{side}_{c}").alias(c) for c in SIDE_COLUMNS])
        for row in part.unique(maintain_order=True).iter_rows(named=True):
            key = f"{row['namespace']}/{row['pod']}" if row["pod"] else row["ip"]
            if key is None or key in found:
                continue
            if row["entity"] == "world":
                if len(externals) >= 3:
                    continue
                externals.append(key)
            found[key] = Endpoint(key, row["ip"], row["namespace"], row["pod"], row)
    pods = {f"{p.namespace}/{p.name}" for p in scenario.pods}
    assert pods <= set(found), "every pod of the scenario appears in its flows"
    return tuple(found[k] for k in sorted(found))


def _policy_ports(policies: Any, scenario: Any) -> tuple[tuple[str, int], ...]:
    named: dict[str, set[tuple[str, int]]] = {}
    for workload in scenario.workloads:
        for port in workload.ports:
            named.setdefault(port.name, set()).add((port.protocol, port.port))
    out: set[tuple[str, int]] = {("TCP", 1)}  # a port no policy names
    for policy in policies:
        for rule in (*(policy.ingress or ()), *(policy.egress or ())):
            for port in rule.ports or ():
                proto = port.protocol or "TCP"
                if isinstance(port.port, int):
                    out.add((proto, port.port))
                elif isinstance(port.port, str):
                    out.update(p for p in named.get(port.port, ()) if p[0] == proto)
    return tuple(sorted(out))


def _label_forms(scenario: Any) -> dict[str, str]:
    """``namespace:key=value`` with one label that only this workload's pods carry."""
    forms = {}
    for workload in scenario.workloads:
        others = [w for w in scenario.workloads if w.namespace == workload.namespace]
        for key, value in sorted(workload.labels.items()):
            owners = [w for w in others if w.labels.get(key) == value]
            if owners == [workload]:
                for pod in workload.pods:
                    forms[f"{pod.namespace}/{pod.name}"] = f"{workload.namespace}:{key}={value}"
                break
    return forms


def _simulated(world: World, inventory: Inventory | None) -> dict[tuple[str, str, str, int], bool]:
    rows = []
    pairs = itertools.product(world.endpoints, world.endpoints, world.ports)
    for i, (src, dst, (proto, port)) in enumerate(pairs):
        if src.key == dst.key:
            continue
        row: dict[str, Any] = {f"src_{c}": src.row[c] for c in SIDE_COLUMNS}
        row |= {f"dst_{c}": dst.row[c] for c in SIDE_COLUMNS}
        row |= {
            "time": 1_700_000_000_000_000 + i,
            "source_format": "hubble",
            "verdict": "forwarded",
            "is_reply": False,
            "protocol": proto,
            "src_port": 30000 + i % 30000,
            "dst_port": port,
            "tcp_flags": "SYN" if proto == "TCP" else None,
            "flow_count": 1,
        }
        rows.append(row)
    flows = conform(
        pl.DataFrame(rows, infer_schema_length=None).with_columns(
            pl.from_epoch("time", time_unit="us").dt.replace_time_zone("UTC")
        )
    )
    frame = simulate(world.compiled, flows, inventory).frame
    return {
        (r["src_key"], r["dst_key"], r["protocol"], r["dst_port"]): r["allowed"]
        for r in frame.select("src_key", "dst_key", "protocol", "dst_port", "allowed").iter_rows(
            named=True
        )
    }


@pytest.mark.parametrize("with_inventory", [False, True], ids=["store", "store+inventory"])
def test_every_naming_form_agrees_with_simulate(world: World, with_inventory: bool) -> None:
    inventory = world.inventory if with_inventory else None
    simulated = _simulated(world, inventory)
    forms: dict[str, list[tuple[str, Any]]] = {}
    table = SeenTable(seen_endpoints(world.flows))
    for ep in world.endpoints:
        names = [ep.key] if ep.pod else []
        if ep.key in world.label_forms:
            names.append(world.label_forms[ep.key])
        if ep.ip:
            names.append(ep.ip)
        forms[ep.key] = [(n, resolve_peer(n, inventory, world.flows)) for n in names]
        # the endpoint table the rollup carries resolves every form the same way
        assert [resolve_peer(n, inventory, table) for n in names] == [p for _, p in forms[ep.key]]
    disagreements = []
    checked = 0
    for src, dst in itertools.product(world.endpoints, world.endpoints):
        if src.key == dst.key:
            continue
        for proto, port in world.ports:
            expected = simulated[(src.key, dst.key, proto, port)]
            for (s_name, s_peer), (d_name, d_peer) in itertools.product(
                forms[src.key], forms[dst.key]
            ):
                checked += 1
                got = evaluate(world.compiled, s_peer, d_peer, port, proto).allowed
                if got != expected:
                    disagreements.append(
                        f"{s_name} -> {d_name} {proto}/{port}: simulate "
                        f"{'allows' if expected else 'denies'}, explain not"
                    )
    assert not disagreements, f"{len(disagreements)} of {checked}: " + "; ".join(disagreements[:10])
    # the probes decide things: both verdicts occur, through namespace labels and named ports
    assert 0 < sum(simulated.values()) < len(simulated)


ISSUE_POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: production}
spec:
  podSelector: {matchLabels: {app: postgres}}
  policyTypes: [Ingress]
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: web}}}]
    ports: [{protocol: TCP, port: 5432}]
"""


def test_the_readme_label_form_on_the_command_line(world: World, tmp_path: Path) -> None:
    """Issue 13 case 1: the label form used to lose the namespace's labels (DENIED)."""
    from typer.testing import CliRunner

    from analyzer.cli import app

    policy = tmp_path / "p.yaml"
    policy.write_text(ISSUE_POLICY)
    args = ["explain", "--policies", str(policy), "--store", str(world.store), "--port", "5432"]
    answers = []
    for source in ("develop:app=debug", "develop/debug"):
        result = CliRunner().invoke(
            app, [*args, "--from", source, "--to", "production:app=postgres"]
        )
        assert result.exit_code == 0, result.output
        answers.append(result.stdout.split(":", 1)[0])
        assert (
            "namespace labels env=dev,kubernetes.io/metadata.name=develop,team=web from the "
            "flow store" in result.stderr
        )
    assert answers == ["ALLOWED", "ALLOWED"]
