"""``analyzer audit``: existing policies against observed traffic, with CI gating."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from analyzer.cli._common import (
    InventoryOption,
    SinceOption,
    StagedOption,
    StoreOption,
    UntilOption,
    choice_option,
    handle_errors,
    ipblock_option,
    output_option,
    warn,
)
from analyzer.errors import EXIT_FINDINGS

__all__ = ["register"]


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
    inventory: InventoryOption = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace", "-n", metavar="NAMESPACE", help="Audit only this namespace. Repeatable."
        ),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    output: str = output_option(
        "table", "table", "json", help="table (for people) or json (for automation)."
    ),
    fail_on: str | None = choice_option(
        None, "info", "low", "medium", "high", decls=("--fail-on",), metavar="SEVERITY",
        help="Exit 3 when any finding has this severity (info, low, medium, high) or a higher "
        "one (CI gating).",
    ),
    ipblock_mode: str = ipblock_option(),
    staged: StagedOption = False,
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
    from analyzer.analysis import (
        Analysis,
        AnalysisOptions,
        AuditOptions,
        Scope,
        load_inventory_file,
        load_policy_files,
        open_flows,
    )
    from analyzer.audit.findings import parse_severity
    from analyzer.audit.render import render_json, render_table

    scope = Scope.parse(namespace, since, until)
    analysis = Analysis(
        open_flows(store, flow_files or ()),
        scope,
        policies=load_policy_files(policies, include_staged=staged),
        inventory=load_inventory_file(inventory),
        options=AnalysisOptions(ipblock_mode=ipblock_mode),
    )
    analysis.require_known_namespaces()
    result = analysis.audit(
        AuditOptions(anomalies=anomalies, service_cidrs=tuple(service_cidr or ()))
    )
    for line in result.warnings:
        warn(f"warning: {line}")
    if output == "json":
        typer.echo(render_json(result))
    else:
        typer.echo(render_table(result), nl=False)
    if fail_on is not None and result.reaches(parse_severity(fail_on)):
        raise typer.Exit(code=EXIT_FINDINGS)


def register(app: typer.Typer) -> None:
    """Add ``audit`` to the app."""
    app.command("audit")(audit_cmd)
