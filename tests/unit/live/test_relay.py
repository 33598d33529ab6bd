"""``--relay``: a real gRPC server in this process streams recorded flows through
``observer.Observer/GetFlows``; the client commits them like a file ingest would, through a
dropped connection, across restarts, with TLS and mutual TLS."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from live_helpers import committed_rows, reference, rows
from relay_server import FakeRelay, load_responses

from analyzer.errors import IngestError, UsageError
from analyzer.live import LiveOptions, run_stream
from analyzer.live.cadence import Cadence
from analyzer.live.proto import hubble_observer_pb2 as pb
from analyzer.live.relay import RelayConfig, RelaySource, build_request

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
OPTIONS = LiveOptions(fmt="hubble", cadence=Cadence(records=700), parse_seconds=0.05)


@pytest.fixture(scope="module")
def responses(capture: Path) -> list[pb.GetFlowsResponse]:
    return load_responses(capture)


@pytest.fixture
def relay(responses: list[pb.GetFlowsResponse]) -> Iterator[FakeRelay]:
    server = FakeRelay(list(responses))
    yield server
    server.stop()


def _config(address: str, **kw: object) -> RelayConfig:
    base: dict[str, object] = {"initial_backoff": 0.05, "max_backoff": 0.2, "max_attempts": 5}
    base.update(kw)
    return RelayConfig(address, **base)  # type: ignore[arg-type]


def test_since_reads_what_a_file_ingest_of_the_same_flows_stores(
    tmp_path: Path, relay: FakeRelay, capture_lines: list[bytes]
) -> None:
    address = relay.start()
    source = RelaySource(_config(address, since=EPOCH))
    final = run_stream(tmp_path / "store", source, OPTIONS, threading.Event())
    assert final.committed == 3000 and final.duplicates == 0
    assert rows(tmp_path / "store").equals(reference(capture_lines, tmp_path))
    request = relay.requests[0]
    assert request.since.ToDatetime(tzinfo=dt.UTC) == EPOCH and not request.follow


def test_a_dropped_stream_resumes_without_duplicates(
    tmp_path: Path, relay: FakeRelay, capture_lines: list[bytes]
) -> None:
    relay.drop_after, relay.drops = 1234, 2  # two relay restarts mid-stream
    address = relay.start()
    source = RelaySource(_config(address, since=EPOCH))
    final = run_stream(tmp_path / "store", source, OPTIONS, threading.Event())
    assert len(relay.requests) == 3
    # the reconnects asked for the flows since the last one received (minus the overlap)
    resumed = [r.since.ToDatetime(tzinfo=dt.UTC) for r in relay.requests[1:]]
    assert all(t > EPOCH for t in resumed)
    assert source.resent > 0  # the overlap was sent again ...
    assert final.committed == 3000  # ... and not stored twice
    assert rows(tmp_path / "store").equals(reference(capture_lines, tmp_path))


def test_follow_until_stopped_then_restart_adds_only_new_flows(
    tmp_path: Path, responses: list[pb.GetFlowsResponse], capture_lines: list[bytes]
) -> None:
    store = tmp_path / "store"
    first = FakeRelay(responses[:1800])
    address = first.start()
    stop = threading.Event()
    result: list[object] = []
    thread = threading.Thread(
        target=lambda: result.append(
            run_stream(store, RelaySource(_config(address, follow=True, since=EPOCH)),
                       OPTIONS, stop)
        ),
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 30
    while committed_rows(store) < 1400 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()  # SIGINT: what was read is committed
    thread.join(timeout=30)
    first.stop()
    stored = committed_rows(store)
    assert 1400 <= stored <= 1800
    # the relay restarted with more flows; --since reaches back over what is stored
    second = FakeRelay(responses)
    address = second.start()
    final = run_stream(store, RelaySource(_config(address, since=EPOCH)), OPTIONS,
                       threading.Event())
    second.stop()
    assert final.duplicates == stored and final.committed == 3000 - stored
    assert rows(store).equals(reference(capture_lines, tmp_path))


def test_filters_become_hubble_whitelist_filters() -> None:
    req = build_request(
        RelayConfig("relay:4245", namespaces=("shop", "dev"), verdicts=("DROPPED",)), None
    )
    assert [list(f.source_pod) for f in req.whitelist] == [["shop/", "dev/"], []]
    assert [list(f.destination_pod) for f in req.whitelist] == [[], ["shop/", "dev/"]]
    assert all(list(f.verdict) == [pb.DROPPED] for f in req.whitelist)
    only_verdict = build_request(RelayConfig("relay:4245", verdicts=("AUDIT",)), None)
    assert len(only_verdict.whitelist) == 1 and not only_verdict.HasField("since")
    with pytest.raises(UsageError, match="unknown --verdict"):
        build_request(RelayConfig("relay:4245", verdicts=("ALLOWED",)), None)


def test_namespace_filter_is_applied_by_the_server(tmp_path: Path, relay: FakeRelay) -> None:
    address = relay.start()
    source = RelaySource(_config(address, since=EPOCH, namespaces=("develop",)))
    run_stream(tmp_path / "store", source, OPTIONS, threading.Event())
    stored = rows(tmp_path / "store")
    assert stored.height > 0
    assert ((stored["src_namespace"] == "develop") | (stored["dst_namespace"] == "develop")).all()


def test_unreachable_and_refusing_relays_fail_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="relay unavailable after 3 attempts"):
        run_stream(tmp_path / "s1", RelaySource(_config("127.0.0.1:1", since=EPOCH,
                                                         max_attempts=3)),
                   OPTIONS, threading.Event())
    server = grpc.server(__import__("concurrent.futures").futures.ThreadPoolExecutor(2))
    port = server.add_insecure_port("127.0.0.1:0")  # no Observer service: UNIMPLEMENTED
    server.start()
    try:
        with pytest.raises(IngestError, match="UNIMPLEMENTED"):
            run_stream(tmp_path / "s2", RelaySource(_config(f"127.0.0.1:{port}", since=EPOCH)),
                       OPTIONS, threading.Event())
    finally:
        server.stop(None)
    with pytest.raises(UsageError, match="not HOST:PORT"):
        RelaySource(_config("relay", since=EPOCH))


# --- TLS ---------------------------------------------------------------------------------------


def _cert(name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
          ca: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    return cert, key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | bytes]:
    """A self-signed CA, a relay certificate for *.hubble-relay.test, a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    ca = _cert("test CA", None, ca=True)
    server = _cert("relay.hubble-relay.test", ca)
    client = _cert("analyzer", ca)
    files: dict[str, Path | bytes] = {}
    for name, data in {
        "ca.pem": _pem(ca[0]),
        "server.pem": _pem(server[0]),
        "server.key": _key_pem(server[1]),
        "client.pem": _pem(client[0]),
        "client.key": _key_pem(client[1]),
    }.items():
        (d / name).write_bytes(data)
        files[name] = d / name
    return files


def _tls_server(
    relay: FakeRelay, pki: dict[str, Path | bytes], *, mutual: bool
) -> str:
    creds = grpc.ssl_server_credentials(
        [(Path(pki["server.key"]).read_bytes(), Path(pki["server.pem"]).read_bytes())],
        root_certificates=Path(pki["ca.pem"]).read_bytes() if mutual else None,
        require_client_auth=mutual,
    )
    return relay.start(creds)


def test_tls_with_a_self_signed_ca(
    tmp_path: Path, relay: FakeRelay, pki: dict[str, Path | bytes]
) -> None:
    address = _tls_server(relay, pki, mutual=False)
    config = _config(address, since=EPOCH, tls=True, ca_cert=pki["ca.pem"],
                     server_name="relay.hubble-relay.test")
    final = run_stream(tmp_path / "store", RelaySource(config), OPTIONS, threading.Event())
    assert final.committed == 3000
    # the wrong server name is refused (certificate verification), never silently accepted
    wrong = _config(address, since=EPOCH, tls=True, ca_cert=pki["ca.pem"],
                    server_name="other.example", max_attempts=2)
    with pytest.raises(IngestError, match="relay unavailable"):
        run_stream(tmp_path / "s2", RelaySource(wrong), OPTIONS, threading.Event())


def test_mutual_tls(tmp_path: Path, relay: FakeRelay, pki: dict[str, Path | bytes]) -> None:
    address = _tls_server(relay, pki, mutual=True)
    config = _config(
        address, since=EPOCH, tls=True, ca_cert=pki["ca.pem"],
        client_cert=pki["client.pem"], client_key=pki["client.key"],
        server_name="relay.hubble-relay.test",
    )
    final = run_stream(tmp_path / "store", RelaySource(config), OPTIONS, threading.Event())
    assert final.committed == 3000
    without = _config(address, since=EPOCH, tls=True, ca_cert=pki["ca.pem"],
                      server_name="relay.hubble-relay.test", max_attempts=2)
    with pytest.raises(IngestError):
        run_stream(tmp_path / "s2", RelaySource(without), OPTIONS, threading.Event())
    with pytest.raises(UsageError, match="go together"):
        RelaySource(_config(address, tls=True, client_cert=pki["client.pem"]))
