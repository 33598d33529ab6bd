"""``analyzer graph``: the identity graph of the observed traffic."""

from __future__ import annotations

from typing import Annotated

import typer

from analyzer.cli._common import DEFAULT_STORE, OutputFormat, StoreOption, handle_errors, warn
from analyzer.errors import UsageError

_FORMATS = (OutputFormat.table, OutputFormat.json, OutputFormat.dot)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("graph")(graph)


@handle_errors
def graph(
    store: StoreOption = DEFAULT_STORE,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            metavar="NAMESPACE",
            help="Only edges from or to this namespace (repeatable).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        OutputFormat,
        typer.Option(
            "--output",
            "-o",
            metavar="FORMAT",
            help="table (people), json (scripts) or dot (Graphviz).",
        ),
    ] = OutputFormat.table,
) -> None:
    """Show who talks to whom: identity groups and the requests between them.

    Replies and duplicate observations are removed first; statistics and warnings (undecidable
    flows, ignored drops, lost events) go to stderr.
    """
    from analyzer.identity.graph import load_graph
    from analyzer.present.graph import render_dot, render_json, render_table, stats_lines

    if output not in _FORMATS:
        raise UsageError(f"-o {output.value}: graph supports table, json or dot")
    result = load_graph(store, namespace or ())
    for line in stats_lines(result.stats):
        warn(line)
    if namespace and not result.groups:
        warn(f"no traffic observed from or to namespace(s): {', '.join(namespace)}")
    render = {OutputFormat.json: render_json, OutputFormat.dot: render_dot}.get(
        output, render_table
    )
    typer.echo(render(result), nl=False)
