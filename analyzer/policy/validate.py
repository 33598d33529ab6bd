"""Field validation shared by the policy parsers: Kubernetes syntax rules, with field paths.

The parsers walk a manifest with a :class:`Collector`; each check records a problem at the
field path it concerns (``spec.ingress[0].from[1].ipBlock.cidr``) and returns a usable value or
``None``, so one manifest reports all its problems at once.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from analyzer.k8s.syntax import (
    dns_label_error,
    dns_subdomain_error,
    label_key_error,
    label_value_error,
)
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
    "OBJECT_FIELDS",
    "METADATA_FIELDS",
    "Collector",
    "check_fields",
    "check_metadata",
    "unknown_field",
    "parse_selector",
    "parse_cidr",
    "parse_ip_block",
    "parse_protocol",
    "parse_port_value",
    "label_key_error",
    "label_value_error",
]

_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
# Top-level fields of a namespaced object (``status`` appears in older `kubectl get` output).
OBJECT_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
# ObjectMeta, as the API server returns it.
METADATA_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
})


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


def unknown_field(key: object, known: Collection[str]) -> str:
    """``unknown field "ingres" (did you mean "ingress"?)``, as kubectl's strict validation."""
    shown = str(key)[:80]
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(shown, sorted(known), n=1, cutoff=0.6) or (
        [by_lower[shown.lower()]] if shown.lower() in by_lower else []
    )
    hint = f" (did you mean {close[0]!r}?)" if close else f" (expected {', '.join(sorted(known))})"
    return f"unknown field {shown!r}{hint}"


def check_fields(raw: dict[Any, Any], known: Collection[str], path: str, col: Collector) -> bool:
    """Record every key of ``raw`` outside ``known`` as a problem; True when there is none.

    The API server rejects such an object under strict field validation (kubectl's default),
    and with validation off it drops the field, so ``ingres:`` would leave a deny-all policy:
    either way the manifest does not say what its author meant, so it is not loaded.
    """
    ok = True
    for key in sorted(set(raw) - set(known), key=str):
        col.problem(f"{path}.{key}" if path else str(key), unknown_field(key, known))
        ok = False
    return ok


def check_metadata(meta: Any, col: Collector, *, namespaced: bool) -> bool:
    """``metadata``: known fields, name a DNS-1123 subdomain, namespace a DNS-1123 label."""
    if meta is None:
        col.problem("metadata.name", "required field is missing")
        return False
    if not isinstance(meta, dict):
        col.problem("metadata", "must be an object")
        return False
    ok = check_fields(meta, METADATA_FIELDS, "metadata", col)
    name = meta.get("name")
    if name is None or name == "":
        col.problem("metadata.name", "required field is missing")
        ok = False
    elif (err := dns_subdomain_error(name)) is not None:
        col.problem("metadata.name", err)
        ok = False
    namespace = meta.get("namespace")
    if namespaced and namespace not in (None, "") and (err := dns_label_error(namespace)):
        col.problem("metadata.namespace", err)
        ok = False
    return ok


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
    if not check_fields(raw, ("matchLabels", "matchExpressions"), path, col):
        ok = False
    return LabelSelector(tuple(sorted(labels)), tuple(reqs)) if ok else None


def _parse_requirement(
    raw: Any, path: str, col: Collector, strip_source: bool
) -> LabelRequirement | None:
    if not isinstance(raw, dict):
        col.problem(path, "must be an object with key, operator and values")
        return None
    if not check_fields(raw, ("key", "operator", "values"), path, col):
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
    raw: Any, path: str, col: Collector, *, external_only: bool = False,
    fields: Collection[str] = ("cidr", "except"), strict_except: bool = True,
) -> IPBlock | None:
    """``ipBlock {cidr, except}``; each exception must lie inside the CIDR, same family.

    ``strict_except`` (Kubernetes): an exception must be a *strict* subset of the CIDR, as the
    API server validates (``except: [cidr]`` would leave a block that matches nothing).
    """
    if not isinstance(raw, dict):
        col.problem(path, "must be an object with cidr and optional except")
        return None
    if not check_fields(raw, fields, path, col):
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
            if strict_except and inner == outer:
                col.problem(
                    f"{path}.except[{i}]",
                    f"{item} must be a strict subset of cidr {raw.get('cidr')} "
                    "(Kubernetes rejects an exception equal to the block)",
                )
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
