"""``analyzer simulate`` and ``analyzer explain``: existing policies against traffic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.cli._common import (
    InventoryOption,
    SinceOption,
    StagedOption,
    StoreOption,
    UntilOption,
    handle_errors,
    ipblock_option,
    output_option,
    warn,
)
from analyzer.present.text import text_table

if TYPE_CHECKING:
    from analyzer.analysis import Analysis, FlowSource

__all__ = ["register"]

PoliciesOption = Annotated[
    list[Path],
    typer.Option(
        "--policies",
        "-p",
        metavar="PATH",
        help="Policy file or directory (YAML/JSON, multi-document, kind: List). Repeatable.",
    ),
]


def _analysis(
    flows: FlowSource | None,
    policies: list[Path],
    inventory: Path | None,
    mode: str,
    staged: bool,
    since: str | None = None,
    until: str | None = None,
) -> Analysis:
    from analyzer.analysis import (
        Analysis,
        AnalysisOptions,
        Scope,
        load_inventory_file,
        load_policy_files,
    )

    scope = Scope.parse(None, since, until)
    loaded = load_policy_files(policies, include_staged=staged)
    for line in loaded.warnings():
        warn(f"warning: {line}")
    return Analysis(
        flows,
        scope,
        policies=loaded,
        inventory=load_inventory_file(inventory),
        options=AnalysisOptions(ipblock_mode=mode),
    )


@handle_errors
def simulate_cmd(
    policies: PoliciesOption,
    flow_files: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="FLOWFILE",
            help="Flow files (any ingest format); without them, the store is read.",
        ),
    ] = None,
    inventory: InventoryOption = None,
    store: StoreOption = Path(".analyzer-store"),
    since: SinceOption = None,
    until: UntilOption = None,
    output: str = output_option(
        "table", "table", "jsonl", help="table, or jsonl (one object per connection)."
    ),
    ipblock_mode: str = ipblock_option(),
    staged: StagedOption = False,
) -> None:
    """Replay observed connections against policies: which would be allowed, which denied."""
    from analyzer.analysis import open_flows
    from analyzer.policy.simulate import connection_records, headline, simulate, summarise

    analysis = _analysis(
        open_flows(store, flow_files or ()), policies, inventory, ipblock_mode, staged, since,
        until,
    )
    assert analysis.compiled is not None
    result = simulate(analysis.compiled, analysis.connections, analysis.inventory)
    for note in [*analysis.ingest_notes.lines(), *result.notes]:
        warn(note)
    if output == "jsonl":
        for record in connection_records(result.frame):
            typer.echo(json.dumps(record, default=str))
        return
    for line in headline(result.frame, len(analysis.compiled.policies)):
        typer.echo(line)
    summary = summarise(result.frame)
    if summary.height:
        rows = [("SOURCE", "DESTINATION", "ALLOWED", "DENIED", "DENIED PORTS")]
        for r in summary.iter_rows(named=True):
            rows.append(
                (
                    str(r["source"]),
                    str(r["destination"]),
                    str(r["allowed"]),
                    str(r["denied"]),
                    ", ".join(r["denied_ports"]) or "-",
                )
            )
        for line in text_table(rows, last_free=True):
            typer.echo(line)


@handle_errors
def explain_cmd(
    policies: PoliciesOption,
    source: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="PEER",
            help="namespace/pod, namespace:key=value,..., IP or entity:NAME",
        ),
    ],
    destination: Annotated[
        str, typer.Option("--to", metavar="PEER", help="Destination peer, same forms.")
    ],
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", min=1, max=65535, help="Destination port.")
    ],
    protocol: Annotated[
        str, typer.Option("--protocol", metavar="PROTOCOL", help="TCP, UDP or SCTP.")
    ] = "TCP",
    inventory: InventoryOption = None,
    store: StoreOption = Path(".analyzer-store"),
    output: str = output_option("table", "table", "json", help="table (sentences) or json."),
    ipblock_mode: str = ipblock_option(),
    staged: StagedOption = False,
) -> None:
    """Why a connection is allowed or denied: the policies, the rule, or what is missing."""
    from analyzer.errors import UsageError
    from analyzer.policy.explain import explain
    from analyzer.policy.peers import resolve_endpoint

    if protocol.upper() not in ("TCP", "UDP", "SCTP"):
        raise UsageError(f"--protocol must be TCP, UDP or SCTP, not {protocol!r}")
    from analyzer.analysis import open_store

    analysis = _analysis(
        open_store(store) if store.is_dir() else None, policies, inventory, ipblock_mode, staged
    )
    compiled, inv, seen = analysis.compiled, analysis.inventory, analysis.endpoints
    assert compiled is not None
    src = resolve_endpoint(source, inv, seen)
    dst = resolve_endpoint(destination, inv, seen)
    for resolved in (src, dst):
        warn(f"resolved {resolved.note}")
    result = explain(compiled, src.peer, dst.peer, port, protocol)
    if output == "json":
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(result.text())


def register(app: typer.Typer) -> None:
    """Add ``simulate`` and ``explain`` to the app."""
    app.command("simulate")(simulate_cmd)
    app.command("explain")(explain_cmd)
