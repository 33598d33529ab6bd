"""Hubble enum numbers (flow.proto) and Cilium label rules, for files that carry integers."""

from __future__ import annotations

__all__ = [
    "VERDICT",
    "DIRECTION",
    "FLOW_TYPE",
    "OBSERVATION_POINT",
    "TRACE_REASON",
    "L7_TYPE",
    "DROP_REASON",
    "TCP_FLAGS",
    "RESERVED_ENTITY",
    "IDENTITY_ENTITY",
]

VERDICT = {
    0: "UNKNOWN",
    1: "FORWARDED",
    2: "DROPPED",
    3: "ERROR",
    4: "AUDIT",
    5: "REDIRECTED",
    6: "TRACED",
    7: "TRANSLATED",
}
DIRECTION = {0: "UNKNOWN", 1: "INGRESS", 2: "EGRESS"}
FLOW_TYPE = {0: "UNKNOWN_TYPE", 1: "L3_L4", 2: "L7", 3: "SOCK"}
OBSERVATION_POINT = {
    0: "UNKNOWN_POINT",
    101: "TO_ENDPOINT",
    1: "TO_PROXY",
    2: "TO_HOST",
    3: "TO_STACK",
    4: "TO_OVERLAY",
    5: "FROM_ENDPOINT",
    6: "FROM_PROXY",
    7: "FROM_HOST",
    8: "FROM_STACK",
    9: "FROM_OVERLAY",
    10: "FROM_NETWORK",
    11: "TO_NETWORK",
    12: "FROM_CRYPTO",
    13: "TO_CRYPTO",
}
TRACE_REASON = {
    0: "TRACE_REASON_UNKNOWN",
    1: "NEW",
    2: "ESTABLISHED",
    3: "REPLY",
    4: "RELATED",
    5: "REOPENED",
    6: "SRV6_ENCAP",
    7: "SRV6_DECAP",
}
L7_TYPE = {0: "UNKNOWN_L7_TYPE", 1: "REQUEST", 2: "RESPONSE", 3: "SAMPLE"}

_DROP_NAMES = (
    "INVALID_SOURCE_MAC INVALID_DESTINATION_MAC INVALID_SOURCE_IP POLICY_DENIED "
    "INVALID_PACKET_DROPPED CT_TRUNCATED_OR_INVALID_HEADER CT_MISSING_TCP_ACK_FLAG "
    "CT_UNKNOWN_L4_PROTOCOL CT_CANNOT_CREATE_ENTRY_FROM_PACKET UNSUPPORTED_L3_PROTOCOL "
    "MISSED_TAIL_CALL ERROR_WRITING_TO_PACKET UNKNOWN_L4_PROTOCOL UNKNOWN_ICMPV4_CODE "
    "UNKNOWN_ICMPV4_TYPE UNKNOWN_ICMPV6_CODE UNKNOWN_ICMPV6_TYPE ERROR_RETRIEVING_TUNNEL_KEY "
    "ERROR_RETRIEVING_TUNNEL_OPTIONS INVALID_GENEVE_OPTION UNKNOWN_L3_TARGET_ADDRESS "
    "STALE_OR_UNROUTABLE_IP NO_MATCHING_LOCAL_CONTAINER_FOUND ERROR_WHILE_CORRECTING_L3_CHECKSUM "
    "ERROR_WHILE_CORRECTING_L4_CHECKSUM CT_MAP_INSERTION_FAILED INVALID_IPV6_EXTENSION_HEADER "
    "IP_FRAGMENTATION_NOT_SUPPORTED SERVICE_BACKEND_NOT_FOUND"
).split()
_DROP_NAMES_160 = (
    "NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT FAILED_TO_INSERT_INTO_PROXYMAP "
    "REACHED_EDT_RATE_LIMITING_DROP_HORIZON UNKNOWN_CONNECTION_TRACKING_STATE "
    "LOCAL_HOST_IS_UNREACHABLE NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION "
    "UNSUPPORTED_L2_PROTOCOL NO_MAPPING_FOR_NAT_MASQUERADE UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE "
    "FIB_LOOKUP_FAILED ENCAPSULATION_TRAFFIC_IS_PROHIBITED INVALID_IDENTITY UNKNOWN_SENDER "
    "NAT_NOT_NEEDED IS_A_CLUSTERIP FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND "
    "FORBIDDEN_ICMPV6_MESSAGE DENIED_BY_LB_SRC_RANGE_CHECK SOCKET_LOOKUP_FAILED "
    "SOCKET_ASSIGN_FAILED PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL POLICY_DENY VLAN_FILTERED "
    "INVALID_VNI INVALID_TC_BUFFER NO_SID MISSING_SRV6_STATE NAT46 NAT64 AUTH_REQUIRED "
    "CT_NO_MAP_FOUND SNAT_NO_MAP_FOUND INVALID_CLUSTER_ID UNSUPPORTED_PROTOCOL_FOR_DSR_ENCAP "
    "NO_EGRESS_GATEWAY UNENCRYPTED_TRAFFIC TTL_EXCEEDED NO_NODE_ID DROP_RATE_LIMITED"
).split()
DROP_REASON: dict[int, str] = {
    0: "DROP_REASON_UNKNOWN",
    **{130 + i: name for i, name in enumerate(_DROP_NAMES)},
    **{160 + i: name for i, name in enumerate(_DROP_NAMES_160)},
}

TCP_FLAGS = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS")

# Most specific first: a managed control plane is [kube-apiserver, world]; id 7 is
# [kube-apiserver, remote-node]; a host running the apiserver is [host, kube-apiserver].
RESERVED_ENTITY = (
    ("reserved:kube-apiserver", "kube-apiserver"),
    ("reserved:host", "host"),
    ("reserved:remote-node", "remote-node"),
    ("reserved:health", "health"),
    ("reserved:ingress", "ingress"),
    ("reserved:init", "init"),
    ("reserved:unmanaged", "unmanaged"),
    ("reserved:world", "world"),
    ("reserved:world-ipv4", "world"),
    ("reserved:world-ipv6", "world"),
    ("reserved:unknown", "unknown"),
)
IDENTITY_ENTITY = {
    1: "host",
    2: "world",
    3: "unmanaged",
    4: "health",
    5: "init",
    6: "remote-node",
    7: "kube-apiserver",
    8: "ingress",
    9: "world",
    10: "world",
}

# Label sources that are not pod labels; the source prefix a pod label carries.
NON_POD_SOURCE = r"^(?:reserved|cidr|fqdn|cidrgroup):"
SOURCE_PREFIX = r"^(?:k8s|container|any|unspec):"
# Cilium bookkeeping (not user labels): policy/serviceaccount/cluster, the pod namespace,
# and namespace labels (those move to their own column).
BOOKKEEPING = r"^(?:io\.cilium\.k8s\.|io\.kubernetes\.pod\.namespace=)"
NS_LABEL_PREFIX = "io.cilium.k8s.namespace.labels."
NS_LABEL_FULL = "k8s:io.kubernetes.pod.namespace="
