"""``analyzer diff OLD NEW``: which connections change verdict between two policy sets."""

from __future__ import annotations

import sys
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
def diff_cmd(
    old: Annotated[
        Path, typer.Argument(metavar="OLD", help="Policies today: a file or directory.")
    ],
    new: Annotated[
        Path, typer.Argument(metavar="NEW", help="Policies proposed: a file or directory.")
    ],
    store: StoreOption = Path(".analyzer-store"),
    inventory: InventoryOption = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            metavar="NAMESPACE",
            help="Only connections with a pod end here. Repeatable.",
        ),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    output: str = output_option(
        "table", "table", "json", help="table (for people) or json (for automation)."
    ),
    fail_on: str | None = choice_option(
        None, "newly-denied-observed", "newly-denied", "any-change", decls=("--fail-on",),
        metavar="CONDITION",
        help="Exit 3 when: newly-denied-observed (observed working traffic would be denied), "
        "newly-denied (anything newly denied), any-change.",
    ),
    ipblock_mode: str = ipblock_option(),
    staged: StagedOption = False,
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
    from analyzer.analysis import (
        Analysis,
        AnalysisOptions,
        Scope,
        load_inventory_file,
        load_policy_files,
        open_store,
    )
    from analyzer.diff import run_diff
    from analyzer.diff.render import iter_json, render_table

    scope = Scope.parse(namespace, since, until)
    old_set = load_policy_files([old], include_staged=staged, required=False)
    new_set = load_policy_files([new], include_staged=staged, required=False)
    inv = load_inventory_file(inventory)
    early: list[str] = []
    if inv is not None and not store.exists():
        early.append(f"no flow store at {store}: only the inventory's identities are compared")
        flows = None
    else:
        flows = open_store(store)
    analysis = Analysis(
        flows, scope, inventory=inv, options=AnalysisOptions(ipblock_mode=ipblock_mode)
    )
    result = run_diff(
        analysis, old_set, new_set, old_paths=[old], new_paths=[new], probes=probes
    )
    for line in early:
        warn(f"warning: {line}")
    for line in result.warnings:
        warn(f"warning: {line}")
    if output == "json":
        for chunk in iter_json(result):
            sys.stdout.write(chunk)
        sys.stdout.write("\n")
        sys.stdout.flush()
    else:
        typer.echo(render_table(result, limit=limit), nl=False)
    if fail_on is not None and result.reaches(fail_on):
        raise typer.Exit(code=EXIT_FINDINGS)


def register(app: typer.Typer) -> None:
    """Add ``diff`` to the app."""
    app.command("diff")(diff_cmd)
