"""``analyzer generate``: a synthetic, realistic flow capture of a seeded cluster."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from analyzer.cli._common import choice_option, handle_errors, output_option
from analyzer.errors import UsageError
from analyzer.generate.model import DEFAULT_SCAN_PORTS

__all__ = ["register"]


def _progress(total: int) -> Callable[[int], None]:
    """A one-line counter on a terminal's stderr, at most a few updates a second."""
    last = [0.0]

    def show(lines: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.25:
            last[0] = now
            share = min(100.0, 100.0 * lines / max(total, 1))
            typer.echo(f"\r  writing flows: {lines:,} lines ({share:.0f} %)", err=True, nl=False)

    return show


def _parse_window(text: str) -> int:
    from analyzer.analysis.scope import parse_duration

    try:
        return int(parse_duration(text).total_seconds())
    except UsageError:
        raise UsageError(f"--window {text!r} is not a duration such as 3600, 90m or 1h") from None


_DEFAULT_SCAN_PORTS = ",".join(map(str, DEFAULT_SCAN_PORTS))


def _parse_ports(text: str) -> tuple[int, ...]:
    try:
        ports = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise UsageError(f"--scan-ports {text!r} is not a comma-separated list of ports") from None
    if not ports or any(not 1 <= p <= 65535 for p in ports):
        raise UsageError(f"--scan-ports {text!r}: ports must be between 1 and 65535")
    return tuple(dict.fromkeys(ports))


def generate_command(
    out: Annotated[
        Path,
        typer.Option("--out", metavar="DIR", help="Directory to write into (created if missing)."),
    ],
    fmt: str = choice_option(
        "hubble", "hubble", "calico", "goldmane", "goldmane-emitter", "whisker",
        decls=("--format", "-f"), metavar="FORMAT",
        help="hubble, calico, goldmane, goldmane-emitter or whisker.",
    ),
    flows: Annotated[
        int,
        typer.Option(
            "--flows",
            metavar="N",
            help="Flow records to write (Hubble events or Calico aggregates).",
        ),
    ] = 100_000,
    seed: Annotated[
        int, typer.Option(
            "--seed", metavar="N", help="Same seed and options give byte-identical files."
        )
    ] = 1,
    attack: Annotated[
        bool,
        typer.Option("--attack/--no-attack", help="Include the compromised develop/debug pod."),
    ] = True,
    attacks: Annotated[
        str,
        typer.Option(
            "--attacks",
            metavar="LIST",
            help="Which attacks, comma-separated: scan, sweep, lateral, exfil.",
        ),
    ] = "scan,sweep,lateral",
    scan_ports: Annotated[
        str, typer.Option(
            "--scan-ports", metavar="PORTS", help="Ports the scan tries, comma-separated."
        )
    ] = _DEFAULT_SCAN_PORTS,
    sweep_hosts: Annotated[
        int, typer.Option("--sweep-hosts", metavar="N", help="Addresses per node the sweep tries.")
    ] = 24,
    compress: Annotated[bool, typer.Option("--gzip", help="Write flows.jsonl.gz.")] = False,
    namespaces_extra: Annotated[
        int,
        typer.Option(
            "--namespaces-extra",
            metavar="K",
            help="Extra generic namespaces (scales identities).",
        ),
    ] = 0,
    workloads_per_namespace: Annotated[
        int, typer.Option(
            "--workloads-per-namespace", metavar="M", help="Workloads in each extra namespace."
        )
    ] = 4,
    nodes: Annotated[
        int, typer.Option("--nodes", metavar="N", help="Worker nodes (more are added if needed).")
    ] = 3,
    window: Annotated[
        str, typer.Option(
            "--window",
            metavar="DURATION",
            help="Capture window for Hubble flows, e.g. 3600, 90m, 1h.",
        )
    ] = "1h",
    lost_events: Annotated[
        int, typer.Option("--lost-events", metavar="N", help="Hubble lost_events lines to include.")
    ] = 0,
    dns_visibility: Annotated[
        bool,
        typer.Option(
            "--dns-visibility/--no-dns-visibility", help="Hubble L7 DNS events and DNS names."
        ),
    ] = True,
    style: Annotated[
        str | None,
        typer.Option(
            "--style",
            "--hubble-style",
            metavar="STYLE",
            help=(
                "Another spelling of the format: hubble envelope|bare|camel|cri|array, "
                "goldmane result|bare, whisker lines|items (see docs/generate.md)."
            ),
        ),
    ] = None,
    output: str = output_option(
        "table", "table", "json", help="table for people, json for scripts."
    ),
) -> None:
    """Write a synthetic flow capture: flows, inventory.json, truth.json and policies."""
    from analyzer.generate import ScenarioConfig, build_scenario, generate

    chosen = (
        frozenset(a.strip() for a in attacks.split(",") if a.strip()) if attack else frozenset()
    )
    if lost_events < 0:
        raise UsageError(f"--lost-events must be >= 0, not {lost_events}")
    config = ScenarioConfig(
        seed=seed, nodes=nodes, extra_namespaces=namespaces_extra,
        workloads_per_namespace=workloads_per_namespace, attacks=chosen,
        dns_visibility=dns_visibility, lost_events=lost_events,
        window_seconds=_parse_window(window), scan_ports=_parse_ports(scan_ports),
        sweep_hosts=sweep_hosts,
    )  # fmt: skip
    scenario = build_scenario(config)
    progress = _progress(flows) if sys.stderr.isatty() else None
    result = generate(
        scenario, out, fmt=fmt, flows=flows, compress=compress, style=style,
        progress=progress,
    )  # fmt: skip
    if progress is not None:
        typer.echo("\r\033[K", err=True, nl=False)
    if output == "json":
        typer.echo(json.dumps({
            "files": [str(f) for f in result.files], "flows": result.flows, "format": result.format,
            "workloads": result.workloads, "pods": result.pods,
            "legit_paths": result.legit_paths, "attack_paths": result.attack_paths,
        }, indent=2))  # fmt: skip
        return
    typer.echo(
        f"generated {result.flows} {result.format} flow records: {result.workloads} workloads, "
        f"{result.pods} pods, {result.legit_paths} legitimate and "
        f"{result.attack_paths} attack paths"
    )
    for f in result.files:
        typer.echo(f"  wrote {f}")


def register(app: typer.Typer) -> None:
    """Add ``generate`` to the app."""
    app.command("generate", help="Write a synthetic, realistic flow capture of a seeded cluster.")(
        handle_errors(generate_command)
    )
