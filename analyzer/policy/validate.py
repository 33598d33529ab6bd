"""Field validation shared by the policy parsers: Kubernetes syntax rules, with field paths.

The parsers walk a manifest with a :class:`Collector`; each check records a problem at the
field path it concerns (``spec.ingress[0].from[1].ipBlock.cidr``) and returns a usable value or
``None``, so one manifest reports all its problems at once.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from analyzer.k8s_syntax import label_key_error, label_value_error
from analyzer.policy.model import (
    OPERATORS,
    PROTOCOLS,
    IPBlock,
    LabelRequirement,
    LabelSelector,
    PolicyProblem,
    Unsupported,
)

__all__ = [
    "Collector",
    "parse_selector",
    "parse_cidr",
    "parse_ip_block",
    "parse_protocol",
    "parse_port_value",
    "label_key_error",
    "label_value_error",
]

_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


@dataclass(slots=True)
class Collector:
    """Problems and unsupported features found while parsing one manifest."""

    file: str
    policy: str
    problems: list[PolicyProblem] = field(default_factory=list)
    unsupported: list[Unsupported] = field(default_factory=list)

    def problem(self, path: str, message: str) -> None:
        self.problems.append(PolicyProblem(self.file, self.policy, path, message))

    def skip(self, path: str, feature: str, message: str) -> None:
        self.unsupported.append(Unsupported(self.file, self.policy, path, feature, message))


def _strip_key(key: str, strip_source: bool) -> str:
    # Cilium selectors may carry a label source ("k8s:app"); Kubernetes labels never do.
    if strip_source and ":" in key.split("/", 1)[0]:
        source, _, rest = key.partition(":")
        if source in ("k8s", "any", "container", "reserved"):
            return rest
    return key


def parse_selector(
    raw: Any, path: str, col: Collector, *, strip_source: bool = False
) -> LabelSelector | None:
    """A LabelSelector, or ``None`` with problems recorded. ``None``/``{}`` give the empty one."""
    if raw is None:
        return LabelSelector()
    if not isinstance(raw, dict):
        col.problem(path, f"must be a label selector object, not {type(raw).__name__}")
        return None
    ok = True
    labels: list[tuple[str, str]] = []
    match_labels = raw.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        col.problem(f"{path}.matchLabels", "must be a mapping of label key to value")
        ok = False
        match_labels = {}
    for key, value in match_labels.items():
        key_s = _strip_key(key, strip_source) if isinstance(key, str) else key
        err = label_key_error(key_s) or label_value_error(
            value if not isinstance(value, bool | int) else str(value)
        )
        if err:
            col.problem(f"{path}.matchLabels.{key}", err)
            ok = False
            continue
        labels.append((str(key_s), str(value)))
    reqs: list[LabelRequirement] = []
    exprs = raw.get("matchExpressions") or []
    if not isinstance(exprs, list):
        col.problem(f"{path}.matchExpressions", "must be a list")
        exprs, ok = [], False
    for i, expr in enumerate(exprs):
        req = _parse_requirement(expr, f"{path}.matchExpressions[{i}]", col, strip_source)
        if req is None:
            ok = False
        else:
            reqs.append(req)
    extra = set(raw) - {"matchLabels", "matchExpressions"}
    for key in sorted(map(str, extra)):
        col.problem(f"{path}.{key}", "unknown field in a label selector")
        ok = False
    return LabelSelector(tuple(sorted(labels)), tuple(reqs)) if ok else None


def _parse_requirement(
    raw: Any, path: str, col: Collector, strip_source: bool
) -> LabelRequirement | None:
    if not isinstance(raw, dict):
        col.problem(path, "must be an object with key, operator and values")
        return None
    key = raw.get("key")
    key = _strip_key(key, strip_source) if isinstance(key, str) else key
    op = raw.get("operator")
    values = raw.get("values")
    ok = True
    err = label_key_error(key)
    if err:
        col.problem(f"{path}.key", err)
        ok = False
    if op not in OPERATORS:
        expected = ", ".join(OPERATORS)
        col.problem(f"{path}.operator", f"unknown operator {op!r} (expected {expected})")
        return None
    if values is None:
        values = []
    if not isinstance(values, list):
        col.problem(f"{path}.values", "must be a list of strings")
        return None
    if op in ("In", "NotIn") and not values:
        col.problem(f"{path}.values", f"operator {op} needs at least one value")
        ok = False
    if op in ("Exists", "DoesNotExist") and values:
        col.problem(f"{path}.values", f"operator {op} takes no values")
        ok = False
    out: list[str] = []
    for j, value in enumerate(values):
        v = str(value) if isinstance(value, bool | int) else value
        verr = label_value_error(v)
        if verr:
            col.problem(f"{path}.values[{j}]", verr)
            ok = False
        else:
            out.append(v)
    return LabelRequirement(str(key), str(op), tuple(out)) if ok else None


def parse_cidr(raw: Any, path: str, col: Collector) -> str | None:
    """A CIDR in canonical network form (host bits cleared), or ``None`` with a problem."""
    if not isinstance(raw, str) or "/" not in raw:
        col.problem(path, f"invalid CIDR {raw!r}: expected address/prefix, e.g. 10.0.0.0/8")
        return None
    try:
        return str(ipaddress.ip_network(raw.strip(), strict=False))
    except ValueError:
        col.problem(path, f"invalid CIDR {raw!r}")
        return None


def parse_ip_block(
    raw: Any, path: str, col: Collector, *, external_only: bool = False
) -> IPBlock | None:
    """``ipBlock {cidr, except}``; each exception must lie inside the CIDR, same family."""
    if not isinstance(raw, dict):
        col.problem(path, "must be an object with cidr and optional except")
        return None
    if "cidr" not in raw:
        col.problem(f"{path}.cidr", "required field is missing")
        return None
    cidr = parse_cidr(raw.get("cidr"), f"{path}.cidr", col)
    excepts_raw = raw.get("except") or []
    if not isinstance(excepts_raw, list):
        col.problem(f"{path}.except", "must be a list of CIDRs")
        return None
    excepts: list[str] = []
    ok = cidr is not None
    for i, item in enumerate(excepts_raw):
        exc = parse_cidr(item, f"{path}.except[{i}]", col)
        if exc is None:
            ok = False
            continue
        if cidr is not None:
            outer, inner = ipaddress.ip_network(cidr), ipaddress.ip_network(exc)
            if outer.version != inner.version or not inner.subnet_of(outer):  # type: ignore[arg-type]
                col.problem(f"{path}.except[{i}]", f"{item} is not within {raw.get('cidr')}")
                ok = False
                continue
        excepts.append(exc)
    if not ok or cidr is None:
        return None
    return IPBlock(cidr, tuple(excepts), external_only)


def parse_protocol(raw: Any, path: str, col: Collector, *, allow_any: bool = False) -> str | None:
    """TCP, UDP or SCTP (absent: TCP). Cilium's ``ANY`` is allowed when ``allow_any``."""
    if raw is None:
        return "TCP"
    if isinstance(raw, str) and raw in PROTOCOLS:
        return raw
    if allow_any and isinstance(raw, str) and raw.upper() in PROTOCOLS + ("ANY",):
        return raw.upper()
    col.problem(path, f"unknown protocol {raw!r} (expected TCP, UDP or SCTP)")
    return None


def parse_port_value(
    raw: Any, path: str, col: Collector, *, numeric_strings: bool = False
) -> int | str | None:
    """A port number 1-65535 or an IANA service name.

    Kubernetes reads a quoted number (``port: "80"``) as a port *name* and rejects it (names
    need a letter); Cilium writes every port as a string, so it passes ``numeric_strings``.
    """
    if isinstance(raw, bool):
        col.problem(path, f"invalid port {raw!r}")
        return None
    if isinstance(raw, str) and raw.isdigit():
        if not numeric_strings:
            col.problem(
                path,
                f"port {raw!r} is a string, which Kubernetes reads as a port name; "
                f"write {raw} without quotes",
            )
            return None
        raw = int(raw)
    if isinstance(raw, int):
        if not 1 <= raw <= 65535:
            col.problem(path, f"port {raw} out of range 1-65535")
            return None
        return raw
    if isinstance(raw, str):
        if (
            len(raw) > 15
            or not _PORT_NAME.fullmatch(raw)
            or "--" in raw
            or not any(c.isalpha() for c in raw)
        ):
            col.problem(path, f"invalid port name {raw!r} (IANA service name: 1-15 a-z, 0-9, '-')")
            return None
        return raw
    col.problem(path, f"invalid port {raw!r}")
    return None
