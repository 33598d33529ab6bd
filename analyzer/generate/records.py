"""The aggregated record the Calico-style generators fill and the renderers print."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AggRecord", "PolicyHit", "Side"]


@dataclass(frozen=True, slots=True)
class Side:
    """One end of an aggregated record."""

    type: str  # wep (pod) or net (anything else)
    namespace: str  # "-" when not namespaced
    name: str  # pod name, or "-" when aggregated away / not a pod
    name_aggr: str  # pod prefix with "*", or pub / pvt
    ip: str | None
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PolicyHit:
    """One step of a Calico policy trace."""

    kind: str  # Profile, NetworkPolicy, EndOfTier
    namespace: str
    name: str
    tier: str
    action: str  # allow / deny
    rule_index: int
    trigger: PolicyHit | None = None


@dataclass(slots=True)
class AggRecord:
    """A record being accumulated over one interval."""

    start: int  # Unix seconds
    end: int
    reporter: str  # src / dst
    action: str  # allow / deny
    node: str
    src: Side
    dst: Side
    proto: str  # tcp / udp
    dst_port: int
    policies: tuple[PolicyHit, ...]
    dest_domains: tuple[str, ...] = ()
    num_flows: int = 0
    started: int = 0
    completed: int = 0
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    pods: set[str] = field(default_factory=set)
