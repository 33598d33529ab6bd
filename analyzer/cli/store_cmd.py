"""``analyzer store``: maintenance of the flow store (``store rebuild``)."""

from __future__ import annotations

import json

import typer

from analyzer.cli._common import (
    DEFAULT_STORE,
    HelpCommand,
    StoreOption,
    handle_errors,
    output_option,
)
from analyzer.store.pipeline import rebuild_rollup

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``store`` command group to the app."""
    group = typer.Typer(
        name="store",
        help="Maintain the flow store (docs/rollup.md).",
        no_args_is_help=True,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @group.command(
        "rebuild",
        cls=HelpCommand,
        help=(
            "Derive the connection rollup again from the raw flows: after an upgrade, or when "
            "live ingest (--follow, --relay) left it stale. Until then commands derive "
            "connections from the raw flows, with the same results, more slowly."
        ),
    )
    @handle_errors
    def rebuild_command(
        store: StoreOption = DEFAULT_STORE,
        output: str = output_option(
            "table", "table", "json", help="table for people, json for scripts."
        ),
    ) -> None:
        """Thin wrapper: rebuild, then say what the rollup holds."""
        rollup = rebuild_rollup(store)
        doc = {
            "store": str(store),
            "rollup": str(rollup.path),
            "key": rollup.key,
            "flow_records": rollup.records,
            "connections": rollup.stats.connections,
        }
        if output == "json":
            typer.echo(json.dumps(doc, indent=2))
        else:
            typer.echo(
                f"rollup of {rollup.records:,} flow records ({rollup.stats.connections:,} "
                f"connections) written to {rollup.path}"
            )

    app.add_typer(group)
