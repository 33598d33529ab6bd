"""``analyzer audit``: existing policies against observed traffic, with CI gating."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from analyzer.cli._common import StoreOption, handle_errors, warn
from analyzer.errors import EXIT_FINDINGS

__all__ = ["register"]


class AuditFormat(StrEnum):
    table = "table"
    json = "json"


class SeverityChoice(StrEnum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"


class IpblockChoice(StrEnum):
    kubernetes = "kubernetes"
    cilium = "cilium"


@handle_errors
def audit_cmd(
    policies: Annotated[
        list[Path],
        typer.Option(
            "--policies",
            "-p",
            metavar="PATH",
            help="Policy file or directory (YAML/JSON, multi-document, kind: List as printed by "
            "`kubectl get networkpolicy -A -o yaml`). Repeatable.",
        ),
    ],
    flow_files: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="FLOWFILE",
            help="Flow files (any ingest format); without them, the store is read.",
        ),
    ] = None,
    store: StoreOption = Path(".analyzer-store"),
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            metavar="FILE",
            help="`kubectl get pods,namespaces -A -o json` output (JSON or YAML).",
        ),
    ] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace", "-n", metavar="NAMESPACE", help="Audit only this namespace. Repeatable."
        ),
    ] = None,
    output: Annotated[
        AuditFormat,
        typer.Option(
            "--output", "-o", metavar="FORMAT", help="table (for people) or json (for automation)."
        ),
    ] = AuditFormat.table,
    fail_on: Annotated[
        SeverityChoice | None,
        typer.Option(
            "--fail-on",
            metavar="SEVERITY",
            help="Exit 3 when any finding has this severity (info, low, medium, high) or a "
            "higher one (CI gating).",
        ),
    ] = None,
    ipblock_mode: Annotated[
        IpblockChoice,
        typer.Option(
            "--ipblock-mode",
            metavar="MODE",
            help="kubernetes: ipBlock also matches pod IPs; cilium: only outside addresses.",
        ),
    ] = IpblockChoice.kubernetes,
    staged: Annotated[
        bool,
        typer.Option("--staged", help="Audit Calico StagedKubernetesNetworkPolicy as enforced."),
    ] = False,
    anomalies: Annotated[
        bool,
        typer.Option(
            "--anomalies/--no-anomalies",
            help="Report allowed edges the anomaly detector flags (suspicious-allowed).",
        ),
    ] = True,
    service_cidr: Annotated[
        list[str] | None,
        typer.Option(
            "--service-cidr",
            metavar="CIDR",
            help="The cluster's Service range (e.g. 10.96.0.0/12), to report ipBlocks that "
            "point into it. Repeatable.",
        ),
    ] = None,
) -> None:
    """Audit existing NetworkPolicies against observed traffic: unused, broad, redundant and
    DNS-less rules, what a rollout would break, namespaces left open, and lint rules on the
    policies' shape."""
    from analyzer.audit.render import render_json, render_table
    from analyzer.audit.run import run_audit

    result = run_audit(
        policies,
        store=store,
        flow_files=flow_files or [],
        inventory_path=inventory,
        namespaces=namespace or None,
        ipblock_mode=ipblock_mode.value,
        include_staged=staged,
        anomalies=anomalies,
        service_cidrs=service_cidr or (),
    )
    for line in result.warnings:
        warn(f"warning: {line}")
    if output == AuditFormat.json:
        typer.echo(render_json(result))
    else:
        typer.echo(render_table(result), nl=False)
    if fail_on is not None and result.reaches(fail_on.value):
        raise typer.Exit(code=EXIT_FINDINGS)


def register(app: typer.Typer) -> None:
    """Add ``audit`` to the app."""
    app.command("audit")(audit_cmd)
