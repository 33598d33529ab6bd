"""Hubble flow lines as ``hubble observe -o json`` / the Hubble exporter write them.

One envelope per line, ``{"flow":{...},"node_name":...,"time":...}``, protojson with proto
field names, enum names and zero values omitted (docs/hubble-flow-format.md §1-§2). One TCP
connection between pods on two nodes yields several events: the request leaving the client
node (TO_OVERLAY, EGRESS), arriving at the server (TO_ENDPOINT, INGRESS), the reply leaving the
server node (TO_OVERLAY without direction or ``is_reply``, as real agents print it), the reply
delivered to the client (TO_ENDPOINT, EGRESS, ``is_reply`` true), data and FIN packets, a
policy-verdict event where the server is policy-enforced, and drop events with SYN
retransmits where policy denies. ``hubble_events.py`` serialises each event.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from analyzer.generate.hubble_events import (
    ACK,
    FINACK,
    FLAGS,
    OVERLAY_IF,
    PSHACK,
    RST,
    RSTACK,
    SYN,
    SYNACK,
    EventWriter,
    dns_answer,
    lost_line,
    noise_line,
)
from analyzer.generate.model import Endpoint, Pod, TrafficPath
from analyzer.generate.scenario import Scenario
from analyzer.generate.schedule import Schedule

__all__ = ["hubble_lines"]


def _connection(h: EventWriter, path: TrafficPath, t0: int, out: list[str]) -> None:
    """Append the events of one connection (or DNS exchange) on ``path`` starting at t0."""
    rng = h.rng
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
    c = _Conn(h, path, src_pod, dst_pod, sip, dip, sport, out)
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
        self, h: EventWriter, path: TrafficPath, cpod: Pod | None, spod: Pod | None,
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
        flag_json = FLAGS[flags][0]
        return f'{{"TCP":{{"source_port":{sp},"destination_port":{dp},"flags":{flag_json}}}}}'

    def request(self, t: int, flags: int | None, reason: str, at_server: bool = True) -> None:
        h, cpod, spod = self.h, self.cpod, self.spod
        l4 = self.l4(False, flags)
        summary = "UDP" if flags is None else "TCP Flags: " + FLAGS[flags][1]
        if cpod is not None and not self.same_node:
            point = "TO_OVERLAY" if spod is not None else "TO_STACK"
            iface = OVERLAY_IF if spod is not None else ""
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
        summary = "UDP" if flags is None else "TCP Flags: " + FLAGS[flags][1]
        if spod is not None and not self.same_node:
            if cpod is not None:
                # Real agents print the server-side overlay leg of a reply with neither
                # traffic_direction nor is_reply: consumers must fall back to TCP flags.
                self.out.append(h.event(
                    t, spod.node.name, self.sip, self.cip, l4, h.ep(spod, True, ""),
                    h.ep(cpod, False, ""), point="TO_OVERLAY", summary=summary,
                    et='{"type":4,"sub_type":4}', iface=OVERLAY_IF,
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
        l4 = self.l4(False, SYN if self.path.protocol == "TCP" else None)
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
            t + 175_000, spod.node.name, self.cip, self.sip, self.l4(False, SYN),
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
                self.request(t + delay, SYN, "NEW", at_server=False)
                if k == 0:
                    self.verdict(t, allowed=False)
                self.drop(t + delay)
            return
        if outcome == "unanswered":
            for delay in (0, 1_000_000_000, 3_000_000_000)[: 2 + rng.randrange(2)]:
                self.request(t + delay, SYN, "NEW", at_server=False)
            return
        rtt = 400_000 + int(600_000 * rng.random())
        self.request(t, SYN, "NEW")
        self.verdict(t, allowed=True)
        if outcome == "reset":
            self.reply(t + rtt, RSTACK)
            return
        self.reply(t + rtt, SYNACK)
        t += 2 * rtt
        if self.path.data and rng.random() < 0.7:
            self.request(t, ACK, "ESTABLISHED")  # the handshake's last step
            t += 20_000
        if not self.path.data:
            self.request(t, RST, "ESTABLISHED")  # a scanner tears down the half-open port
            return
        bulk = self.path.category == "exfil"
        for _ in range(12 + rng.randrange(12) if bulk else 1 + rng.randrange(3)):
            self.request(t, PSHACK, "ESTABLISHED")
            t += 1_000_000 + int(40_000_000 * rng.random())
            self.reply(t, PSHACK)
            t += rtt
        if rng.random() < 0.85:
            self.request(t, FINACK, "ESTABLISHED")
            self.reply(t + rtt, FINACK)

    def udp_exchange(self, t: int) -> None:
        rng = self.h.rng
        queries = self.path.dns_queries if self.path.port == 53 else ()
        query = rng.choice(queries) if queries else ""
        cpod = self.cpod
        if query and self.h.dns and cpod is not None:
            # With DNS visibility the query is first redirected to the node's DNS proxy,
            # which then forwards it with the pod's address (the legs below).
            self.out.append(self.h.event(
                t - 40_000, cpod.node.name, self.cip, self.sip, self.l4(False, None),
                self.h.ep(cpod, True, ""), self.h.ep(self.spod, self.same_node, self.dst_kind),
                direction="EGRESS", point="TO_PROXY", is_reply=False, reason="NEW",
                summary="UDP", et='{"type":4,"sub_type":1}', iface=self.h.iface[cpod.name],
                eth=self.h.eth_out[cpod.name], proxy_port=self.h.proxy_port[cpod.node.name],
            ))  # fmt: skip
        self.request(t, None, "NEW")
        rtt = 300_000 + int(2_000_000 * rng.random())
        if query and self.h.dns and cpod is not None:
            self.dns_l7(t + 50_000, query, rtt)
        if self.path.outcome == "allowed":
            self.reply(t + rtt, None)

    def dns_l7(self, t: int, query: str, rtt: int) -> None:
        h, cpod, spod = self.h, self.cpod, self.spod
        assert cpod is not None
        qtype = "AAAA" if h.rng.random() < 0.3 else "A"
        ips = dns_answer(h.s, query) if qtype == "A" else []
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


def hubble_lines(scenario: Scenario, flows: int, chunk: int = 4_000) -> Iterator[str]:
    """Yield chunks of exactly ``flows`` Hubble flow lines (plus any lost-events lines).

    Connections are scheduled by :class:`~analyzer.generate.schedule.Schedule`; the last
    connection is cut off at the limit, as a capture window cuts real traffic.
    """
    rng = random.Random(scenario.config.seed * 1_000_003 + 17)
    h = EventWriter(scenario, rng)
    sched = Schedule(scenario, flows, rng, events_per_connection=_expected_events)
    noise = scenario.config.noise
    emitted = 0
    buf: list[str] = []
    pending_lost = sorted(rng.random() for _ in range(scenario.config.lost_events))
    for path, t in sched:
        before = len(buf)
        if noise and rng.random() < 0.003:
            buf.append(noise_line(h, t))
        _connection(h, path, t, buf)
        emitted += len(buf) - before
        while pending_lost and pending_lost[0] * flows <= emitted:
            pending_lost.pop(0)
            buf.append(lost_line(h, t))
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
        return 4.0 if path.port != 53 else 7.0
    return {"denied": 7.0, "unanswered": 3.0, "reset": 4.0}.get(path.outcome, 12.0)
