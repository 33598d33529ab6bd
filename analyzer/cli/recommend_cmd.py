"""``analyzer recommend``: least-privilege policies from the flows in the store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.cli._common import (
    InventoryOption,
    SinceOption,
    StoreOption,
    UntilOption,
    choice_option,
    emit_json,
    handle_errors,
    output_option,
    warn,
)
from analyzer.present.text import format_span, printable

if TYPE_CHECKING:
    from analyzer.recommend import Recommendation


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
    since: SinceOption = None,
    until: UntilOption = None,
    flavor: str = choice_option(
        "kubernetes", "kubernetes", "cilium", "calico", decls=("--flavor",), metavar="FLAVOR",
        help="kubernetes (NetworkPolicy), cilium (CiliumNetworkPolicy) or calico (staged "
        "policies).",
    ),
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
    inventory: InventoryOption = None,
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
    output: str = output_option(
        "yaml", "yaml", "json",
        help="yaml (for kubectl apply -f -) or json (manifests, notes, probes, verification).",
    ),
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
    from analyzer.analysis import (
        Analysis,
        Scope,
        load_inventory_file,
        load_policy_files,
        open_store,
    )
    from analyzer.recommend import RecommendOptions
    from analyzer.recommend.bundle import write_bundle
    from analyzer.recommend.render import to_yaml

    analysis = Analysis(
        open_store(store),
        Scope.parse(namespace, since, until),
        policies=load_policy_files(policies) if policies else None,
        inventory=load_inventory_file(inventory),
    )
    rec = analysis.recommendation(
        flavor,
        RecommendOptions(
            include_anomalies=include_anomalies,
            ipblock_prefix=ipblock_prefix,
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
    if output == "json":
        emit_json(rec.to_json())
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
            f"anomalous: {edge.get('src_name')} -> {edge.get('dst_name')} "
            f"{edge.get('protocol')}/{edge.get('dst_port')}"
        ))
    for probe in rec.probes:
        warn(f"probe (expect {probe.expect}): {probe.command}")


def _summary(rec: Recommendation) -> str:
    """The one line on stderr: what was written, from how long a watch, how it verified."""
    first, last = rec.window
    span = f"{format_span(last - first)} of flows" if first and last else "flows (window unknown)"
    text = (f"{len(rec.manifests)} policies for {', '.join(rec.namespaces)} from {span}")
    if rec.verification is None:
        return f"{text}; verification skipped"
    return f"{text}; {rec.verification.summary()}"


# Notes quote values from flows; keep a hostile value from writing control characters.
_printable = printable
