"""A real gRPC server implementing Hubble's ``observer.Observer/GetFlows`` for the tests.

It streams recorded flows (generator output, as ``GetFlowsResponse`` messages) that are at or
after the request's ``since``, honours the whitelist's namespace and verdict filters, can drop
the connection after a number of messages (the first ``drops`` calls end with UNAVAILABLE, as
a relay restart does), and with ``follow`` keeps the call open until the client cancels it.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import json_format

from analyzer.live.proto import hubble_observer_pb2 as pb
from analyzer.live.relay import GET_FLOWS


def load_responses(path: Path, limit: int | None = None) -> list[pb.GetFlowsResponse]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            resp = json_format.ParseDict(doc, pb.GetFlowsResponse(), ignore_unknown_fields=True)
            out.append(resp)
            if limit is not None and len(out) >= limit:
                break
    out.sort(key=lambda r: (r.flow.time.seconds, r.flow.time.nanos))
    return out


def _matches(resp: pb.GetFlowsResponse, request: pb.GetFlowsRequest) -> bool:
    if request.HasField("since") and (
        (resp.flow.time.seconds, resp.flow.time.nanos)
        < (request.since.seconds, request.since.nanos)
    ):
        return False
    if not request.whitelist:
        return True
    for f in request.whitelist:
        if f.verdict and resp.flow.verdict not in f.verdict:
            continue
        if f.source_pod and not any(
            f"{resp.flow.source.namespace}/{resp.flow.source.pod_name}".startswith(p)
            for p in f.source_pod
        ):
            continue
        if f.destination_pod and not any(
            f"{resp.flow.destination.namespace}/{resp.flow.destination.pod_name}".startswith(p)
            for p in f.destination_pod
        ):
            continue
        return True
    return False


@dataclass
class FakeRelay:
    responses: list[pb.GetFlowsResponse]
    drop_after: int = 0  # messages before a dropped connection ...
    drops: int = 0  # ... on this many calls
    requests: list[pb.GetFlowsRequest] = field(default_factory=list)
    sent: int = 0
    server: grpc.Server | None = None
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _get_flows(self, request: pb.GetFlowsRequest, context: grpc.ServicerContext):
        with self._lock:
            self.requests.append(request)
            call_no = len(self.requests)
        count = 0
        for resp in self.responses:
            if not _matches(resp, request):
                continue
            if call_no <= self.drops and count >= self.drop_after:
                context.abort(grpc.StatusCode.UNAVAILABLE, "relay restarting (test)")
            yield resp
            count += 1
            with self._lock:
                self.sent += 1
        while request.follow and context.is_active():
            time.sleep(0.05)

    def start(self, credentials: grpc.ServerCredentials | None = None) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(
            "observer.Observer",
            {
                "GetFlows": grpc.unary_stream_rpc_method_handler(
                    self._get_flows,
                    request_deserializer=pb.GetFlowsRequest.FromString,
                    response_serializer=pb.GetFlowsResponse.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
        address = "127.0.0.1:0"
        if credentials is None:
            self.port = server.add_insecure_port(address)
        else:
            self.port = server.add_secure_port(address, credentials)
        server.start()
        self.server = server
        assert GET_FLOWS == "/observer.Observer/GetFlows"
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=None)
