"""``analyzer store``: maintenance of the flow store (``store rebuild``, ``store compact``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from analyzer.analysis.scope import parse_duration, parse_time
from analyzer.cli._common import (
    DEFAULT_STORE,
    HelpCommand,
    StoreOption,
    handle_errors,
    output_option,
)
from analyzer.store.compact import compact_store
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
            "connections from the raw flows, with the same results, more slowly. A store "
            "ingested with --no-keep-flows derives it from its stored derivation state "
            "(docs/rollup.md, \"Versions\")."
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

    @group.command(
        "compact",
        cls=HelpCommand,
        help=(
            "Merge small raw flow parts into larger ones (the same rows; the rollup is re-keyed, "
            "not derived again), and coarsen the rollup's old time buckets so that long "
            "histories stay small: buckets "
            "older than --hours-after become hours, older than --days-after days (ages before "
            "--now, default the newest flow; rounded down to UTC midnight). Counts, first and "
            "last seen are kept exactly; windows on older data are then rounded out to hours "
            "or days. Buckets are only ever merged, never split again."
        ),
    )
    @handle_errors
    def compact_command(
        store: StoreOption = DEFAULT_STORE,
        hours_after: str = typer.Option(
            "1d", "--hours-after", help="Age after which buckets become hours (24h, 2d; 'off')."
        ),
        days_after: str = typer.Option(
            "7d", "--days-after", help="Age after which buckets become days (7d; 'off')."
        ),
        now: str | None = typer.Option(
            None, "--now", help="RFC 3339 time ages count back from (default: newest flow)."
        ),
        output: str = output_option(
            "table", "table", "json", help="table for people, json for scripts."
        ),
    ) -> None:
        """Thin wrapper: parse the ages, compact, say what changed."""
        hours = None if hours_after == "off" else parse_duration(hours_after)
        days = None if days_after == "off" else parse_duration(days_after)
        moment = parse_time(now, option="--now", now=datetime.now(UTC)) if now else None
        done = compact_store(store, hours_after=hours, days_after=days, now=moment)
        doc = {
            "store": str(store),
            "rollup": str(done.rollup.path),
            "buckets_before": done.before.describe(),
            "buckets_after": done.after.describe(),
            "schedule": done.after.to_json(),
            "bucket_rows_before": done.bucket_rows_before,
            "bucket_rows_after": done.bucket_rows_after,
            "connections": done.rollup.stats.connections,
            "parts_before": done.parts.parts_before,
            "parts_after": done.parts.parts_after,
        }
        if output == "json":
            typer.echo(json.dumps(doc, indent=2))
            return
        if done.parts.runs:
            typer.echo(
                f"flow parts merged: {done.parts.parts_before:,} -> {done.parts.parts_after:,} "
                "files (the same rows)"
            )
        if done.after == done.before:
            typer.echo(f"nothing to coarsen: buckets are {done.after.describe()}")
            return
        typer.echo(
            f"buckets now {done.after.describe()}: {done.bucket_rows_before:,} -> "
            f"{done.bucket_rows_after:,} bucket rows ({done.rollup.stats.connections:,} "
            "connections unchanged)"
        )

    app.add_typer(group)
