"""``analyzer ingest`` and ``analyzer stats``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from analyzer.cli import live_cmd as live
from analyzer.cli._common import (
    DEFAULT_STORE,
    StoreOption,
    choice_option,
    handle_errors,
    output_option,
)
from analyzer.errors import UsageError
from analyzer.store import FlowStore, ingest
from analyzer.store.stats import StoreStats, store_stats
from analyzer.store.summary import IngestSummary, InputSummary

__all__ = ["register"]


def _input_json(i: InputSummary) -> dict[str, Any]:
    return {
        "path": i.path,
        "status": i.status,
        "format": i.format,
        "rows": i.rows,
        "skipped": [
            {"reason": s.reason, "count": s.count, "first_lines": list(s.first_lines)}
            for s in i.skipped
        ],
        "warnings": list(i.warnings),
        "ingest_id": i.ingest_id,
        "message": i.message,
    }


def _print_ingest(summary: IngestSummary) -> None:
    for i in summary.inputs:
        if i.status == "loaded":
            skipped = f", {i.skipped_total:,} skipped" if i.skipped_total else ""
            typer.echo(f"loaded     {i.path}: {i.rows:,} {i.format} rows{skipped}")
            for s in i.skipped:
                typer.echo(f"  skipped  {s.describe()}")
            for w in i.warnings:
                typer.echo(f"  warning  {w}", err=True)
        elif i.status == "duplicate":
            typer.echo(f"unchanged  {i.path}: {i.message}")
        else:
            typer.echo(f"ignored    {i.path}: {i.message}")
    loaded = sum(1 for i in summary.inputs if i.status == "loaded")
    typer.echo(
        f"{summary.rows_loaded:,} rows from {loaded} input{'s' if loaded != 1 else ''} "
        f"added to {summary.store}"
    )


def _total_bytes(paths: list[str]) -> int:
    total = 0
    for p in paths:
        path = Path(p)
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            for dirpath, _, files in os.walk(path):
                total += sum((Path(dirpath) / f).stat().st_size for f in files)
    return total


@contextmanager
def _progress(paths: list[str]) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on a terminal's stderr; nothing when stderr is not a terminal."""
    if not sys.stderr.isatty() or paths == ["-"]:
        yield None
        return
    with typer.progressbar(
        length=max(1, _total_bytes(paths)), label="ingest", file=sys.stderr
    ) as bar:
        yield bar.update


def register(app: typer.Typer) -> None:
    """Add ``ingest`` and ``stats`` to the app."""

    @app.command(
        "ingest",
        help=(
            "Load Hubble or Calico flow exports into the flow store (Parquet + manifest).\n\n"
            "Records that are not flows (malformed lines, lost-events records, ...) are skipped "
            "and counted with their first line numbers. An input with no usable flow record "
            "fails the whole command (exit 1) and leaves the store untouched. Ingesting the "
            "same content again changes nothing.\n\n"
            "--follow streams a growing file or stdin, --relay reads Hubble Relay; both commit "
            "every --commit-every and store each record once (docs/live.md).\n\n"
            "--no-keep-flows commits the connection rollup alone, not the raw flow parts "
            "(smaller, faster; the store then remembers it until --keep-flows): commands that "
            "need raw flows (ANALYZER_NO_ROLLUP=1, live ingest) refuse; upgrades that change "
            "what the rollup holds are bridged by its derivation state (docs/rollup.md)."
        ),
    )
    @handle_errors
    def ingest_command(
        paths: Annotated[
            list[str] | None,
            typer.Argument(
                metavar="PATH",
                help="Flow files, directories (read recursively), s3:// s3a:// gs:// hdfs:// "
                "URLs (objects, prefixes or patterns; docs/ingest.md) or - for stdin; "
                ".gz and .zst are decompressed transparently.",
                show_default=False,
            ),
        ] = None,
        fmt: str = choice_option(
            "auto", "auto", "hubble", "calico", "goldmane", "whisker", decls=("--format", "-f"),
            metavar="FORMAT", help="auto (detect per file), hubble, calico, goldmane or whisker.",
        ),
        store: StoreOption = DEFAULT_STORE,
        output: str = output_option(
            "table", "table", "json", help="table for people, json for scripts."
        ),
        follow: live.FollowOption = False,
        commit_every: live.CommitEveryOption = live.DEFAULT_COMMIT_EVERY,
        relay: live.RelayOption = None,
        since: live.SinceOption = None,
        tls: live.TlsOption = False,
        tls_ca_cert: live.TlsCaOption = None,
        tls_client_cert: live.TlsCertOption = None,
        tls_client_key: live.TlsKeyOption = None,
        tls_server_name: live.TlsServerNameOption = None,
        namespaces: live.NamespaceFilterOption = None,
        verdicts: live.VerdictFilterOption = None,
        engine: str = choice_option(
            "local", "local", "spark", decls=("--engine",), metavar="ENGINE",
            help="local (this process) or spark (the per-file work on Apache Spark executors; "
            "needs pip install 'analyzer[spark]' and Java 17; docs/spark.md).",
        ),
        master: Annotated[
            str | None,
            typer.Option(
                "--master", metavar="URL",
                help="Spark master for --engine spark (default local[*]; e.g. local[2], "
                "spark://host:7077, k8s://https://...).", show_default=False,
            ),
        ] = None,
        spark_conf: Annotated[
            list[str] | None,
            typer.Option(
                "--spark-conf", metavar="SETTING",
                help="Spark setting KEY=VALUE for --engine spark (repeatable), e.g. "
                "spark.executor.memory=4g.", show_default=False,
            ),
        ] = None,
        keep_flows: Annotated[
            bool | None,
            typer.Option(
                "--keep-flows/--no-keep-flows",
                help="Keep the raw flow parts (default) or commit the rollup alone; not given: "
                "as the store's last ingest did.",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        """Thin wrapper: parse options, call ``analyzer.store.pipeline`` or ``analyzer.live``."""
        paths = paths or []
        if keep_flows is not None and (follow or relay):
            raise UsageError(
                "--keep-flows/--no-keep-flows are for file ingests; a live ingest keeps its "
                "flows (docs/live.md)"
            )
        request = live.LiveRequest(
            paths=paths, fmt=fmt, follow=follow, commit_every=commit_every, relay=relay,
            since=since, tls=tls, tls_ca_cert=tls_ca_cert, tls_client_cert=tls_client_cert,
            tls_client_key=tls_client_key, tls_server_name=tls_server_name,
            namespaces=namespaces, verdicts=verdicts,
        )
        streaming = request.wanted or since or tls or namespaces or verdicts
        if engine != "spark" and (master is not None or spark_conf):
            raise UsageError("--master and --spark-conf need --engine spark")
        if engine == "spark" and streaming:
            raise UsageError("--engine spark ingests files; --follow/--relay run locally")
        if streaming:
            live.run_live(request, store, output == "json")
            return
        if not paths:
            raise UsageError("give a flow file, a directory or - (stdin), or --relay HOST:PORT")
        if engine == "spark":
            from analyzer.spark import spark_ingest
            from analyzer.spark.session import parse_conf

            summary = spark_ingest(
                store,
                paths,
                fmt,
                master=master,
                conf=parse_conf(spark_conf or []),
                keep_flows=keep_flows,
            )
        else:
            with _progress(paths) as progress:
                summary = ingest(store, paths, fmt, progress, keep_flows=keep_flows)
        if output == "json":
            doc = {
                "store": summary.store,
                "created": summary.created,
                "rows_loaded": summary.rows_loaded,
                "inputs": [_input_json(i) for i in summary.inputs],
            }
            typer.echo(json.dumps(doc, indent=2))
        else:
            _print_ingest(summary)

    @app.command(
        "stats",
        help=(
            "Summarise the flow store: flows by format, verdict and namespace, the time window, "
            "skipped records and why, and warnings such as lost events."
        ),
    )
    @handle_errors
    def stats_command(
        store: StoreOption = DEFAULT_STORE,
        output: str = output_option(
            "table", "table", "json", help="table for people, json for scripts."
        ),
        top: Annotated[
            int, typer.Option("--top", metavar="N", help="Namespaces to list in the table.")
        ] = 20,
    ) -> None:
        """Thin wrapper: open the store, compute ``store_stats``, print it."""
        stats = store_stats(FlowStore.open(store))
        if output == "json":
            typer.echo(json.dumps(stats.to_json(), indent=2))
        else:
            _print_stats(stats, top)


def _section(title: str, rows: tuple[tuple[str, int, int], ...], limit: int | None = None) -> None:
    typer.echo(f"\n{title:<28} {'rows':>12} {'flows':>12}")
    shown = rows if limit is None else rows[:limit]
    for key, n_rows, n_flows in shown:
        typer.echo(f"  {key:<26} {n_rows:>12,} {n_flows:>12,}")
    if limit is not None and len(rows) > limit:
        typer.echo(f"  ... {len(rows) - limit} more")


def _print_stats(stats: StoreStats, top: int) -> None:
    typer.echo(f"store      {stats.store}")
    typer.echo(f"inputs     {stats.inputs}")
    if stats.inputs_without_raw_flows or not stats.keeps_raw_flows:
        next_ingest = "keeps" if stats.keeps_raw_flows else "does not keep"
        typer.echo(
            f"raw flows  not kept for {stats.inputs_without_raw_flows} of {stats.inputs} inputs "
            f"(--no-keep-flows: the rollup alone answers); the next ingest {next_ingest} them"
        )
    typer.echo(f"rows       {stats.rows:,} (standing for {stats.flows:,} flows)")
    if stats.first is not None:
        last = stats.last.isoformat() if stats.last else "?"
        typer.echo(f"window     {stats.first.isoformat()} .. {last}")
    _section("format", stats.by_format)
    _section("verdict", stats.by_verdict)
    _section("namespace (src or dst)", stats.by_namespace, top)
    if stats.skipped:
        typer.echo("\nskipped records")
        for reason, count in stats.skipped:
            typer.echo(f"  {count:>10,}  {reason}")
    if stats.warnings:
        typer.echo("\nwarnings")
        for path, warning in stats.warnings:
            typer.echo(f"  {path}: {warning}")
