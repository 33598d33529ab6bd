"""Hubble Relay as a byte source: ``observer.Observer/GetFlows`` -> jsonpb lines.

Each ``GetFlowsResponse`` is printed as ``hubble observe -o jsonpb`` prints it (protobuf's JSON
with the proto field names: ``{"flow": {...}, "node_name": ..., "time": ...}``), one per line,
and those lines go through the same Hubble reader as a file: there is no second normaliser.

The stream is read on a background thread into a bounded queue. When it drops (relay restart,
port-forward closed, network) the source reconnects with exponential backoff and asks for the
flows since the newest one it received, minus a small overlap (the relay merges nodes whose
clocks and buffers differ). Responses of the overlap that were received before are recognised
by their bytes and dropped here; across runs, the streaming ingest's record deduplication
drops flows the store holds already. Nothing is counted twice.
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from analyzer.errors import IngestError, UsageError
from analyzer.live.proto import hubble_observer_pb2 as pb
from analyzer.live.sources import Read

__all__ = ["GET_FLOWS", "RelayConfig", "RelaySource", "build_request", "response_line"]

GET_FLOWS = "/observer.Observer/GetFlows"
RESUME_OVERLAP = timedelta(seconds=10)
QUEUE_LINES = 20_000  # bounded: a slow store stalls the stream, it never grows memory
READ_BYTES = 1 << 20
# Errors that retrying cannot fix.
_FATAL = {
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
}
_VERDICTS = frozenset(pb.Verdict.keys()) - {"VERDICT_UNKNOWN"}
_END = object()


@dataclass(frozen=True, slots=True)
class RelayConfig:
    address: str  # HOST:PORT
    follow: bool = False
    since: datetime | None = None  # --since
    resume_since: datetime | None = None  # the last committed flow of this relay, if any
    namespaces: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()
    tls: bool = False
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    server_name: str | None = None
    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    # Failed attempts in a row before giving up (None: never, the default with --follow).
    max_attempts: int | None = None


def build_request(config: RelayConfig, since: datetime | None) -> pb.GetFlowsRequest:
    """The request ``hubble observe`` would send for these options: ``--namespace NS`` is
    ``source_pod: ["NS/"]`` OR ``destination_pod: ["NS/"]``, ``--verdict`` applies to both."""
    for v in config.verdicts:
        if v not in _VERDICTS:
            choices = ", ".join(sorted(_VERDICTS))
            raise UsageError(f"unknown --verdict {v!r} (choose from {choices})")
    verdicts = [pb.Verdict.Value(v) for v in config.verdicts]
    whitelist: list[pb.FlowFilter] = []
    if config.namespaces:
        prefixes = [f"{ns}/" for ns in config.namespaces]
        whitelist.append(pb.FlowFilter(source_pod=prefixes, verdict=verdicts))
        whitelist.append(pb.FlowFilter(destination_pod=prefixes, verdict=verdicts))
    elif verdicts:
        whitelist.append(pb.FlowFilter(verdict=verdicts))
    request = pb.GetFlowsRequest(follow=config.follow, whitelist=whitelist)
    if since is not None:
        stamp = Timestamp()
        stamp.FromDatetime(since.astimezone(UTC).replace(tzinfo=None))
        request.since.CopyFrom(stamp)
    return request


def response_line(response: pb.GetFlowsResponse) -> bytes:
    """One response as ``hubble observe -o jsonpb`` prints it, newline-terminated."""
    doc = json_format.MessageToDict(response, preserving_proto_field_name=True)
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def _address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--relay {text!r} is not HOST:PORT (e.g. localhost:4245)")
    return text


def _read_pem(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc


class RelaySource:
    """Flows from Hubble Relay (or a single agent's Hubble server) as jsonpb lines."""

    kind = "relay"

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.address = _address(config.address)
        self.label = f"relay://{self.address}"
        if (config.client_cert is None) != (config.client_key is None):
            raise UsageError("--tls-client-cert and --tls-client-key go together")
        self._credentials = None
        if config.tls:
            self._credentials = grpc.ssl_channel_credentials(
                root_certificates=_read_pem(config.ca_cert, "CA certificate"),
                private_key=_read_pem(config.client_key, "client key"),
                certificate_chain=_read_pem(config.client_cert, "client certificate"),
            )
        self._since = config.since
        if self._since is None and config.resume_since is not None:
            # flows of the last seconds may still have been in flight, out of time order
            self._since = config.resume_since - RESUME_OVERLAP
        build_request(config, self._since)  # option errors now, not on the thread
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_LINES)
        self._notes: list[str] = []
        self._notes_lock = threading.Lock()
        self._stop = threading.Event()
        self._call: Any = None
        self._last_seen: datetime | None = None  # newest flow time received
        self._handed: datetime | None = None  # newest flow time handed on by read()
        # Responses received in the last RESUME_OVERLAP (hash of the line -> its time): what a
        # reconnect asks for again.
        self._recent: dict[int, datetime] = {}
        self._recent_kept = 0
        self.resent = 0
        self.connects = 0
        self._thread = threading.Thread(target=self._pump, name="relay", daemon=True)
        self._thread.start()

    # --- the background thread -------------------------------------------------------------

    def _note(self, message: str) -> None:
        with self._notes_lock:
            self._notes.append(message)

    def _channel(self) -> grpc.Channel:
        options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", 64 << 20)]
        if self._credentials is None:
            return grpc.insecure_channel(self.address, options=options)
        if self.config.server_name:
            options.append(("grpc.ssl_target_name_override", self.config.server_name))
        return grpc.secure_channel(self.address, self._credentials, options=options)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        failures = 0
        backoff = self.config.initial_backoff
        while not self._stop.is_set():
            since = self._since
            if self._last_seen is not None:
                since = self._last_seen - RESUME_OVERLAP
            try:
                request = build_request(self.config, since)
                received = self._stream(request)
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                code, details = exc.code(), exc.details()
                if code in _FATAL:
                    self._put(IngestError(f"{code.name}: {details}", path=self.label))
                    return
                received = getattr(exc, "received", 0)
                failures = 0 if received else failures + 1
                if received:
                    backoff = self.config.initial_backoff
                limit = self.config.max_attempts
                if limit is not None and failures >= limit:
                    self._put(
                        IngestError(
                            f"relay unavailable after {failures} attempts ({code.name}: "
                            f"{details})",
                            path=self.label,
                        )
                    )
                    return
                resume = "" if self._last_seen is None else (
                    f", resuming from {(self._last_seen - RESUME_OVERLAP).isoformat()}"
                )
                self._note(
                    f"relay stream lost ({code.name}: {details}); reconnecting in "
                    f"{backoff:g} s{resume}"
                )
                if self._stop.wait(backoff):
                    return
                backoff = min(self.config.max_backoff, backoff * 2)
                continue
            except Exception as exc:  # noqa: BLE001 - reported on the main thread
                self._put(exc)
                return
            if not self.config.follow:
                self._put(_END)
                return
            # A followed stream ended without an error (relay shutting down): reconnect.
            failures = 0 if received else failures + 1
            self._note("relay closed the stream; reconnecting")
            if self._stop.wait(backoff):
                return

    def _stream(self, request: pb.GetFlowsRequest) -> int:
        received = 0
        with self._channel() as channel:
            call = channel.unary_stream(
                GET_FLOWS,
                request_serializer=pb.GetFlowsRequest.SerializeToString,
                response_deserializer=pb.GetFlowsResponse.FromString,
            )(request)
            self._call = call
            self.connects += 1
            try:
                for response in call:
                    if response.HasField("flow") and response.flow.HasField("time"):
                        when = response.flow.time.ToDatetime(tzinfo=UTC)
                    elif response.HasField("time"):
                        when = response.time.ToDatetime(tzinfo=UTC)
                    else:
                        when = None
                    line = response_line(response)
                    received += 1
                    if when is not None and self._seen_before(line, when):
                        self.resent += 1
                        continue
                    if not self._put((line, when)):
                        call.cancel()
                        return received
            except grpc.RpcError as exc:
                exc.received = received
                raise
            finally:
                self._call = None
        return received

    def _seen_before(self, line: bytes, when: datetime) -> bool:
        key = hash(line)
        if key in self._recent:
            return True
        self._recent[key] = when
        if self._last_seen is None or when > self._last_seen:
            self._last_seen = when
        if len(self._recent) >= 2 * max(1024, self._recent_kept):
            cutoff = self._last_seen - RESUME_OVERLAP
            self._recent = {k: t for k, t in self._recent.items() if t >= cutoff}
            self._recent_kept = len(self._recent)
        return False

    # --- ByteSource --------------------------------------------------------------------------

    def read(self, timeout: float) -> Read:
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return Read()
        parts: list[bytes] = []
        size = 0
        while True:
            if item is _END:
                if parts:  # hand over what came before the end first
                    self._queue.put(_END)
                    break
                return Read(ended=True)
            if isinstance(item, BaseException):
                if parts:
                    self._queue.put(item)
                    break
                raise item
            line, when = item
            parts.append(line)
            size += len(line)
            if when is not None and (self._handed is None or when > self._handed):
                self._handed = when
            if size >= READ_BYTES:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        return Read(b"".join(parts))

    def resume_point(self, tail_bytes: int, next_line: int) -> dict[str, Any]:
        since = None if self._handed is None else self._handed.isoformat()
        return {"since": since, "line": next_line}

    def notes(self) -> list[str]:
        with self._notes_lock:
            out, self._notes = self._notes, []
        return out

    def close(self) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(timeout=5)
