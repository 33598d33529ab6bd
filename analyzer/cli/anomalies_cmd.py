"""`analyzer anomalies`: the suspicious edges of a flow store, on their own."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from analyzer.anomaly.defaults import DEFAULT_THRESHOLD
from analyzer.cli._common import (
    DEFAULT_STORE,
    SinceOption,
    StoreOption,
    UntilOption,
    emit_json,
    handle_errors,
    output_option,
)

__all__ = ["register"]


@handle_errors
def anomalies(
    store: StoreOption = DEFAULT_STORE,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            metavar="NAMESPACE",
            help="Only edges from or to this namespace (repeatable). The model still learns "
            "from the whole store.",
        ),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    output: str = output_option(
        "table",
        "table",
        "json",
        "jsonl",
        help="table (for people), json, or jsonl (one flagged edge per line).",
    ),
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", help="Random state of the isolation forest.")
    ] = 0,
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold",
            metavar="SCORE",
            help="Model anomaly score (0-1) above which an edge no rule caught may be flagged.",
        ),
    ] = DEFAULT_THRESHOLD,
) -> None:
    """List edges that look like attacks (port scans, host sweeps, lateral moves to databases).

    These are the edges `recommend` leaves out of the allow-list by default.
    """
    from analyzer.analysis import Analysis, AnalysisOptions, Scope, open_store
    from analyzer.anomaly.records import flagged_edge_records
    from analyzer.present.anomalies import anomaly_table

    analysis = Analysis(
        open_store(store),
        Scope.parse(namespace, since, until),
        options=AnalysisOptions(random_state=seed, threshold=threshold),
    )
    analysis.require_known_namespaces()
    result = analysis.scoped_anomalies
    if output == "table":
        typer.echo(anomaly_table(result))
        return
    records = flagged_edge_records(result)
    if output == "jsonl":
        for record in records:
            typer.echo(json.dumps(record, sort_keys=True))
        return
    emit_json({"summary": result.summary.to_dict(), "anomalies": records})


def register(app: typer.Typer) -> None:
    """Add `anomalies` to the app."""
    app.command("anomalies")(anomalies)
