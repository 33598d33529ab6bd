"""``analyzer recommend``: least-privilege policies from the flows in the store."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.cli._common import StoreOption, handle_errors, warn

if TYPE_CHECKING:
    from analyzer.recommend import Recommendation


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
        typer.Option("--namespace", "-n", metavar="NAMESPACE",
                     help="Namespace to write policies for (repeatable). Default: every "
                     "observed namespace except the system ones (kube-system, the CNI's)."),
    ] = None,
    flavor: Annotated[
        Flavor, typer.Option("--flavor", metavar="FLAVOR", help="kubernetes (NetworkPolicy), "
                             "cilium (CiliumNetworkPolicy) or calico (staged policies).")
    ] = Flavor.kubernetes,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="Write a bundle (one file per policy, "
                     "kustomization.yaml, ROLLOUT.md, rollback.sh, probes.sh) instead of YAML "
                     "on stdout."),
    ] = None,
    policies: Annotated[
        list[Path] | None,
        typer.Option("--policies", metavar="PATH", help="The namespaces' existing policies "
                     "(file or directory), replayed together with the recommendation."),
    ] = None,
    inventory: Annotated[
        Path | None,
        typer.Option("--inventory", metavar="FILE", help="kubectl get pods,namespaces -A -o "
                     "json: labels for pods the flows show without any, and the pods that had "
                     "no observed traffic (the default-deny isolates them)."),
    ] = None,
    include_anomalies: Annotated[
        bool, typer.Option("--include-anomalies", help="Keep edges the anomaly detector flags.")
    ] = False,
    allow_breaking: Annotated[
        bool, typer.Option("--allow-breaking", help="Write the policies even though they would "
                           "deny observed legitimate requests (listed on stderr); without it "
                           "that is an error (exit 1).")
    ] = False,
    include_system: Annotated[
        bool, typer.Option("--include-system-namespaces", help="Allow policies for system "
                           "namespaces (kube-system, kube-public, kube-node-lease, cilium, "
                           "calico-system, tigera-operator, ...); a default-deny there can take "
                           "the cluster down.")
    ] = False,
    ipblock_prefix: Annotated[
        int | None,
        typer.Option("--ipblock-prefix", metavar="N",
                     help="Widen external IPv4 peers from /32 to /N."),
    ] = None,
    output: Annotated[
        RecommendFormat, typer.Option("--output", "-o", metavar="FORMAT", help="yaml (for "
                                      "kubectl apply -f -) or json (manifests, notes, probes, "
                                      "verification).")
    ] = RecommendFormat.yaml,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also print every note, the denied and "
                           "anomalous edges and the probe commands on stderr.")
    ] = False,
) -> None:
    """Recommend least-privilege policies from observed traffic, verified before writing.

    Per namespace: default-deny, the DNS guardrail, and one allow policy per workload group and
    direction listing exactly the observed peers and ports. Fails (exit 1) if the result would
    deny an observed legitimate request, unless --allow-breaking. Stderr carries the warnings
    and one summary line (-v for the rest).
    """
    from analyzer.recommend.bundle import write_bundle
    from analyzer.recommend.engine import RecommendOptions, load_flows, recommend
    from analyzer.recommend.render import to_yaml

    rec = recommend(
        load_flows(store),
        namespaces=namespace or None,
        flavor=flavor.value,
        options=RecommendOptions(
            include_anomalies=include_anomalies,
            ipblock_prefix=ipblock_prefix,
            policies=tuple(str(p) for p in policies or ()),
            inventory=str(inventory) if inventory else None,
            allow_breaking=allow_breaking,
            include_system=include_system,
        ),
    )
    for note in rec.notes:
        if note.level == "warning" or verbose:
            where = f"{note.namespace}: " if note.namespace else ""
            warn(f"{note.level}: {where}{_printable(note.message)}")
    if verbose:
        _details(rec)
    if rec.verification is not None:
        for broken in rec.verification.breaking[:10]:
            warn(f"would break: {_printable(broken.describe())}")
    warn(_printable(_summary(rec)))
    if out is not None:
        written = write_bundle(rec, out)
        typer.echo(f"wrote {len(rec.manifests)} policies and {len(written) - len(rec.manifests)} "
                   f"support files to {out}")
        return
    if output is RecommendFormat.json:
        typer.echo(json.dumps(rec.to_json(), indent=2, default=str))
        return
    typer.echo(to_yaml(rec.manifests), nl=False)


def _details(rec: Recommendation) -> None:
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
    for probe in rec.probes:
        warn(f"probe (expect {probe.expect}): {probe.command}")


def _summary(rec: Recommendation) -> str:
    """The one line on stderr: what was written, from how long a watch, how it verified."""
    from analyzer.recommend.model import format_span

    first, last = rec.window
    span = f"{format_span(last - first)} of flows" if first and last else "flows (window unknown)"
    text = (f"{len(rec.manifests)} policies for {', '.join(rec.namespaces)} from {span}")
    if rec.verification is None:
        return f"{text}; verification skipped"
    return f"{text}; {rec.verification.summary()}"


def _printable(text: str) -> str:
    # Notes quote values from flows; keep a hostile value from writing control characters.
    return "".join(c if c.isprintable() else "?" for c in text)
