"""The building blocks of Hubble lines: endpoints, timestamps, UUIDs and one event.

Lines are built from pre-serialised fragments (endpoint JSON per pod, ethernet and interface
per pod, one policy list per policy): encoding every event with ``json`` would be ten times
slower. Key order follows Go protojson (proto declaration order), as in the real samples.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

from analyzer.generate.model import Pod, TrafficPath
from analyzer.generate.scenario import Scenario

__all__ = [
    "ACK", "FINACK", "FLAGS", "OVERLAY_IF", "PSHACK", "RST", "RSTACK", "SYN", "SYNACK",
    "EventWriter", "dns_answer", "lost_line", "noise_line",
]  # fmt: skip

SYN, SYNACK, ACK, PSHACK, FINACK, RST, RSTACK = range(7)
FLAGS = (
    ('{"SYN":true}', "SYN"),
    ('{"SYN":true,"ACK":true}', "SYN, ACK"),
    ('{"ACK":true}', "ACK"),
    ('{"PSH":true,"ACK":true}', "ACK, PSH"),
    ('{"FIN":true,"ACK":true}', "ACK, FIN"),
    ('{"RST":true}', "RST"),
    ('{"RST":true,"ACK":true}', "ACK, RST"),
)
_WORLD = '{"identity":2,"labels":["reserved:world"]}'
_HOST = '{"identity":1,"labels":["reserved:host"]}'
_APISERVER = '{"identity":7,"labels":["reserved:kube-apiserver","reserved:remote-node"]}'
_UNKNOWN = '{"labels":["reserved:unknown"]}'
OVERLAY_IF = ',"interface":{"index":4,"name":"cilium_vxlan"}'
_VOLATILE = (
    "pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index", "pod-template-generation",
)  # fmt: skip


def _cilium_labels(scenario: Scenario, pod: Pod, service_account: str) -> list[str]:
    """Identity labels as Cilium's default label filter leaves them (§3.3)."""
    labels = [f"k8s:{k}={v}" for k, v in pod.labels.items() if k not in _VOLATILE]
    ns_labels = scenario.namespace_labels(pod.namespace)
    labels += [f"k8s:io.cilium.k8s.namespace.labels.{k}={v}" for k, v in ns_labels.items()]
    labels += [
        "k8s:io.cilium.k8s.policy.cluster=default",
        f"k8s:io.cilium.k8s.policy.serviceaccount={service_account}",
        f"k8s:io.kubernetes.pod.namespace={pod.namespace}",
    ]
    return sorted(labels)


class EventWriter:
    """Serialises Hubble events for one scenario (owns the random stream for UUIDs)."""

    def __init__(self, scenario: Scenario, rng: random.Random) -> None:
        self.s = scenario
        self.rng = rng
        self.dns = scenario.config.dns_visibility
        self.verdicts = scenario.config.policy_verdicts
        self.local: dict[str, str] = {}
        self.remote: dict[str, str] = {}
        self.gw_mac = {
            n.name: ":".join(["02"] + [f"{rng.randrange(256):02x}" for _ in range(5)])
            for n in scenario.nodes
        }
        for w in scenario.workloads:
            for p in w.pods:
                labels = _cilium_labels(scenario, p, w.service_account)
                body = [
                    f'"identity":{w.identity},"namespace":"{p.namespace}","labels":'
                    + json.dumps(labels, separators=(",", ":"))
                    + f',"pod_name":"{p.name}"'
                ]
                if w.kind:
                    body.append(f',"workloads":[{{"name":"{w.name}","kind":"{w.kind}"}}]')
                self.remote[p.name + "@" + p.namespace] = "{" + "".join(body) + "}"
                self.local[p.name + "@" + p.namespace] = (
                    f'{{"ID":{p.endpoint_id},' + "".join(body) + "}"
                )
        # Per-pod fragments, keyed by pod name (unique across namespaces in this cluster).
        self.eth_in: dict[str, str] = {}
        self.eth_out: dict[str, str] = {}
        self.iface: dict[str, str] = {}
        for p in scenario.pods:
            gw = self.gw_mac[p.node.name]
            self.eth_in[p.name] = f',"ethernet":{{"source":"{gw}","destination":"{p.mac}"}}'
            self.eth_out[p.name] = f',"ethernet":{{"source":"{p.mac}","destination":"{gw}"}}'
            self.iface[p.name] = f',"interface":{{"index":{p.ifindex},"name":"{p.ifname}"}}'
        self._sec_cache: dict[int, str] = {}
        # The DNS proxy's port, per agent; derived from the node, not the shared generator,
        # so that existing output stays byte-identical.
        self.proxy_port = {n.name: 30000 + (n.index * 7919 + 4441) % 20000 for n in scenario.nodes}
        self._allowed_cache: dict[tuple[str, ...], str] = {}
        self.policy_uid = {
            name: self.uuid() for name in ("allow-backend-ingress", "allow-backend-metrics")
        }

    # --- fragments ------------------------------------------------------------------------

    def uuid(self) -> str:
        bits = self.rng.getrandbits(128)
        h = "%032x" % bits  # noqa: UP031 - the fastest spelling, on the hot path
        # Version 4, RFC 4122 variant (8, 9, a or b).
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[bits & 3]}{h[17:20]}-{h[20:]}"

    def ts(self, ns: int) -> str:
        sec, frac = divmod(ns, 1_000_000_000)
        prefix = self._sec_cache.get(sec)
        if prefix is None:
            if len(self._sec_cache) > 50_000:
                self._sec_cache.clear()
            prefix = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._sec_cache[sec] = prefix
        if frac == 0:
            return prefix + "Z"
        if frac % 1_000_000 == 0:
            return f"{prefix}.{frac // 1_000_000:03d}Z"
        if frac % 1000 == 0:
            return f"{prefix}.{frac // 1000:06d}Z"
        return f"{prefix}.{frac:09d}Z"

    def ep(self, pod: Pod | None, local: bool, kind: str) -> str:
        if pod is None:
            return {"world": _WORLD, "host": _HOST, "kube-apiserver": _APISERVER}[kind]
        key = pod.name + "@" + pod.namespace
        return self.local[key] if local else self.remote[key]

    def event(
        self, t: int, node: str, sip: str, dip: str, l4: str, src: str, dst: str, *,
        verdict: str = "FORWARDED", et: str = '{"type":4}', direction: str | None = None,
        point: str | None = None, is_reply: bool | None = None, reason: str | None = None,
        summary: str = "", eth: str = "", iface: str = "", names: str = "", drop: bool = False,
        match_type: int = 0, allowed_by: str = "", flow_type: str = "L3_L4", l7: str = "",
        proxy_port: int = 0,
    ) -> str:  # fmt: skip
        ts = self.ts(t)
        parts = ['{"flow":{"time":"', ts, '","uuid":"', self.uuid(), '","verdict":"', verdict, '"']
        if drop:
            parts.append(',"drop_reason":133')
        parts += [eth, ',"IP":{"source":"', sip, '","destination":"', dip,
                  '","ipVersion":"IPv4"},"l4":', l4, ',"source":', src, ',"destination":', dst,
                  ',"Type":"', flow_type, '","node_name":"', node, '"', names, l7]  # fmt: skip
        if is_reply:
            parts.append(',"reply":true')
        parts += [',"event_type":', et]
        if direction:
            parts += [',"traffic_direction":"', direction, '"']
        if match_type:
            parts.append(f',"policy_match_type":{match_type}')
        if point:
            parts += [',"trace_observation_point":"', point, '"']
        if reason:
            parts += [',"trace_reason":"', reason, '"']
        if drop:
            parts.append(',"drop_reason_desc":"POLICY_DENIED"')
        if is_reply is not None:
            parts.append(',"is_reply":true' if is_reply else ',"is_reply":false')
        if proxy_port:
            iface += f',"proxy_port":{proxy_port}'
        parts += [iface, ',"Summary":"', summary, '"', allowed_by,
                  '},"node_name":"', node, '","time":"', ts, '"}\n']  # fmt: skip
        return "".join(parts)

    def allowed_by(self, path: TrafficPath) -> str:
        cached = self._allowed_cache.get(path.enforced_by)
        if cached is None:
            cached = self._allowed_cache[path.enforced_by] = self._allowed_by(path)
        return cached

    def _allowed_by(self, path: TrafficPath) -> str:
        items = []
        for ref in path.enforced_by[:1]:
            ns, name = ref.split("/", 1)
            labels = json.dumps(
                [
                    "k8s:io.cilium.k8s.policy.derived-from=NetworkPolicy",
                    f"k8s:io.cilium.k8s.policy.name={name}",
                    f"k8s:io.cilium.k8s.policy.namespace={ns}",
                    f"k8s:io.cilium.k8s.policy.uid={self.policy_uid.get(name, '')}",
                ],
                separators=(",", ":"),
            )
            items.append(f'{{"name":"{name}","namespace":"{ns}","labels":{labels},"revision":"3"}}')
        return ',"ingress_allowed_by":[' + ",".join(items) + "]" if items else ""

    # --- connections ----------------------------------------------------------------------


def dns_answer(s: Scenario, query: str) -> list[str]:
    name = query.rstrip(".")
    if name in s.external_ips:
        return list(s.external_ips[name])
    if name == "kubernetes.default.svc.cluster.local":
        return ["10.96.0.1"]
    # A stable ClusterIP per service name.
    h = sum((i + 1) * ord(c) for i, c in enumerate(name))
    return [f"10.96.{(h >> 8) % 250 + 1}.{h % 250 + 2}"]


def noise_line(h: EventWriter, t: int) -> str:
    """An IPv6 router solicitation dropped as UNSUPPORTED_L3_PROTOCOL: not policy evidence."""
    rng = h.rng
    w = rng.choice(h.s.workloads)
    pod = rng.choice(w.pods)
    mac = pod.mac
    a, b, c, d = (rng.getrandbits(n) for n in (16, 8, 8, 16))
    ll = f"fe80::{a:x}:{b:x}ff:fe{c:x}:{d:x}"
    ts = h.ts(t)
    src = h.ep(pod, False, "")
    return (
        f'{{"flow":{{"time":"{ts}","uuid":"{h.uuid()}","verdict":"DROPPED","drop_reason":139,'
        f'"ethernet":{{"source":"{mac}","destination":"33:33:00:00:00:02"}},'
        f'"IP":{{"source":"{ll}","destination":"ff02::2","ipVersion":"IPv6"}},'
        f'"l4":{{"ICMPv6":{{"type":133}}}},"source":{src},"destination":{_UNKNOWN},'
        f'"Type":"L3_L4","node_name":"{pod.node.name}","event_type":{{"type":1,"sub_type":139}},'
        f'"traffic_direction":"INGRESS","drop_reason_desc":"UNSUPPORTED_L3_PROTOCOL",'
        f'"Summary":"ICMPv6 RouterSolicitation"}},"node_name":"{pod.node.name}","time":"{ts}"}}\n'
    )


def lost_line(h: EventWriter, t: int) -> str:
    node = h.rng.choice(h.s.nodes).name
    ts = h.ts(t)
    lost = h.rng.randrange(1, 400)
    return (
        f'{{"lost_events":{{"source":"PERF_EVENT_RING_BUFFER","num_events_lost":"{lost}",'
        f'"cpu":{h.rng.randrange(2)}}},"node_name":"{node}","time":"{ts}"}}\n'
    )
