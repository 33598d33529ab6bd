"""Hubble flow lines as ``hubble observe -o json`` / the Hubble exporter write them.

One envelope per line, ``{"flow":{...},"node_name":...,"time":...}``, protojson with proto
field names, enum names and zero values omitted (docs/hubble-flow-format.md §1-§2). One TCP
connection between pods on two nodes yields several events: the request leaving the client
node (TO_OVERLAY, EGRESS), arriving at the server (TO_ENDPOINT, INGRESS), the reply leaving the
server node (TO_OVERLAY without direction or ``is_reply``, as real agents print it), the reply
delivered to the client (TO_ENDPOINT, EGRESS, ``is_reply`` true), data and FIN packets, a
policy-verdict event where the server is policy-enforced, and drop events with SYN
retransmits where policy denies. Lines are built from pre-serialised fragments: JSON encoding
per event would be ten times slower.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime

from analyzer.generate.model import Endpoint, Pod, TrafficPath
from analyzer.generate.scenario import Scenario
from analyzer.generate.schedule import Schedule

__all__ = ["hubble_lines"]

_SYN, _SYNACK, _ACK, _PSHACK, _FINACK, _RST, _RSTACK = range(7)
_FLAGS = (
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
_OVERLAY_IF = ',"interface":{"index":4,"name":"cilium_vxlan"}'
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


class _Hubble:
    """Turns scheduled connections into event lines."""

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
        self._allowed_cache: dict[tuple[str, ...], str] = {}
        self.policy_uid = {
            name: self._uuid() for name in ("allow-backend-ingress", "allow-backend-metrics")
        }

    # --- fragments ------------------------------------------------------------------------

    def _uuid(self) -> str:
        bits = self.rng.getrandbits(128)
        h = "%032x" % bits  # noqa: UP031 - the fastest spelling, on the hot path
        # Version 4, RFC 4122 variant (8, 9, a or b).
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[bits & 3]}{h[17:20]}-{h[20:]}"

    def _ts(self, ns: int) -> str:
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
    ) -> str:  # fmt: skip
        ts = self._ts(t)
        parts = ['{"flow":{"time":"', ts, '","uuid":"', self._uuid(), '","verdict":"', verdict, '"']
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

    def connection(self, path: TrafficPath, t0: int, out: list[str]) -> None:
        """Append the events of one connection (or DNS exchange) on ``path`` starting at t0."""
        rng = self.rng
        src_pod = rng.choice(path.src.workload.pods) if path.src.workload else None
        dst_pod = _pick_dst(path, rng)
        if path.src.kind == "host":
            assert dst_pod is not None
            sip = dst_pod.node.router_ip
        elif src_pod is not None:
            sip = src_pod.ip
        else:
            sip = rng.choice(path.src.ips)
        if dst_pod is not None:
            dip = dst_pod.ip
        elif path.dst_ip:
            dip = path.dst_ip
        else:
            dip = rng.choice(path.dst.ips)
        sport = 32768 + int(28232 * rng.random())  # Linux ip_local_port_range
        c = _Conn(self, path, src_pod, dst_pod, sip, dip, sport, out)
        if path.protocol == "UDP":
            c.udp_exchange(t0)
        else:
            c.tcp(t0)


def _pick_dst(path: TrafficPath, rng: random.Random) -> Pod | None:
    w = path.dst.workload
    if w is None:
        return None
    if path.dst_pod:
        for p in w.pods:
            if p.name == path.dst_pod:
                return p
    return rng.choice(w.pods)


class _Conn:
    """One connection: knows where each side lives and which node sees which packet."""

    def __init__(
        self, h: _Hubble, path: TrafficPath, cpod: Pod | None, spod: Pod | None,
        cip: str, sip: str, sport: int, out: list[str],
    ) -> None:  # fmt: skip
        self.h, self.path, self.cpod, self.spod, self.out = h, path, cpod, spod, out
        self.cip, self.sip, self.cport, self.sport = cip, sip, sport, path.port
        self.same_node = cpod is not None and spod is not None and cpod.node is spod.node
        dst: Endpoint = path.dst
        src: Endpoint = path.src
        self.dst_kind, self.src_kind = dst.kind, src.kind
        self.names = ""
        self.rnames = ""
        if h.dns and dst.dns_name and cpod is not None:
            self.names = f',"destination_names":["{dst.dns_name}"]'
            self.rnames = f',"source_names":["{dst.dns_name}"]'

    def l4(self, reply: bool, flags: int | None) -> str:
        if reply:
            sp, dp = self.sport, self.cport
        else:
            sp, dp = self.cport, self.sport
        if flags is None:
            return f'{{"UDP":{{"source_port":{sp},"destination_port":{dp}}}}}'
        flag_json = _FLAGS[flags][0]
        return f'{{"TCP":{{"source_port":{sp},"destination_port":{dp},"flags":{flag_json}}}}}'

    def request(self, t: int, flags: int | None, reason: str, at_server: bool = True) -> None:
        h, cpod, spod = self.h, self.cpod, self.spod
        l4 = self.l4(False, flags)
        summary = "UDP" if flags is None else "TCP Flags: " + _FLAGS[flags][1]
        if cpod is not None and not self.same_node:
            point = "TO_OVERLAY" if spod is not None else "TO_STACK"
            iface = _OVERLAY_IF if spod is not None else ""
            self.out.append(h.event(
                t, cpod.node.name, self.cip, self.sip, l4, h.ep(cpod, True, ""),
                h.ep(spod, False, self.dst_kind), direction="EGRESS", point=point,
                is_reply=False, reason=reason, summary=summary, iface=iface,
                eth=h.eth_out[cpod.name],
                et='{"type":4,"sub_type":4}' if spod is not None else '{"type":4,"sub_type":3}',
                names=self.names,
            ))  # fmt: skip
        if spod is not None and at_server:
            self.out.append(h.event(
                t + 180_000, spod.node.name, self.cip, self.sip, l4,
                h.ep(cpod, self.same_node, self.src_kind), h.ep(spod, True, ""),
                direction="INGRESS", point="TO_ENDPOINT", is_reply=False, reason=reason,
                summary=summary,
                iface=h.iface[spod.name],
                eth=h.eth_in[spod.name],
            ))  # fmt: skip

    def reply(self, t: int, flags: int | None) -> None:
        h, cpod, spod = self.h, self.cpod, self.spod
        l4 = self.l4(True, flags)
        summary = "UDP" if flags is None else "TCP Flags: " + _FLAGS[flags][1]
        if spod is not None and not self.same_node:
            if cpod is not None:
                # Real agents print the server-side overlay leg of a reply with neither
                # traffic_direction nor is_reply: consumers must fall back to TCP flags.
                self.out.append(h.event(
                    t, spod.node.name, self.sip, self.cip, l4, h.ep(spod, True, ""),
                    h.ep(cpod, False, ""), point="TO_OVERLAY", summary=summary,
                    et='{"type":4,"sub_type":4}', iface=_OVERLAY_IF,
                    eth=h.eth_out[spod.name],
                ))  # fmt: skip
            else:
                self.out.append(h.event(
                    t, spod.node.name, self.sip, self.cip, l4, h.ep(spod, True, ""),
                    h.ep(None, False, self.src_kind), direction="INGRESS", point="TO_STACK",
                    is_reply=True, reason="REPLY", summary=summary, et='{"type":4,"sub_type":3}',
                    eth=h.eth_out[spod.name],
                ))  # fmt: skip
        if cpod is not None:
            self.out.append(h.event(
                t + 150_000, cpod.node.name, self.sip, self.cip, l4,
                h.ep(spod, self.same_node, self.dst_kind), h.ep(cpod, True, ""),
                direction="EGRESS", point="TO_ENDPOINT", is_reply=True, reason="REPLY",
                summary=summary, names=self.rnames,
                iface=h.iface[cpod.name],
                eth=h.eth_in[cpod.name],
            ))  # fmt: skip

    def verdict(self, t: int, allowed: bool) -> None:
        h, spod = self.h, self.spod
        if spod is None or not h.verdicts or not self.path.enforced_by:
            return
        src = h.ep(self.cpod, self.same_node, self.src_kind)
        eth = h.eth_in[spod.name]
        l4 = self.l4(False, _SYN if self.path.protocol == "TCP" else None)
        summary = "TCP Flags: SYN" if self.path.protocol == "TCP" else "UDP"
        if allowed:
            self.out.append(h.event(
                t + 170_000, spod.node.name, self.cip, self.sip, l4, src, h.ep(spod, True, ""),
                et='{"type":5}', direction="INGRESS", match_type=2, is_reply=False,
                summary=summary, eth=eth, allowed_by=h.allowed_by(self.path),
            ))  # fmt: skip
        else:
            self.out.append(h.event(
                t + 170_000, spod.node.name, self.cip, self.sip, l4, src, h.ep(spod, True, ""),
                verdict="DROPPED", et='{"type":5}', direction="INGRESS", summary=summary,
                eth=eth, drop=True,
            ))  # fmt: skip

    def drop(self, t: int) -> None:
        h, spod = self.h, self.spod
        assert spod is not None
        self.out.append(h.event(
            t + 175_000, spod.node.name, self.cip, self.sip, self.l4(False, _SYN),
            h.ep(self.cpod, self.same_node, self.src_kind), h.ep(spod, True, ""),
            verdict="DROPPED", et='{"type":1,"sub_type":133}', direction="INGRESS",
            summary="TCP Flags: SYN", drop=True,
            eth=h.eth_in[spod.name],
        ))  # fmt: skip

    def tcp(self, t: int) -> None:
        rng = self.h.rng
        outcome = self.path.outcome
        if outcome == "denied":
            # The SYN leaves the client, is dropped at the server, and is retransmitted.
            for k, delay in enumerate((0, 1_000_000_000, 3_000_000_000)[: 2 + rng.randrange(2)]):
                self.request(t + delay, _SYN, "NEW", at_server=False)
                if k == 0:
                    self.verdict(t, allowed=False)
                self.drop(t + delay)
            return
        if outcome == "unanswered":
            for delay in (0, 1_000_000_000, 3_000_000_000)[: 2 + rng.randrange(2)]:
                self.request(t + delay, _SYN, "NEW", at_server=False)
            return
        rtt = 400_000 + int(600_000 * rng.random())
        self.request(t, _SYN, "NEW")
        self.verdict(t, allowed=True)
        if outcome == "reset":
            self.reply(t + rtt, _RSTACK)
            return
        self.reply(t + rtt, _SYNACK)
        t += 2 * rtt
        if self.path.data and rng.random() < 0.7:
            self.request(t, _ACK, "ESTABLISHED")  # the handshake's last step
            t += 20_000
        if not self.path.data:
            self.request(t, _RST, "ESTABLISHED")  # a scanner tears down the half-open port
            return
        for _ in range(1 + rng.randrange(3)):
            self.request(t, _PSHACK, "ESTABLISHED")
            t += 1_000_000 + int(40_000_000 * rng.random())
            self.reply(t, _PSHACK)
            t += rtt
        if rng.random() < 0.85:
            self.request(t, _FINACK, "ESTABLISHED")
            self.reply(t + rtt, _FINACK)

    def udp_exchange(self, t: int) -> None:
        rng = self.h.rng
        queries = self.path.dns_queries if self.path.port == 53 else ()
        query = rng.choice(queries) if queries else ""
        self.request(t, None, "NEW")
        rtt = 300_000 + int(2_000_000 * rng.random())
        if query and self.h.dns and self.cpod is not None:
            self.dns_l7(t + 50_000, query, rtt)
        if self.path.outcome == "allowed":
            self.reply(t + rtt, None)

    def dns_l7(self, t: int, query: str, rtt: int) -> None:
        h, cpod, spod = self.h, self.cpod, self.spod
        assert cpod is not None
        qtype = "AAAA" if h.rng.random() < 0.3 else "A"
        ips = _answer(h.s, query) if qtype == "A" else []
        cep, sep = h.ep(cpod, True, ""), h.ep(spod, self.same_node, self.dst_kind)
        self.out.append(h.event(
            t, cpod.node.name, self.cip, self.sip, self.l4(False, None), cep, sep,
            et='{"type":129}', direction="EGRESS", is_reply=False, flow_type="L7",
            summary=f"DNS Query {query} {qtype}",
            l7=f',"l7":{{"type":"REQUEST","dns":{{"query":"{query}","observation_source":"proxy","qtypes":["{qtype}"]}}}}',
        ))  # fmt: skip
        ip_json = ",".join(f'"{ip}"' for ip in ips)
        answer = f'"ips":[{ip_json}],"ttl":30,' if ips else ""
        rr = f',"rrtypes":["{qtype}"]' if ips else ""
        shown = ",".join(ips)
        self.out.append(h.event(
            t + rtt, cpod.node.name, self.sip, self.cip, self.l4(True, None), sep, cep,
            et='{"type":129}', direction="EGRESS", is_reply=True, flow_type="L7",
            summary=f'DNS Answer \\"{shown}\\" TTL: 30 (Proxy {query} {qtype})',
            l7=(f',"l7":{{"type":"RESPONSE","latency_ns":"{rtt}","dns":{{"query":"{query}",'
                f'{answer}"observation_source":"proxy","qtypes":["{qtype}"]{rr}}}}}'),
        ))  # fmt: skip


def _answer(s: Scenario, query: str) -> list[str]:
    name = query.rstrip(".")
    if name in s.external_ips:
        return list(s.external_ips[name])
    if name == "kubernetes.default.svc.cluster.local":
        return ["10.96.0.1"]
    # A stable ClusterIP per service name.
    h = sum((i + 1) * ord(c) for i, c in enumerate(name))
    return [f"10.96.{(h >> 8) % 250 + 1}.{h % 250 + 2}"]


def _noise(h: _Hubble, t: int) -> str:
    """An IPv6 router solicitation dropped as UNSUPPORTED_L3_PROTOCOL: not policy evidence."""
    rng = h.rng
    w = rng.choice(h.s.workloads)
    pod = rng.choice(w.pods)
    mac = pod.mac
    a, b, c, d = (rng.getrandbits(n) for n in (16, 8, 8, 16))
    ll = f"fe80::{a:x}:{b:x}ff:fe{c:x}:{d:x}"
    ts = h._ts(t)
    src = h.ep(pod, False, "")
    return (
        f'{{"flow":{{"time":"{ts}","uuid":"{h._uuid()}","verdict":"DROPPED","drop_reason":139,'
        f'"ethernet":{{"source":"{mac}","destination":"33:33:00:00:00:02"}},'
        f'"IP":{{"source":"{ll}","destination":"ff02::2","ipVersion":"IPv6"}},'
        f'"l4":{{"ICMPv6":{{"type":133}}}},"source":{src},"destination":{_UNKNOWN},'
        f'"Type":"L3_L4","node_name":"{pod.node.name}","event_type":{{"type":1,"sub_type":139}},'
        f'"traffic_direction":"INGRESS","drop_reason_desc":"UNSUPPORTED_L3_PROTOCOL",'
        f'"Summary":"ICMPv6 RouterSolicitation"}},"node_name":"{pod.node.name}","time":"{ts}"}}\n'
    )


def _lost(h: _Hubble, t: int) -> str:
    node = h.rng.choice(h.s.nodes).name
    ts = h._ts(t)
    lost = h.rng.randrange(1, 400)
    return (
        f'{{"lost_events":{{"source":"PERF_EVENT_RING_BUFFER","num_events_lost":"{lost}",'
        f'"cpu":{h.rng.randrange(2)}}},"node_name":"{node}","time":"{ts}"}}\n'
    )


def hubble_lines(scenario: Scenario, flows: int, chunk: int = 20_000) -> Iterator[str]:
    """Yield chunks of exactly ``flows`` Hubble flow lines (plus any lost-events lines).

    Connections are scheduled by :class:`~analyzer.generate.schedule.Schedule`; the last
    connection is cut off at the limit, as a capture window cuts real traffic.
    """
    rng = random.Random(scenario.config.seed * 1_000_003 + 17)
    h = _Hubble(scenario, rng)
    sched = Schedule(scenario, flows, rng, events_per_connection=_expected_events)
    noise = scenario.config.noise
    emitted = 0
    buf: list[str] = []
    pending_lost = sorted(rng.random() for _ in range(scenario.config.lost_events))
    for path, t in sched:
        before = len(buf)
        if noise and rng.random() < 0.003:
            buf.append(_noise(h, t))
        h.connection(path, t, buf)
        emitted += len(buf) - before
        while pending_lost and pending_lost[0] * flows <= emitted:
            pending_lost.pop(0)
            buf.append(_lost(h, t))
        sched.progress(emitted)
        if emitted >= flows:
            extra = emitted - flows
            # Cut the last connection; keep lost-events lines, which are not flows.
            while extra > 0:
                for i in range(len(buf) - 1, -1, -1):
                    if not buf[i].startswith('{"lost_events"'):
                        del buf[i]
                        break
                extra -= 1
            yield "".join(buf)
            return
        if len(buf) >= chunk:
            yield "".join(buf)
            buf = []
    yield "".join(buf)


def _expected_events(path: TrafficPath) -> float:
    if path.protocol == "UDP":
        return 4.0 if path.port != 53 else 6.0
    return {"denied": 7.0, "unanswered": 3.0, "reset": 4.0}.get(path.outcome, 12.0)
