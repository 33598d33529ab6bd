"""Hand-built report models, with hostile values, for the renderer's tests."""

from __future__ import annotations

import json
from pathlib import Path

from analyzer.report.model import (
    AnomalyRow,
    CoverageRow,
    DeniedRow,
    FindingRow,
    GraphEdge,
    GraphModel,
    GraphNode,
    NamespaceSection,
    PolicyView,
    ProbeRow,
    ReportModel,
    RolloutPlan,
    RuleEvidence,
    Summary,
)

HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "</script><script>alert(2)</script>",
    "' onmouseover='alert(3)",
    "<!--",
    "]]></title><svg onload=alert(4)>",
)


def hostile_model(nodes_per_ns: int = 4, namespaces: int = 3) -> ReportModel:
    """A small but complete model whose strings are all attack payloads."""
    ns_names = [f"ns{i}" for i in range(namespaces)] + [HOSTILE[0]]
    nodes: list[GraphNode] = []
    for ns in ns_names:
        for j in range(nodes_per_ns):
            label = f"app={HOSTILE[j % len(HOSTILE)]}" if j else f"app=svc{j}"
            nodes.append(
                GraphNode(
                    key=f"pod:{ns}:app=n{j}",
                    namespace=ns,
                    label=label,
                    pods=j + 1,
                    detail=(HOSTILE[1], f"pod {HOSTILE[2]}"),
                )
            )
    nodes.append(GraphNode(key="entity:world", namespace="", label="world", kind="entity"))
    nodes.append(GraphNode(key="ip:203.0.113.9", namespace="", label=HOSTILE[2], kind="ip"))
    edges: list[GraphEdge] = []
    keys = [n.key for n in nodes]
    for i, src in enumerate(keys[:-2]):
        dst = keys[(i * 5 + 3) % len(keys)]
        if dst != src:
            edges.append(GraphEdge(src, dst, ("TCP/8080", HOSTILE[1]), connections=i + 1))
    edges.append(GraphEdge(keys[0], "entity:world", ("TCP/443",), 3, outcome="denied"))
    edges.append(GraphEdge(keys[1], "ip:203.0.113.9", ("TCP/4444",), 1, anomalous=True))
    yaml_text = f"kind: NetworkPolicy\nmetadata:\n  name: {HOSTILE[0]}\n"
    section = NamespaceSection(
        namespace=HOSTILE[0],
        policies=(
            PolicyView(
                name=HOSTILE[1],
                namespace=HOSTILE[0],
                yaml=yaml_text,
                rules=(
                    RuleEvidence("ingress[0]", f"from {HOSTILE[3]}", (HOSTILE[4], HOSTILE[5]), 7),
                ),
                notes=(HOSTILE[6],),
            ),
        ),
        diff=f"--- existing\n+++ recommended\n@@ -1 +1 @@\n-{HOSTILE[0]}\n+{HOSTILE[1]}\n",
        notes=(HOSTILE[2],),
    )
    plain = NamespaceSection(
        namespace="ns0",
        policies=(PolicyView("default-deny", "ns0", "kind: NetworkPolicy\n"),),
    )
    return ReportModel(
        title=f"Report {HOSTILE[0]}",
        generated_at="2026-01-01T00:00:00Z",
        summary=Summary(
            window_start="2026-01-01T00:00:00Z",
            window_end="2026-01-01T01:00:00Z",
            flows=12345,
            connections=67,
            namespaces=tuple(sorted(ns_names)),
            identities=len(nodes),
            coverage=(CoverageRow(HOSTILE[0], 3, 1, 0, 5, 2),),
            findings_by_severity=(("high", 1), ("low", 1)),
            lost_events=2,
            masked_fields=1,
            undecidable_replies=4,
            warnings=(HOSTILE[1],),
        ),
        graph=GraphModel(tuple(nodes), tuple(edges)),
        sections=(plain, section),
        findings=(
            FindingRow("low", "unused-rule", HOSTILE[5], policy="ns0/x"),
            FindingRow(
                "high",
                "over-broad",
                HOSTILE[0],
                namespace=HOSTILE[1],
                detail=(HOSTILE[2],),
                fix=HOSTILE[3],
            ),
        ),
        anomalies=(AnomalyRow(HOSTILE[0], HOSTILE[1], "TCP/4444", 3, 0.91, (HOSTILE[2],)),),
        suspects=(f"{HOSTILE[3]} looks compromised {HOSTILE[6]}",),
        denied=(DeniedRow(HOSTILE[2], HOSTILE[3], "TCP/5432", 9, "2026-01-01T00:30:00Z"),),
        plan=RolloutPlan(
            rollout=(HOSTILE[0],),
            rollback=(HOSTILE[1],),
            probes=(
                ProbeRow(HOSTILE[2], f"kubectl exec -n x deploy/y -- curl {HOSTILE[1]}", "denied"),
            ),
        ),
        policies_source=HOSTILE[6],
        bundle_path="reports/bundle",
    )


# Values in a generated capture replaced by attack payloads (JSON-escaped in the flow file):
# a label value and pod name, a namespace-free workload, and DNS names.
HOSTILE_SWAPS = {
    "frontend-primary": "<script>alert(1)</script>",
    "api.stripe.com": '"><img src=x onerror=alert(1)>.evil',
    "api.sendgrid.com": "javascript:alert(1)",
}


# The traefik namespace of the capture is renamed to this in the flows (the namespace field and
# the namespace labels Cilium copies onto pods).
HOSTILE_NAMESPACE = '"><svg onload=alert(5)>'


def hostile_capture(out_dir: Path, flows: int = 12_000, seed: int = 7) -> dict[str, Path]:
    """A generated Hubble capture (flows, inventory, existing policies) with hostile values."""
    from analyzer.generate import ScenarioConfig, build_scenario, generate

    scenario = build_scenario(ScenarioConfig(seed=seed, lost_events=2))
    generate(scenario, out_dir, fmt="hubble", flows=flows)
    names = ("flows.jsonl", "inventory.json", "existing-policies.yaml")
    for name in names:
        path = out_dir / name
        text = path.read_text("utf-8")
        for old, new in HOSTILE_SWAPS.items():
            escaped = json.dumps(new)[1:-1] if name.endswith(("jsonl", "json")) else new
            text = text.replace(old, escaped)
        if name == "flows.jsonl":
            ns = json.dumps(HOSTILE_NAMESPACE)
            text = text.replace('"namespace":"traefik"', f'"namespace":{ns}')
            for label in ("io.kubernetes.pod.namespace=", "kubernetes.io/metadata.name="):
                text = text.replace(f"{label}traefik", f"{label}{ns[1:-1]}")
        path.write_text(text, "utf-8")
    return {
        "flows": out_dir / names[0],
        "inventory": out_dir / names[1],
        "policies": out_dir / names[2],
    }
