"""The committed generated module matches ``hubble_observer.proto``, and responses print in
the shape ``hubble observe -o jsonpb`` prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from analyzer.live.proto import hubble_observer_pb2 as pb
from analyzer.live.relay import response_line

PROTO_DIR = Path(pb.__file__).resolve().parent


def test_committed_module_is_generated_from_the_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (a dev dependency) regenerates it")
    out = tmp_path / "set.pb"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}",
         f"--descriptor_set_out={out}", str(PROTO_DIR / "hubble_observer.proto")],
        check=True,
    )
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    committed = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    for f in (fresh, committed):
        for message in f.message_type:
            for field in message.field:
                field.ClearField("json_name")
    assert fresh == committed, "run scripts/gen-proto after editing hubble_observer.proto"


def test_field_numbers_of_the_protocol() -> None:
    """Spot checks of the wire numbers (observer.proto, flow.proto) the subset relies on."""
    flow = pb.Flow.DESCRIPTOR.fields_by_name
    numbers = {name: flow[name].number for name in (
        "time", "verdict", "IP", "l4", "source", "destination", "Type", "node_name",
        "is_reply", "traffic_direction", "drop_reason_desc", "trace_observation_point",
        "trace_reason", "egress_allowed_by", "ingress_allowed_by")}
    assert numbers == {
        "time": 1, "verdict": 2, "IP": 5, "l4": 6, "source": 8, "destination": 9, "Type": 10,
        "node_name": 11, "is_reply": 26, "traffic_direction": 22, "drop_reason_desc": 25,
        "trace_observation_point": 24, "trace_reason": 36, "egress_allowed_by": 21001,
        "ingress_allowed_by": 21002,
    }
    resp = pb.GetFlowsResponse.DESCRIPTOR.fields_by_name
    assert (resp["flow"].number, resp["lost_events"].number, resp["node_name"].number,
            resp["time"].number) == (1, 3, 1000, 1001)
    req = pb.GetFlowsRequest.DESCRIPTOR.fields_by_name
    assert (req["follow"].number, req["whitelist"].number, req["since"].number) == (3, 6, 7)


def test_a_response_prints_as_hubble_observe_jsonpb() -> None:
    resp = pb.GetFlowsResponse(node_name="kind-worker")
    resp.time.FromJsonString("2024-03-22T15:49:59.077269678Z")
    resp.flow.time.FromJsonString("2024-03-22T15:49:59.077269678Z")
    resp.flow.verdict = pb.DROPPED
    resp.flow.drop_reason_desc = pb.POLICY_DENIED
    resp.flow.l4.TCP.destination_port = 8080
    resp.flow.l4.TCP.flags.SYN = True
    resp.flow.source.labels.append("k8s:app=web")
    resp.flow.is_reply.value = False
    resp.flow.Type = pb.L3_L4
    resp.flow.egress_allowed_by.add(name="p", namespace="shop", revision=7)
    doc = json.loads(response_line(resp))
    assert doc == {
        "flow": {
            "time": "2024-03-22T15:49:59.077269678Z",
            "verdict": "DROPPED",
            "drop_reason_desc": "POLICY_DENIED",
            "l4": {"TCP": {"destination_port": 8080, "flags": {"SYN": True}}},
            "source": {"labels": ["k8s:app=web"]},
            "is_reply": False,
            "Type": "L3_L4",
            "egress_allowed_by": [{"name": "p", "namespace": "shop", "revision": "7"}],
        },
        "node_name": "kind-worker",
        "time": "2024-03-22T15:49:59.077269678Z",
    }
