"""Calico-style aggregated flow records (Enterprise flows.log, Goldmane, Whisker).

Calico never logs packets: each node's Felix folds connections into one record per
(source aggregate, destination aggregate, port, reporter, action) per flush interval
(5 minutes for flows.log; Goldmane buckets of 15 s). Allowed flows are aggregated by pod
prefix (no IPs, no pod names); denied flows keep IPs and names (aggregation level 1).
Connections are sampled per interval from the path rates; records are rendered by
``calico.py``, ``goldmane.py`` or ``whisker.py``. The capture spans as many intervals as the
requested number of records needs (at least the configured window).
"""

from __future__ import annotations

import functools
import ipaddress
import math
import random
from collections.abc import Callable, Iterator

from analyzer.errors import UsageError
from analyzer.generate.calico import render_calico
from analyzer.generate.goldmane import goldmane_renderer
from analyzer.generate.model import Pod, TrafficPath, Workload
from analyzer.generate.records import AggRecord, PolicyHit, Side
from analyzer.generate.scenario import Scenario
from analyzer.generate.whisker import render_whisker

__all__ = ["aggregate_lines", "INTERVALS"]

INTERVALS: dict[str, int] = {"calico": 300, "goldmane-emitter": 300, "goldmane": 15, "whisker": 15}
_PER_NODE = {"calico"}  # Felix writes a file per node; Goldmane aggregates the cluster


@functools.lru_cache(maxsize=65536)
def _net_name(ip: str) -> str:
    # Felix's rule: RFC 1918 addresses are "pvt", anything else "pub".
    addr = ipaddress.ip_address(ip)
    private = any(addr in ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12",
                                                           "192.168.0.0/16"))  # fmt: skip
    return "pvt" if private else "pub"


def _labels(w: Workload, pods: list[Pod]) -> tuple[str, ...]:
    # Felix keeps the labels common to every pod folded into the record.
    common = dict(pods[0].labels)
    for p in pods[1:]:
        common = {k: v for k, v in common.items() if p.labels.get(k) == v}
    return tuple(sorted(f"{k}={v}" for k, v in common.items()))


def _rule_index(path: TrafficPath) -> int:
    # allow-backend-ingress: frontends are ingress[0], the traefik namespace ingress[1].
    src = path.src.workload
    return 1 if src is not None and src.namespace == "traefik" else 0


def _policies(path: TrafficPath, reporter: str, action: str) -> tuple[PolicyHit, ...]:
    end = path.dst if reporter == "dst" else path.src
    ns = end.workload.namespace if end.workload else "-"
    if reporter == "dst" and path.enforced_by:
        pns, name = path.enforced_by[0].split("/", 1)
        if action == "deny":
            trigger = PolicyHit("NetworkPolicy", pns, name, "default", "deny", -1)
            return (PolicyHit("EndOfTier", "", "", "default", "deny", -1, trigger),)
        return (PolicyHit("NetworkPolicy", pns, name, "default", "allow", _rule_index(path)),)
    return (PolicyHit("Profile", "", f"kns.{ns}", "__PROFILE__", "allow", 0),)


class _Aggregator:
    def __init__(self, scenario: Scenario, fmt: str, rng: random.Random) -> None:
        self.s = scenario
        self.rng = rng
        self.per_node = fmt in _PER_NODE
        self.interval = INTERVALS[fmt]
        self._by_prefix = {(w.namespace, w.pod_prefix()): w for w in scenario.workloads}
        self._label_cache: dict[tuple[str, str, frozenset[str]], tuple[str, ...]] = {}

    def side(self, path: TrafficPath, which: str, pod: Pod | None, ip: str, detailed: bool) -> Side:
        end = path.src if which == "src" else path.dst
        w = end.workload
        if w is None or pod is None:
            return Side("net", "-", "-", _net_name(ip), ip if detailed else None, ())
        return Side("wep", w.namespace, pod.name if detailed else "-", w.pod_prefix(),
                    pod.ip if detailed else None, ())  # fmt: skip

    def interval_records(self, paths: list[tuple[TrafficPath, int]], start: int) -> list[AggRecord]:
        """Fold ``count`` connections of each path into the interval's records."""
        rng = self.rng
        recs: dict[tuple[object, ...], AggRecord] = {}
        for path, count in paths:
            if count <= 0:
                continue
            for cpod, spod, ip, n in self._split(path, count):
                self._add(recs, path, cpod, spod, ip, n, start)
        out = list(recs.values())
        for rec in out:
            spread = 1 + rec.num_flows // 5
            rec.started = max(1, rec.num_flows - int(spread * rng.random()))
            rec.completed = max(0, rec.num_flows - int(spread * rng.random()))
        return out

    def _split(
        self, path: TrafficPath, count: int
    ) -> Iterator[tuple[Pod | None, Pod | None, str, int]]:
        rng = self.rng
        srcs: list[Pod | None] = list(path.src.workload.pods) if path.src.workload else [None]
        if path.dst.workload is not None:
            dsts: list[Pod | None] = [
                p for p in path.dst.workload.pods if not path.dst_pod or p.name == path.dst_pod
            ]
        else:
            dsts = [None]
        ips = (path.dst_ip,) if path.dst_ip else (path.dst.ips or ("",))
        if count <= 12:
            for _ in range(count):
                spod = rng.choice(dsts)
                cpod = rng.choice(srcs)
                if path.src.kind == "host" and spod is not None:
                    cpod = None
                yield cpod, spod, self._peer_ip(path, cpod, spod, ips), 1
            return
        share = count / (len(srcs) * len(dsts))
        for cpod in srcs:
            for spod in dsts:
                n = int(share * rng.uniform(0.7, 1.3) + rng.random())
                if n:
                    yield cpod, spod, self._peer_ip(path, cpod, spod, ips), n

    def _peer_ip(self, path: TrafficPath, cpod: Pod | None, spod: Pod | None,
                 ips: tuple[str, ...]) -> str:  # fmt: skip
        if path.src.kind == "host" and spod is not None:
            return spod.node.router_ip
        if path.src.workload is None:
            return self.rng.choice(path.src.ips)
        return self.rng.choice(ips)

    def _add(self, recs: dict[tuple[object, ...], AggRecord], path: TrafficPath,
             cpod: Pod | None, spod: Pod | None, ip: str, n: int, start: int) -> None:  # fmt: skip
        rng = self.rng
        denied = path.outcome == "denied"
        reporters = []
        if path.src.workload is not None and cpod is not None:
            reporters.append(("src", cpod.node.name, "allow"))
        if path.dst.workload is not None and spod is not None and path.outcome != "unanswered":
            reporters.append(("dst", spod.node.name, "deny" if denied else "allow"))
        src_ip = ip if path.src.workload is None else (cpod.ip if cpod else ip)
        dst_ip = spod.ip if spod else ip
        for reporter, node, action in reporters:
            detailed = action == "deny"  # level 1 for denied flows: IPs and names kept
            # Felix's aggregation key: allowed flows fold by pod prefix (or pub/pvt), denied
            # flows keep each source and destination endpoint.
            if detailed:
                ends: tuple[str, str] = (cpod.name if cpod else src_ip,
                                         spod.name if spod else dst_ip)  # fmt: skip
            else:
                src_end = path.src.workload.key if path.src.workload else _net_name(src_ip)
                dst_end = path.dst.workload.key if path.dst.workload else _net_name(dst_ip)
                ends = (src_end, dst_end)
            key = (reporter, node if self.per_node else "", action, path.protocol, path.port,
                   ends)  # fmt: skip
            rec = recs.get(key)
            if rec is None:
                rec = AggRecord(
                    start=start, end=start + self.interval, reporter=reporter, action=action,
                    node=node, src=self.side(path, "src", cpod, src_ip, detailed),
                    dst=self.side(path, "dst", spod, dst_ip, detailed),
                    proto=path.protocol.lower(), dst_port=path.port,
                    policies=_policies(path, reporter, action),
                    dest_domains=(path.dst.dns_name,) if path.dst.dns_name else (),
                )  # fmt: skip
                recs[key] = rec
            rec.num_flows += n
            if cpod is not None:
                rec.pods.add("s:" + cpod.name)
            if spod is not None:
                rec.pods.add("d:" + spod.name)
            answered = path.outcome in ("allowed", "reset") and not denied
            # random() is several times cheaper than randrange() on this hot path.
            r = rng.random()
            pk = n * (4 + int(14 * r) if answered and path.data else 1 + int(3 * r))
            by = pk * (60 + int(840 * rng.random()))
            back = by * 3  # responses are larger than requests ...
            if path.category == "exfil":
                by, back = by * 40, by // 20  # ... except for an upload: full-size segments out
            if reporter == "src":
                rec.packets_out += pk
                rec.bytes_out += by
                if answered:
                    rec.packets_in += pk - n
                    rec.bytes_in += back
            else:
                rec.packets_in += pk
                rec.bytes_in += by
                if answered:
                    rec.packets_out += pk - n
                    rec.bytes_out += back

    def finish(self, rec: AggRecord) -> AggRecord:
        """Fill the labels: the intersection over the pods folded into the record."""
        for which in ("src", "dst"):
            side = rec.src if which == "src" else rec.dst
            if side.type != "wep":
                continue
            prefix = "s:" if which == "src" else "d:"
            names = frozenset(n[2:] for n in rec.pods if n.startswith(prefix))
            key = (side.namespace, side.name_aggr, names)
            labels = self._label_cache.get(key)
            if labels is None:
                w = self._by_prefix[(side.namespace, side.name_aggr)]
                pods = [p for p in w.pods if p.name in names] or list(w.pods)
                labels = self._label_cache[key] = _labels(w, pods)
            labelled = Side(side.type, side.namespace, side.name, side.name_aggr, side.ip, labels)
            if which == "src":
                rec.src = labelled
            else:
                rec.dst = labelled
        return rec


def _counts(paths: tuple[TrafficPath, ...], lam: float, rng: random.Random,
            force: bool) -> list[tuple[TrafficPath, int]]:  # fmt: skip
    out = []
    for p in paths:
        mean = p.rate * lam * rng.uniform(0.8, 1.2)
        n = int(mean) + (1 if rng.random() < mean - int(mean) else 0)
        out.append((p, max(n, 1) if force else n))
    return out


def _calibrate(
    scenario: Scenario, fmt: str, legit: tuple[TrafficPath, ...], hour: float, target: float
) -> tuple[float, float]:
    """Activity factor (<= 1) giving about ``target`` records per interval, and the rate.

    Records grow sublinearly with activity (busy paths saturate at one record per node and
    reporter), so search instead of scaling linearly. Probes use their own generators.
    """

    probes = max(3, min(24, 4000 // max(1, len(legit))))  # sparse intervals are noisy

    def measure(f: float) -> float:
        sizes = [
            len(_Aggregator(scenario, fmt, random.Random(k)).interval_records(
                _counts(legit, hour * f, random.Random(100 + k), False), 0))
            for k in range(probes)
        ]  # fmt: skip
        return max(sum(sizes) / len(sizes), 0.5)

    full = measure(1.0)
    if full <= target:
        return 1.0, full
    lo, hi = 1e-4, 1.0
    for _ in range(14):
        mid = math.sqrt(lo * hi)
        if measure(mid) > target:
            hi = mid
        else:
            lo = mid
    return lo, measure(lo)


def aggregate_lines(
    scenario: Scenario,
    flows: int,
    fmt: str,
    render: Callable[[AggRecord], str] | None = None,
    chunk: int = 5_000,
) -> Iterator[str]:
    """Yield chunks of exactly ``flows`` aggregated records rendered in ``fmt``.

    Every legitimate path is active in the first interval; the attacks (if any) fall at
    60 % of the capture. Raises UsageError when ``flows`` cannot hold both.
    """
    if flows < 1:
        raise UsageError(f"--flows must be positive, not {flows}")
    if render is None:
        render = _renderer(fmt)
    rng = random.Random(scenario.config.seed * 7_919 + len(fmt))
    agg = _Aggregator(scenario, fmt, rng)
    interval = agg.interval
    start0 = int(scenario.config.start.timestamp())
    start0 -= start0 % interval
    hour = interval / 3600
    legit = scenario.legit_paths
    first = agg.interval_records(_counts(legit, hour, rng, force=True), start0)
    attack_counts = [(p, max(1, int(p.rate))) for p in scenario.attack_paths]
    attack = agg.interval_records(attack_counts, 0)  # timed when it is written
    reserve = len(attack)
    if flows < len(first) + reserve:
        need = math.ceil((len(first) + reserve) / 100) * 100
        raise UsageError(
            f"--flows {flows} is too small for this scenario in {fmt}: the first interval and "
            f"the attacks need at least {need} records"
        )
    # Natural activity per interval, scaled down when the window must hold fewer records.
    intervals_min = max(1, math.ceil(scenario.config.window_seconds / interval))
    budget = flows - reserve
    target = (budget - len(first)) / max(1, intervals_min - 1)
    factor, per_interval = _calibrate(scenario, fmt, legit, hour, target)
    lam = hour * factor
    expected_intervals = max(intervals_min, 1 + math.ceil((budget - len(first)) / per_interval))
    attack_at = int(expected_intervals * 0.6) if reserve else -1

    emitted_legit = 0
    attack_done = not reserve
    buf: list[str] = []
    i = 0
    recs = first
    while True:
        start = start0 + i * interval
        if i > 0:
            recs = agg.interval_records(_counts(legit, lam, rng, force=False), start)
        take = min(len(recs), budget - emitted_legit)
        for rec in recs[:take]:
            buf.append(render(agg.finish(rec)))
        emitted_legit += take
        if not attack_done and (i >= attack_at or emitted_legit >= budget):
            for rec in attack:
                rec.start, rec.end = start, start + interval
                buf.append(render(agg.finish(rec)))
            attack_done = True
        if emitted_legit >= budget and attack_done:
            break
        if len(buf) >= chunk:
            yield "".join(buf)
            buf = []
        i += 1
    yield "".join(buf)


def _renderer(fmt: str) -> Callable[[AggRecord], str]:
    if fmt == "calico":
        return render_calico
    if fmt in ("goldmane", "goldmane-emitter"):
        return goldmane_renderer(emitter=fmt == "goldmane-emitter")
    if fmt == "whisker":
        return render_whisker
    raise UsageError(f"unknown aggregated format {fmt!r}")
