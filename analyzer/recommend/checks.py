"""What goes into a manifest is checked first (values come from flows: untrusted): names,
labels, selectors, CIDRs and ports, and the selector shapes both flavours share."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from analyzer.errors import VerificationError
from analyzer.k8s.syntax import (
    dns_label_error,
    label_key_error,
    label_value_error,
)
from analyzer.recommend.model import (
    Port,
    Selector,
)

CILIUM_NS_LABEL = "k8s:io.kubernetes.pod.namespace"


def name_error(name: str) -> str | None:
    """Why ``name`` is not a DNS-1123 label (object and namespace names), or None."""
    return dns_label_error(name)


def label_error(key: str, value: str) -> str | None:
    """Why ``key=value`` is not valid label syntax, or None."""
    return label_key_error(key) or label_value_error(value)


def selector_error(labels: Mapping[str, str]) -> str | None:
    """Why a chosen selector (``key -> value``) cannot be written, or None."""
    for key, value in labels.items():
        err = label_error(key, value)
        if err:
            return err
    return None


def _check(error: str | None) -> None:
    if error:
        raise VerificationError(f"refusing to write an invalid manifest: {error}")


def _checked_selector(sel: Selector) -> Selector:
    for key, value in sel.match_labels:
        _check(label_error(key, value))
    for key, values in sel.match_in:
        for value in values:
            _check(label_error(key, value))
    return sel


def _checked_cidr(cidr: str) -> str:
    try:
        return str(ipaddress.ip_network(cidr, strict=False))
    except ValueError as exc:
        raise VerificationError(f"refusing to write an invalid CIDR {cidr[:60]!r}") from exc


def _checked_port(port: Port) -> Port:
    if port.protocol not in ("TCP", "UDP", "SCTP") or not 1 <= port.port <= 65535:
        raise VerificationError(f"refusing to write an invalid port {port.protocol}/{port.port}")
    return port


def _k8s_selector(sel: Selector) -> dict[str, Any]:
    _checked_selector(sel)
    out: dict[str, Any] = {}
    if sel.match_labels:
        out["matchLabels"] = dict(sel.match_labels)
    if sel.match_in:
        out["matchExpressions"] = [
            {"key": k, "operator": "In", "values": list(vs)} for k, vs in sel.match_in
        ]
    return out
