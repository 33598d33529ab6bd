"""``analyzer report`` (the HTML security review) and ``analyzer demo`` (the whole pipeline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from analyzer.cli._common import (
    DEFAULT_STORE,
    SinceOption,
    StoreOption,
    UntilOption,
    handle_errors,
    output_option,
    warn,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("report")(report_command)
    app.command("demo")(demo_command)


@handle_errors
def report_command(
    store: StoreOption = DEFAULT_STORE,
    policies: Annotated[
        Path | None,
        typer.Option(
            "--policies",
            metavar="PATH",
            help="Existing policies (file or directory of YAML): adds "
            "the audit, coverage and a diff against the recommendation.",
        ),
    ] = None,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            metavar="FILE",
            help="kubectl get pods,namespaces -A -o json (or YAML), "
            "for named ports and namespace labels.",
        ),
    ] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            metavar="NAMESPACE",
            help="Limit the report to this namespace (repeatable).",
        ),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="HTML file to write.")] = Path(
        "reports/report.html"
    ),
    output: str = output_option(
        "text", "text", "json",
        help="text: the path (warnings on stderr); json: path, counts and warnings on stdout.",
    ),
) -> None:
    """Write the self-contained HTML security-review report of the flows in the store."""
    from analyzer.analysis import (
        Analysis,
        Scope,
        load_inventory_file,
        load_policy_files,
        open_store,
    )
    from analyzer.errors import ConfigError
    from analyzer.report import write_report

    if out.is_dir():  # fail before the analysis, not after it
        raise ConfigError(f"--out {out}: is a directory; give a file name such as report.html")
    scope = Scope.parse(namespace, since, until)
    flows = open_store(store)
    # Read every user input first: a bad path fails in a second, not after the analysis.
    inv = load_inventory_file(inventory)
    loaded = load_policy_files([policies]) if policies is not None else None
    analysis = Analysis(flows, scope, policies=loaded, inventory=inv)
    written = write_report(
        analysis, out=out, policies_source=str(policies) if policies is not None else None
    )
    if output == "json":
        typer.echo(json.dumps(written.to_json(), indent=2, sort_keys=True))
        return
    for line in written.warnings:
        warn(f"warning: {line}")
    typer.echo(f"report: {written.path}")


@handle_errors
def demo_command(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Directory for everything the demo writes "
            "(default ./reports/demo, relative to the current directory).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", help="Seed of the generated cluster.")
    ] = 7,
) -> None:
    """Generate a demo cluster, ingest, recommend, audit, and write the HTML report."""
    from analyzer.demo import run_demo

    result = run_demo(out, seed=seed)
    for label, path in result.paths():
        typer.echo(f"{label + ':':<10} {path}")
    typer.echo(
        f"{result.flows:,} flow records, {result.recommended} policies recommended, "
        f"{result.findings} audit findings on the existing policies; open the report in a browser."
    )
