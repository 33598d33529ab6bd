"""``analyzer drift``: denied connections since a time and edges new since the policies were
generated, judged by the policy engine; exit 3 with --fail-on; byte-identical JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from analyzer.drift import run_drift
from analyzer.store import ingest

CMD = [sys.executable, "-c", "from analyzer.cli import app; app()"]
PODS = {
    "shop/web": ("10.0.0.10", {"app": "web"}),
    "shop/api": ("10.0.0.11", {"app": "api"}),
    "shop/db": ("10.0.0.12", {"app": "db"}),
    "dev/debug": ("10.0.1.5", {"app": "debug"}),
    "kube-system/coredns": ("10.0.2.2", {"k8s-app": "kube-dns"}),
}
POLICIES = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
  namespace: shop
  annotations:
    analyzer.io/observed-window: 2026-11-01T08:00:00Z/2026-11-01T12:00:00Z
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-api-ingress
  namespace: shop
  annotations:
    analyzer.io/observed-window: 2026-11-01T10:00:00Z/2026-11-01T11:00:00Z
    analyzer.io/connections: "2"
spec:
  podSelector: {matchLabels: {app: api}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{protocol: TCP, port: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-web-egress
  namespace: shop
  annotations:
    analyzer.io/observed-window: 2026-11-01T10:00:00Z/2026-11-01T11:00:00Z
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: api}}}]
    ports: [{protocol: TCP, port: 8080}]
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{protocol: UDP, port: 53}]
"""


def _endpoint(ref: str) -> dict[str, Any]:
    ns, name = ref.split("/")
    labels = [f"k8s:{k}={v}" for k, v in PODS[ref][1].items()]
    labels += [
        f"k8s:io.kubernetes.pod.namespace={ns}",
        f"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={ns}",
    ]
    return {"identity": 1000 + len(ref), "namespace": ns, "pod_name": name,
            "labels": sorted(labels)}


def _line(t: str, src: str, dst: str, proto: str, port: int, i: int, dropped: bool = False) -> str:
    l4: dict[str, Any] = {"source_port": 40000 + i, "destination_port": port}
    if proto == "TCP":
        l4["flags"] = {"SYN": True}
    flow: dict[str, Any] = {
        "time": t,
        "verdict": "DROPPED" if dropped else "FORWARDED",
        "IP": {"source": PODS[src][0], "destination": PODS[dst][0], "ipVersion": "IPv4"},
        "l4": {proto: l4},
        "source": _endpoint(src),
        "destination": _endpoint(dst),
        "Type": "L3_L4",
        "node_name": "node-1",
        "event_type": {"type": 1 if dropped else 4},
        "traffic_direction": "EGRESS",
        "is_reply": False,
    }
    if dropped:
        flow["drop_reason_desc"] = "POLICY_DENIED"
        del flow["is_reply"]
    return json.dumps({"flow": flow, "node_name": "node-1", "time": t})


@pytest.fixture
def cluster(tmp_path: Path) -> tuple[Path, Path]:
    lines = [
        # before the policies were generated (12:00): web -> api, web -> dns
        _line("2026-11-01T10:00:00Z", "shop/web", "shop/api", "TCP", 8080, 1),
        _line("2026-11-01T10:30:00Z", "shop/web", "shop/api", "TCP", 8080, 2),
        _line("2026-11-01T10:40:00Z", "shop/web", "kube-system/coredns", "UDP", 53, 3),
        # after: the same edge again, plus what changed
        _line("2026-11-01T13:00:00Z", "shop/web", "shop/api", "TCP", 8080, 4),
        _line("2026-11-01T13:01:00Z", "shop/web", "shop/db", "TCP", 5432, 5),
        _line("2026-11-01T13:02:00Z", "shop/web", "shop/db", "TCP", 5432, 6),
        _line("2026-11-01T13:03:00Z", "dev/debug", "shop/api", "TCP", 8080, 7, dropped=True),
        _line("2026-11-01T13:04:00Z", "shop/api", "kube-system/coredns", "UDP", 53, 8),
        _line("2026-11-01T13:05:00Z", "dev/debug", "kube-system/coredns", "UDP", 53, 9),
    ]
    flows = tmp_path / "flows.jsonl"
    flows.write_text("\n".join(lines) + "\n")
    store = tmp_path / "store"
    ingest(store, [str(flows)])
    policies = tmp_path / "applied.yaml"
    policies.write_text(POLICIES)
    return store, policies


SINCE = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)


def test_categories(cluster: tuple[Path, Path]) -> None:
    store, policies = cluster
    result = run_drift([policies], store=store, since=SINCE)
    assert result.baseline == datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert result.baseline_from == "annotations" and result.generated_policies == 3
    got = {(f.category, f.src, f.dst, f.protocol, f.port) for f in result.findings}
    assert got == {
        ("would-break", "shop/web", "shop/db", "TCP", 5432),
        # api's egress is isolated by the default-deny: DNS from api would break too
        ("would-break", "shop/api", "kube-system/coredns", "UDP", 53),
        ("blocked", "dev/debug", "shop/api", "TCP", 8080),
        # debug is in a namespace without policies: allowed, and never seen before
        ("new-edge", "dev/debug", "kube-system/coredns", "UDP", 53),
    }
    web_db = next(f for f in result.findings if f.dst == "shop/db")
    assert web_db.severity == "high" and web_db.connections == 2
    assert "no egress rule admits" in web_db.reason
    assert result.findings[0].category == "would-break"
    assert result.counts() == {"would-break": 2, "blocked": 1, "new-edge": 1}


def test_edges_seen_before_the_baseline_are_not_new(cluster: tuple[Path, Path]) -> None:
    store, policies = cluster
    # a baseline before any flow: every allowed edge seen since is new (with a warning)
    early = run_drift([policies], store=store, since=SINCE,
                      baseline=datetime(2026, 11, 1, 9, tzinfo=UTC))
    new = {(f.src, f.dst) for f in early.findings if f.category == "new-edge"}
    assert ("shop/web", "shop/api") in new
    assert any("no flows from before" in w for w in early.warnings)
    # the default baseline (12:00) knows web -> api: not new
    result = run_drift([policies], store=store, since=SINCE)
    assert ("shop/web", "shop/api") not in {(f.src, f.dst) for f in result.findings}


def test_namespace_filter_and_nothing_since(cluster: tuple[Path, Path]) -> None:
    store, policies = cluster
    only_dev = run_drift([policies], store=store, since=SINCE, namespaces=["dev"])
    assert {f.src for f in only_dev.findings} == {"dev/debug"}
    later = run_drift([policies], store=store, since=datetime(2027, 1, 1, tzinfo=UTC))
    assert later.findings == () and any("no connection seen since" in w for w in later.warnings)


def test_cli_fail_on_and_deterministic_json(cluster: tuple[Path, Path], tmp_path: Path) -> None:
    store, policies = cluster
    args = [*CMD, "drift", "--policies", str(policies), "--store", str(store),
            "--since", "2026-11-01T12:30:00Z"]
    table = subprocess.run(args, capture_output=True, timeout=120)
    assert table.returncode == 0, table.stderr.decode()
    assert b"Would break" in table.stdout and b"shop/web -> shop/db TCP/5432" in table.stdout
    runs = [subprocess.run([*args, "-o", "json"], capture_output=True, timeout=120)
            for _ in range(2)]
    assert runs[0].stdout == runs[1].stdout
    doc = json.loads(runs[0].stdout)
    assert doc["counts"] == {"would-break": 2, "blocked": 1, "new-edge": 1}
    gated = subprocess.run([*args, "--fail-on", "high"], capture_output=True, timeout=120)
    assert gated.returncode == 3
    # the dev namespace has a blocked (medium) and a new edge (low): nothing high, exit 0
    quiet = subprocess.run([*args, "-n", "dev", "--fail-on", "high"], capture_output=True,
                           timeout=120)
    assert quiet.returncode == 0, quiet.stdout.decode()
    bad = subprocess.run([*args, "--since", "yesterday"], capture_output=True, timeout=60)
    assert bad.returncode == 2 and b"neither a duration" in bad.stderr


def test_the_rollup_and_the_raw_flows_give_the_same_drift(
    cluster: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from analyzer.drift import render_json

    store, policies = cluster
    since = datetime(2026, 11, 1, 12, 30, 30, tzinfo=UTC)  # inside a minute bucket
    fast = run_drift([policies], store=store, since=since)
    monkeypatch.setenv("ANALYZER_NO_ROLLUP", "1")
    raw = run_drift([policies], store=store, since=since)
    assert render_json(fast) == render_json(raw)
    # rounded out to the start of its bucket, and said so
    assert any("rounded out to whole buckets (minutes): 2026-11-01T12:30:00Z onwards" in w
               for w in fast.warnings)
    whole = run_drift([policies], store=store, since=SINCE)
    assert fast.findings == whole.findings


def test_the_baseline_rounds_down_never_hiding_a_new_edge(tmp_path: Path) -> None:
    lines = [
        _line("2026-11-01T10:00:00Z", "shop/web", "shop/api", "TCP", 8080, 1),
        # first seen 10 s after the baseline, in the baseline's own minute
        _line("2026-11-01T12:00:40Z", "dev/debug", "kube-system/coredns", "UDP", 53, 2),
    ]
    flows = tmp_path / "flows.jsonl"
    flows.write_text("\n".join(lines) + "\n")
    store = tmp_path / "store"
    ingest(store, [str(flows)])
    policies = tmp_path / "applied.yaml"
    policies.write_text(POLICIES)
    result = run_drift([policies], store=store, since=datetime(2026, 11, 1, 12, tzinfo=UTC),
                       baseline=datetime(2026, 11, 1, 12, 0, 30, tzinfo=UTC))
    new = {(f.src, f.dst) for f in result.findings if f.category == "new-edge"}
    assert ("dev/debug", "kube-system/coredns") in new
