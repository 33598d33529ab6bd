"""``analyzer ingest --follow`` and ``analyzer ingest --relay``: options, signals, status.

The options are declared here and added to ``ingest`` (``ingest_cmd.py``); ``run_live`` is
what ``ingest`` calls when one of them is given. The loop itself is ``analyzer.live``.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from analyzer.errors import UsageError
from analyzer.live import FileFollower, StdinSource, parse_commit_every, parse_since
from analyzer.live.cadence import DEFAULT_COMMIT_EVERY
from analyzer.live.sources import ByteSource
from analyzer.store import MANIFEST, FlowStore

if TYPE_CHECKING:
    # analyzer.live.follow (ingest readers, store writer) loads on first use: see below
    from analyzer.live.follow import LiveEvent, LiveStatus

__all__ = [
    "CommitEveryOption",
    "FollowOption",
    "RelayOption",
    "SinceOption",
    "TlsOption",
    "TlsCaOption",
    "TlsCertOption",
    "TlsKeyOption",
    "TlsServerNameOption",
    "NamespaceFilterOption",
    "VerdictFilterOption",
    "DEFAULT_COMMIT_EVERY",
    "LiveRequest",
    "run_live",
]

FollowOption = Annotated[
    bool,
    typer.Option(
        "--follow",
        "-F",
        help="Keep reading as the input grows (a file like tail -F, with rotation; stdin until "
        "it closes; the relay until interrupted), committing every --commit-every. Ctrl-C or "
        "SIGTERM commits what was read and exits 0.",
    ),
]
CommitEveryOption = Annotated[
    str,
    typer.Option(
        "--commit-every",
        metavar="INTERVAL",
        help="With --follow or --relay: commit every INTERVAL, a duration (30s, 5m) or a "
        "number of records (10000).",
    ),
]
RelayOption = Annotated[
    str | None,
    typer.Option(
        "--relay",
        metavar="ADDRESS",
        help="Read flows from Hubble Relay's gRPC API at HOST:PORT (e.g. localhost:4245 after "
        "`cilium hubble port-forward`) instead of files.",
        show_default=False,
    ),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="SINCE",
        help="With --relay: flows since 1h, 24h, ... or an RFC 3339 time (default: resume "
        "after the last committed flow of this relay, else now).",
        show_default=False,
    ),
]
TlsOption = Annotated[
    bool, typer.Option("--tls", help="With --relay: connect with TLS (implied by --tls-*).")
]
TlsCaOption = Annotated[
    Path | None,
    typer.Option(
        "--tls-ca-cert", metavar="FILE", help="CA certificate (PEM) to verify the relay with.",
        show_default=False,
    ),
]
TlsCertOption = Annotated[
    Path | None,
    typer.Option(
        "--tls-client-cert", metavar="FILE", help="Client certificate (PEM) for mutual TLS.",
        show_default=False,
    ),
]
TlsKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--tls-client-key", metavar="FILE", help="Client private key (PEM) for mutual TLS.",
        show_default=False,
    ),
]
TlsServerNameOption = Annotated[
    str | None,
    typer.Option(
        "--tls-server-name",
        metavar="NAME",
        help="Server name to verify the relay's certificate against (e.g. "
        "ui.hubble-relay.cilium.io).",
        show_default=False,
    ),
]
NamespaceFilterOption = Annotated[
    list[str] | None,
    typer.Option(
        "--namespace",
        "-n",
        metavar="NAMESPACE",
        help="With --relay: only flows from or to this namespace (repeatable).",
        show_default=False,
    ),
]
VerdictFilterOption = Annotated[
    list[str] | None,
    typer.Option(
        "--verdict",
        metavar="VERDICT",
        help="With --relay: only flows with this verdict (FORWARDED, DROPPED, AUDIT, "
        "REDIRECTED, ERROR, TRACED, TRANSLATED; repeatable).",
        show_default=False,
    ),
]


NON_FOLLOW_ATTEMPTS = 5


class LiveRequest:
    """The live options of one ``ingest`` call, checked."""

    def __init__(
        self,
        *,
        paths: list[str],
        fmt: str,
        follow: bool,
        commit_every: str,
        relay: str | None,
        since: str | None,
        tls: bool,
        tls_ca_cert: Path | None,
        tls_client_cert: Path | None,
        tls_client_key: Path | None,
        tls_server_name: str | None,
        namespaces: list[str] | None,
        verdicts: list[str] | None,
    ) -> None:
        self.paths = paths
        self.fmt = fmt
        self.follow = follow
        self.relay = relay
        self.commit_every = commit_every
        self.since = since
        self.tls = tls or any(
            v is not None for v in (tls_ca_cert, tls_client_cert, tls_client_key, tls_server_name)
        )
        self.tls_ca_cert = tls_ca_cert
        self.tls_client_cert = tls_client_cert
        self.tls_client_key = tls_client_key
        self.tls_server_name = tls_server_name
        self.namespaces = namespaces or []
        self.verdicts = verdicts or []

    @property
    def wanted(self) -> bool:
        """Whether this is a live ingest (else a plain file ingest)."""
        return self.follow or self.relay is not None

    def check(self) -> None:
        relay_only = {
            "--since": self.since is not None,
            "--tls": self.tls,
            "--namespace": bool(self.namespaces),
            "--verdict": bool(self.verdicts),
        }
        if self.relay is None:
            given = [name for name, on in relay_only.items() if on]
            if given:
                raise UsageError(f"{given[0]} needs --relay HOST:PORT")
            if len(self.paths) != 1:
                raise UsageError("--follow reads one input: a file, or - for standard input")
        elif self.paths:
            raise UsageError("--relay reads from the relay: give no PATH with it")
        elif self.fmt not in ("auto", "hubble"):
            raise UsageError("--relay reads Hubble flows: --format must be auto or hubble")
        elif not self.follow and self.since is None:
            raise UsageError(
                "--relay without --follow needs --since (e.g. --since 1h): which flows to read"
            )


def _existing(store: Path) -> FlowStore | None:
    """The store if there is one (resume points); never created here."""
    return FlowStore.open(store) if (Path(store) / MANIFEST).is_file() else None


def _source(req: LiveRequest, store: Path) -> ByteSource:
    from analyzer.live.follow import last_resume

    if req.relay is not None:
        from analyzer.live.relay import RelayConfig, RelaySource

        existing = _existing(store)
        since = parse_since(req.since) if req.since is not None else None
        resume = last_resume(existing, "relay", f"relay://{req.relay}") if existing else None
        config = RelayConfig(
            address=req.relay,
            follow=req.follow,
            since=since,
            resume_since=_resume_time(resume),
            namespaces=tuple(req.namespaces),
            verdicts=tuple(v.upper() for v in req.verdicts),
            tls=req.tls,
            ca_cert=req.tls_ca_cert,
            client_cert=req.tls_client_cert,
            client_key=req.tls_client_key,
            server_name=req.tls_server_name,
            # --follow runs for days: a relay restart must not end it. A one-off read gives up.
            max_attempts=None if req.follow else NON_FOLLOW_ATTEMPTS,
        )
        return RelaySource(config)
    path = req.paths[0]
    if path == "-":
        return StdinSource()
    existing = _existing(store)
    resume = last_resume(existing, "file", str(Path(path).absolute())) if existing else None
    return FileFollower(path, resume=resume)


def _resume_time(resume: dict[str, Any] | None) -> datetime | None:
    if not resume or not isinstance(resume.get("since"), str):
        return None
    try:
        return datetime.fromisoformat(str(resume["since"]).replace("Z", "+00:00"))
    except ValueError:
        return None


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set the event (the run commits and ends); a second one interrupts."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class _Printer:
    """A status line on a terminal's stderr; log lines when stderr is not a terminal."""

    HEARTBEAT_SECONDS = 300.0

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.width = 0
        self.last_log = 0.0

    def __call__(self, event: LiveEvent) -> None:
        s = event.status
        if self.interactive:
            if event.kind == "note" and event.message:
                self._line(f"{event.message}\n")
            self._line(_status_text(s))
            return
        if event.kind == "commit" and event.commit is not None:
            c = event.commit
            dup = f", {c.duplicates:,} already stored" if c.duplicates else ""
            skipped = sum(r.count for r in c.entry.skipped)
            skip = f", {skipped:,} skipped" if skipped else ""
            rate = s.flows / max(s.elapsed, 1e-9)
            self._log(
                f"committed {c.entry.rows:,} rows{dup}{skip} in {c.seconds:.2f} s "
                f"({s.committed:,} rows in {s.commits:,} commit{'s' if s.commits != 1 else ''}, "
                f"{rate:,.0f} flows/s)"
            )
        elif event.kind == "note" and event.message:
            self._log(event.message)
        elif event.kind == "status" and s.elapsed - self.last_log >= self.HEARTBEAT_SECONDS:
            self._log(_status_text(s))
            self.last_log = s.elapsed

    def _line(self, text: str) -> None:
        pad = max(0, self.width - len(text))
        sys.stderr.write("\r" + text + " " * pad)
        sys.stderr.flush()
        self.width = 0 if text.endswith("\n") else len(text)

    def _log(self, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        sys.stderr.write(f"{stamp} {text}\n")
        sys.stderr.flush()

    def end(self) -> None:
        if self.interactive and self.width:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _status_text(s: LiveStatus) -> str:
    dup = f", {s.duplicates:,} already stored" if s.duplicates else ""
    return (
        f"{s.source}: {s.flows:,} flows read, {s.committed:,} committed "
        f"({s.commits:,} commits, last {s.since_commit:.0f} s ago){dup}, {s.skipped:,} skipped, "
        f"{s.rate:,.0f} flows/s"
    )


def run_live(req: LiveRequest, store: Path, json_output: bool) -> None:
    """Run a streaming ingest to its end; print the summary."""
    from analyzer.live.follow import LiveOptions, run_stream

    req.check()
    cadence = parse_commit_every(req.commit_every)
    if req.since is not None:
        parse_since(req.since)  # a usage error before anything is opened
    options = LiveOptions(fmt="hubble" if req.relay else req.fmt, cadence=cadence)
    source = _source(req, store)
    printer = _Printer(sys.stderr.isatty())
    try:
        with _stop_on_signals() as stop:
            final = run_stream(store, source, options, stop, printer)
    finally:
        printer.end()
    if json_output:
        doc = {
            "store": str(store),
            "source": final.source,
            "format": final.format,
            "lines": final.lines,
            "flows_read": final.flows,
            "duplicates": final.duplicates,
            "rows_committed": final.committed,
            "skipped": final.skipped,
            "commits": final.commits,
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    dup = f", {final.duplicates:,} already in the store" if final.duplicates else ""
    skip = f", {final.skipped:,} skipped" if final.skipped else ""
    typer.echo(
        f"{final.committed:,} rows from {final.source} added to {store} in "
        f"{final.commits:,} commit{'s' if final.commits != 1 else ''} "
        f"({final.flows:,} flows read{dup}{skip})"
    )

