"""`analyzer anomalies`: the suspicious edges of a flow store, on their own."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from analyzer.anomaly.defaults import DEFAULT_THRESHOLD
from analyzer.cli._common import DEFAULT_STORE, StoreOption, handle_errors

__all__ = ["register"]


class AnomaliesFormat(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"


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
    output: Annotated[
        AnomaliesFormat,
        typer.Option(
            "--output",
            "-o",
            metavar="FORMAT",
            help="table (for people), json, or jsonl (one flagged edge per line).",
        ),
    ] = AnomaliesFormat.table,
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
    from analyzer.anomaly.output import anomaly_records, anomaly_table, detect_store_anomalies

    result = detect_store_anomalies(
        store, namespaces=namespace or None, random_state=seed, threshold=threshold
    )
    if output is AnomaliesFormat.table:
        typer.echo(anomaly_table(result))
        return
    records = anomaly_records(result)
    if output is AnomaliesFormat.jsonl:
        for record in records:
            typer.echo(json.dumps(record, sort_keys=True))
        return
    typer.echo(json.dumps({"summary": result.summary.to_dict(), "anomalies": records}, indent=2))


def register(app: typer.Typer) -> None:
    """Add `anomalies` to the app."""
    app.command("anomalies")(anomalies)
