"""Kubernetes name and label syntax (apimachinery validation rules), in one place.

Everything that reaches YAML or a selector from untrusted flows is checked here: label keys
(``[prefix/]name``), label values, DNS-1123 labels (object and namespace names). Patterns use
``fullmatch`` so a trailing newline never passes as ``$`` would let it.
"""

from __future__ import annotations

import re

__all__ = [
    "dns_label_error",
    "dns_name_error",
    "dns_subdomain_error",
    "label_key_error",
    "label_value_error",
]

_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# A DNS name as resolvers see it (Cilium toFQDNs.matchName): labels of letters, digits, '-' and
# '_' (service records), no trailing dot.
_FQDN_PART = r"[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?"
_FQDN = re.compile(rf"{_FQDN_PART}(\.{_FQDN_PART})*")


def label_key_error(key: object) -> str | None:
    """Why ``key`` is not a valid label key (Kubernetes qualified name), or ``None``."""
    if not isinstance(key, str) or not key:
        return "label key must be a non-empty string"
    prefix, sep, name = key.rpartition("/")
    if sep and not prefix:
        return f"invalid label key {key[:80]!r}: empty prefix"
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return f"invalid label key {key[:80]!r}: prefix must be a DNS subdomain"
    if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return (
            f"invalid label key {key[:80]!r}: name must be 1-63 alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )
    return None


def label_value_error(value: object) -> str | None:
    """Why ``value`` is not a valid label value, or ``None`` (the empty value is valid)."""
    if not isinstance(value, str):
        return f"label value must be a string, not {type(value).__name__}"
    if value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
        return (
            f"invalid label value {value[:80]!r}: at most 63 alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )
    return None


def dns_label_error(name: object) -> str | None:
    """Why ``name`` is not a DNS-1123 label (object and namespace names), or ``None``."""
    if not isinstance(name, str) or not name or len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        shown = name[:80] if isinstance(name, str) else name
        return f"{shown!r} is not a DNS-1123 label (lowercase alphanumerics and '-', <= 63)"
    return None


def dns_subdomain_error(name: object) -> str | None:
    """Why ``name`` is not a DNS-1123 subdomain (most object names, e.g. NetworkPolicy), or
    ``None``."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 253
        or not _DNS_SUBDOMAIN.fullmatch(name)
    ):
        shown = name[:80] if isinstance(name, str) else name
        return (
            f"{shown!r} is not a DNS-1123 subdomain (lowercase alphanumerics, '-' and '.', "
            "<= 253)"
        )
    return None


def dns_name_error(name: object) -> str | None:
    """Why ``name`` is not a DNS name a Cilium ``toFQDNs.matchName`` can hold, or ``None``."""
    if not isinstance(name, str) or not name or len(name) > 253 or not _FQDN.fullmatch(name):
        shown = name[:80] if isinstance(name, str) else name
        return f"{shown!r} is not a DNS name"
    return None
