"""``analyzer graph``: the identity graph of the observed traffic."""

from __future__ import annotations

import typer

from analyzer.cli._common import (
    DEFAULT_STORE,
    NamespaceOption,
    SinceOption,
    StoreOption,
    UntilOption,
    handle_errors,
    output_option,
    warn,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("graph")(graph)


@handle_errors
def graph(
    store: StoreOption = DEFAULT_STORE,
    namespace: NamespaceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    output: str = output_option(
        "table", "table", "json", "dot", help="table (people), json (scripts) or dot (Graphviz)."
    ),
) -> None:
    """Show who talks to whom: identity groups and the requests between them.

    Replies and duplicate observations are removed first; statistics and warnings (undecidable
    flows, ignored drops, lost events) go to stderr.
    """
    from analyzer.analysis import Analysis, Scope, open_store
    from analyzer.present.graph import render_dot, render_json, render_table, stats_lines

    analysis = Analysis(open_store(store), Scope.parse(namespace, since, until))
    analysis.require_known_namespaces()
    result = analysis.scoped_graph
    for line in stats_lines(result.stats, analysis.ingest_notes):
        warn(line)
    if namespace and not result.groups:
        warn(f"no traffic observed from or to namespace(s): {', '.join(namespace)}")
    render = {"json": render_json, "dot": render_dot}.get(output, render_table)
    typer.echo(render(result), nl=False)
