"""``analyzer diff OLD NEW``: which connections change verdict between two policy sets."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from analyzer.cli._common import StoreOption, handle_errors, warn
from analyzer.errors import EXIT_FINDINGS

__all__ = ["register"]


class DiffFormat(StrEnum):
    table = "table"
    json = "json"


class FailOn(StrEnum):
    newly_denied_observed = "newly-denied-observed"
    newly_denied = "newly-denied"
    any_change = "any-change"


class IpblockChoice(StrEnum):
    kubernetes = "kubernetes"
    cilium = "cilium"


@handle_errors
def diff_cmd(
    old: Annotated[
        Path, typer.Argument(metavar="OLD", help="Policies today: a file or directory.")
    ],
    new: Annotated[
        Path, typer.Argument(metavar="NEW", help="Policies proposed: a file or directory.")
    ],
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
            "--namespace",
            "-n",
            metavar="NAMESPACE",
            help="Only connections with a pod end here. Repeatable.",
        ),
    ] = None,
    output: Annotated[
        DiffFormat,
        typer.Option(
            "--output", "-o", metavar="FORMAT", help="table (for people) or json (for automation)."
        ),
    ] = DiffFormat.table,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            "--fail-on",
            metavar="CONDITION",
            help="Exit 3 when: newly-denied-observed (observed working traffic would be "
            "denied), newly-denied (anything newly denied), any-change.",
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
        typer.Option("--staged", help="Evaluate Calico StagedKubernetesNetworkPolicy as enforced."),
    ] = False,
    probes: Annotated[
        bool,
        typer.Option(
            "--probes/--no-probes",
            help="Also compare every identity pair on every port class (default), or only "
            "the observed connections (faster; enough for --fail-on newly-denied-observed).",
        ),
    ] = True,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            metavar="N",
            min=0,
            help="Table, changes without observed traffic: namespace pairs and changes of each "
            "kind listed (0: all). Changes with observed traffic are always listed.",
        ),
    ] = 20,
) -> None:
    """Semantic diff: which connections (observed, and every identity pair on every port) are
    newly denied or newly allowed by NEW, and by which rule."""
    from analyzer.diff import run_diff
    from analyzer.diff.render import iter_json, render_table

    result = run_diff(
        [old],
        [new],
        store=store,
        inventory_path=inventory,
        namespaces=namespace or None,
        ipblock_mode=ipblock_mode.value,
        include_staged=staged,
        probes=probes,
    )
    for line in result.warnings:
        warn(f"warning: {line}")
    if output == DiffFormat.json:
        for chunk in iter_json(result):
            sys.stdout.write(chunk)
        sys.stdout.write("\n")
        sys.stdout.flush()
    else:
        typer.echo(render_table(result, limit=limit), nl=False)
    if fail_on is not None and result.reaches(fail_on.value):
        raise typer.Exit(code=EXIT_FINDINGS)


def register(app: typer.Typer) -> None:
    """Add ``diff`` to the app."""
    app.command("diff")(diff_cmd)
