"""``analyzer recommend``: least-privilege policies from the flows in the store."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from analyzer.cli._common import StoreOption, handle_errors, warn


class Flavor(StrEnum):
    kubernetes = "kubernetes"
    cilium = "cilium"
    calico = "calico"


class RecommendFormat(StrEnum):
    yaml = "yaml"
    json = "json"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("recommend")(recommend_command)


@handle_errors
def recommend_command(
    store: StoreOption = Path(".analyzer-store"),
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Namespace to write policies for (repeatable). "
                     "Default: every observed namespace except kube-system & co."),
    ] = None,
    flavor: Annotated[
        Flavor, typer.Option("--flavor", help="kubernetes (NetworkPolicy), cilium "
                             "(CiliumNetworkPolicy) or calico (staged policies).")
    ] = Flavor.kubernetes,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write a bundle (one file per policy, kustomization.yaml, "
                     "ROLLOUT.md, rollback.sh, probes.sh) instead of YAML on stdout."),
    ] = None,
    policies: Annotated[
        list[Path] | None,
        typer.Option("--policies", help="The namespaces' existing policies (file or "
                     "directory), replayed together with the recommendation."),
    ] = None,
    inventory: Annotated[
        Path | None,
        typer.Option("--inventory", help="kubectl get pods,namespaces -A -o json: name the "
                     "pods that had no observed traffic (the default-deny isolates them)."),
    ] = None,
    include_anomalies: Annotated[
        bool, typer.Option("--include-anomalies", help="Keep edges the anomaly detector flags.")
    ] = False,
    ipblock_prefix: Annotated[
        int | None,
        typer.Option("--ipblock-prefix", help="Widen external IPv4 peers from /32 to /N."),
    ] = None,
    output: Annotated[
        RecommendFormat, typer.Option("--output", "-o", help="yaml (for kubectl apply -f -) "
                                      "or json (manifests, notes, probes, verification).")
    ] = RecommendFormat.yaml,
) -> None:
    """Recommend least-privilege policies from observed traffic, verified before writing.

    Per namespace: default-deny, the DNS guardrail, and one allow policy per workload group and
    direction listing exactly the observed peers and ports. Fails (exit 1) if the result would
    deny an observed legitimate connection.
    """
    from analyzer.policy.bundle import write_bundle
    from analyzer.policy.render import to_yaml
    from analyzer.recommend import RecommendOptions, load_flows, recommend

    rec = recommend(
        load_flows(store),
        namespaces=namespace or None,
        flavor=flavor.value,
        options=RecommendOptions(
            include_anomalies=include_anomalies,
            ipblock_prefix=ipblock_prefix,
            policies=tuple(str(p) for p in policies or ()),
            inventory=str(inventory) if inventory else None,
        ),
    )
    for note in rec.notes:
        where = f"{note.namespace}: " if note.namespace else ""
        warn(f"{note.level}: {where}{_printable(note.message)}")
    for edge in rec.denied[:10]:
        warn(_printable(
            f"denied (stays denied): {edge.get('src_group')} -> {edge.get('dst_group')} "
            f"{edge.get('protocol')}/{edge.get('dst_port')} x{edge.get('connections')}"
        ))
    for edge in rec.anomalies[:10]:
        warn(_printable(
            f"anomalous: {edge.get('src_key')} -> {edge.get('dst_key')} "
            f"{edge.get('protocol')}/{edge.get('dst_port')}"
        ))
    if rec.verification is not None:
        v = rec.verification
        warn(f"verified: {v.allowed}/{v.checked} observed connection edges allowed "
             f"({v.method}); {v.excluded} left to the CNI or refused (see notes)")
    if out is not None:
        written = write_bundle(rec, out)
        typer.echo(f"wrote {len(rec.manifests)} policies and {len(written) - len(rec.manifests)} "
                   f"support files to {out}")
        return
    if output is RecommendFormat.json:
        typer.echo(json.dumps(rec.to_json(), indent=2, default=str))
        return
    for probe in rec.probes:
        warn(f"probe (expect {probe.expect}): {probe.command}")
    typer.echo(to_yaml(rec.manifests), nl=False)


def _printable(text: str) -> str:
    # Notes quote values from flows; keep a hostile value from writing control characters.
    return "".join(c if c.isprintable() else "?" for c in text)
