"""``analyzer drift``: connections since a time that the applied policies deny, and new edges."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from analyzer.cli._common import StoreOption, handle_errors, warn
from analyzer.errors import EXIT_FINDINGS

__all__ = ["register"]


class DriftFormat(StrEnum):
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
def drift_cmd(
    policies: Annotated[
        list[Path],
        typer.Option(
            "--policies",
            "-p",
            metavar="PATH",
            help="The applied policies: file or directory (YAML/JSON, `kubectl get "
            "networkpolicy -A -o yaml`, or the bundle `analyzer recommend` wrote). Repeatable.",
        ),
    ],
    since: Annotated[
        str,
        typer.Option(
            "--since",
            metavar="SINCE",
            help="Connections seen since 24h, 30m, 7d ago or an RFC 3339 time.",
        ),
    ] = "24h",
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="TIME",
            help="Edges first seen after this are new (default: when the policies were "
            "generated, from their analyzer.io/observed-window annotations).",
            show_default=False,
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
            "--namespace", "-n", metavar="NAMESPACE",
            help="Only connections from or to this namespace. Repeatable.",
        ),
    ] = None,
    output: Annotated[
        DriftFormat,
        typer.Option(
            "--output", "-o", metavar="FORMAT", help="table (for people) or json (for scripts)."
        ),
    ] = DriftFormat.table,
    fail_on: Annotated[
        SeverityChoice | None,
        typer.Option(
            "--fail-on",
            metavar="SEVERITY",
            help="Exit 3 when a finding has this severity or a higher one (would-break: high, "
            "blocked: medium, new-edge: low).",
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
) -> None:
    """What changed since the applied policies were generated: connections seen since a time
    that they deny (would break), and edges they allow that the flows they were generated from
    never showed."""
    from analyzer.drift import render_json, render_table, run_drift
    from analyzer.live.cadence import parse_since

    result = run_drift(
        policies,
        store=store,
        since=parse_since(since),
        baseline=parse_since(baseline, option="--baseline") if baseline is not None else None,
        inventory_path=inventory,
        namespaces=namespace or None,
        ipblock_mode=ipblock_mode.value,
    )
    for line in result.warnings:
        warn(f"warning: {line}")
    if output == DriftFormat.json:
        typer.echo(render_json(result), nl=False)
    else:
        typer.echo(render_table(result), nl=False)
    if fail_on is not None and result.reaches(fail_on.value):
        raise typer.Exit(code=EXIT_FINDINGS)


def register(app: typer.Typer) -> None:
    """Add ``drift`` to the app."""
    app.command("drift")(drift_cmd)
