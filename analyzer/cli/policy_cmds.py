"""``analyzer simulate`` and ``analyzer explain``: existing policies against traffic."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.cli._common import StoreOption, handle_errors, warn

if TYPE_CHECKING:
    from analyzer.k8s.inventory import Inventory
    from analyzer.policy.compile import CompiledPolicies

__all__ = ["register"]


class SimulateFormat(StrEnum):
    table = "table"
    jsonl = "jsonl"


class ExplainFormat(StrEnum):
    table = "table"
    json = "json"


class IpblockMode(StrEnum):
    kubernetes = "kubernetes"
    cilium = "cilium"


PoliciesOption = Annotated[
    list[Path],
    typer.Option(
        "--policies",
        "-p",
        metavar="PATH",
        help="Policy file or directory (YAML/JSON, multi-document, kind: List). Repeatable.",
    ),
]
InventoryOption = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        metavar="FILE",
        help="`kubectl get pods,namespaces -A -o json` output (JSON or YAML).",
    ),
]
ModeOption = Annotated[
    IpblockMode,
    typer.Option(
        "--ipblock-mode",
        metavar="MODE",
        help="kubernetes: ipBlock also matches pod IPs (upstream e2e); "
        "cilium: ipBlock matches only addresses outside the cluster.",
    ),
]
StagedOption = Annotated[
    bool,
    typer.Option("--staged", help="Evaluate Calico StagedKubernetesNetworkPolicy as enforced."),
]


def _load(policies: list[Path], mode: IpblockMode, staged: bool) -> CompiledPolicies:
    from analyzer.policy.compile import compile_policies
    from analyzer.policy.load import load_policies, require_policies

    loaded = load_policies(policies, include_staged=staged)
    for line in loaded.warnings():
        warn(f"warning: {line}")
    require_policies(loaded, policies)
    return compile_policies(loaded.policies, ipblock_mode=mode.value)


def _inventory(path: Path | None) -> Inventory | None:
    from analyzer.k8s.inventory import load_inventory

    return load_inventory(path) if path is not None else None


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
    output: Annotated[
        SimulateFormat,
        typer.Option(
            "--output", "-o", metavar="FORMAT", help="table, or jsonl (one object per connection)."
        ),
    ] = SimulateFormat.table,
    ipblock_mode: ModeOption = IpblockMode.kubernetes,
    staged: StagedOption = False,
) -> None:
    """Replay observed connections against policies: which would be allowed, which denied."""
    from analyzer.policy.simulate import (
        connection_records,
        headline,
        read_flows,
        simulate,
        summarise,
    )

    compiled = _load(policies, ipblock_mode, staged)
    inv = _inventory(inventory)
    flows, notes = read_flows(flow_files or [], store)
    result = simulate(compiled, flows, inv)
    for note in notes + result.notes:
        warn(note)
    if output == SimulateFormat.jsonl:
        for record in connection_records(result.frame):
            typer.echo(json.dumps(record, default=str))
        return
    for line in headline(result.frame, len(compiled.policies)):
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
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            typer.echo(
                "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
            )


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
    output: Annotated[
        ExplainFormat,
        typer.Option("--output", "-o", metavar="FORMAT", help="table (sentences) or json."),
    ] = ExplainFormat.table,
    ipblock_mode: ModeOption = IpblockMode.kubernetes,
    staged: StagedOption = False,
) -> None:
    """Why a connection is allowed or denied: the policies, the rule, or what is missing."""
    from analyzer.errors import UsageError
    from analyzer.policy.explain import explain
    from analyzer.policy.peers import resolve_endpoint

    if protocol.upper() not in ("TCP", "UDP", "SCTP"):
        raise UsageError(f"--protocol must be TCP, UDP or SCTP, not {protocol!r}")
    compiled = _load(policies, ipblock_mode, staged)
    inv = _inventory(inventory)
    flows = None
    if store.is_dir():
        from analyzer.store import FlowStore

        flows = FlowStore.open(store).scan()
    src = resolve_endpoint(source, inv, flows)
    dst = resolve_endpoint(destination, inv, flows)
    for resolved in (src, dst):
        warn(f"resolved {resolved.note}")
    result = explain(compiled, src.peer, dst.peer, port, protocol)
    if output == ExplainFormat.json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(result.text())


def register(app: typer.Typer) -> None:
    """Add ``simulate`` and ``explain`` to the app."""
    app.command("simulate")(simulate_cmd)
    app.command("explain")(explain_cmd)
